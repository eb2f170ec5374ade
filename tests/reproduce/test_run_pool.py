"""The CPU pool of the demo: runs side by side in worker processes, each run directory run once."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from reproduce.run_pool import RunPool
from reproduce.scheduler import Job, run_jobs


def fake_run(kind, dataset, config, out, progress):
    """What a worker does instead of a real run: note itself, take a while, write a finished record.

    ``meet``: wait (up to 60 s) until that many runs of the directory have started, and record whether they
    did: runs that can go side by side then provably do, however slowly the workers start."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out.parent / "calls.txt", "a") as f:
        f.write(f"{out.name}\n")
    if config.get("fail"):
        raise ValueError(f"bad value in {out.name}")
    met = None
    if config.get("meet"):
        (out.parent / f"started-{out.name}").touch()
        deadline = time.time() + 60
        while len(list(out.parent.glob("started-*"))) < config["meet"] and time.time() < deadline:
            time.sleep(0.05)
        met = len(list(out.parent.glob("started-*"))) >= config["meet"]
    time.sleep(config.get("sleep", 0.1))
    record = {"status": "finished", "seed": config["seed"], "pid": os.getpid(), "met": met,
              "final": {"test_error": 1.0}}
    (out / "record.json").write_text(json.dumps(record))
    return record


def _jobs(root, seeds, **config):
    return [Job("train", "cifar10", {"seed": s, **config}, str(root / f"seed-{s}")) for s in seeds]


def test_runs_go_side_by_side_in_worker_processes_and_a_run_directory_runs_once(tmp_path):
    with RunPool(2, progress=False, run=fake_run) as pool:
        first = pool.submit(_jobs(tmp_path, [0], meet=2)[0])
        assert pool.submit(_jobs(tmp_path, [0], meet=2)[0]) is first  # the same run directory: the same future
        records = run_jobs(_jobs(tmp_path, [0, 1, 2, 3], meet=2), pool=pool, progress=False)
    assert [r["seed"] for r in records] == [0, 1, 2, 3]
    assert sorted((tmp_path / "calls.txt").read_text().split()) == ["seed-0", "seed-1", "seed-2", "seed-3"]
    pids = {r["pid"] for r in records}
    assert len(pids) == 2 and os.getpid() not in pids  # two workers, neither of them this process
    assert all(r["met"] for r in records), "two runs never ran at the same time"


def test_finished_runs_are_skipped_and_the_first_error_is_raised_as_it_is(tmp_path):
    done = _jobs(tmp_path, [0])
    with RunPool(1, progress=False, run=fake_run) as pool:
        run_jobs(done, pool=pool, progress=False)
        run_jobs(done, pool=pool, progress=False)  # finished: not submitted again
        with pytest.raises(ValueError, match="bad value in seed-1"):
            run_jobs(_jobs(tmp_path, [1], fail=True), pool=pool, progress=False)
    assert (tmp_path / "calls.txt").read_text().split() == ["seed-0", "seed-1"]


def test_a_pool_needs_a_worker_and_windows_gets_at_most_61(monkeypatch):
    with pytest.raises(ValueError, match="at least one worker"):
        RunPool(0, progress=False)
    monkeypatch.setattr("reproduce.run_pool.sys.platform", "win32")
    pool = RunPool(96, progress=False)  # the executor starts no process before the first run
    try:
        assert pool.workers == 61
    finally:
        pool.close()


def test_closing_on_an_error_stops_the_runs_still_going(tmp_path):
    pool = RunPool(2, progress=False, run=fake_run)
    slow = pool.submit(_jobs(tmp_path, [0], sleep=60)[0])
    start = time.time()
    with pytest.raises(ValueError, match="bad value"):
        run_jobs(_jobs(tmp_path, [1], fail=True), pool=pool, progress=False)
    pool.close(cancel=True)
    assert time.time() - start < 30, "the running run was waited for instead of stopped"
    assert slow.done() and slow.exception() is not None  # its worker was stopped, not left running
    assert not (tmp_path / "seed-0" / "record.json").exists()


def test_a_run_directory_is_not_shared_by_two_configs(tmp_path):
    with RunPool(1, progress=False, run=fake_run) as pool:
        pool.submit(_jobs(tmp_path, [0])[0])
        assert pool.submit(_jobs(tmp_path, [0], num_threads=4)[0]) is not None  # run-time fields do not count
        with pytest.raises(ValueError, match="already a run of this pool with another config"):
            pool.submit(_jobs(tmp_path, [0], learning_rate=0.5)[0])


def fake_experiment(options):
    """An experiment of the demo reduced to one run of ``fake_run`` (its config in ``train_overrides``)."""
    return run_jobs([Job("train", "cifar10", dict(options.train_overrides, seed=0), options.out)],
                    pool=options.pool, progress=False)


def test_the_demo_stops_at_the_first_failed_experiment(tmp_path, monkeypatch):
    from reproduce import demo
    from reproduce.experiments import ExperimentOptions

    monkeypatch.setattr(demo, "run_experiment", fake_experiment)
    plans = [("slow", ExperimentOptions("cifar10", out=str(tmp_path / "slow"), train_overrides={"sleep": 60})),
             ("bad", ExperimentOptions("cifar10", out=str(tmp_path / "bad"), train_overrides={"fail": True}))]
    start = time.time()
    with pytest.raises(ValueError, match="bad value"):
        demo._run_side_by_side(plans, 2, progress=False, run=fake_run)
    assert time.time() - start < 30, "the demo waited for the slow experiment before reporting the failed one"
    assert not (tmp_path / "slow" / "record.json").exists()


def sleeping_run(kind, dataset, config, out, progress):
    """A run that notes its worker's pid and then runs for longer than any test."""
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "pid").write_text(str(os.getpid()))
    time.sleep(600)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc (Linux)")
def test_workers_and_the_resource_tracker_exit_when_the_parent_is_killed(tmp_path):
    """Before: after kill -9 of the parent, its workers (about 750 MB each) and the resource tracker lived on."""
    import signal
    import subprocess
    import sys

    script = ("import sys, time; sys.path[:0] = [sys.argv[1], sys.argv[2]]\n"
              "from reproduce.run_pool import RunPool\nfrom reproduce.scheduler import Job\n"
              "from test_run_pool import sleeping_run\n"
              "pool = RunPool(1, progress=False, run=sleeping_run)\n"
              "pool.submit(Job('train', 'cifar10', {'seed': 0}, sys.argv[3]))\ntime.sleep(600)\n")
    here = Path(__file__).resolve().parent
    parent = subprocess.Popen([sys.executable, "-c", script, str(here.parents[1]), str(here), str(tmp_path / "run")])
    try:
        deadline = time.time() + 120
        while not (tmp_path / "run" / "pid").exists() and time.time() < deadline:
            time.sleep(0.2)
        worker = int((tmp_path / "run" / "pid").read_text())
        children = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _parent_of(p) == parent.pid]
        assert worker in children and len(children) >= 2  # the worker and the resource tracker
    finally:
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
    deadline = time.time() + 30
    while any(_alive(pid) for pid in children) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in children), [pid for pid in children if _alive(pid)]


def _parent_of(proc: Path) -> int:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1
