"""The one runner: config, lock, resume, per-epoch metrics and checkpoint, record (see docs/design.md).

Training (each recipe) and search are *tasks* that plug into :func:`run`. A task says what one
epoch does and what its final metrics are, nothing about files:

- ``kind`` ("train" or "search"), ``dataset``, ``parameters`` (the count in the record);
- ``run_epoch(epoch) -> metrics`` (a dict; may raise :class:`Rollback` to continue from an
  earlier epoch, its state already restored);
- ``state_dict()`` / ``load_state_dict(state)``: everything a resumed run needs;
- ``final(curve) -> dict``: the final metrics; ``record_fields(curve) -> dict``: ``experiment``,
  ``genotype`` (text) and any extra record fields;
- optionally ``begin(start_epoch)``: called once before the first epoch of this process (the
  search writes its epoch -1 architecture there);
- optionally an ``on_step`` attribute: the runner sets it to a function ``(epoch, step, values)``
  that the task calls after every step with that step's numbers (floats or 0-dim tensors: losses,
  accuracies, learning rates, the gradients' norm), for the live logs (:mod:`reproduce.loggers`);
- optionally ``watch() -> {"scalars", "texts", "arrays"}``: what the live logs show of the task's
  state after an epoch (a search: its skip-connection count, genotype, architecture softmax);
- optionally ``stop_reason() -> str or None``: a reason to stop before ``config.epochs`` (an early
  stop), asked after every epoch and, when resuming, before the first; the run then ends there.

Task classes are listed in one table, :data:`reproduce.tasks.TASKS`, which also builds and validates
their config (once per run) before handing it here. The task is built by ``make_task(dist, rundir,
progress)`` after the seed is set and before
anything is written, so a task that cannot start (missing data, impossible sizes) leaves no
directory behind.

Per epoch the runner checks every float metric is finite (a NaN stops the run with
:class:`~reproduce.rundir.NonFiniteError` and no record), adds ``epoch`` and ``time_s``, appends
the line to ``metrics.jsonl``, hands the epoch to the live logs the config's ``logger`` field names
and atomically replaces ``checkpoint.pt`` (rank 0 only under DDP; the checkpoint also keeps the
global step at each epoch's end, so the logs of a resumed run continue without repeating a step).
A kill at any point loses at most the epoch in progress: rerunning loads the checkpoint (task
state and every generator's state), trims ``metrics.jsonl`` to the epochs it covers and goes on.
The training recipes also re-seed their generators from (seed, epoch) at the start of every epoch
(so DDP ranks and data order do not depend on the number of processes); the search continues its
generators' streams, as the original does. The record is written last, atomically; a finished
directory is skipped, never run again.

One process runs in a directory at a time (``RunDir.lock``); under DDP rank 0 holds the lock for
all ranks and every rank learns the outcome together (:func:`claim`).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from typing import Any, Callable, Dict, List, Optional

import torch

from genotypes.quoting import quote

from . import config as run_config
from .distributed import Dist
from .layout import METRICS_FILE
from .loggers import Loggers
from .rundir import (
    RUNTIME_FIELDS,
    DamagedCheckpointError,
    NonFiniteError,
    RunConfigMismatchError,
    RunDir,
    RunInUseError,
    check_finite,
    config_disagreement,
    first_line,
    make_record,
)
from .seeding import rng_state, seed_everything, set_rng_state

log = logging.getLogger(__name__)

class Rollback(Exception):
    """Raised by a task to continue from ``epoch`` (its state already restored)."""

    def __init__(self, epoch: int):
        super().__init__(epoch)
        self.epoch = epoch


def finite_metrics(metrics: Dict[str, Any], epoch: int) -> None:
    for key, value in metrics.items():
        if isinstance(value, float):
            check_finite(key, value, epoch)


# ---------------------------------------------------------------------------------------------
# The checkpoint guard: one function pair writes and reads the checkpoint
# ---------------------------------------------------------------------------------------------
#
# A checkpoint is resumed from only when it is exactly what this run wrote: its checksum matches
# (RunDir.save_checkpoint / load_checkpoint), it was written under this run's config (its digest),
# its epoch lies within the config's epochs, and metrics.jsonl holds every epoch before it (so the
# finished record has its whole curve). Anything else is refused with one line naming the file
# and what to do; the run never continues from such a state.

CHECKPOINT_VERSION = 2


def config_digest(config_dict: Dict[str, Any]) -> str:
    """SHA-256 of the fields of a config that decide its results (the run-time-only ones left out)."""
    return hashlib.sha256(json.dumps(_what_counts(config_dict), sort_keys=True, default=str).encode()).hexdigest()


def _what_counts(config_dict: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in run_config.canonical(config_dict).items() if k not in RUNTIME_FIELDS}


def save_run_checkpoint(rundir: RunDir, task, epochs_done: int, wall_time_s: float,
                        config_dict: Optional[Dict[str, Any]] = None, step_ends: Optional[List[int]] = None) -> None:
    """Atomically replace the run's checkpoint with the task's state after ``epochs_done`` epochs,
    tied to ``config_dict`` (the runner always gives it; a checkpoint without it cannot be resumed
    under a config). ``step_ends``: the run's global step at the end of each epoch (for the live logs)."""
    state = {"version": CHECKPOINT_VERSION, "kind": task.kind, "dataset": task.dataset, "epoch": epochs_done,
             "wall_time_s": wall_time_s, "task": task.state_dict(), "rng": rng_state()}
    if step_ends is not None:
        state["step_ends"] = [int(s) for s in step_ends]
    if config_dict is not None:
        state.update(config=_what_counts(config_dict), config_digest=config_digest(config_dict))
    rundir.save_checkpoint(state)


