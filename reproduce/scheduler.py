"""Run a batch of search or training runs: in-process, queued over local GPUs, or as Slurm jobs.

A :class:`Job` is everything one run needs and nothing else: its kind (``"train"`` or
``"search"``), the dataset, the full resolved config as a plain dict, and the run directory.
Each run writes a self-contained record, so the launcher only has to start runs; results are
read back from ``<run dir>/record.json``.

- **In-process** (no GPUs given): runs one after another in this process.
- **Local GPU queue** (``gpus=["0", "1", ...]``): one subprocess per run with
  ``CUDA_VISIBLE_DEVICES`` set to a single GPU; as soon as a GPU is free the next run starts
  on it. The output of each run goes to ``<run dir>/log.txt``.
- **Slurm** (``launcher="slurm"``): one job per run through submitit, with partition, time
  limit and GPUs per job; a training job with several GPUs runs one process per GPU, joined by
  DistributedDataParallel (the recipe's global batch is split across them); a search job is one
  process. A job that reaches its time limit is requeued and resumes from the run's checkpoint.
  ``cluster="local"`` runs the same path with submitit's local executor.
  Each submitted job's id is kept in ``<run dir>/slurm_job.json``: rerunning the launcher (say,
  after closing the terminal that waited for the jobs) waits again for jobs still queued or
  running instead of submitting them a second time.

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
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence

from tqdm.auto import tqdm

from zoo.extras import require
from zoo.fileio import atomic_write_json

from .records import is_finished, read_record

log = logging.getLogger(__name__)

KINDS = ("train", "search")
LAUNCHERS = ("local", "slurm")


class RunsFailedError(RuntimeError):
    """Some runs of a batch failed; the message names them and where their logs are."""


@dataclasses.dataclass
class Job:
    kind: str
    dataset: str
    config: Dict
    out: str
    name: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown job kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        self.out = str(self.out)
        if not self.name:
            self.name = f"{self.kind} {self.dataset} seed {self.config.get('seed')}"

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, "dataset": self.dataset, "config": self.config, "out": self.out,
                           "name": self.name})

    @classmethod
    def from_json(cls, text: str) -> "Job":
        return cls(**json.loads(text))


@dataclasses.dataclass
class SlurmOptions:
    partition: Optional[str] = None
    time_min: int = 24 * 60
    gpus_per_job: int = 1
    cpus_per_job: int = 8
    mem_gb: Optional[int] = None
    folder: Optional[str] = None  # submitit's logs and pickles; default <results>/slurm
    cluster: str = "slurm"  # "local" runs the same path with submitit's LocalExecutor
    max_requeues: int = 10

    def __post_init__(self):
        if int(self.gpus_per_job) < 0 or int(self.cpus_per_job) < 1:
            raise ValueError(f"--gpus-per-job must be >= 0 and --cpus-per-job >= 1, got {self.gpus_per_job} and "
                             f"{self.cpus_per_job}")

    @property
    def processes_per_job(self) -> int:
        """One training process per GPU (DistributedDataParallel across them), or one on CPU."""
        return max(1, int(self.gpus_per_job))


# ---------------------------------------------------------------------------------------------
# What one run does, wherever it runs
# ---------------------------------------------------------------------------------------------

def run_job(kind: str, dataset: str, config: Dict, out: str, progress: bool = False) -> dict:
    """Run (or resume, or skip if finished) one search or training run; returns its record.

    Module-level and taking only plain values, so it pickles for submitit and runs the same in
    a subprocess, a Slurm job or this process.
    """
    from .config import build

    if kind == "train":
        from .train import RECIPES, train

        cls = _lookup(RECIPES, dataset, "training recipe")
        return train(dataset, build(cls, config), out, progress=progress)
    if kind == "search":
        from .search import SEARCH_CONFIGS, search

        cls = _lookup(SEARCH_CONFIGS, dataset, "search config")
        return search(dataset, build(cls, config), out, progress=progress)
    raise ValueError(f"unknown job kind {kind!r}; expected one of {', '.join(KINDS)}")


def _lookup(table, key, what):
    if key not in table:
        raise ValueError(f"no {what} for dataset {key!r}; known: {', '.join(sorted(table))}")
    return table[key]


def read_result(job: Job) -> Optional[dict]:
    record = read_record(Path(job.out) / "record.json")
    return record if is_finished(record) else None


class _RequeueingJob:
    """The Slurm job: ``run_job`` plus requeue at the time limit (the run resumes from its checkpoint)."""

    def __init__(self, kind: str, dataset: str, config: Dict, out: str):
        self.kind, self.dataset, self.config, self.out = kind, dataset, config, out

    def __call__(self) -> dict:
        import submitit

        if submitit.JobEnvironment().num_tasks > 1:  # one process per GPU: the env:// variables DDP reads
            # every task sees all the job's GPUs and takes cuda:LOCAL_RANK (reproduce.train.distributed)
            # (overwrite: sbatch hands the submitting shell's environment on, which may hold stale RANK etc.;
            # a MASTER_PORT already set is still kept)
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
        return run_job(self.kind, self.dataset, self.config, self.out, progress=False)

    def checkpoint(self, *args, **kwargs):
        import submitit

        return submitit.helpers.DelayedSubmission(self)


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
             desc: str = "runs", pool=None) -> List[dict]:
    """Run ``jobs`` (each skipped by the run itself when already finished); returns their records in order.

    ``pool``: a :class:`reproduce.run_pool.RunPool` that runs them side by side on this machine's cores.
    ``runner(job, progress)`` replaces the in-process run and ``command(job)`` the subprocess
    command line of the GPU queue (both for tests). On GPUs and Slurm, raises RunsFailedError naming the
    failed runs; in this process and in a pool, the first run's error as it is.
    """
    jobs = list(jobs)
    if launcher not in LAUNCHERS:
        raise ValueError(f"unknown launcher {launcher!r}; expected one of {', '.join(LAUNCHERS)}")
    if not jobs:
        return []
    if launcher == "slurm":
        failures = _run_slurm(jobs, slurm or SlurmOptions(), progress, desc)
    elif gpus:
        failures = _run_gpu_queue(jobs, list(gpus), progress, command or worker_command, desc)
    elif pool is not None:
        failures = _run_in_pool(jobs, pool)
    else:
        failures = _run_in_process(jobs, progress, runner, desc)
    if failures:
        lines = "; ".join(f"{job.name} ({why})" for job, why in failures)
        raise RunsFailedError(f"{len(failures)} of {len(jobs)} runs failed: {lines}. "
                              "Fix the cause and rerun the same command: finished runs are skipped, "
                              "interrupted ones resume.")
    records = []
    for job in jobs:
        record = read_result(job)
        if record is None:
            raise RunsFailedError(f"{job.name} ended without a finished record in {job.out}; "
                                  "rerun the same command to resume it")
        records.append(record)
    return records


def _run_in_process(jobs, progress, runner, desc):
    failures = []
    bar = tqdm(total=len(jobs), desc=desc, unit="run", disable=not progress or len(jobs) < 2, leave=False)
    for job in jobs:
        if read_result(job) is not None:
            log.info("%s: finished already (%s), skipped", job.name, job.out)
        else:
            log.info("%s -> %s", job.name, job.out)
            if runner is not None:
                runner(job, progress)
            else:
                # errors here are the user's to see at once (bad data path, bad config): let them through
                run_job(job.kind, job.dataset, job.config, job.out, progress=progress)
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


def _run_in_pool(jobs, pool):
    """Like in-process: the first error is raised as it is, as soon as it happens (the caller decides whether
    the pool's other runs go on)."""
    futures = []
    for job in jobs:
        if read_result(job) is not None:
            log.info("%s: finished already (%s), skipped", job.name, job.out)
        else:
            futures.append(pool.submit(job))
    results(futures)
    return []


def worker_command(job: Job) -> List[str]:
    """The command line that runs ``job`` in a fresh Python process."""
    return [sys.executable, "-m", "reproduce.scheduler", "--job", job.to_json()]


def plan_gpu_queue(n_jobs: int, gpus: Sequence[str]) -> List[List[int]]:
    """Which jobs each GPU starts first when all jobs take the same time: job i on GPU i mod len(gpus).

    (The real queue hands each next job to whichever GPU frees first.)
    """
    return [list(range(i, n_jobs, len(gpus))) for i in range(len(gpus))]


def _run_gpu_queue(jobs, gpus, progress, command, desc, poll_s: float = 0.2):
    pending = [job for job in jobs if read_result(job) is None]
    for job in jobs:
        if job not in pending:
            log.info("%s: finished already (%s), skipped", job.name, job.out)
    free = list(gpus)
    running: Dict[str, tuple] = {}  # gpu -> (process, job, log file)
    failures = []
    bar = tqdm(total=len(jobs), initial=len(jobs) - len(pending), desc=f"{desc} on GPUs {','.join(gpus)}",
               unit="run", disable=not progress)
    try:
        while pending or running:
            while pending and free:
                gpu, job = free.pop(0), pending.pop(0)
                Path(job.out).mkdir(parents=True, exist_ok=True)
                logfile = open(Path(job.out) / "log.txt", "a")
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
                    failures.append((job, f"exit code {proc.returncode} on GPU {gpu}, log {job.out}/log.txt"))
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


def executor_parameters(options: SlurmOptions) -> dict:
    """What ``executor.update_parameters`` gets for ``options`` (Slurm-only ones carry the ``slurm_`` prefix)."""
    tasks = options.processes_per_job
    params = dict(timeout_min=int(options.time_min), gpus_per_node=int(options.gpus_per_job),
                  cpus_per_task=max(1, int(options.cpus_per_job) // tasks), tasks_per_node=tasks, nodes=1,
                  name="darts")
    if options.mem_gb:
        params["mem_gb"] = int(options.mem_gb)
    if options.partition:
        params["slurm_partition"] = options.partition
    if tasks > 1 and options.cluster != "local":
        # one failed process ends the job at once (its traceback is the job's error), instead of
        # leaving the others blocked in a collective until NCCL's watchdog fires
        params["slurm_srun_args"] = ["--kill-on-bad-exit=1"]
    if options.cluster == "local":
        params.pop("gpus_per_node")  # the local executor only has the GPUs of this machine
    return params


SLURM_JOB = "slurm_job.json"
# Slurm job states (sacct's and squeue's) of a job that will still run, or is running: such a job is
# waited for, not submitted again
ACTIVE_SLURM_STATES = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD",
                                 "REQUEUE_FED", "RESIZING", "SUSPENDED", "PREEMPTED", "SIGNALING", "STAGE_OUT"})


