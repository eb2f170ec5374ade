"""Live logs of a run, for watching it while it runs: CSV, TensorBoard and Weights & Biases.

The runner (:mod:`reproduce.runner`) is the only user: it opens the loggers a config names in its
``logger`` field (``"tensorboard,csv,wandb"``, any combination; empty: none), on rank 0 only, and
calls them after every step (the task's ``on_step`` hook) and every epoch. A task knows nothing
about them. Files go into the run directory:

- ``csv``: ``steps.csv`` (a row per step) and ``epochs.csv`` (a row per epoch); nothing extra needed;
- ``tensorboard``: event files in ``tensorboard/`` (``pip install 'darts-zoo[tensorboard]'``);
- ``wandb``: an offline or online W&B run in ``wandb/`` (``pip install 'darts-zoo[wandb]'``).

Every value is logged against the run's global step (steps done since the run's first epoch;
epoch summaries at the step that ends the epoch, the initial architecture at step 0). A resumed
run (or one that rolled back) calls :meth:`Loggers.start` with the steps its checkpoint stands
at: the CSV files drop the rows after it and TensorBoard purges the events after it, so no step
appears twice. W&B cannot delete what it has: online it ignores steps it already holds; offline each
process writes its own folder, so a killed and resumed offline run may miss or repeat the steps around its
checkpoint (see docs/watching.md). The optional packages are imported only when their logger is asked for.
"""
from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
import secrets
from pathlib import Path
from typing import Any, Dict, List, Mapping

import numpy as np
import torch

from zoo import extras
from zoo.fileio import atomic_write_text

from .config import ConfigError
from .rundir import first_line

log = logging.getLogger(__name__)

# name -> the optional package it needs (zoo.extras says which extra installs it), or None
KINDS = {"csv": None, "tensorboard": "tensorboard", "wandb": "wandb"}
STEPS_CSV, EPOCHS_CSV, TENSORBOARD_DIR, WANDB_DIR = "steps.csv", "epochs.csv", "tensorboard", "wandb"
LOGGER_HELP = ("live logs in the run directory, comma-separated: tensorboard, csv, wandb (default: none); "
               "a resumed run continues them")


def parse(text: str) -> List[str]:
    """The logger names of a config's ``logger`` field, checked: each known, and its package installed
    (else one :class:`ConfigError` line naming the install command)."""
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    for name in names:
        if name not in KINDS:
            raise ConfigError(f"unknown logger {name!r}; choose from {', '.join(KINDS)} (comma-separated)")
        module = KINDS[name]
        if module is not None and extras.missing([module]):
            raise ConfigError(f"the {name} logger needs the {module} package: {extras.install_hint([module])}")
    if len(set(names)) != len(names):
        raise ConfigError(f"logger {text!r} names a logger twice")
    return names


