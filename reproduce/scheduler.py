"""Run a batch of search or training runs: in-process, queued over local GPUs, or as Slurm jobs.

A :class:`Job` is everything one run needs and nothing else: its kind (``"train"`` or
``"search"``), the dataset, the full resolved config as a plain dict, and the run directory.
Each run writes a self-contained record, so the launcher only has to start runs; results are
read back from ``<run dir>/record.json``.

- **In-process** (no GPUs given): runs one after another in this process.
- **Local GPU queue** (``gpus=["0", "1", ...]``): one subprocess per run with
  ``CUDA_VISIBLE_DEVICES`` set to its GPUs (``gpus_per_job`` of them, consecutive in ``gpus``; with more
  than one, the run is ``torchrun``'s N processes, one per GPU); as soon as its GPUs are free the next run
  starts on them. The output of each run goes to ``<run dir>/log.txt``.
- **Worker pool** (``pool``, :mod:`reproduce.run_pool`): side by side on this machine's cores.
- **Slurm** (``launcher="slurm"``): one job per run through submitit (:mod:`reproduce.slurm`).

On GPUs and Slurm, runs that fail do not stop the others; :class:`RunsFailedError` lists them at
the end. In-process, the first error stops the batch at once: there it is almost always the user's
(a data path, a config value) and would repeat for every run.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import subprocess
import sys
import time
from concurrent.futures import FIRST_EXCEPTION, Future, wait
from functools import partial
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

from tqdm.auto import tqdm

from . import slurm as slurm_jobs
from .config import to_dict
from .layout import QUEUE_LOG, RECORD
from .records import Record, read_record
from .slurm import SlurmOptions
from .tasks import KINDS, run_task

log = logging.getLogger(__name__)

LAUNCHERS = ("local", "slurm")


class RunsFailedError(RuntimeError):
    """Some runs of a batch failed; the message names them and where their logs are."""


@dataclasses.dataclass
class Job:
    """One run. ``config``: its fields as a dict, or the config instance the plan built and validated (then
    ``config`` holds its fields and ``built`` the instance, which :func:`run_task` takes without validating it
    again; JSON carries only the dict, see :mod:`reproduce.tasks`)."""

    kind: str
    dataset: str
    config: Dict
    out: str
    name: str = ""
    built: Any = dataclasses.field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown job kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        if not isinstance(self.config, dict):
            self.built, self.config = self.config, to_dict(self.config)
        self.out = str(self.out)
        if not self.name:
            self.name = f"{self.kind} {self.dataset} seed {self.config.get('seed')}"

    @property
    def task_config(self):
        """What :func:`run_task` takes: the built config when the job carries one, else the dict."""
        return self.built if self.built is not None else self.config

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, "dataset": self.dataset, "config": self.config, "out": self.out,
                           "name": self.name})

    @classmethod
    def from_json(cls, text: str) -> "Job":
        return cls(**json.loads(text))


# ---------------------------------------------------------------------------------------------
# What one run does, wherever it runs
# ---------------------------------------------------------------------------------------------

def read_result(job: Job) -> Optional[Record]:
    """The job's finished record, or None (not run, or not finished)."""
    record = read_record(Path(job.out) / RECORD)
    return record if record is not None and record.finished else None


# ---------------------------------------------------------------------------------------------
# Launchers
# ---------------------------------------------------------------------------------------------

def parse_gpus(text: Optional[str]) -> List[str]:
    """``"0,1,2"`` -> ``["0", "1", "2"]``; ``""``/None -> ``[]`` (run on CPU / the given device)."""
    if text is None:
        return []
    gpus = [g.strip() for g in str(text).split(",") if g.strip()]
    if len(set(gpus)) != len(gpus):
        raise ValueError(f"--gpus lists a GPU twice: {text!r}; give each GPU id once, e.g. --gpus 0,1,2,3")
    for g in gpus:
        if not g.isdigit():
            raise ValueError(f"--gpus takes comma-separated GPU ids such as 0,1,2,3; got {text!r}")
    return gpus


