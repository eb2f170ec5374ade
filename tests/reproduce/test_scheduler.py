"""The scheduler: in-process runs, the local GPU queue (with fake GPUs), and Slurm through submitit."""
from __future__ import annotations

import contextlib
import json
import pickle
import sys
import time
from pathlib import Path

import pytest

from reproduce import runner, scheduler, slurm
from reproduce.scheduler import Job, RunsFailedError, SlurmOptions, parse_gpus, run_jobs

# A stand-in for one run: records which "GPU" it saw and when it ran, then writes a finished record.
FAKE_RUN = r"""
import json, os, sys, time
job = json.loads(sys.argv[1])
out = job["out"]
os.makedirs(out, exist_ok=True)
start = time.time()
time.sleep(job["config"].get("sleep", 0.3))
if job["config"].get("fail"):
    print("ValueError: the data is not there")
    sys.exit(3)
record = {"status": "finished", "seed": job["config"]["seed"], "gpu": os.environ.get("CUDA_VISIBLE_DEVICES"),
          "start": start, "end": time.time()}
open(os.path.join(out, "record.json"), "w").write(json.dumps(record))
"""


def fake_command(job: Job):
    return [sys.executable, "-c", FAKE_RUN, job.to_json()]


def _jobs(tmp_path, n, **config):
    return [Job("train", "cifar10", {"seed": s, **config}, str(tmp_path / f"seed-{s}")) for s in range(n)]


def test_gpu_queue_runs_one_job_per_gpu_at_a_time_until_all_are_done(tmp_path):
    jobs = _jobs(tmp_path, 5)
    records = run_jobs(jobs, gpus=["0", "1"], command=fake_command, progress=False)
    assert [r["seed"] for r in records] == [0, 1, 2, 3, 4]
    assert {r["gpu"] for r in records} == {"0", "1"}  # every run saw exactly one of the GPUs
    for gpu in ("0", "1"):
        spans = sorted((r["start"], r["end"]) for r in records if r["gpu"] == gpu)
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), f"two runs overlapped on GPU {gpu}"
    # the two GPUs worked at the same time: the first two runs overlap
    first, second = sorted(records, key=lambda r: r["start"])[:2]
    assert second["start"] < first["end"]
    assert (tmp_path / "seed-0" / "log.txt").exists()


def test_gpu_queue_hands_the_next_run_to_the_gpu_that_frees_first(tmp_path):
    jobs = [Job("train", "cifar10", {"seed": 0, "sleep": 2.0}, str(tmp_path / "slow")),
            Job("train", "cifar10", {"seed": 1, "sleep": 0.1}, str(tmp_path / "a")),
            Job("train", "cifar10", {"seed": 2, "sleep": 0.1}, str(tmp_path / "b")),
            Job("train", "cifar10", {"seed": 3, "sleep": 0.1}, str(tmp_path / "c"))]
    records = run_jobs(jobs, gpus=["4", "7"], command=fake_command, progress=False)
    gpus = [r["gpu"] for r in records]
    assert gpus[0] == "4" and gpus[1:] == ["7", "7", "7"]


def test_gpu_queue_skips_runs_that_are_finished(tmp_path):
    jobs = _jobs(tmp_path, 3)
    done = Path(jobs[1].out)
    done.mkdir(parents=True)
    (done / "record.json").write_text(json.dumps({"status": "finished", "seed": 1, "gpu": "earlier"}))
    records = run_jobs(jobs, gpus=["0"], command=fake_command, progress=False)
    assert records[1]["gpu"] == "earlier"
    assert not (done / "log.txt").exists()
    assert records[0]["gpu"] == records[2]["gpu"] == "0"


def test_a_failed_run_is_named_and_the_others_still_finish(tmp_path):
    jobs = _jobs(tmp_path, 3)
    jobs[1].config["fail"] = True
    with pytest.raises(RunsFailedError, match=r"1 of 3 runs failed: train cifar10 seed 1 \(exit code 3") as e:
        run_jobs(jobs, gpus=["0", "1"], command=fake_command, progress=False)
    assert "ValueError: the data is not there" in str(e.value)  # the log's last line: why it failed
    assert (Path(jobs[0].out) / "record.json").exists() and (Path(jobs[2].out) / "record.json").exists()


