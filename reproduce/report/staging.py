"""The hidden directory a report draws its figures into before moving them into figures/, and the removal of
those that a killed report (kill -9, a lost node) left behind.

A staging directory is named ``.figures-<host>-<pid>-<random>`` and holds a mark, :data:`MARK`, naming the
program, the host and the process that made it. A later report removes one only when all of this holds: its
name has that form, it is a directory (not a link), it was made on this host by a process that is no longer
alive, and it carries the mark with the same host and process, or is empty (a report killed between making it
and marking it). Anything else that looks like one is left as it is: a directory another host's report may
still be drawing into (a results directory on a shared file system), a live report's on this host, or one
someone else made.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import List, Optional

from zoo.fileio import atomic_write_json

from ..jsonfile import read_json

log = logging.getLogger(__name__)

PREFIX = ".figures-"
MARK = ".staging-by-report"
PROGRAM = "python -m reproduce report"
# the host part keeps no "-", so the name splits one way; mkdtemp's random part is [a-z0-9_]
NAME = re.compile(r"^\.figures-(?P<host>[A-Za-z0-9_.]{1,64})-(?P<pid>[0-9]{1,10})-[a-z0-9_]{1,32}$")


def host() -> str:
    """This host's name as a staging directory's name holds it."""
    return re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname())[:64] or "_"


def make(base: Path) -> Path:
    """A new staging directory in ``base``, marked as this process's."""
    me = host()
    path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{me}-{os.getpid()}-", dir=base))
    try:
        atomic_write_json(path / MARK, {"program": PROGRAM, "host": me, "pid": os.getpid()})  # never torn
    except BaseException:  # a full disk: nothing of this report stays
        shutil.rmtree(path, ignore_errors=True)
        raise
    return path


def alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (one of another user's counts: it may be a report too)."""
    if pid <= 0:
        return True  # 0 and negative numbers name process groups, not a process: never taken for dead
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _mark(path: Path) -> Optional[dict]:
    try:
        return read_json(path / MARK)  # a FIFO mark is refused, not waited on
    except (OSError, ValueError):
        return None


def abandoned(path: Path) -> bool:
    """Whether ``path`` is a staging directory that a report on this host left behind when it was killed."""
    found = NAME.match(path.name)
    if not found or path.is_symlink() or not path.is_dir():
        return False
    pid = int(found["pid"])
    if found["host"] != host() or pid == os.getpid() or alive(pid):
        return False
    mark = _mark(path)
    if mark is not None:
        return mark.get("program") == PROGRAM and mark.get("host") == found["host"] and mark.get("pid") == pid
    try:
        return not any(path.iterdir())
    except OSError:
        return False


def remove_abandoned(base: Path) -> List[Path]:
    """Remove the staging directories in ``base`` that killed reports left (:func:`abandoned`); returns them.
    One that cannot be removed is named in a warning: a leftover never stops a report."""
    removed = []
    try:
        candidates = sorted(p for p in Path(base).iterdir() if p.name.startswith(PREFIX))
    except OSError:  # no base yet, or unreadable: nothing of ours to remove
        return removed
    for path in candidates:
        if not abandoned(path):
            continue
        try:
            shutil.rmtree(path)
        except OSError as e:
            log.warning("could not remove %s, left by a report that was killed: %s", path, e)
            continue
        log.info("removed %s, left by a report that was killed", path)
        removed.append(path)
    return removed
