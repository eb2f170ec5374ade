"""The bounds of the hostile-input tests (issue: each refusal within 30 s and 1.2 GB of peak RSS), shared by the
zoo's and the harness's: run Python in a fresh child process and measure what the child itself used (its peak
resident memory, its CPU and its wall time), and bound a test that refuses in this process (:func:`bounded_here`,
applied by the ``bounded`` marker through tests/conftest.py).

The peak memory is the child's own ``VmHWM`` (Linux ``/proc/self/status``), written by the child at exit.
``ru_maxrss`` from ``wait4`` cannot serve: Linux carries the memory of the process that forked the child
over ``execve`` (fork copies the parent's page tables, vfork shares them), so inside a long pytest session
every child would report the pytest worker's own gigabytes.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence

import pytest

REPO = Path(__file__).resolve().parents[1]
MAX_SECONDS = 30.0  # wall time of one hostile-input test
MAX_RSS_MB = 1200   # peak resident memory of one refusal

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
    wall_s: float                 # from the start of the child to its end (starting Python and torch included)


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
            t0 = time.monotonic()
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
            except BaseException:  # the test's own bound expired (bounded_here): the child must not outlive it
                proc.kill()
                proc.wait()
                raise
            finally:
                timer.cancel()
            wall = time.monotonic() - t0
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace")
        peak = None
        if measures_memory() and peak_file.is_file():
            kb = int(peak_file.read_text() or -1)
            peak = kb / 1024 if kb >= 0 else None
        elif measures_memory():
            peak = float("inf")  # the child died before it could report: no bound can be claimed
    return ChildResult(proc.returncode, stdout, stderr, peak, cpu, wall)


def wall_budget(seconds: float = MAX_SECONDS) -> float:
    """The wall time a bound of ``seconds`` allows on this machine now: ``seconds`` while each runnable process has
    a core of its own, stretched by the load beyond that (1-minute load average over the cores this process may
    use). On a machine shared with other jobs the same refusal waits for a core for most of its wall time
    (starting Python and torch alone took 17 s at load 6 on 2 cores); the bound is of the refusal, not of the
    neighbours. Where the load is unknown (Windows), ``seconds``."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return seconds
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return seconds * max(1.0, load / cores)


def _status_mb(field: str) -> Optional[float]:
    """``field`` (VmRSS, VmHWM) of this process's /proc/self/status in MB; None where there is none."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) / 1024
    except (OSError, StopIteration, ValueError):
        return None


def reset_peak_rss() -> Optional[float]:
    """Reset this process's peak RSS (VmHWM) to its present RSS (Linux: "5" to /proc/self/clear_refs) and return
    that RSS in MB; None where the platform cannot (no /proc, or a kernel that refuses): then no bound is kept."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None
    return _status_mb("VmRSS")


@contextlib.contextmanager
def bounded_here(what: str, seconds: float = MAX_SECONDS, rss_mb: float = MAX_RSS_MB):
    """Fail ``what`` (a test refusing hostile inputs in this process) when it runs longer than ``seconds`` of wall
    time (:func:`wall_budget`: stretched on an overloaded machine; SIGALRM interrupts the test then, so a hang
    fails instead of stalling the suite) or when this process's peak RSS grows more than ``rss_mb`` MB above where
    it started. The growth, not the whole RSS: what the pytest worker already holds (torch, earlier tests'
    fixtures) is no part of the refusal's cost. Each bound is a no-op where the platform lacks it (no SIGALRM, not
    the main thread, no /proc)."""
    budget = wall_budget(seconds)
    start_mb = reset_peak_rss()
    timed = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if timed:
        def expired(signum, frame):
            pytest.fail(f"{what} ran longer than {budget:.3g} s of wall time, its bound ({seconds:g} s on a machine "
                        "with a free core)", pytrace=False)

        previous = signal.signal(signal.SIGALRM, expired)
        signal.setitimer(signal.ITIMER_REAL, budget)
    try:
        yield
    finally:
        if timed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    peak_mb = _status_mb("VmHWM") if start_mb is not None else None
    if peak_mb is not None and peak_mb - start_mb > rss_mb:
        pytest.fail(f"{what} grew this process's peak RSS by {peak_mb - start_mb:.0f} MB (from {start_mb:.0f} MB), "
                    f"more than the {rss_mb:g} MB bound of a refusal", pytrace=False)


__all__ = ["MAX_RSS_MB", "MAX_SECONDS", "ChildResult", "bounded_here", "measures_memory", "reset_peak_rss",
           "run_child", "wall_budget"]
