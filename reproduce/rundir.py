"""A run directory: config.json, metrics.jsonl, checkpoint.pt, record.json (see docs/design.md).

The life of a run:

1. ``RunDir(path).start(config_dict)`` writes config.json, or checks that an existing one is
   the same (a different config in the same directory is refused, naming the fields).
2. Each epoch: ``log_epoch(metrics)`` then ``save_checkpoint(state)``; both atomic.
3. At the end: ``write_record(record)``, atomically and last. A directory with a finished
   record is never run again (``is_finished``) and never overwritten.

On resume, ``load_checkpoint`` gives the last finished epoch's state, and the runner trims
metrics.jsonl to the epochs that checkpoint covers (``trim_metrics``), so a kill mid-epoch loses at
most that epoch.

While a process runs in a directory it holds ``with rundir.lock():``, an exclusive lock on
``.lock``: the same command started twice (two terminals, a Slurm job submitted twice) fails at
once with who holds it, instead of two processes interleaving one run's checkpoints and metrics.
The lock is the operating system's, through :mod:`filelock` (``flock`` on POSIX, ``LockFileEx`` on
Windows), so it goes away with its process, even after ``kill -9`` (which may leave the ``.lock`` file,
but no lock: the next run takes it over).
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import logging
import math
import os
import socket
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import filelock
import torch

from genotypes.quoting import quote
from zoo.fileio import append_jsonl, atomic_torch_save, atomic_write_json, atomic_write_text
from zoo.limits import MAX_CHECKPOINT_BYTES
from zoo.torchfile import check_torch_zip

from . import config as _config
from . import records
from .jsonfile import BadFileError, check_regular, read_json, read_json_lines
from .layout import BEST, CHECKPOINT, CONFIG, LOCK, METRICS_FILE, QUEUE_LOG, RECORD, SLURM_JOB
from .provenance import provenance

log = logging.getLogger(__name__)

# What marks a directory as a run's: its own files, or what the launchers write there before it starts. A
# directory that holds files but none of these is someone else's, and a run does not write into it.
RUN_FILES = (CONFIG, METRICS_FILE, CHECKPOINT, RECORD, LOCK, QUEUE_LOG, SLURM_JOB)

# Fields that may change between a run and its resumption without changing its results.
RUNTIME_FIELDS = ("device", "progress", "workers", "data", "num_threads", "download", "logger", "processes")


def missing_dirs(path: Path) -> List[Path]:
    """``path`` and those of its parents that do not exist yet, deepest first: what ``mkdir(parents=True)``
    creates, and what a start that failed removes again (:func:`remove_empty_dirs`)."""
    out, p = [], Path(path).absolute()
    while not p.exists() and p != p.parent:
        out.append(p)
        p = p.parent
    return out


def remove_empty_dirs(dirs: Sequence[Path]) -> None:
    """Remove each directory of ``dirs`` (deepest first) that is empty; stop at the first that is not."""
    for d in dirs:
        try:
            d.rmdir()
        except OSError:  # not empty (a run wrote there, or another starter came), or gone already
            return


class ForeignDirectoryError(ValueError):
    """The run directory holds someone else's files and no run."""


class RunConfigMismatchError(ValueError):
    """The directory holds a run with another config."""


class RunInUseError(RuntimeError):
    """Another process is running in this directory (it holds the directory's lock)."""


class RunDirNotWritableError(PermissionError):
    """The run directory (or its parent) cannot be written: read-only filesystem, no permission."""

    def __str__(self) -> str:
        return self.args[0]


class NonFiniteError(FloatingPointError):
    """A loss or metric became NaN or infinite; the run stops and writes no result."""


def check_finite(name: str, value: float, epoch: int) -> float:
    if not math.isfinite(value):
        raise NonFiniteError(f"{name} is {value} at epoch {epoch}: the run stopped and wrote no result. To try "
                             "other settings (e.g. a lower learning rate), start a fresh run directory: another --out "
                             "(or delete this one); rerunning the same command resumes from the last checkpoint "
                             "with the same settings.")
    return value