def _job_folder(options: SlurmOptions, folder: Path) -> str:
    """submitit's per-job folder template (``%j`` is the job id)."""
    return str((Path(options.folder) if options.folder else folder) / "%j")


def _remember_submission(job: Job, handle, options: SlurmOptions, folder: str) -> None:
    atomic_write_json(Path(job.out) / SLURM_JOB, {"job_id": str(handle.job_id), "cluster": options.cluster,
                                                  "folder": folder, "submitted": time.strftime("%Y-%m-%d %H:%M:%S")})


def _job_class(cluster: str):
    import submitit

    return submitit.SlurmJob if cluster == "slurm" else None  # a local job dies with the launcher that started it


def _first_word(cmd: List[str]) -> Optional[str]:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    return out[0].upper() if out else None


def slurm_state(job_id: str) -> str:
    """A job's state, first word (``CANCELLED by 123`` -> ``CANCELLED``), asked afresh: sacct, else squeue
    (sacct fails while the accounting database is down), else UNKNOWN. (Not through submitit, whose
    watcher caches states for minutes and stops asking about states it does not know as running.)"""
    return (_first_word(["sacct", "-n", "-X", "-P", "-j", str(job_id), "-o", "State"])
            or _first_word(["squeue", "-h", "-j", str(job_id), "-o", "%T"]) or "UNKNOWN")


