"""Atomic file writes: a temporary file in the same directory, fsynced, then renamed over the target.

A reader never sees a half-written file, and a crash leaves either the old file or the new one.
Used by the zoo (saved models) and by reproduce (run directories).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Union

from genotypes.quoting import quote

PathLike = Union[str, os.PathLike]


def _umask() -> int:
    """The process umask, read without changing it where the system lets us (Linux), else by setting it back."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp creates the file 0600; the file we leave gets the mode any tool gives a new file (0666 less the
        # umask), so a group sharing a results folder can read it.
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_text(path: PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: PathLike, obj: Any, indent: int = 2) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=False, allow_nan=False) + "\n")


def atomic_torch_save(obj: Any, path: PathLike) -> Path:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


def append_jsonl(path: PathLike, record: dict) -> None:
    """Append one JSON line, flushed and fsynced (a torn last line is ignored by read_jsonl)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, allow_nan=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: PathLike) -> list:
    """Lines of a JSONL file; a torn (unparsable) final line from a crash is dropped."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break
            raise ValueError(f"{path}: line {i + 1} is not JSON") from None
    return out


class DuplicateKeyError(ValueError):
    """A JSON object that names one key twice (JSON readers disagree which value counts, so none is taken);
    ``key`` is the key, for the caller's message."""

    def __init__(self, key: str, message: str = ""):
        super().__init__(message or f"duplicate key {quote(key)}")
        self.key = key


def unique_keys(pairs: list) -> dict:
    """``object_pairs_hook`` for ``json.loads``: the object as a dict, DuplicateKeyError if it names a key twice."""
    out = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKeyError(key)
        out[key] = value
    return out


def loads_json_unique(text: str, where: str) -> Any:
    """``json.loads`` that refuses an object naming a key twice, in one line naming ``where`` and the key.

    Python keeps the last value, other readers (and a person reading the file) the first: a file that says
    ``"name": null, ..., "name": "darts-cifar10"`` must not mean one thing here and another elsewhere.
    """
    try:
        return json.loads(text, object_pairs_hook=unique_keys)
    except DuplicateKeyError as e:
        raise DuplicateKeyError(e.key, f"{where}: duplicate key {quote(e.key)} in one JSON object (readers "
                                       "disagree which value counts); keep one") from None


def sha256_file(path: PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()
