"""Runs as Slurm jobs through submitit: one job per run, with partition, time limit and GPUs per job.

A job with several GPUs runs one process per GPU, searches and trainings alike (the recipe's global batch
is split across them; a training joins them with DistributedDataParallel, a search all-reduces its own
gradients). A job that reaches its time
limit is requeued and resumes from the run's checkpoint. ``cluster="local"`` runs the same path with
submitit's local executor. Each submitted job's id is kept in ``<run dir>/slurm_job.json``: rerunning the
launcher (say, after closing the terminal that waited for the jobs) waits again for jobs still queued or
running instead of submitting them a second time. :func:`reproduce.scheduler.run_jobs` calls :func:`run`
with the runs that are not finished yet.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import time
from pathlib import Path
from typing import List, Optional

from tqdm.auto import tqdm

from zoo.extras import require
from zoo.fileio import atomic_write_json

from .jsonfile import read_json
from .layout import SLURM_JOB
from .runner import config_digest
from .tasks import run_task

log = logging.getLogger(__name__)


# A year: a job's time limit beyond it is a typo (minutes taken for seconds), and Slurm would refuse it only once
# the first job is submitted, or hold every job pending as longer than the partition allows.
MAX_TIME_MIN = 365 * 24 * 60


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
    array_parallelism: int = 0  # at most this many tasks of a job array at once (0: Slurm's and submitit's choice)

    def __post_init__(self):
        if int(self.gpus_per_job) < 0 or int(self.cpus_per_job) < 1:
            raise ValueError(f"--gpus-per-job must be >= 0 and --cpus-per-job >= 1, got {self.gpus_per_job} and "
                             f"{self.cpus_per_job}")
        if isinstance(self.time_min, bool) or not isinstance(self.time_min, int) \
                or not 1 <= self.time_min <= MAX_TIME_MIN:
            raise ValueError(f"--time is the time limit per job in minutes, 1..{MAX_TIME_MIN} (a year); got "
                             f"{self.time_min!r}")
        if self.mem_gb is not None and int(self.mem_gb) < 1:
            raise ValueError(f"--mem-gb must be >= 1 (leave it out for the partition's default), got {self.mem_gb}")
        if int(self.array_parallelism) < 0:
            raise ValueError(f"--array-parallelism must be >= 0 (0: no cap), got {self.array_parallelism}")

    @property
    def processes_per_job(self) -> int:
        """One training process per GPU (DistributedDataParallel across them), or one on CPU."""
        return max(1, int(self.gpus_per_job))


class _RequeueingJob:
    """The Slurm job: the run (:func:`reproduce.tasks.run_task`) plus requeue at the time limit (the run resumes
    from its checkpoint)."""

    def __init__(self, kind: str, dataset: str, config: dict, out: str):
        self.kind, self.dataset, self.config, self.out = kind, dataset, config, out

    def __call__(self) -> dict:
        import submitit

        if submitit.JobEnvironment().num_tasks > 1:  # one process per GPU: the env:// variables DDP reads
            # every task sees all the job's GPUs and takes cuda:LOCAL_RANK (reproduce.distributed)
            # (overwrite: sbatch hands the submitting shell's environment on, which may hold stale RANK etc.;
            # a MASTER_PORT already set is still kept)
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
        return run_task(self.kind, self.dataset, self.config, self.out, progress=False)

    def checkpoint(self, *args, **kwargs):
        import submitit

        return submitit.helpers.DelayedSubmission(self)


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
    if options.array_parallelism:
        params["slurm_array_parallelism"] = int(options.array_parallelism)
    if tasks > 1 and options.cluster != "local":
        # one failed process ends the job at once (its traceback is the job's error), instead of
        # leaving the others blocked in a collective until NCCL's watchdog fires
        params["slurm_srun_args"] = ["--kill-on-bad-exit=1"]
    if options.cluster == "local":
        params.pop("gpus_per_node")  # the local executor only has the GPUs of this machine
    return params


# Slurm job states (sacct's and squeue's) of a job that will still run, or is running: such a job is
# waited for, not submitted again
ACTIVE_SLURM_STATES = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD",
                                 "REQUEUE_FED", "RESIZING", "SUSPENDED", "PREEMPTED", "SIGNALING", "STAGE_OUT"})


def _job_folder(options: SlurmOptions, folder: Path) -> str:
    """submitit's per-job folder template (``%j`` is the job id)."""
    return str((Path(options.folder) if options.folder else folder) / "%j")