ATTACHED_POLL_S = 60.0  # how often a job of an earlier launcher is looked at


class _AttachedJob:
    """A job submitted by an earlier launcher, waited for by polling its state (submitit's own wait
    gives up on states it does not know as running, such as SUSPENDED). Its result is the run's
    record.json, which the caller reads."""

    def __init__(self, handle, poll_s: Optional[float] = None):
        self.poll_s = ATTACHED_POLL_S if poll_s is None else poll_s
        self.job_id, self.paths = handle.job_id, handle.paths

    def result(self):
        while slurm_state(self.job_id) in ACTIVE_SLURM_STATES:
            time.sleep(self.poll_s)
        return None


def attach_active_job(job: Job, options: SlurmOptions, poll_s: Optional[float] = None):
    """The still queued or running Slurm job this run was submitted as, if any (else None: submit it)."""
    path = Path(job.out) / SLURM_JOB
    if not path.exists():
        return None
    try:
        info = json.loads(path.read_text())
        job_class = _job_class(info["cluster"]) if info["cluster"] == options.cluster else None
        if job_class is None:
            return None
        handle = job_class(folder=info["folder"], job_id=info["job_id"])  # for its log folder
        state = slurm_state(handle.job_id)
    except Exception as e:  # an unreadable note: submitting again is safe (the run dir lock refuses twins)
        log.warning("%s: cannot tell whether its earlier job still runs (%s); submitting it again", job.name, e)
        return None
    if state in ACTIVE_SLURM_STATES:
        log.info("%s: job %s is still %s; waiting for it instead of submitting again", job.name, handle.job_id,
                 state.lower())
        return _AttachedJob(handle, poll_s)
    if state == "UNKNOWN":
        log.warning("%s: neither sacct nor squeue knows job %s; submitting the run again (should the old job "
                    "still run, the new one stops at once: the run directory is locked)", job.name, handle.job_id)
    return None