def test_in_process_runs_one_after_another_and_skips_finished(tmp_path):
    jobs = _jobs(tmp_path, 3)
    Path(jobs[0].out).mkdir(parents=True)
    (Path(jobs[0].out) / "record.json").write_text(json.dumps({"status": "finished", "seed": 0}))
    order = []

    def runner(job, progress):
        order.append(job.config["seed"])
        Path(job.out).mkdir(parents=True, exist_ok=True)
        (Path(job.out) / "record.json").write_text(json.dumps({"status": "finished", "seed": job.config["seed"]}))

    records = run_jobs(jobs, runner=runner, progress=False)
    assert order == [1, 2]
    assert [r["seed"] for r in records] == [0, 1, 2]


def test_a_run_that_ends_without_a_record_is_reported(tmp_path):
    with pytest.raises(RunsFailedError, match="without a finished record"):
        run_jobs(_jobs(tmp_path, 1), runner=lambda job, progress: None, progress=False)


def test_plan_gpu_queue_deals_jobs_round_robin():
    assert scheduler.plan_gpu_queue(5, ["0", "1"]) == [[0, 2, 4], [1, 3]]


def test_parse_gpus_accepts_ids_and_refuses_nonsense():
    assert parse_gpus("0,1, 3") == ["0", "1", "3"]
    assert parse_gpus(None) == [] and parse_gpus("") == []
    with pytest.raises(ValueError, match="twice"):
        parse_gpus("0,0")
    with pytest.raises(ValueError, match="GPU ids"):
        parse_gpus("cuda:0")


def test_unknown_launcher_and_kind_are_refused(tmp_path):
    with pytest.raises(ValueError, match="launcher"):
        run_jobs(_jobs(tmp_path, 1), launcher="pbs")
    with pytest.raises(ValueError, match="kind"):
        Job("eval", "cifar10", {}, str(tmp_path))


def test_slurm_parameters_carry_partition_time_and_gpus():
    params = slurm.executor_parameters(SlurmOptions(partition="gpu", time_min=90, gpus_per_job=1, cpus_per_job=4,
                                                        mem_gb=32))
    assert params["slurm_partition"] == "gpu" and params["timeout_min"] == 90
    assert params["gpus_per_node"] == 1 and params["cpus_per_task"] == 4 and params["mem_gb"] == 32


def test_slurm_job_pickles_and_requeues_itself_at_the_time_limit(tmp_path):
    import submitit

    job = slurm._RequeueingJob("train", "cifar10", {"seed": 3}, str(tmp_path))
    again = pickle.loads(pickle.dumps(job))
    assert (again.kind, again.dataset, again.config, again.out) == ("train", "cifar10", {"seed": 3}, str(tmp_path))
    resubmission = job.checkpoint()
    assert isinstance(resubmission, submitit.helpers.DelayedSubmission)
    assert resubmission.function is job


