"""Reading the JSON files of the harness (configs, records, experiment.json, metrics.jsonl) safely.

Every file the harness reads back may have been damaged, hand-edited or replaced. Whatever is in
it, reading gives the parsed value or one :class:`BadFileError` that names the file and what to
do: never a traceback, a RecursionError from 200,000 levels of nesting, or a UnicodeDecodeError.
"""
from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path
from typing import Any, List, Optional

from genotypes.quoting import quote
from zoo.fileio import DuplicateKeyError, unique_keys
from zoo.fileio import read_jsonl as _read_jsonl

_TYPE_NAMES = {dict: "a JSON object", list: "a JSON list", str: "a string", int: "an integer",
               float: "a number", bool: "true or false", type(None): "null"}


class BadFileError(ValueError):
    """A file of a run or an experiment that cannot be read as what it should be."""


# The largest JSON file the harness reads: its records, configs and paper.json are kilobytes, a long run's
# metrics.jsonl a few megabytes; anything larger was put there by mistake or on purpose, and reading it whole
# could exhaust memory.
MAX_JSON_BYTES = 64 << 20

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def check_regular(path, max_bytes: int, fix: str, error=BadFileError, what: str = "such a file") -> int:
    """The size of ``path`` (symlinks followed) if it is a regular file of at most ``max_bytes``; otherwise
    ``error`` naming the file, ``what`` it should be and ``fix``. Checked with stat before any open: opening a
    FIFO for reading blocks until a writer comes, and a device such as /dev/zero reads without end. A missing
    file raises FileNotFoundError, as opening it would."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a regular file")
        raise error(f"{path}: is {kind}, not a regular file; {fix}")
    if st.st_size > max_bytes:
        raise error(f"{path}: {st.st_size} bytes, more than {what} may have ({max_bytes} at most); {fix}")
    return st.st_size


def read_bytes_checked(path, max_bytes: int = MAX_JSON_BYTES, fix: str = "restore it or delete it",
                       error=BadFileError) -> bytes:
    """The content of a regular file of at most ``max_bytes`` (:func:`check_regular`); never more than
    ``max_bytes`` are read, even from a file that grows (or is swapped) after the check."""
    check_regular(path, max_bytes, fix, error)
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise error(f"{path}: more than the {max_bytes} bytes such a file may have; {fix}")
    return data


def _what(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _refuse(path: Path, problem: str, fix: str) -> BadFileError:
    return BadFileError(f"{path}: {problem}; {fix}")


def read_json(path, expect: Optional[type] = dict, fix: str = "restore it or delete it") -> Any:
    """The JSON value in ``path``, of type ``expect`` (None: any); BadFileError naming the file otherwise.

    ``fix`` says what the user can do about a damaged file (e.g. "delete the run directory to start
    the run afresh").
    """
    path = Path(path)
    try:
        text = read_bytes_checked(path, fix=fix).decode("utf-8")
    except UnicodeDecodeError as e:
        raise _refuse(path, f"is not UTF-8 text (byte {e.start})", fix) from None
    try:
        value = json.loads(text, object_pairs_hook=unique_keys)
    except DuplicateKeyError as e:
        raise _refuse(path, f"gives the key {quote(e.key)} twice (which one counts is ambiguous)", fix) from None
    except json.JSONDecodeError as e:
        raise _refuse(path, f"is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})", fix) from None
    except RecursionError:
        raise _refuse(path, "is nested too deeply to be one of our files", fix) from None
    if expect is not None and not isinstance(value, expect):
        raise _refuse(path, f"holds {_what(value)}, expected {_TYPE_NAMES.get(expect, expect.__name__)}", fix)
    return value


def read_json_lines(path, fix: str = "restore it or delete the run directory") -> List[dict]:
    """The JSON objects of a JSON-lines file (a torn last line from a crash is dropped, as
    :func:`zoo.fileio.read_jsonl`), or BadFileError naming the file and the line."""
    path = Path(path)
    if os.path.exists(path):  # a missing file is no lines, as zoo.fileio.read_jsonl has it
        check_regular(path, MAX_JSON_BYTES, fix)
    try:
        rows = _read_jsonl(path)
    except UnicodeDecodeError as e:
        raise _refuse(path, f"is not UTF-8 text (byte {e.start})", fix) from None
    except RecursionError:
        raise _refuse(path, "is nested too deeply to be one of our files", fix) from None
    except ValueError as e:  # an unparsable line that is not the last
        raise BadFileError(f"{e}; {fix}") from None
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise _refuse(path, f"line {i + 1} holds {_what(row)}, expected a JSON object", fix)
        bad = next((k for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)), None)
        if bad is not None:  # NaN and Infinity parse, but no run writes them (a non-finite metric stops it)
            raise _refuse(path, f"line {i + 1} holds {quote(bad)}: {row[bad]}, not a finite number", fix)
    return rows