class RunDir:
    def __init__(self, path):
        self.path = Path(path)

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT

    @property
    def record_path(self) -> Path:
        return self.path / RECORD

    @contextlib.contextmanager
    def lock(self):
        """Hold the directory's exclusive lock for the block; RunInUseError if another process holds it.

        The lock is :mod:`filelock`'s (``flock`` on POSIX, ``LockFileEx`` on Windows): the operating
        system's, so it goes away with its process, even after ``kill -9``. The lock file names its holder
        (where the platform lets a locked file be read) and is removed on the way out; a directory the
        lock itself created is removed too if nothing else was written in it (a run that failed on bad
        input leaves nothing behind). On a filesystem that cannot lock, the run goes on unlocked, with a
        warning. (Forked data-loader workers share the lock: after ``kill -9`` of the main process it
        lasts until they have exited too, a few seconds.)
        """
        created = missing_dirs(self.path)
        path = self.path / LOCK
        if self.path.exists() and not self.path.is_dir():
            raise RunDirNotWritableError(f"{self.path} is a file, not a run directory: use a directory (--out)")
        self._check_not_foreign()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            held = self._acquire(path)
        except OSError as e:
            if not isinstance(e, (PermissionError, FileNotFoundError, NotADirectoryError, FileExistsError)) and \
                    e.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
            raise RunDirNotWritableError(
                f"{self.path} is not writable ({e.strerror}: {e.filename}); a run writes its config, metrics, "
                "checkpoint and record there: use a directory you can write to (--out)") from None
        try:
            if held is not None:
                stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
                with contextlib.suppress(OSError), open(path, "r+") as f:  # Windows: a locked file is not written
                    f.truncate()
                    f.write(f"pid {os.getpid()} on {socket.gethostname()} since {stamp}\n")
                self._remove_stale_temporaries()
            yield
        finally:
            if held is not None:
                lock, ours = held
                # Before the lock is released, so nobody locks a file that is going away; and only our own
                # file (if ours was removed under us, the path may be another starter's live lock by now).
                with contextlib.suppress(OSError):
                    if os.stat(path).st_ino == ours:
                        os.unlink(path)
                with contextlib.suppress(OSError):  # Windows: the file could not be removed while locked
                    lock.release()
                    if os.name == "nt":
                        os.unlink(path)
            remove_empty_dirs(created)  # the directories the lock created, unless a run wrote in them

    def _remove_stale_temporaries(self) -> None:
        """The atomic writes' temporary files (``.NAME.XXXX.tmp``) of a run's files, left by a process killed while
        writing: with the lock held, no other process of this run is writing them."""
        for name in (CONFIG, METRICS_FILE, CHECKPOINT, RECORD, BEST):
            for tmp in self.path.glob(f".{name}.*.tmp"):
                with contextlib.suppress(OSError):
                    tmp.unlink()

    def _check_not_foreign(self) -> None:
        """ForeignDirectoryError when the directory holds files (hidden ones aside) but none of a run's."""
        try:
            names = {p.name for p in self.path.iterdir()} if self.path.is_dir() else set()
        except OSError:
            return  # unreadable: the lock's own error names it
        visible = sorted(n for n in names if not n.startswith("."))
        if visible and not names & set(RUN_FILES):
            raise ForeignDirectoryError(
                f"{self.path} holds other files ({', '.join(visible[:3])}{', ...' if len(visible) > 3 else ''}) and "
                "no run: a run writes config.json, metrics.jsonl, checkpoint.pt and record.json into its --out "
                "directory; give a new or empty one")

    def _acquire(self, path: Path, attempts: int = 5):
        """``(lock, inode of its file)`` held, or None where the filesystem cannot lock."""
        for _ in range(attempts):
            # no soft fallback: a marker file would outlive a kill -9 (this lock must go with its process)
            lock = filelock.FileLock(str(path), timeout=0, fallback_to_soft=False)
            try:
                lock.acquire()
            except filelock.Timeout:  # held by another process, or its file was removed as we locked it
                if not path.exists():
                    continue
                holder = ""
                with contextlib.suppress(OSError):
                    with open(path, "rb") as f:
                        holder = f.read(1024).decode("utf-8", "replace").strip()
                raise RunInUseError(
                    f"{self.path} is in use by {holder or 'another process'}: the same run is going on. Wait for it "
                    "to end (or stop it), then rerun to resume; to run again alongside it, use another --out "
                    "directory.") from None
            except OSError as e:
                if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                    raise
                with contextlib.suppress(OSError):  # ENOLCK, ENOSYS, EOPNOTSUPP: this filesystem does not lock
                    os.unlink(path)
                log.warning("cannot lock %s (%s): running without protection against a second process in it",
                            path, e.strerror or e)
                return None
            try:
                return lock, os.stat(path).st_ino
            except FileNotFoundError:  # the holder before us removed the file as we locked it: again
                lock.release()
        if not path.exists():  # the lock file cannot be made there at all (e.g. /proc)
            raise FileNotFoundError(errno.ENOENT, "its lock file cannot be created", str(path))
        raise RunInUseError(f"{self.path}: could not take its lock after {attempts} attempts (other processes keep "
                            "starting and ending in it); rerun to resume")

    def read_record(self) -> Optional[dict]:
        return records.read_record(self.record_path)

    def is_finished(self) -> bool:
        return records.is_finished(self.read_record())

    def read_config(self) -> Optional[dict]:
        if not self.config_path.exists():
            return None
        return read_json(self.config_path, fix="restore it, or use another --out directory to start the run afresh")

    def check_config(self, config: Dict[str, Any], ignore=RUNTIME_FIELDS) -> Optional[dict]:
        """Raise RunConfigMismatchError, naming the fields, if the directory holds a run (finished or
        not) whose config differs from ``config`` in anything but ``ignore``; return the saved config."""
        existing = self.read_config()
        if existing is None and self.record_path.exists():
            existing = (self.read_record() or {}).get("config")
        if existing is None:
            return None
        differ = _config.diff(existing, config, ignore=ignore)
        newer = sorted(k for k in differ if k not in _config.canonical(existing))
        if newer:  # saved by a version of this code that had no such field: its run cannot go on under this one
            raise RunConfigMismatchError(
                f"{self.path} holds a run saved by an earlier version of this code, without the field(s) "
                f"{', '.join(newer)}: it cannot resume under this version. Start afresh in another --out directory "
                "(or finish it with the version that started it).")
        if differ:
            self._check_config_json_agrees_with_checkpoint()
            fields = ", ".join(f"{k} (saved {a!r}, now {b!r})" for k, (a, b) in differ.items())
            finished = "finished " if self.is_finished() else ""
            raise RunConfigMismatchError(
                f"{self.path} holds a {finished}run with another config: {fields}. "
                "Use another --out directory, or rerun with the saved values to resume it.")
        return existing

    def _check_config_json_agrees_with_checkpoint(self) -> None:
        """RunConfigMismatchError when config.json and the config the checkpoint was written under differ: then
        neither "rerun with the saved values" nor "rerun with the checkpoint's" can resume the run."""
        try:
            state = self.load_checkpoint()
            saved = self.read_config()
        except ValueError:  # a damaged checkpoint or config.json: the caller's message stands
            return
        tied = (state or {}).get("config")
        if not isinstance(tied, dict) or saved is None:
            return
        differ = _config.diff(tied, saved, ignore=RUNTIME_FIELDS)
        if differ:
            raise RunConfigMismatchError(config_disagreement(self, differ))

    def start(self, config: Dict[str, Any], ignore=RUNTIME_FIELDS) -> None:
        """Write config.json, or check it against the one already there."""
        self.path.mkdir(parents=True, exist_ok=True)
        existing = self.check_config(config, ignore)
        if existing is None or any(existing.get(k) != config.get(k) for k in ignore if k in config):
            atomic_write_json(self.config_path, config)

    def log_epoch(self, metrics: Dict[str, Any]) -> None:
        append_jsonl(self.metrics_path, metrics)

    def metrics(self) -> List[dict]:
        """metrics.jsonl's epochs. A value outside its metric's domain (a loss of -5000) is refused here, naming the
        line, before the run resumes: a record finished with that curve would be excluded when read back."""
        rows = read_json_lines(self.metrics_path)
        for i, row in enumerate(rows):
            problems = records.row_problems(row)
            if problems:
                raise BadFileError(f"{self.metrics_path}: line {i + 1}: {problems[0]}, so the file was damaged or "
                                   "edited; restore it, or delete the run directory and run again")
        return rows

    def trim_metrics(self, epochs_done: int) -> List[dict]:
        """Keep only lines of epochs < epochs_done (those the checkpoint covers)."""
        rows = [m for m in self.metrics() if m.get("epoch", 0) < epochs_done]
        atomic_write_text(self.metrics_path, "".join(json.dumps(r, allow_nan=False) + "\n" for r in rows))
        return rows

    def save_checkpoint(self, state: Dict[str, Any], name: str = CHECKPOINT) -> None:
        """Atomically replace the run's checkpoint (or the state file ``name``) with ``state``, checksummed."""
        save_checked(state, self.path / name)

    def load_checkpoint(self, map_location="cpu", name: str = CHECKPOINT) -> Optional[Dict[str, Any]]:
        """The state saved by :meth:`save_checkpoint`, its checksum verified; None when there is none."""
        path = self.path / name
        if not path.exists():
            return None
        return load_checked(path, map_location)

    def write_record(self, record: Dict[str, Any]) -> None:
        atomic_write_json(self.record_path, record)