def run_jobs(jobs: Sequence[Job], gpus: Sequence[str] = (), launcher: str = "local",
             slurm: Optional[SlurmOptions] = None, progress: bool = True,
             runner: Optional[Callable[[Job, bool], object]] = None,
             command: Optional[Callable[[Job], List[str]]] = None,
             desc: str = "runs", pool=None, gpus_per_job: int = 1) -> List[dict]:
    """Run ``jobs`` (those already finished are skipped); returns their records in order.

    Each record is read once: a finished run's when it is skipped, the others' when they have run.

    ``pool``: a :class:`reproduce.run_pool.RunPool` that runs them side by side on this machine's cores.
    ``gpus_per_job``: GPUs (and processes) per run of the local GPU queue (:func:`gpu_slots`).
    ``runner(job, progress)`` replaces the in-process run and ``command(job)`` the subprocess
    command line of the GPU queue (both for tests). On GPUs and Slurm, raises RunsFailedError naming the
    failed runs; in this process and in a pool, the first run's error as it is.
    """
    jobs = list(jobs)
    if launcher not in LAUNCHERS:
        raise ValueError(f"unknown launcher {launcher!r}; expected one of {', '.join(LAUNCHERS)}")
    if not jobs:
        return []
    found = [read_result(job) for job in jobs]
    pending = [job for job, record in zip(jobs, found) if record is None]
    for job, record in zip(jobs, found):
        if record is not None:
            log.info("%s: finished already (%s), skipped", job.name, job.out)
    done = len(jobs) - len(pending)
    if launcher == "slurm":
        failures = slurm_jobs.run(pending, slurm or SlurmOptions(), progress, desc)
    elif gpus:
        slots = gpu_slots(gpus, gpus_per_job)
        failures = _run_gpu_queue(pending, done, slots, progress,
                                  command or (partial(worker_command, processes=gpus_per_job) if gpus_per_job > 1
                                              else worker_command), desc)
    elif pool is not None:
        failures = _run_in_pool(pending, pool)
    else:
        failures = _run_in_process(pending, done, progress, runner, desc)
    if failures:
        lines = "; ".join(f"{job.name} ({why})" for job, why in failures)
        raise RunsFailedError(f"{len(failures)} of {len(jobs)} runs failed: {lines}. "
                              "Fix the cause and rerun the same command: finished runs are skipped, "
                              "interrupted ones resume.")
    records = []
    for job, record in zip(jobs, found):
        record = record if record is not None else read_result(job)
        if record is None:
            raise RunsFailedError(f"{job.name} ended without a finished record in {job.out}; "
                                  "rerun the same command to resume it")
        records.append(record)
    return records


def _run_in_process(pending, done, progress, runner, desc):
    """The ``pending`` jobs one after another (``done``: how many of the batch were finished already)."""
    failures = []
    bar = tqdm(total=len(pending) + done, initial=done, desc=desc, unit="run",
               disable=not progress or len(pending) + done < 2, leave=False)
    for job in pending:
        log.info("%s -> %s", job.name, job.out)
        if runner is not None:
            runner(job, progress)
        else:
            # errors here are the user's to see at once (bad data path, bad config): let them through
            run_task(job.kind, job.dataset, job.task_config, job.out, progress=progress)
        bar.update(1)
    bar.close()
    return failures


def results(futures: Iterable[Future]) -> List:
    """The results of ``futures`` in their order; the first error is raised as soon as any of them fails
    (not after the ones before it have finished)."""
    futures = list(futures)
    done, _ = wait(futures, return_when=FIRST_EXCEPTION)
    for future in done:
        if future.exception() is not None:
            raise future.exception()
    return [future.result() for future in futures]


def _run_in_pool(pending, pool):
    """Like in-process: the first error is raised as it is, as soon as it happens (the caller decides whether
    the pool's other runs go on)."""
    results([pool.submit(job) for job in pending])
    return []


def worker_command(job: Job, processes: int = 1) -> List[str]:
    """The command line that runs ``job`` in a fresh Python process, or in ``processes`` processes joined by
    torchrun (the same path as ``torchrun --nproc-per-node N -m reproduce train|search``; ``--standalone`` picks a
    free port, so runs side by side do not collide)."""
    start = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"] \
        if processes > 1 else [sys.executable]
    return start + ["-m", "reproduce.scheduler", "--job", job.to_json()]


