"""``--gpus-per-job N`` on this machine: each run of the local GPU queue takes N of ``--gpus`` and runs as
torchrun's N processes (searches and trainings alike), as it does in a Slurm job."""
from __future__ import annotations

import json
import sys

import pytest
from search_helpers import cifar_config, tiny_cifar
from test_scheduler import fake_command

from reproduce import config as run_config
from reproduce.__main__ import main
from reproduce.scheduler import Job, gpu_slots, run_jobs, worker_command


def test_runs_take_consecutive_groups_of_the_gpus(tmp_path):
    jobs = [Job("search", "cifar10", {"seed": s}, str(tmp_path / f"seed-{s}")) for s in range(4)]
    records = run_jobs(jobs, gpus=["0", "1", "2", "3"], gpus_per_job=2, command=fake_command, progress=False)
    assert {r["gpu"] for r in records} == {"0,1", "2,3"}  # CUDA_VISIBLE_DEVICES of each run: two GPUs
    for slot in ("0,1", "2,3"):
        spans = sorted((r["start"], r["end"]) for r in records if r["gpu"] == slot)
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), f"two runs overlapped on GPUs {slot}"


def test_a_run_of_several_gpus_is_started_by_torchrun_with_one_process_per_gpu(tmp_path):
    job = Job("search", "cifar10", {"seed": 0}, str(tmp_path / "run"))
    assert worker_command(job)[:3] == [sys.executable, "-m", "reproduce.scheduler"]
    two = worker_command(job, processes=2)
    assert two[:3] == [sys.executable, "-m", "torch.distributed.run"] and "--nproc-per-node=2" in two
    assert two[-4:] == ["-m", "reproduce.scheduler", "--job", job.to_json()]


@pytest.mark.parametrize("gpus, per_job", [(["0", "1", "2"], 2), ([], 2), (["0"], 0)])
def test_gpus_that_do_not_split_into_runs_are_refused_in_one_line(gpus, per_job):
    with pytest.raises(ValueError) as e:
        gpu_slots(gpus, per_job)
    assert "--gpus-per-job" in str(e.value) and "\n" not in str(e.value)


def test_the_experiment_commands_refuse_gpus_per_job_without_gpus_to_take_them_from(tmp_path, capsys):
    out = tmp_path / "c10"
    assert main(["cifar10", "--search", "--gpus-per-job", "2", "--dry-run", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--gpus-per-job 2 needs --gpus" in err[0]
    assert main(["cifar10", "--gpus", "0,1,2", "--gpus-per-job", "2", "--dry-run", "--out", str(out)]) == 2
    assert not out.exists()


def test_the_dry_run_shows_the_runs_of_two_gpus(tmp_path, capsys, monkeypatch):
    from reproduce.experiments import plan

    monkeypatch.setattr(plan.estimate, "data_and_time", lambda *a, **k: [])  # the queue's lines, not the probe
    assert main(["cifar10", "--dry-run", "--gpus", "0,1,2,3", "--gpus-per-job", "2", "--runs", "3", "--out",
                 str(tmp_path / "c10")]) == 0
    text = capsys.readouterr().out
    assert "one run per 2 GPUs at a time (0,1, 2,3), 2 processes each under torchrun" in text
    assert "GPU 0,1: seeds [0, 2]" in text and "GPU 2,3: seeds [1]" in text


@pytest.mark.slow
def test_a_search_on_two_gpus_of_the_queue_runs_as_two_processes(tmp_path):
    # On this CPU machine the "GPUs" are only CUDA_VISIBLE_DEVICES values: the run's device is the CPU, and
    # torchrun's two processes join with gloo, as `torchrun --nproc-per-node 2 -m reproduce search` does.
    data = tiny_cifar(tmp_path / "c10", n_train=16)
    config = run_config.to_dict(cifar_config(data, order=1, epochs=1, num_threads=1))
    job = Job("search", "cifar10", config, str(tmp_path / "search"), name="search seed 0")
    (record,) = run_jobs([job], gpus=["0", "1"], gpus_per_job=2, progress=False)
    assert record["world_size"] == 2 and record["config"]["processes"] == 2
    saved = json.loads((tmp_path / "search" / "config.json").read_text())
    assert saved["processes"] == 2 and saved["bn_groups"] == 2  # per-process BatchNorm: labelled, not hidden