def make_executor(options: SlurmOptions, folder: Path):
    """A submitit executor for ``options``; ``options.cluster == "local"`` gives submitit's local executor."""
    submitit = require("submitit", "--launcher slurm")

    try:
        executor = submitit.AutoExecutor(folder=_job_folder(options, folder), cluster=options.cluster,
                                         slurm_max_num_timeout=options.max_requeues)
    except RuntimeError as e:  # e.g. 'Could not detect "srun"': not on a Slurm cluster
        raise ValueError(f"--launcher slurm: cannot use the {options.cluster} executor here ({e}); run on a "
                         "Slurm login node, or use --launcher local") from None
    executor.update_parameters(**executor_parameters(options))
    return executor


def _run_slurm(jobs, options, progress, desc):
    pending = [job for job in jobs if read_result(job) is None]
    if not pending:
        return []
    # beside the directory that holds the run directories (never among them)
    folder = Path(os.path.commonpath([str(Path(j.out).resolve().parent) for j in pending])).parent / "slurm"
    for job in pending:  # a global batch that does not split across the job's processes fails here, not after queueing
        n = options.processes_per_job
        if job.kind == "train" and n > 1 and int(job.config.get("batch_size", n)) % n:
            raise ValueError(f"{job.name}: batch_size {job.config['batch_size']} (the global batch) does not divide "
                             f"across --gpus-per-job {n} processes; use a GPU count that divides it")
    submitted, executors = [], {}
    for job in pending:
        handle = attach_active_job(job, options)
        if handle is None:
            # a search is one process (at most one GPU); a training spans the job's GPUs
            job_options = options if job.kind == "train" else dataclasses.replace(
                options, gpus_per_job=min(1, int(options.gpus_per_job)))
            key = job_options.processes_per_job
            if key not in executors:
                executors[key] = make_executor(job_options, folder)
            handle = executors[key].submit(_RequeueingJob(job.kind, job.dataset, job.config, job.out))
            log.info("%s: submitted as job %s", job.name, handle.job_id)
            _remember_submission(job, handle, options, _job_folder(options, folder))
        submitted.append((job, handle))
    failures = []
    bar = tqdm(total=len(submitted), desc=f"{desc} (slurm)", unit="job", disable=not progress)
    for job, handle in submitted:
        try:
            handle.results() if hasattr(handle, "results") else handle.result()  # every task of the job
        except Exception as e:  # submitit re-raises the job's error with its traceback
            first = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            failures.append((job, f"job {handle.job_id}: {first}; logs in {handle.paths.folder}"))
        bar.update(1)
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
    run_job(job.kind, job.dataset, job.config, job.out, progress=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