def test_worker_entry_point_round_trips_a_job(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(scheduler, "run_task", lambda kind, dataset, config, out, progress=False: seen.update(
        kind=kind, dataset=dataset, config=config, out=out))
    job = Job("search", "ptb", {"seed": 2, "order": 1}, str(tmp_path / "s"))
    assert scheduler.main(scheduler.worker_command(job)[-2:]) == 0
    assert seen == {"kind": "search", "dataset": "ptb", "config": {"seed": 2, "order": 1}, "out": str(tmp_path / "s")}


@pytest.mark.slow
def test_slurm_path_runs_real_trainings_through_submitits_local_executor(tmp_path, tiny_cifar):
    from reproduce.config import build, to_dict
    from reproduce.train import RECIPES

    jobs = []
    for seed in (0,):
        cfg = to_dict(build(RECIPES["cifar10"], dict(seed=seed, data=str(tiny_cifar), device="cpu", epochs=1, C=4,
                                                      layers=3, batch_size=16, eval_batch_size=32, limit=32,
                                                      limit_eval=32, auxiliary=False, num_threads=1)))
        jobs.append(Job("train", "cifar10", cfg, str(tmp_path / "runs" / f"seed-{seed}")))
    t0 = time.time()
    records = run_jobs(jobs, launcher="slurm", slurm=SlurmOptions(cluster="local", time_min=5), progress=False)
    assert [r["seed"] for r in records] == [0]
    assert all(r["status"] == "finished" and "test_error" in r["final"] for r in records)
    assert list((tmp_path / "slurm").iterdir()), "submitit's job folders are kept beside the run directories"
    submitted = json.loads((Path(jobs[0].out) / slurm.SLURM_JOB).read_text())
    assert submitted["cluster"] == "local" and submitted["job_id"] and submitted["folder"].endswith("%j")
    # a second call finds the runs finished and submits nothing
    run_jobs(jobs, launcher="slurm", slurm=SlurmOptions(cluster="local"), progress=False)
    assert time.time() - t0 < 120


def test_a_slurm_job_with_several_gpus_runs_one_process_per_gpu():
    params = slurm.executor_parameters(SlurmOptions(gpus_per_job=4, cpus_per_job=32))
    assert (params["gpus_per_node"], params["tasks_per_node"], params["cpus_per_task"]) == (4, 4, 8)
    assert params["slurm_srun_args"] == ["--kill-on-bad-exit=1"]
    params = slurm.executor_parameters(SlurmOptions(gpus_per_job=0, cpus_per_job=8))
    assert (params["gpus_per_node"], params["tasks_per_node"], params["cpus_per_task"]) == (0, 1, 8)
    with pytest.raises(ValueError, match="gpus-per-job must be >= 0"):
        SlurmOptions(gpus_per_job=-1)


@pytest.mark.slow
def test_a_two_process_slurm_job_trains_one_run_with_ddp(tmp_path, tiny_cifar):
    # submitit's local executor starts the job's 2 tasks as Slurm would; they join one gloo group
    from reproduce.config import build, to_dict
    from reproduce.train import RECIPES

    cfg = to_dict(build(RECIPES["cifar10"], dict(seed=0, data=str(tiny_cifar), device="cpu", epochs=1, C=4, layers=3,
                                                 batch_size=16, eval_batch_size=32, limit=32, limit_eval=32,
                                                 auxiliary=False, num_threads=1)))
    job = Job("train", "cifar10", cfg, str(tmp_path / "runs" / "seed-0"))
    [record] = run_jobs([job], launcher="slurm", slurm=SlurmOptions(cluster="local", gpus_per_job=2, cpus_per_job=2,
                                                                    time_min=5), progress=False)
    assert record["status"] == "finished" and record["world_size"] == 2



class _FakeSlurmJob:
    """submitit's handle of a job submitted by an earlier launcher (only its id and log folder are used)."""

    attached = []

    def __init__(self, folder, job_id):
        self.job_id, self.paths = job_id, type("Paths", (), {"folder": folder})()
        _FakeSlurmJob.attached.append(job_id)


def _fake_slurm(out, sacct=(), squeue=()):
    """``subprocess.run`` for sacct and squeue: each answers its states in turn (the last one stays; "": sacct
    says nothing, squeue no longer lists the job; no answers at all: the command is missing). Once the job
    is seen ended, it has written the run's record."""
    answers = {"sacct": list(sacct), "squeue": list(squeue)}

    def run(cmd, **kw):
        tool = cmd[0]
        assert tool in answers and "77" in cmd, cmd
        queue = answers[tool]
        if not queue:
            raise OSError(f"no {tool} here")
        text = queue.pop(0) if len(queue) > 1 else queue[0]
        ended = text.split()[0] not in slurm.ACTIVE_SLURM_STATES if text else tool == "squeue"  # left the queue
        if ended:
            Path(out, "record.json").write_text(json.dumps({"status": "finished", "seed": 0, "by": "77"}))
        return type("Done", (), {"stdout": text + "\n" if text else ""})()

    return run


class _FakeExecutor:
    def __init__(self):
        self.submitted, self.batches = [], []

    @contextlib.contextmanager
    def batch(self):
        start = len(self.submitted)
        yield
        self.batches.append([fn.out for fn in self.submitted[start:]])

    def submit(self, fn):
        self.submitted.append(fn)
        Path(fn.out, "record.json").write_text(json.dumps({"status": "finished", "seed": 0, "by": "new"}))
        return type("Handle", (), {"job_id": f"new-{len(self.submitted)}", "result": lambda self: {},
                                   "paths": None})()


@pytest.mark.parametrize("sacct, squeue, resubmitted", [
    (["RUNNING", "RUNNING", "COMPLETED"], [], False),
    (["PENDING", "RUNNING", "SUSPENDED", "CONFIGURING", "RUNNING", "COMPLETED"], [], False),
    (["REQUEUED", "COMPLETED"], [], False),
    (["COMPLETED"], [], True), (["FAILED"], [], True), (["CANCELLED by 12"], [], True), (["TIMEOUT"], [], True),
    ([], [], True),  # neither sacct nor squeue: unknown, submit again
    ([""], ["RUNNING", "PENDING", ""], False),  # sacct says nothing (database down): squeue is asked
])
def test_a_rerun_waits_for_jobs_still_queued_or_running_instead_of_submitting_them_again(tmp_path, monkeypatch, sacct,
                                                                                        squeue, resubmitted):
    out = tmp_path / "runs" / "seed-0"
    out.mkdir(parents=True)
    (out / slurm.SLURM_JOB).write_text(json.dumps({"job_id": "77", "cluster": "slurm", "folder": str(out)}))
    executor = _FakeExecutor()
    monkeypatch.setattr(slurm, "make_executor", lambda options, folder: executor)
    monkeypatch.setattr(slurm, "job_class", lambda cluster: _FakeSlurmJob)
    monkeypatch.setattr(_FakeSlurmJob, "attached", [])
    monkeypatch.setattr(slurm, "ATTACHED_POLL_S", 0.01)
    monkeypatch.setattr(slurm.subprocess, "run", _fake_slurm(out, sacct, squeue))
    records = run_jobs([Job("train", "cifar10", {"seed": 0}, str(out))], launcher="slurm", slurm=SlurmOptions(),
                       progress=False)
    assert _FakeSlurmJob.attached == ["77"]
    assert len(executor.submitted) == int(resubmitted)
    assert records[0]["by"] == ("new" if resubmitted else "77")
    if resubmitted:  # the new job is the one a later rerun will look for
        assert json.loads((out / slurm.SLURM_JOB).read_text())["job_id"] == "new-1"


def test_a_job_still_queued_with_another_config_is_refused_not_waited_for(tmp_path, monkeypatch):
    """A queued job has no config.json yet: its note keeps the config's digest, so a rerun with another recipe
    does not wait for a job that computes the old one (and one with the same recipe still waits)."""
    out = tmp_path / "runs" / "seed-0"
    out.mkdir(parents=True)
    queued = {"seed": 0, "epochs": 600, "device": "cuda"}
    note = {"job_id": "77", "cluster": "slurm", "folder": str(out), "config_sha256": runner.config_digest(queued)}
    (out / slurm.SLURM_JOB).write_text(json.dumps(note))
    executor = _FakeExecutor()
    monkeypatch.setattr(slurm, "make_executor", lambda options, folder: executor)
    monkeypatch.setattr(slurm, "job_class", lambda cluster: _FakeSlurmJob)
    monkeypatch.setattr(_FakeSlurmJob, "attached", [])
    monkeypatch.setattr(slurm, "ATTACHED_POLL_S", 0.01)
    monkeypatch.setattr(slurm.subprocess, "run", _fake_slurm(out, ["PENDING", "RUNNING", "COMPLETED"]))
    with pytest.raises(slurm.QueuedWithAnotherConfigError, match="scancel 77") as e:
        run_jobs([Job("train", "cifar10", {"seed": 0, "epochs": 300}, str(out))], launcher="slurm",
                 slurm=SlurmOptions(), progress=False)
    assert "\n" not in str(e.value) and not executor.submitted
    same = dict(queued, device="cpu")  # a run-time field aside: the same run
    records = run_jobs([Job("train", "cifar10", same, str(out))], launcher="slurm", slurm=SlurmOptions(),
                       progress=False)
    assert records[0]["by"] == "77" and not executor.submitted


def test_a_job_note_of_another_cluster_or_unreadable_means_submit_again(tmp_path, monkeypatch):
    executor = _FakeExecutor()
    monkeypatch.setattr(slurm, "make_executor", lambda options, folder: executor)
    monkeypatch.setattr(slurm, "job_class", lambda cluster: _FakeSlurmJob)
    jobs = []
    for i, note in enumerate([{"job_id": "1", "cluster": "local", "folder": "x"}, "not json"]):
        out = tmp_path / f"run-{i}"
        out.mkdir()
        (out / slurm.SLURM_JOB).write_text(note if isinstance(note, str) else json.dumps(note))
        jobs.append(Job("train", "cifar10", {"seed": i}, str(out)))
    run_jobs(jobs, launcher="slurm", slurm=SlurmOptions(), progress=False)
    assert len(executor.submitted) == 2


def test_a_search_job_spans_the_jobs_gpus_as_a_training_does(tmp_path, monkeypatch):
    made = {}

    def make_executor(options, folder):
        made[options.processes_per_job] = executor = _FakeExecutor()
        return executor

    monkeypatch.setattr(slurm, "make_executor", make_executor)
    jobs = [Job("search", "cifar10", {"seed": 0}, str(tmp_path / "search")),
            Job("train", "cifar10", {"seed": 0}, str(tmp_path / "train"))]
    for job in jobs:
        Path(job.out).mkdir()
    run_jobs(jobs, launcher="slurm", slurm=SlurmOptions(gpus_per_job=4), progress=False)
    assert sorted(made) == [4]  # --gpus-per-job applies to searches too (reproduce.search under torchrun)
    assert [fn.kind for fn in made[4].submitted] == ["search", "train"]


def test_a_global_batch_that_does_not_split_across_the_jobs_gpus_is_refused_before_submitting(tmp_path, monkeypatch):
    monkeypatch.setattr(slurm, "make_executor", lambda options, folder: pytest.fail("nothing may be submitted"))
    for kind in ("train", "search"):
        jobs = [Job(kind, "cifar10", {"seed": 0, "batch_size": 96}, str(tmp_path / kind))]
        with pytest.raises(ValueError, match="batch_size 96 .* does not divide across --gpus-per-job 5"):
            run_jobs(jobs, launcher="slurm", slurm=SlurmOptions(gpus_per_job=5), progress=False)


def test_an_experiments_runs_go_to_slurm_as_one_job_array(tmp_path, monkeypatch):
    executor = _FakeExecutor()
    monkeypatch.setattr(slurm, "make_executor", lambda options, folder: executor)
    jobs = [Job("search", "cifar10", {"seed": s}, str(tmp_path / f"search-{s}")) for s in range(3)]
    for job in jobs:
        Path(job.out).mkdir()
    run_jobs(jobs, launcher="slurm", slurm=SlurmOptions(gpus_per_job=2, array_parallelism=2), progress=False)
    assert executor.batches == [[job.out for job in jobs]]  # one batch() call: one sbatch --array
    assert slurm.executor_parameters(SlurmOptions(array_parallelism=2))["slurm_array_parallelism"] == 2
    assert "slurm_array_parallelism" not in slurm.executor_parameters(SlurmOptions())
    with pytest.raises(ValueError, match="--array-parallelism must be >= 0"):
        SlurmOptions(array_parallelism=-1)


def test_slurm_job_json_keeps_the_array_task_id(tmp_path):
    job = Job("search", "cifar10", {"seed": 0}, str(tmp_path))
    slurm._remember_submission(job, type("Handle", (), {"job_id": "4242_7"})(), SlurmOptions(), "f")
    note = json.loads((tmp_path / slurm.SLURM_JOB).read_text())
    assert note["job_id"] == "4242_7" and note["array_job_id"] == "4242" and note["array_task_id"] == "7"


@pytest.mark.slow
def test_two_searches_run_as_one_array_through_submitits_local_executor(tmp_path):
    from search_helpers import cifar_config, tiny_cifar

    from reproduce.config import to_dict

    data = tiny_cifar(tmp_path / "c10")
    jobs = [Job("search", "cifar10", to_dict(cifar_config(data, seed=s, order=1, epochs=1, image_size=8,
                                                          num_threads=1)), str(tmp_path / "runs" / f"search-{s}"))
            for s in range(2)]
    records = run_jobs(jobs, launcher="slurm", slurm=SlurmOptions(cluster="local", gpus_per_job=0, cpus_per_job=1,
                                                                  time_min=5, array_parallelism=1), progress=False)
    assert [r["status"] for r in records] == ["finished", "finished"] and [r["seed"] for r in records] == [0, 1]
    notes = [json.loads((Path(job.out) / slurm.SLURM_JOB).read_text()) for job in jobs]
    assert all(n["cluster"] == "local" and n["job_id"] for n in notes)