def load_run_checkpoint(rundir: RunDir, task, config_dict: Optional[Dict[str, Any]] = None
                        ) -> Optional[Dict[str, Any]]:
    """Restore the task (and the generators) from the run's checkpoint; None when there is none.

    Returns ``{"epoch": epochs done, "wall_time_s": ...}`` (and ``"step_ends"`` when the checkpoint
    holds them). With ``config_dict`` (as the runner
    calls it) the checkpoint must also be tied to that config, its epoch lie within the config's
    epochs and metrics.jsonl hold every epoch before it. Raises :class:`DamagedCheckpointError` (or
    :class:`RunConfigMismatchError` for another config) for a checkpoint that is not this run's.
    """
    state = read_run_checkpoint(rundir, task.kind, task.dataset, config_dict)
    if state is None:
        return None
    epoch = state["epoch"]

    def refuse(problem: str) -> DamagedCheckpointError:
        return DamagedCheckpointError(f"{rundir.checkpoint_path} {problem}; delete it to restart the run from its "
                                      "first epoch, or use another --out directory")

    step_ends = state.get("step_ends")
    counted = isinstance(step_ends, list) and len(step_ends) == epoch and all(type(s) is int for s in step_ends)
    if not counted and (config_dict is not None or step_ends is not None):  # the runner's checkpoints count steps
        raise refuse(f"holds no global step for each of its {epoch} epochs")
    try:
        task.load_state_dict(state["task"])
        set_rng_state(state["rng"])
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as e:
        raise refuse(f"does not fit this run ({first_line(e)})") from None
    resumed = {"epoch": epoch, "wall_time_s": float(state.get("wall_time_s", 0.0))}
    if counted:
        resumed["step_ends"] = step_ends
    return resumed


def read_run_checkpoint(rundir: RunDir, kind: str, dataset: str, config_dict: Optional[Dict[str, Any]] = None
                        ) -> Optional[Dict[str, Any]]:
    """The run's checkpoint state after every check of the guard (checksum, version, kind, dataset, epoch and,
    with ``config_dict``, the tie to that config and to metrics.jsonl); None when there is none. Resume and
    export read the checkpoint through this one function."""
    state = rundir.load_checkpoint(map_location="cpu")  # its checksum is checked there
    if state is None:
        return None
    path = rundir.checkpoint_path

    def refuse(problem: str) -> DamagedCheckpointError:
        return DamagedCheckpointError(f"{path} {problem}; delete it to restart the run from its first epoch, or use "
                                      "another --out directory")

    if (state.get("version") != CHECKPOINT_VERSION or state.get("dataset") != dataset
            or state.get("kind") != kind):
        raise refuse(f"is not a {dataset} {kind} checkpoint of this version")
    if not isinstance(state.get("task"), dict):
        raise refuse("holds no task state")
    epoch = state.get("epoch")
    if type(epoch) is not int or epoch < 1:
        raise refuse(f"says it was written after epoch {str(epoch)[:40]!r}")
    if config_dict is not None:
        _check_tied(rundir, state, config_dict, refuse)
    return state


