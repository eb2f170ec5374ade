"""Run Python in a fresh child process and measure what the child itself used: its peak resident memory and
its CPU time. Shared by the hostile-input tests of the zoo and of the harness.

The peak memory is the child's own ``VmHWM`` (Linux ``/proc/self/status``), written by the child at exit.
``ru_maxrss`` from ``wait4`` cannot serve: Linux carries the memory of the process that forked the child
over ``execve`` (fork copies the parent's page tables, vfork shares them), so inside a long pytest session
every child would report the pytest worker's own gigabytes.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence

REPO = Path(__file__).resolve().parents[1]

# Runs argv[2:] as `python -m MODULE ...` (argv[1] = "-m MODULE") or `python -c CODE ...` (argv[1] = "-c"),
# and at exit writes the process's own peak RSS in kB to the file named by $CHILD_BOUNDS_PEAK_FILE.
_WRAPPER = r"""
import atexit, os, runpy, sys

def _peak():
    try:
        with open("/proc/self/status") as f:
            kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration, ValueError):
        kb = -1
    with open(os.environ["CHILD_BOUNDS_PEAK_FILE"], "w") as f:
        f.write(str(kb))

atexit.register(_peak)
mode, target, *rest = sys.argv[1:]
if mode == "-m":
    sys.argv = [target, *rest]
    runpy.run_module(target, run_name="__main__", alter_sys=True)
else:
    sys.argv = ["-c", *rest]
    exec(compile(target, "<child>", "exec"), {"__name__": "__main__"})
"""


@dataclass
class ChildResult:
    returncode: int
    stdout: str
    stderr: str
    peak_rss_mb: Optional[float]  # None where the platform cannot tell (no /proc)
    cpu_s: Optional[float]        # None where wait4 is missing (Windows)


def measures_memory() -> bool:
    return Path("/proc/self/status").is_file()


def run_child(mode: str, target: str, args: Sequence[str] = (), env: Optional[Dict[str, str]] = None,
              cwd=None, wall_timeout: float = 120.0, preexec_fn=None) -> ChildResult:
    """``python -m TARGET ARGS`` (``mode="-m"``) or ``python -c TARGET ARGS`` (``mode="-c"``) with the
    repository first on PYTHONPATH; killed after ``wall_timeout`` seconds (then returncode is -9)."""
    child_env = {**os.environ, **(env or {})}
    child_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), child_env.get("PYTHONPATH")) if p)
    with tempfile.TemporaryDirectory() as tmp:
        peak_file = Path(tmp) / "peak"
        child_env["CHILD_BOUNDS_PEAK_FILE"] = str(peak_file)
        with open(Path(tmp) / "out", "w+b") as out, open(Path(tmp) / "err", "w+b") as err:
            proc = subprocess.Popen([sys.executable, "-c", _WRAPPER, mode, target, *map(str, args)], stdout=out,
                                    stderr=err, env=child_env, cwd=cwd, preexec_fn=preexec_fn)
            timer = threading.Timer(wall_timeout, proc.kill)
            timer.start()
            try:
                if hasattr(os, "wait4"):
                    _, status, usage = os.wait4(proc.pid, 0)
                    proc.returncode = os.waitstatus_to_exitcode(status)
                    cpu = usage.ru_utime + usage.ru_stime
                else:
                    proc.wait()
                    cpu = None
            finally:
                timer.cancel()
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace")
        peak = None
        if measures_memory() and peak_file.is_file():
            kb = int(peak_file.read_text() or -1)
            peak = kb / 1024 if kb >= 0 else None
        elif measures_memory():
            peak = float("inf")  # the child died before it could report: no bound can be claimed
    return ChildResult(proc.returncode, stdout, stderr, peak, cpu)


def wait_budget(seconds: float) -> float:
    """Wall time allowed for a child bounded at ``seconds`` of CPU: starting Python and torch on a loaded
    machine takes many seconds of wall time, so the bound that is checked is CPU time."""
    return 4 * seconds + 30


__all__ = ["ChildResult", "measures_memory", "run_child", "wait_budget"]