class QueuedWithAnotherConfigError(ValueError):
    """A job still queued or running for this run directory was submitted with another config."""


def _remember_submission(job, handle, options: SlurmOptions, folder: str) -> None:
    note = {"job_id": str(handle.job_id), "cluster": options.cluster, "folder": folder,
            "submitted": time.strftime("%Y-%m-%d %H:%M:%S"), "config_sha256": config_digest(job.config)}
    array_id, _, task_id = str(handle.job_id).partition("_")  # a task of a Slurm job array: ARRAY_TASK
    if task_id:
        note.update(array_job_id=array_id, array_task_id=task_id)
    atomic_write_json(Path(job.out) / SLURM_JOB, note)


def job_class(cluster: str):
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


def attach_active_job(job, options: SlurmOptions, poll_s: Optional[float] = None):
    """The still queued or running Slurm job this run was submitted as, if any (else None: submit it)."""
    path = Path(job.out) / SLURM_JOB
    if not path.exists():
        return None
    try:
        info = read_json(path)  # checked a regular file of bounded size first: a FIFO note blocks no submission
        handle_class = job_class(info["cluster"]) if info["cluster"] == options.cluster else None
        if handle_class is None:
            return None
        handle = handle_class(folder=info["folder"], job_id=info["job_id"])  # for its log folder
        state = slurm_state(handle.job_id)
    except Exception as e:  # an unreadable note: submitting again is safe (the run dir lock refuses twins)
        log.warning("%s: cannot tell whether its earlier job still runs (%s); submitting it again", job.name, e)
        return None
    if state in ACTIVE_SLURM_STATES:
        if info.get("config_sha256") not in (None, config_digest(job.config)):  # a queued job has no config.json
            raise QueuedWithAnotherConfigError(
                f"{job.out}: Slurm job {handle.job_id} is still {state.lower()}, submitted with another config by an "
                f"earlier command; wait for it, or cancel it (scancel {handle.job_id}), or rerun with its values")
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


def run(pending, options: SlurmOptions, progress: bool, desc: str) -> list:
    """Submit the ``pending`` jobs (:class:`reproduce.scheduler.Job`, none finished), or wait for those an
    earlier launcher submitted; returns the failures as (job, why)."""
    if not pending:
        return []
    # beside the directory that holds the run directories (never among them)
    folder = Path(os.path.commonpath([str(Path(j.out).resolve().parent) for j in pending])).parent / "slurm"
    for job in pending:  # a global batch that does not split across the job's processes fails here, not after queueing
        n = options.processes_per_job
        if n > 1 and int(job.config.get("batch_size", n)) % n:
            raise ValueError(f"{job.name}: batch_size {job.config['batch_size']} (the global batch) does not divide "
                             f"across --gpus-per-job {n} processes; use a GPU count that divides it")
    submitted, to_submit = [], []
    for job in pending:
        handle = attach_active_job(job, options)
        if handle is None:
            to_submit.append(job)
        else:
            submitted.append((job, handle))
    if to_submit:
        # one resource shape (the options; trainings and searches alike span the job's GPUs), so one job
        # array: submitit's batch() sends every task in one sbatch (an array job; each task requeues on its own)
        executor = make_executor(options, folder)
        with executor.batch():
            handles = [executor.submit(_RequeueingJob(job.kind, job.dataset, job.config, job.out)) for job in to_submit]
        for job, handle in zip(to_submit, handles):  # ids are known once the batch is submitted
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