def gpu_slots(gpus: Sequence[str], per_job: int = 1) -> List[str]:
    """The local queue's slots: ``gpus`` in consecutive groups of ``per_job``, each a CUDA_VISIBLE_DEVICES value
    (``["0", "1"]`` one GPU a run; ``["0,1", "2,3"]`` two). ValueError in one line if they do not divide."""
    gpus, per_job = list(gpus), int(per_job)
    if per_job < 1 or not gpus or len(gpus) % per_job:
        raise ValueError(f"--gpus-per-job {per_job} needs --gpus listing a multiple of {per_job} GPU ids of this "
                         f"machine (got {','.join(gpus) or 'none'}): each run takes {per_job} of them"
                         if per_job >= 1 else f"--gpus-per-job must be at least 1 with --gpus, got {per_job}")
    return [",".join(gpus[i:i + per_job]) for i in range(0, len(gpus), per_job)]


def plan_gpu_queue(n_jobs: int, slots: Sequence[str]) -> List[List[int]]:
    """Which jobs each slot of GPUs starts first when all jobs take the same time: job i on slot i mod
    len(slots).

    (The real queue hands each next job to whichever slot frees first.)
    """
    return [list(range(i, n_jobs, len(slots))) for i in range(len(slots))]


def _last_line(path: str) -> str:
    """The last non-empty line of a run's queue log (its error, when it failed), at most 300 characters."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 4096))
            lines = [line.strip() for line in f.read().decode("utf-8", "replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1][-300:] if lines else "no output"


def _run_gpu_queue(pending, done, slots, progress, command, desc, poll_s: float = 0.2):
    """The ``pending`` jobs, each on the next free slot of GPUs (``"0"``, or ``"0,1"`` for a run of two) in a
    subprocess that sees only those (``done``: how many of the batch were finished already)."""
    gpus = list(slots)
    free = list(gpus)
    running: Dict[str, tuple] = {}  # gpu -> (process, job, log file)
    failures = []
    bar = tqdm(total=len(pending) + done, initial=done, desc=f"{desc} on GPUs {','.join(gpus)}",
               unit="run", disable=not progress)
    try:
        while pending or running:
            while pending and free:
                gpu, job = free.pop(0), pending.pop(0)
                Path(job.out).mkdir(parents=True, exist_ok=True)
                logfile = open(Path(job.out) / QUEUE_LOG, "a")
                env = dict(os.environ, CUDA_VISIBLE_DEVICES=gpu, PYTHONUNBUFFERED="1")
                log.info("%s -> GPU %s (%s; log %s/log.txt)", job.name, gpu, job.out, job.out)
                proc = subprocess.Popen(command(job), env=env, stdout=logfile, stderr=subprocess.STDOUT)
                running[gpu] = (proc, job, logfile)
            time.sleep(poll_s)
            for gpu in list(running):
                proc, job, logfile = running[gpu]
                if proc.poll() is None:
                    continue
                logfile.close()
                del running[gpu]
                free.append(gpu)
                bar.update(1)
                if proc.returncode != 0:
                    failures.append((job, f"exit code {proc.returncode} on GPU {gpu}: {_last_line(logfile.name)} "
                                          f"(log {job.out}/{QUEUE_LOG})"))
                    log.error("%s failed on GPU %s (exit %s); see %s/log.txt", job.name, gpu, proc.returncode,
                              job.out)
    finally:
        for proc, _job, logfile in running.values():  # interrupted: stop our children, they resume later
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            logfile.close()
        bar.close()
    return failures


def main(argv=None) -> int:
    """Worker entry point of the GPU queue: ``python -m reproduce.scheduler --job JSON``."""
    parser = argparse.ArgumentParser(description="run one job of the GPU queue (internal)")
    parser.add_argument("--job", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    job = Job.from_json(args.job)
    run_task(job.kind, job.dataset, job.config, job.out, progress=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())