def _floats(values: Mapping[str, Any]) -> Dict[str, float]:
    """Numbers, and 0-dim tensors as floats fetched from the device in one transfer; other values dropped."""
    tensors = {k: v for k, v in values.items() if torch.is_tensor(v)}
    out = {k: v for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if tensors:
        fetched = torch.stack([t.detach().float().reshape(()) for t in tensors.values()]).cpu().tolist()
        out.update(zip(tensors, fetched))
    return {k: out[k] for k in values if k in out}


def heatmap(probs: np.ndarray, cell: int = 12) -> np.ndarray:
    """An RGB image (3 x H x W, uint8) of a matrix of probabilities, one ``cell``-pixel square per entry:
    white for 0, dark blue for the matrix's largest value (rows: edges, columns: operations)."""
    p = np.asarray(probs, dtype=np.float64)
    v = p / p.max() if p.size and p.max() > 0 else p
    white, blue = np.array([255.0, 255.0, 255.0]), np.array([8.0, 48.0, 107.0])
    rgb = (white[None, None] * (1 - v[..., None]) + blue[None, None] * v[..., None]).round().astype(np.uint8)
    return np.repeat(np.repeat(rgb, cell, axis=0), cell, axis=1).transpose(2, 0, 1)


class _CsvFile:
    """A CSV file that rows are appended to; a row with new keys adds columns (the file is rewritten once)."""

    def __init__(self, path: Path):
        self.path, self.columns, self.handle = path, None, None

    def start(self, steps_done: int) -> None:
        """Keep only the rows up to ``steps_done`` (a resumed run writes the rest again; 0: none)."""
        self.close()
        if self.path.exists():
            rows = [r for r in self._rows() if _kept(r.get("step"), steps_done)]
            if self.columns:
                self._rewrite(rows, self.columns)
            else:
                atomic_write_text(self.path, "")

    def write(self, row: Dict[str, Any]) -> None:
        new = [k for k in row if k not in (self.columns or [])]
        if new and self.columns:  # a column appears (the first epoch's metrics after the initial row)
            self.close()
            self._rewrite(self._rows(), self.columns + new)
        if self.handle is None:
            fresh = not self.path.exists() or self.path.stat().st_size == 0
            self.handle = open(self.path, "a", newline="", encoding="utf-8")
            if fresh or not self.columns:
                self.columns = list(row)
                csv.DictWriter(self.handle, self.columns, lineterminator="\n").writeheader()
        csv.DictWriter(self.handle, self.columns, lineterminator="\n").writerow(row)
        self.handle.flush()  # a watcher (or a kill) sees every finished step

    def _rows(self) -> List[Dict[str, str]]:
        # utf-8-sig: a file saved again by a spreadsheet starts with a byte-order mark, which would hide the
        # 'step' column and so drop every row
        try:
            with open(self.path, newline="", encoding="utf-8-sig") as f:
                reader = csv.DictReader(f)
                self.columns = list(reader.fieldnames or [])
                return [{k: v for k, v in row.items() if k is not None} for row in reader]  # extra cells: dropped
        except (UnicodeDecodeError, csv.Error) as e:
            raise ConfigError(f"{self.path} is not a CSV file of these logs ({first_line(e)}); move it away to "
                              "start its log afresh") from None

    def _rewrite(self, rows, columns) -> None:
        out = io.StringIO()
        writer = csv.DictWriter(out, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.path, out.getvalue())
        self.columns = list(columns)

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


def _kept(step_text, steps_done: int) -> bool:
    """Whether a row logged at ``step_text`` stays when a run continues after ``steps_done`` steps (at 0 it
    starts over, the initial architecture at step 0 included)."""
    try:
        return 0 < steps_done and int(step_text) <= steps_done
    except (TypeError, ValueError):
        return False


class CSVLogger:
    def __init__(self, path: Path, config: dict):
        self.steps, self.epochs = _CsvFile(path / STEPS_CSV), _CsvFile(path / EPOCHS_CSV)

    def start(self, steps_done: int) -> None:
        self.steps.start(steps_done)
        self.epochs.start(steps_done)

    def step(self, step: int, epoch: int, values: Dict[str, float]) -> None:
        self.steps.write({"step": step, "epoch": epoch, **values})

    def epoch(self, step: int, epoch: int, scalars: Dict[str, float], texts: Dict[str, str], arrays) -> None:
        self.epochs.write({"step": step, "epoch": epoch, **scalars, **texts})

    def close(self) -> None:
        self.steps.close()
        self.epochs.close()


class TensorBoardLogger:
    def __init__(self, path: Path, config: dict):
        from torch.utils.tensorboard import SummaryWriter  # the optional extra, only when asked for

        self.make, self.dir, self.writer = SummaryWriter, path / TENSORBOARD_DIR, None

    def start(self, steps_done: int) -> None:
        # purge_step: TensorBoard discards the events an earlier process logged after the checkpoint (at 0:
        # all of them, as the run starts over)
        self.close()
        self.writer = self.make(log_dir=str(self.dir), purge_step=steps_done + 1 if steps_done else 0)

    def step(self, step: int, epoch: int, values: Dict[str, float]) -> None:
        for key, value in values.items():
            self.writer.add_scalar(f"step/{key}", value, step)

    def epoch(self, step: int, epoch: int, scalars: Dict[str, float], texts: Dict[str, str], arrays) -> None:
        for key, value in scalars.items():
            self.writer.add_scalar(f"epoch/{key}", value, step)
        for key, text in texts.items():
            self.writer.add_text(key, text, step)
        for name, probs in arrays.items():
            self.writer.add_image(f"softmax/{name}", heatmap(probs), step)
            self.writer.add_histogram(f"softmax/{name}", np.asarray(probs).ravel(), step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


# Where W&B keeps its own cache, settings and service logs unless the user chose: inside the run directory.
_WANDB_HOMES = ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR")


class WandbLogger:
    def __init__(self, path: Path, config: dict):
        import wandb  # the optional extra, only when asked for

        self.wandb, self.dir, self.config, self.run = wandb, path / WANDB_DIR, config, None
        self.name = path.resolve().name

    def _run_id(self) -> str:
        # one W&B run per run directory, kept across resumes
        id_file = self.dir / "run_id"
        if not id_file.exists():
            atomic_write_text(id_file, secrets.token_hex(4) + "\n")
        return id_file.read_text().strip()

    def start(self, steps_done: int) -> None:
        if self.run is not None:
            return  # a rollback: W&B keeps the steps it has and ignores them when they come again
        self.dir.mkdir(parents=True, exist_ok=True)
        with _environ({k: str(self.dir / k.lower()[len("wandb_"):]) for k in _WANDB_HOMES if k not in os.environ}):
            try:
                self.run = self.wandb.init(project=os.environ.get("WANDB_PROJECT", "darts"), dir=str(self.dir),
                                           id=self._run_id(), name=self.name, resume="allow", config=self.config,
                                           settings=self.wandb.Settings(silent=True))
            except self.wandb.errors.Error as e:  # no account (online without `wandb login`), no network, ...
                raise ConfigError(f"the wandb logger could not start a W&B run ({first_line(e)}): run `wandb login`, "
                                  "or set WANDB_MODE=offline to log without an account or network") from None

    def step(self, step: int, epoch: int, values: Dict[str, float]) -> None:
        self.run.log({f"step/{k}": v for k, v in values.items()}, step=step)

    def epoch(self, step: int, epoch: int, scalars: Dict[str, float], texts: Dict[str, str], arrays) -> None:
        data: Dict[str, Any] = {f"epoch/{k}": v for k, v in scalars.items()}
        data.update(texts)
        for name, probs in arrays.items():
            data[f"softmax/{name}"] = self.wandb.Image(heatmap(probs).transpose(1, 2, 0))
            data[f"softmax_hist/{name}"] = self.wandb.Histogram(np.asarray(probs).ravel())
        self.run.log(data, step=step)

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None


@contextlib.contextmanager
def _environ(values: Dict[str, str]):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


_CLASSES = {"csv": CSVLogger, "tensorboard": TensorBoardLogger, "wandb": WandbLogger}


class Loggers:
    """The loggers of one run, called together; counts the run's global step (also with no logger, so
    that a run that starts logging when resumed numbers its steps as one that logged from the start)."""

    def __init__(self, names, path, config: dict):
        names = parse(names) if isinstance(names, str) else list(names)
        self.path = Path(path)
        self.active = []
        try:
            for name in names:
                self.active.append(_CLASSES[name](self.path, config))
        except ImportError as e:  # installed, but broken
            raise ConfigError(f"the {name} logger could not be loaded ({e}): "
                              f"{extras.install_hint([KINDS[name]])}") from None
        self.steps = 0

    def start(self, steps_done: int) -> None:
        """Continue after global step ``steps_done``: whatever was logged after it is dropped."""
        self.steps = steps_done
        for logger in self.active:
            logger.start(steps_done)

    def on_step(self, epoch: int, step: int, values: Mapping[str, Any]) -> None:
        """The task's per-step hook: ``values`` are the step's numbers (floats or 0-dim tensors)."""
        self.steps += 1
        if self.active:
            floats = _floats(values)
            for logger in self.active:
                logger.step(self.steps, epoch, floats)

    def on_epoch(self, epoch: int, metrics: Mapping[str, Any], texts: Mapping[str, str] = None,
                 arrays: Mapping[str, Any] = None) -> None:
        """An epoch's metrics (numbers), texts (a genotype) and matrices (the architecture's softmax)."""
        if not self.active:
            return
        scalars = {k: v for k, v in _floats(metrics).items() if k != "epoch"}
        for logger in self.active:
            logger.epoch(self.steps, epoch, scalars, dict(texts or {}), dict(arrays or {}))

    def close(self) -> None:
        for logger in self.active:
            try:
                logger.close()
            except Exception as e:  # a logger failing at the end must not lose the run's record
                log.warning("closing the %s logger failed: %s", type(logger).__name__, e)
