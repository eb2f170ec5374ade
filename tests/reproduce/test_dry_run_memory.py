"""The dry run's peak-memory estimate (a probe of each recipe in a fresh process) against the measured peak of
the real run, and the refusal of a plan that does not fit, with a batch size that then fits."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch

from reproduce import experiments
from reproduce.experiments import ExperimentOptions, estimate, memory
from zoo.datasets import write_cifar10

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from child_bounds import measures_memory, run_child  # noqa: E402

pytestmark = pytest.mark.skipif(not measures_memory(), reason="a process's peak memory is read from /proc")

# Big enough that the batch's activations are a visible share of the peak (torch alone is ~0.6 GB), small enough
# for seconds of CPU.
TRAIN = dict(epochs=1, C=8, layers=3, batch_size=64, eval_batch_size=64, limit=128, limit_eval=64, auxiliary=False,
             num_threads=1)


@pytest.fixture
def cifar_256(tmp_path):
    """256 training images in CIFAR-10's format: a batch of 64 and one of 32 are both whole batches (the shared
    tiny_cifar has 32 images, so both batch sizes would train on the same 32)."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (320, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.arange(320) % 10
    write_cifar10(tmp_path / "data256", images[:256], labels[:256], images[256:], labels[256:])
    return tmp_path / "data256"


def _options(tmp_path, data, **kw):
    return ExperimentOptions(**{**dict(experiment="cifar10", runs=1, out=str(tmp_path / "exp"), data=str(data),
                                       device="cpu", profile="quick", train_overrides=dict(TRAIN), progress=False),
                                **kw})


def _peaks_mb(lines):
    """The per-run peaks the dry run printed, in MB."""
    line = next(line for line in lines if line.startswith("time on cpu"))
    return [float(v) * (1024 if unit == "GB" else 1) for v, unit in re.findall(r"peak ([\d.]+) (MB|GB)", line)]


def _cli(options_args, data, out):
    return ["cifar10", "--runs", "1", "--profile", "quick", "--device", "cpu", "--data", str(data), "--out", str(out),
            "--no-progress", "--no-report", *options_args]


def test_the_dry_runs_cpu_peak_is_within_25_percent_of_the_real_runs(tmp_path, cifar_256):
    """The same tiny training, estimated by the dry run and then run for real in a fresh process (its own VmHWM)."""
    lines = experiments.plan_experiment(_options(tmp_path, cifar_256)).describe()
    [estimated] = _peaks_mb(lines)
    assert any(line.startswith("memory on cpu: the largest run peaks at about") and "VmHWM" in line for line in lines)
    real = run_child("-m", "reproduce", _cli(["--epochs", "1", "--C", "8", "--layers", "3", "--batch-size", "64",
                                              "--eval-batch-size", "64", "--limit", "128", "--limit-eval", "64",
                                              "--no-auxiliary", "--num-threads", "1"], cifar_256, tmp_path / "real"),
                     wall_timeout=300)
    assert real.returncode == 0, real.stderr[-2000:]
    assert abs(estimated - real.peak_rss_mb) <= 0.25 * real.peak_rss_mb, (estimated, real.peak_rss_mb)


def test_the_recurrent_searches_are_estimated(tmp_path):
    """Both orders of the recurrent search get a time and a peak from their probe (the conv search's: order 1 in
    test_experiments_cli.py's dry run of the search pipeline, order 2 in the last test here)."""
    from search_helpers import tiny_corpus

    corpus = tiny_corpus(tmp_path / "text", train=60, valid=30)
    rnn = dict(data=str(corpus), emsize=12, nhid=12, nhidlast=12, batch_size=4, eval_batch_size=2, bptt=8, epochs=1,
               device="cpu", num_threads=1)
    for order in (1, 2):
        run = estimate.estimate_run("search", "ptb", dict(rnn, order=order))
        assert run.seconds > 0 and run.peak_bytes > 0 and run.batch_size == 4


def test_a_plan_over_the_available_memory_is_refused_with_a_batch_size_that_then_fits(tmp_path, cifar_256,
                                                                                      monkeypatch):
    """The fake available memory lies between the measured peaks at batch sizes 64 and 32 (the two the refusal
    probes), so the refusal must name a batch size below 64; the dry run at that size, probed afresh, passes."""
    measured = {}
    probe = estimate.run_probe

    def once(kind, dataset, config, **kw):  # each probe config measured once in this test
        key = repr(sorted(config.items()))
        if key not in measured:
            measured[key] = probe(kind, dataset, config, **kw)
        return measured[key]

    monkeypatch.setattr(estimate, "run_probe", once)
    config = experiments.plan_experiment(_options(tmp_path, cifar_256)).work[0][2]
    at_64 = estimate.estimate_run("train", "cifar10", config).peak_bytes
    at_32 = estimate.estimate_run("train", "cifar10", dict(config, batch_size=32)).peak_bytes
    assert at_64 > at_32
    fake = (at_64 + at_32) // 2
    monkeypatch.setattr(memory, "available_memory", lambda device, gpu=None: (fake, "test memory"))
    with pytest.raises(memory.DoesNotFitError) as refused:
        experiments.plan_experiment(_options(tmp_path, cifar_256)).describe()
    message = str(refused.value)
    assert "\n" not in message and "the train of cifar10" in message and "test memory" in message
    fits = int(re.search(r"rerun with --batch-size (\d+)", message).group(1))
    assert 1 <= fits < 64
    monkeypatch.setattr(estimate, "run_probe", probe)  # measured afresh
    lines = experiments.plan_experiment(_options(tmp_path, cifar_256, train_overrides=dict(TRAIN, batch_size=fits))
                                        ).describe()
    assert _peaks_mb(lines)[0] * 2 ** 20 <= fake
    assert not (tmp_path / "exp").exists()  # a dry run writes nothing, refused or not


def test_the_cli_refuses_in_one_line(tmp_path, tiny_cifar, monkeypatch, capsys):
    from reproduce.__main__ import main

    monkeypatch.setattr(memory, "available_memory", lambda device, gpu=None: (1 << 20, "test memory"))
    args = ["--dry-run", "--epochs", "1", "--C", "4", "--layers", "3", "--batch-size", "2", "--limit", "4",
            "--no-auxiliary", "--num-threads", "1"]
    assert main(_cli(args, tiny_cifar, tmp_path / "x")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: the train of cifar10 needs about") and "\n" not in err
    assert "even batch size 1 would not fit" in err


def test_the_dry_runs_cpu_peak_of_a_second_order_search_is_within_25_percent_of_the_real_searchs(tmp_path, cifar_256):
    """As for the training: the search's probe against a real search of the same config in a fresh process."""
    search = dict(epochs=1, C=8, layers=3, batch_size=16, train_examples=64, order=2, num_threads=1)
    estimated = estimate.estimate_run("search", "cifar10", dict(search, data=str(cifar_256), device="cpu"))
    args = [f"--{k.replace('_', '-')}={v}" for k, v in search.items()]
    real = run_child("-m", "reproduce", ["search", "cifar10", "--data", str(cifar_256), "--device", "cpu",
                                         "--out", str(tmp_path / "real"), "--no-progress", *args], wall_timeout=300)
    assert real.returncode == 0, real.stderr[-2000:]
    estimated_mb = estimated.peak_bytes / 2 ** 20
    assert abs(estimated_mb - real.peak_rss_mb) <= 0.25 * real.peak_rss_mb, (estimated_mb, real.peak_rss_mb)
