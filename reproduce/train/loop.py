"""The epoch loop every recipe shares: run directory, resume, checkpoint, record.

A recipe is a *task* object with ``model`` (the bare module), ``parameters`` (count),
``state_dict()``/``load_state_dict()``, ``run_epoch(epoch) -> metrics`` and ``final(curve) -> dict``.
``run_epoch`` may raise :class:`Rollback` (the LM recipes on a non-finite loss) to continue from
an earlier epoch.

Per epoch: the task trains and evaluates, every float metric is checked finite (a NaN stops the
run with :class:`~reproduce.rundir.NonFiniteError` and no record), rank 0 appends the metrics
line, then atomically replaces ``checkpoint.pt``. A kill at any point loses at most the epoch in
progress: rerunning loads the checkpoint, trims ``metrics.jsonl`` to the epochs it covers, and
goes on. Generators are re-seeded from (seed, epoch) at the start of every epoch, so the resumed
run is the same run. The record is written last, atomically; a finished directory is skipped.
"""
from __future__ import annotations

import contextlib
import logging
import time
from typing import Any, Dict, Optional

import torch

import genotypes

from .. import config as _config
from ..rundir import NonFiniteError, RunDir, RunInUseError, check_finite, make_record
from ..seeding import seed_everything
from . import distributed
from .recipes import RECIPES, genotype_of

log = logging.getLogger(__name__)

CHECKPOINT_VERSION = 1


class Rollback(Exception):
    """Raised by a task to continue training from ``epoch`` (its state already restored)."""

    def __init__(self, epoch: int):
        super().__init__(epoch)
        self.epoch = epoch


def _make_task(dataset, config, genotype, d, progress):
    if dataset == "cifar10":
        from .cifar import CIFARTask as Task
    elif dataset == "imagenet":
        from .imagenet import ImageNetTask as Task
    else:
        from .lm import LMTask as Task
    return Task(config, genotype, d, progress)


def _as_config(dataset: str, config):
    if dataset not in RECIPES:
        raise _config.ConfigError(f"unknown dataset {dataset!r}; known: {', '.join(RECIPES)}")
    cls = RECIPES[dataset]
    if config is None:
        config = cls()
    elif isinstance(config, dict):
        config = _config.build(cls, config)
    elif type(config) is not cls:
        raise _config.ConfigError(f"the {dataset} recipe takes a {cls.__name__}, got {type(config).__name__}")
    config.validate()
    return config


def _finite_metrics(metrics: Dict[str, Any], epoch: int) -> None:
    for key, value in metrics.items():
        if isinstance(value, float):
            check_finite(key, value, epoch)


def train(dataset: str, config=None, out=None, progress: bool = True) -> dict:
    """Train ``dataset``'s recipe (``config``: its config dataclass, a dict of overrides, or None
    for the paper's defaults) in run directory ``out``; return the finished record.

    A finished directory is not run again: its record is returned. An interrupted one resumes.
    """
    if out is None:
        raise ValueError("train() needs an output run directory (out=...)")
    rundir = RunDir(out)
    config = _as_config(dataset, config)
    if rundir.is_finished():
        rundir.check_config(_config.to_dict(config))
        log.info("%s holds a finished run; skipping it (use another --out to train again)", rundir.path)
        return rundir.read_record()
    genotype = genotype_of(config, dataset)
    d = distributed.setup(config.device)
    try:
        with contextlib.ExitStack() as held:
            if _claim(rundir, d, held) == "finished":  # by a process that held the lock just before us
                rundir.check_config(_config.to_dict(config))
                log.info("%s was finished by another process; skipping it", rundir.path)
                return rundir.read_record()
            return _run(dataset, config, genotype, rundir, d, progress)
    finally:
        d.close()


def _claim(rundir: RunDir, d, held: contextlib.ExitStack) -> str:
    """Take the run directory for this run: 'run', or 'finished' (by someone else meanwhile).

    One process trains in a directory at a time; under DDP rank 0 holds the lock for all ranks, and
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


def _run(dataset, config, genotype, rundir: RunDir, d, progress: bool) -> dict:
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    seed_everything(config.seed, config.deterministic)
    if d.device.type == "cuda" and not config.deterministic:
        torch.backends.cudnn.benchmark = True  # as the original; --deterministic turns it off
    config_dict = _config.to_dict(config)
    task = _make_task(dataset, config, genotype, d, progress and d.is_main)  # checks data and sizes first
    task.rundir = rundir
    if d.is_main:
        rundir.start(config_dict)
    d.barrier()

    start_epoch, wall_before = 0, 0.0
    checkpoint = rundir.load_checkpoint(map_location="cpu")
    if checkpoint is not None:
        if checkpoint.get("version") != CHECKPOINT_VERSION or checkpoint.get("dataset") != dataset:
            raise ValueError(f"{rundir.checkpoint_path} is not a {dataset} training checkpoint of this version; "
                             "use another --out directory")
        task.load_state_dict(checkpoint["task"])
        start_epoch = int(checkpoint["epoch"])
        wall_before = float(checkpoint["wall_time_s"])
        log.info("resuming %s from epoch %d of %d", rundir.path, start_epoch, config.epochs)
    d.barrier()
    curve = rundir.trim_metrics(start_epoch) if d.is_main else []
    d.barrier()
    if not d.is_main:
        curve = rundir.metrics()[:start_epoch]

    t_start = time.perf_counter()
    epoch = start_epoch
    while epoch < config.epochs:
        t_epoch = time.perf_counter()
        try:
            metrics = task.run_epoch(epoch)
        except Rollback as rb:
            log.warning("non-finite loss at epoch %d: rolled back to the end of epoch %d", epoch, rb.epoch - 1)
            curve = curve[:rb.epoch]
            if d.is_main:
                rundir.trim_metrics(rb.epoch)
            epoch = rb.epoch
            continue
        metrics = {"epoch": epoch, **metrics, "time_s": time.perf_counter() - t_epoch}
        _finite_metrics(metrics, epoch)
        curve.append(metrics)
        wall = wall_before + time.perf_counter() - t_start
        if d.is_main:
            rundir.log_epoch(metrics)
            rundir.save_checkpoint({"version": CHECKPOINT_VERSION, "dataset": dataset, "epoch": epoch + 1,
                                    "wall_time_s": wall, "task": task.state_dict()})
        log.info("epoch %d/%d %s", epoch + 1, config.epochs,
                 " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()
                          if k != "epoch"))
        d.barrier()
        epoch += 1

    final = task.final(curve)
    _finite_metrics(final, config.epochs)
    record = make_record(
        experiment=config.experiment or f"train-{dataset}", kind="train", dataset=dataset,
        genotype=genotypes.format(genotype), seed=config.seed, config=_config.to_dict(config), final=final,
        curve=curve, parameters=task.parameters, wall_time_s=wall_before + time.perf_counter() - t_start,
        device=d.device, world_size=d.world, epochs=config.epochs,
    )
    if d.is_main:
        rundir.write_record(record)
    d.barrier()
    return record


def load_record(out) -> Optional[dict]:
    return RunDir(out).read_record()


__all__ = ["train", "Rollback", "NonFiniteError", "load_record"]