def _check_tied(rundir: RunDir, state: Dict[str, Any], config_dict: Dict[str, Any], refuse) -> None:
    """The checkpoint belongs to this config, its epoch to the config's epochs, and metrics.jsonl to both."""
    path = rundir.checkpoint_path
    if "config_digest" not in state:
        raise refuse("holds no digest of its config, so it cannot be tied to this run's config")
    if state["config_digest"] != config_digest(config_dict):
        saved = state.get("config") if isinstance(state.get("config"), dict) else {}
        differ = run_config.diff(saved, _what_counts(config_dict))
        fields = (", ".join(f"{k} (checkpoint {quote(a)}, now {quote(b)})" for k, (a, b) in differ.items())
                  or "its digest")
        # config.json, when there is one, says what this command says (checked before): it disagrees with the
        # checkpoint, and "rerun with the checkpoint's values" would be refused by config.json
        on_disk = run_config.diff(saved, rundir.read_config() or saved, ignore=RUNTIME_FIELDS)
        if on_disk:
            raise RunConfigMismatchError(config_disagreement(rundir, on_disk))
        raise RunConfigMismatchError(
            f"{path} was written by a run with another config: {fields}. Rerun with the values it was trained with "
            "to resume it, or start afresh in another --out directory (or delete the checkpoint)")
    epoch, epochs = state["epoch"], config_dict.get("epochs")
    if not epoch <= epochs:
        raise refuse(f"says it was written after epoch {epoch!r}, but the run has epochs 1..{epochs}")
    check_curve(rundir, rundir.metrics()[:epoch], epoch,
                f"the checkpoint was written after epoch {epoch}; restore {METRICS_FILE}, or delete {path} to restart "
                "the run from its first epoch")


def check_curve(rundir: RunDir, curve, epochs: int, fix: str) -> list:
    """``curve`` if it holds exactly the metrics of epochs 0..epochs-1 in order; else one error naming the file."""
    got = [row.get("epoch") for row in curve]
    if got != list(range(epochs)):
        shown = "no epoch" if not got else f"epochs {got[:5]}{'...' if len(got) > 5 else ''}"
        raise DamagedCheckpointError(f"{rundir.metrics_path} holds {shown} where epochs 0..{epochs - 1} belong "
                                     f"(lines were lost or edited): a record without its whole curve is never "
                                     f"written; {fix}")
    return list(curve)


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------

def run(out, config, make_task: Callable[[Dist, RunDir, bool], Any], dist: Callable[[], Dist],
        progress: bool = True) -> dict:
    """Run (or resume, or return the finished record of) a task in run directory ``out``.

    ``config``: the task's config dataclass, validated by the caller (:func:`reproduce.tasks.run_task`);
    it is saved as config.json. ``dist()`` sets up the processes and the device (called only when there
    is work to do); ``make_task`` builds the task. Returns the record.
    """
    rundir = RunDir(out)
    config_dict = run_config.to_dict(config)
    rundir.check_config(config_dict)  # a directory holding a run with another config is refused, finished or not
    if rundir.is_finished():
        log.info("%s holds a finished run; returning its record (use another --out to run again)", rundir.path)
        return rundir.read_record()
    d = dist()
    try:
        with contextlib.ExitStack() as held:
            if claim(rundir, d, held) == "finished":  # by a process that held the lock just before us
                rundir.check_config(config_dict)
                log.info("%s was finished by another process; returning its record", rundir.path)
                return rundir.read_record()
            return _run_epochs(config, config_dict, make_task, rundir, d, progress)
    finally:
        d.close()


def claim(rundir: RunDir, d: Dist, held: contextlib.ExitStack) -> str:
    """Take the run directory for this run: 'run', or 'finished' (by someone else meanwhile).

    One process runs in a directory at a time; under DDP rank 0 holds the lock for all ranks, and
    every rank learns the outcome from one all-reduce, so a refusal stops all of them together
    (rather than leaving the others waiting in a collective).
    """
    code, failure = 0, None  # 0 run, 1 finished, 2 in use, 3 rank 0 failed otherwise (e.g. no permission)
    if d.is_main:
        try:
            held.enter_context(rundir.lock())
            code = 1 if rundir.is_finished() else 0
        except RunInUseError as e:
            code, failure = 2, e
        except Exception as e:  # the other ranks must not be left waiting for rank 0
            code, failure = 3, e
    if d.enabled:
        code = int(d.all_reduce_sum(torch.tensor([float(code)], device=d.device)).item())
    if failure is not None:
        raise failure
    if code == 2:
        raise RunInUseError(f"{rundir.path} is in use by another process (rank 0 could not lock it)")
    if code == 3:
        raise RuntimeError(f"rank 0 could not take {rundir.path}; its error says why")
    return "finished" if code == 1 else "run"


