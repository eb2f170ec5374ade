"""An outcome and its classification (severe, moderate, clean)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .cases import (
    ARGPARSE_ERROR,
    GROUP_KILL_MB,
    LOG_LINE,
    MAX_MESSAGE_CHARS,
    MAX_MESSAGE_LINES,
    MAX_RSS_MB,
    PROGRESS,
    SENTINEL,
    Case,
)


@dataclass
class Outcome:
    name: str
    area: str
    category: str
    reasons: List[str]
    rc: Optional[int]
    seconds: float
    peak_mb: Optional[float]
    stderr_tail: str
    argv: List[str] = field(default_factory=list)


def _message(stderr: str) -> str:
    """The refusal as a user reads it: stderr without log lines, warnings and argparse's usage block (argparse
    prints the command's usage before its one-line ``PROG: error: ...``; that block is not counted)."""
    lines, in_usage = [], False
    for ln in stderr.splitlines():
        if ln.startswith("usage: "):
            in_usage = True
        if in_usage and ARGPARSE_ERROR.match(ln):
            in_usage = False
        if in_usage or not ln.strip() or LOG_LINE.match(ln) or "UserWarning" in ln or ln.startswith("  warnings.warn"):
            continue
        if PROGRESS.search(ln):  # a progress bar (tqdm's, gdown's) drawn on stderr, not a message
            continue
        lines.append(ln)
    return "\n".join(lines).strip()


def classify(c: Case, d: Path, rc: Optional[int], timed_out: bool, killed_for_memory: bool, peak: Optional[float],
             stderr: str, before: Dict, after: Dict) -> Tuple[str, List[str]]:
    severe, moderate = [], []
    if timed_out:
        severe.append(f"hang: still running after {c.timeout:g} s (killed)")
    if killed_for_memory:
        severe.append(f"its processes together passed {GROUP_KILL_MB:g} MB resident (killed)")
    if rc is not None and rc < 0 and not timed_out and not killed_for_memory:
        severe.append(f"killed by signal {-rc}")
    if peak is not None and peak > MAX_RSS_MB:
        severe.append(f"peak RSS {peak:.0f} MB > {MAX_RSS_MB:g} MB")
    if "Traceback (most recent call last)" in stderr:
        severe.append("a Python traceback on stderr")
    if "MemoryError" in stderr and "Traceback" not in stderr:
        moderate.append("ran out of memory (MemoryError under the 3 GB data limit)")
    for path in sorted(set(before) - set(after)):
        severe.append(f"deleted {path} (outside the named outputs)")
    for path in sorted(set(before) & set(after)):
        if before[path] != after[path]:
            severe.append(f"changed {path} (outside the named outputs)")
    new = sorted(set(after) - set(before))
    if new:
        moderate.append(f"wrote outside the named outputs: {', '.join(new[:5])}")
    if c.check is not None and not timed_out:
        try:
            finding = c.check(d)
        except Exception as e:  # noqa: BLE001
            finding = f"check failed: {type(e).__name__}: {e}"
        if finding:
            severe.append(finding)
    elif c.check is not None and (d / SENTINEL).exists():
        severe.append(f"code from the input ran: {SENTINEL} was created")
    finished = rc is not None and not timed_out and not killed_for_memory and rc >= 0
    if finished and rc == 0 and c.expect == "refuse":
        severe.append("accepted (exit 0) an input that must be refused")
    if finished and rc != 0:
        msg = _message(stderr)
        lines = msg.splitlines()
        report = "no weights for" in msg and "tried:" in msg
        max_chars, max_lines = (4000, 20) if report else (MAX_MESSAGE_CHARS, MAX_MESSAGE_LINES)
        if len(msg) > max_chars or len(lines) > max_lines or any(len(ln) > 600 for ln in lines if report):
            moderate.append(f"message of {len(msg)} characters on {len(lines)} lines")
        if not msg:
            moderate.append("refused without a message")
        if re.search(r"object at 0x[0-9a-f]+>", msg):
            moderate.append("a Python object's repr on stderr: " + re.search(r".{0,40}object at 0x[0-9a-f]+>", msg)[0])
        names = [n.replace("{d}", str(d)) for n in c.names]
        if names and msg and not any(n.lower() in msg.lower() for n in names):
            moderate.append(f"the message names none of {[n.replace(str(d), '<case>') for n in names]}")
        if c.expect == "accept":
            moderate.append("refused an input that should be accepted")
    if severe:
        return "severe", severe + moderate
    if moderate:
        return "moderate", moderate
    return "clean", []