# --------------------------------------------------------------------------------------------------
# checksummed state files: a damaged checkpoint is refused, never resumed from

CHECKED_FORMAT = "darts-reproduce-checked-state/1"


class DamagedCheckpointError(ValueError):
    """A checkpoint (or other saved state) that is not what the run wrote."""


def config_disagreement(rundir: "RunDir", differ: Dict[str, tuple]) -> str:
    """The one line for a run whose config.json and checkpoint disagree (``differ``: checkpoint, config.json)."""
    fields = ", ".join(f"{k} (checkpoint {quote(a)}, {CONFIG} {quote(b)})" for k, (a, b) in differ.items())
    return (f"{rundir.config_path} and {rundir.checkpoint_path} disagree: {fields}; one of them was edited or copied "
            "in from another run, and a run resumes only under the config it was trained with. To resume, put the "
            f"checkpoint's values back in {CONFIG} and rerun with them; or delete {CHECKPOINT} to restart the run "
            f"from its first epoch with {CONFIG}'s values; or use another --out directory")


def first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0][:160]}" if lines else type(e).__name__


def _restart_hint(path: Path) -> str:
    return (f"delete {path} to restart the run from its first epoch (or use another --out directory); "
            "a damaged checkpoint is never resumed from")


def save_checked(state: Dict[str, Any], path) -> None:
    """Write ``state`` atomically as a torch file that carries the SHA-256 of its serialized content.

    The state is serialized by ``torch.save`` into bytes, which are stored (as a uint8 tensor) beside
    their checksum; ``epoch`` is repeated outside for tools that only peek at it.
    """
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    atomic_torch_save({"format": CHECKED_FORMAT, "epoch": state.get("epoch"),
                       "sha256": hashlib.sha256(payload).hexdigest(),
                       "payload": torch.frombuffer(bytearray(payload), dtype=torch.uint8)}, path)


