"""The dry run's refusal of a run that does not fit, with scripted probes (no network is trained here): a peak
over the available memory, a probe that runs out of memory (on a GPU the only way a plan fails to fit: its
measured peak can never exceed the card), a child killed by the OOM killer, and errors in the probe's child."""
from __future__ import annotations

import io
import json
import re
import subprocess

import pytest
import torch

from reproduce.experiments import estimate, memory, probe

GB = 1 << 30


def scripted(peaks):
    """peak_at for memory.refusal: ``peaks[b]`` is the peak at batch size b, None where it runs out of memory."""
    asked = []

    def peak_at(batch):
        asked.append(batch)
        value = peaks.get(batch)
        return memory.Probed(value is None, value)

    return peak_at, asked


def test_a_peak_over_the_memory_names_the_batch_size_on_the_line_through_two_probes():
    # 1 GB fixed + 10 MB per sample: 64 -> 1.625 GB, 32 -> 1.3125 GB; 0.95 x 1.5 GB leaves room for 43 samples
    per = 10 << 20
    peak_at, asked = scripted({32: GB + 32 * per})
    error = memory.refusal("the train of cifar10", 64, GB + 64 * per, int(1.5 * GB), "test memory", "--batch-size",
                           peak_at)
    assert asked == [32] and "\n" not in str(error)
    assert "rerun with --batch-size 43" in str(error) and "more than the 1.5 GB of test memory" in str(error)


def test_a_probe_out_of_memory_halves_until_one_runs_then_fits_a_line():
    per = 10 << 20
    peak_at, asked = scripted({16: GB + 16 * per, 8: GB + 8 * per})  # 64 and 32 run out of memory
    error = memory.refusal("the search of cifar10 (order 2)", 64, None, int(1.5 * GB), "the GPU's total memory on cuda",
                           "--search-batch-size", peak_at)
    assert asked == [32, 16, 8]
    message = str(error)
    assert message.startswith("the search of cifar10 (order 2) ran out of memory at batch size 64")
    assert "rerun with --search-batch-size 43" in message and "\n" not in message


def test_nothing_runs_or_nothing_smaller_to_try():
    peak_at, asked = scripted({})
    error = memory.refusal("the train of cifar10", 8, None, GB, "test memory", "--batch-size", peak_at)
    assert asked == [4, 2, 1] and "even batch size 1 ran out of memory" in str(error)
    error = memory.refusal("the train of cifar10", 1, 2 * GB, GB, "test memory", "--batch-size", scripted({})[0])
    assert "no smaller batch size to try" in str(error)
    only_one, _ = scripted({1: GB // 2})
    error = memory.refusal("the train of cifar10", 4, None, GB, "test memory", "--batch-size", only_one)
    assert "batch size 1 ran" in str(error) and "rerun with --batch-size 1" in str(error)


def test_the_probe_child_answers_out_of_memory_and_errors_in_one_line(monkeypatch, capsys):
    def run_child(error):
        def fail(*_):
            raise error
        monkeypatch.setattr(probe, "measure", fail)
        monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"kind": "train", "dataset": "cifar10",
                                                                  "config": {}})))
        probe._main()
        return json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    assert run_child(torch.OutOfMemoryError("CUDA out of memory"))["oom"] is True
    assert run_child(MemoryError())["oom"] is True
    assert run_child(ModuleNotFoundError("install darts-zoo[harness]")) == {"error": "install darts-zoo[harness]"}
    assert run_child(KeyError("no field x")) == {"error": "no field x"}
    bug = run_child(ZeroDivisionError("division by zero"))
    assert bug == {"error": "the dry run's probe failed: ZeroDivisionError: division by zero"}


def test_a_probe_killed_by_the_oom_killer_is_out_of_memory_and_other_deaths_are_one_line(monkeypatch):
    def ended(returncode, stdout="", stderr=""):
        monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, returncode, stdout,
                                                                                          stderr))

    ended(-9)
    assert probe.run_probe("train", "cifar10", {})["oom"] is True
    ended(-11, stderr="Fatal Python error: Segmentation fault\n")
    with pytest.raises(probe.ProbeFailedError) as e:
        probe.run_probe("train", "cifar10", {})
    assert isinstance(e.value, ValueError) and "Segmentation fault" in str(e.value) and "\n" not in str(e.value)
    ended(0, stdout=json.dumps({"error": "no CIFAR-10 in /x"}) + "\n")
    with pytest.raises(ValueError, match="no CIFAR-10 in /x"):
        probe.run_probe("train", "cifar10", {})


def test_the_cli_refuses_a_plan_whose_probe_runs_out_of_memory(tmp_path, tiny_cifar, monkeypatch, capsys):
    """The real planning and CLI, with scripted probes: batch 64 runs out of memory, 32 and 16 run."""
    from reproduce.__main__ import main

    def fake_probe(kind, dataset, config, timeout=None, gpu=None):
        b = config["batch_size"]
        if b > 32:
            return {"oom": True}
        return {"seconds_per_step": 0.1, "peak_bytes": GB + b * (10 << 20)}

    monkeypatch.setattr(estimate, "run_probe", fake_probe)
    monkeypatch.setattr(memory, "available_memory", lambda device, gpu=None: (int(1.5 * GB), "test memory"))
    out = tmp_path / "x"
    argv = ["cifar10", "--runs", "1", "--profile", "quick", "--device", "cpu", "--data", str(tiny_cifar), "--out",
            str(out), "--no-progress", "--no-report", "--dry-run", "--epochs", "1", "--batch-size", "64"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error: the train of cifar10 ran out of memory at batch size 64")
    assert int(re.search(r"rerun with --batch-size (\d+)", err).group(1)) == 43
    assert not out.exists()