def _run_epochs(config, config_dict: dict, make_task, rundir: RunDir, d: Dist, progress: bool) -> dict:
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    seed_everything(config.seed, config.deterministic)
    if d.device.type == "cuda" and not config.deterministic:
        torch.backends.cudnn.benchmark = True  # as the original; --deterministic turns it off
    task = make_task(d, rundir, progress and d.is_main)  # checks data and sizes before anything is written
    # The checkpoint is checked before config.json is (re)written: one that belongs to another config
    # leaves the directory as it was.
    start_epoch, wall_before = 0, 0.0
    resumed = load_run_checkpoint(rundir, task, config_dict)
    if resumed is not None:
        start_epoch, wall_before = resumed["epoch"], resumed["wall_time_s"]
        log.info("resuming %s from epoch %d of %d", rundir.path, start_epoch, config.epochs)
    if d.is_main:
        rundir.start(config_dict)
    d.barrier()
    curve = rundir.trim_metrics(start_epoch) if d.is_main else []
    d.barrier()
    if not d.is_main:
        curve = rundir.metrics()[:start_epoch]
    step_ends = list(resumed["step_ends"]) if resumed is not None else []
    logs = Loggers(getattr(config, "logger", "") if d.is_main else "", rundir.path, config_dict)
    t_start = time.perf_counter()
    try:
        epochs_run = _epochs(config, config_dict, task, rundir, d, curve, start_epoch, wall_before, step_ends, logs)
    finally:
        logs.close()
    check_curve(rundir, curve, epochs_run, "delete the run directory and run again")
    final = task.final(curve)
    finite_metrics(final, config.epochs)
    record = make_record(kind=task.kind, dataset=task.dataset, seed=config.seed, config=config_dict, final=final,
                         curve=curve, parameters=task.parameters,
                         wall_time_s=wall_before + time.perf_counter() - t_start, device=d.device,
                         **task.record_fields(curve))
    if d.is_main:
        rundir.write_record(record)
    d.barrier()
    return record


def _epochs(config, config_dict: dict, task, rundir: RunDir, d: Dist, curve: list, start_epoch: int,
            wall_before: float, step_ends: List[int], logs: Loggers) -> int:
    """Run the epochs from ``start_epoch`` on, appending each one's metrics to ``curve``; returns the
    number of epochs the run has: ``config.epochs``, or fewer when the task's ``stop_reason()`` says the
    run is done (an early stop; checked after every epoch and, on resume, before the first)."""
    logs.start(step_ends[-1] if step_ends else 0)
    if hasattr(task, "on_step"):
        task.on_step = logs.on_step
    begin = getattr(task, "begin", None)
    if begin is not None:
        begin(start_epoch)
    if start_epoch == 0 and hasattr(task, "watch"):
        _log_epoch(logs, task, -1, {})  # what the task shows before the first step (a search: its architecture)
    stop_reason = getattr(task, "stop_reason", None)

    def stopped() -> bool:
        reason = stop_reason() if stop_reason is not None and curve else None
        if reason:
            log.info("%s stops after epoch %d of %d: %s", rundir.path, len(curve) - 1, config.epochs, reason)
        return bool(reason)

    t_start = time.perf_counter()
    epoch = start_epoch
    while epoch < config.epochs and not (epoch == start_epoch and stopped()):
        t_epoch = time.perf_counter()
        try:
            metrics = task.run_epoch(epoch)
        except Rollback as rb:
            log.warning("non-finite loss at epoch %d: rolled back to the end of epoch %d", epoch, rb.epoch - 1)
            del curve[rb.epoch:], step_ends[rb.epoch:]
            if d.is_main:
                rundir.trim_metrics(rb.epoch)
            logs.start(step_ends[-1] if step_ends else 0)
            epoch = rb.epoch
            continue
        metrics = {"epoch": epoch, **metrics, "time_s": time.perf_counter() - t_epoch}
        try:
            finite_metrics(metrics, epoch)
        except NonFiniteError as e:
            raise NonFiniteError(f"{rundir.path}: {e}") from None
        curve.append(metrics)
        step_ends.append(logs.steps)
        wall = wall_before + time.perf_counter() - t_start
        _log_epoch(logs, task, epoch, metrics)
        if d.is_main:
            rundir.log_epoch(metrics)
            save_run_checkpoint(rundir, task, epoch + 1, wall, config_dict, step_ends)
        log.info("epoch %d/%d %s", epoch + 1, config.epochs,
                 " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()
                          if k != "epoch"))
        d.barrier()
        epoch += 1
        if epoch < config.epochs and stopped():
            break
    return len(curve)


def _log_epoch(logs: Loggers, task, epoch: int, metrics: dict) -> None:
    """An epoch's metrics to the live logs, with what the task shows of its state (a search: its
    architecture's softmax, derived genotype and skip-connection count)."""
    if not logs.active:
        return
    view = task.watch() if hasattr(task, "watch") else {}
    logs.on_epoch(epoch, {**metrics, **view.get("scalars", {})}, view.get("texts"), view.get("arrays"))