def load_checked(path, map_location="cpu") -> Dict[str, Any]:
    """The state :func:`save_checked` wrote at ``path``, after checking its checksum.

    A file that cannot be read, is not such a file, or whose checksum does not match raises
    :class:`DamagedCheckpointError` naming the file and what to do (checkpoints written before they
    carried a checksum too: they cannot be verified).
    """
    path = Path(path)
    if path.exists():  # a FIFO blocks torch.load and a device (/dev/zero) never ends: refused before any open
        check_regular(path, MAX_CHECKPOINT_BYTES, _restart_hint(path), DamagedCheckpointError)
    try:
        check_torch_zip(path, path.name)  # sizes and pickle bounded before torch.load inflates or unpickles
        outer = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # written atomically: a file torch cannot read is damaged
        raise DamagedCheckpointError(f"cannot read {path} ({first_line(e)}); "
                                     f"{_restart_hint(path)}") from None
    if not isinstance(outer, dict):
        raise DamagedCheckpointError(f"{path} holds a {type(outer).__name__}, not a checkpoint; {_restart_hint(path)}")
    if outer.get("format") != CHECKED_FORMAT:  # also one written before checkpoints carried a checksum
        raise DamagedCheckpointError(f"{path} carries no checksum, so it cannot be verified; {_restart_hint(path)}")
    payload = outer.get("payload")
    if not (torch.is_tensor(payload) and payload.dtype == torch.uint8 and payload.dim() == 1
            and isinstance(outer.get("sha256"), str)):
        raise DamagedCheckpointError(f"{path} lacks its content or checksum; {_restart_hint(path)}")
    data = payload.numpy().tobytes()
    if hashlib.sha256(data).hexdigest() != outer["sha256"]:
        raise DamagedCheckpointError(f"{path} is damaged: its content does not match its checksum; "
                                     f"{_restart_hint(path)}")
    try:
        check_torch_zip(data, path.name)
        state = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as e:  # the checksum matched: what we wrote is unreadable (another torch version?)
        raise DamagedCheckpointError(f"cannot read {path} ({first_line(e)}); "
                                     f"{_restart_hint(path)}") from None
    if not isinstance(state, dict):
        raise DamagedCheckpointError(f"{path} holds a {type(state).__name__}, not a checkpoint; {_restart_hint(path)}")
    return state


def make_record(*, experiment: str, kind: str, dataset: str, genotype: str, seed: int, config: dict,
                final: dict, curve: list, parameters: int, wall_time_s: float, device,
                status: str = "finished", **extra) -> dict:
    """A run record as docs/design.md describes it. ``json.dumps(allow_nan=False)`` later refuses any NaN."""
    record = {
        "experiment": experiment,
        "kind": kind,
        "dataset": dataset,
        "genotype": genotype,
        "seed": seed,
        "config": config,
        "final": final,
        "curve": curve,
        "parameters": parameters,
        "wall_time_s": wall_time_s,
        "status": status,
    }
    record.update(provenance(device))
    record.update(extra)
    return record
