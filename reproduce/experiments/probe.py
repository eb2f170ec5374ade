"""One measured probe of a recipe for ``--dry-run``: a few training steps of the run's own config on the target
device, in a fresh child process, giving the seconds per step and the peak memory.

Why a fresh process: on a CPU the peak is the process's resident high-water mark (``VmHWM`` of
``/proc/self/status``), and only a process that did nothing else before measures the probe alone. In the dry
run's own process the mark already holds whatever that process touched before (an earlier probe, the data
check), and resetting it (writing 5 to ``/proc/self/clear_refs``) is refused in some containers; the resident
size of a process that reuses freed memory also understates what a fresh run needs. A run of the harness is
itself a process that imports torch, reads its data and builds its network, so the child's whole peak, not its
increase, is what the run will need. ``ru_maxrss`` cannot stand in: Linux carries the forking parent's mark
over ``execve``. On a GPU the peak is ``torch.cuda.max_memory_allocated``, reset after the network and data are
on the device (they count: they are held at reset) and before the first step.

The child is ``python -m reproduce.experiments.probe`` with ``{"kind", "dataset", "config"}`` as JSON on stdin;
it prints one JSON line: ``seconds_per_step``, ``peak_bytes`` (None where the platform cannot tell),
``steps_per_epoch`` (the recurrent search only, from its data) or ``error`` (a config or data error, one line).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import torch

from ..device import pick_device
from ..distributed import Dist
from ..rundir import RunDir
from ..tasks import TASKS, make_config

PROBE_STEPS = 2
RECURRENT_SEARCHES = ("ptb", "text")
# the repository root (the directory holding the reproduce package), put first on the child's PYTHONPATH so that
# a checkout that is not installed runs its own code
_ROOT = Path(__file__).resolve().parents[2]


class ProbeFailedError(RuntimeError):
    pass


def time_epochs(task, epochs: int = 2) -> float:
    """Seconds of the last of ``epochs`` probe epochs (the first pays the warm-up)."""
    seconds = 0.0
    for epoch in range(epochs):
        t = time.perf_counter()
        task.run_epoch(epoch)
        seconds = time.perf_counter() - t
    return seconds


def own_peak_bytes() -> Optional[int]:
    """This process's resident high-water mark (Linux ``VmHWM``); None where /proc is missing."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration, ValueError):
        return None


def _trim_recurrent(task, bptt: int) -> int:
    """The recurrent search has no limit field: its epoch is cut to the probe's steps here. Returns the steps of
    a whole epoch (as its loop counts them), read before the cut."""
    data = task.searcher.data
    steps = max(1, (data.train.size(0) - 2) // bptt + 1)
    data.train = data.train[:PROBE_STEPS * bptt + 2]
    data.valid = data.valid[:bptt + 1]  # one evaluation batch
    return steps


def measure(kind: str, dataset: str, config: dict) -> dict:
    """Run the probe here (in the child): ``config`` is already the probe's (its limits and epochs set)."""
    cfg = make_config(kind, dataset, config)
    device = pick_device(cfg.device)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        task = TASKS[kind, dataset][1](dataset, cfg, Dist(device=device), RunDir(tmp), progress=False)
        if kind == "search" and dataset in RECURRENT_SEARCHES:
            out["steps_per_epoch"] = _trim_recurrent(task, cfg.bptt)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        out["seconds_per_step"] = time_epochs(task) / PROBE_STEPS
        out["peak_bytes"] = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else own_peak_bytes()
    return out


def run_probe(kind: str, dataset: str, config: dict, timeout: Optional[float] = None) -> dict:
    """``measure`` in a fresh child process; a config or data error comes back as ValueError, a child killed
    (e.g. by the kernel when memory ran out) as :class:`ProbeFailedError`."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ROOT), env.get("PYTHONPATH")) if p)
    request = json.dumps({"kind": kind, "dataset": dataset, "config": config}, default=str)
    proc = subprocess.run([sys.executable, "-m", __name__], input=request, capture_output=True, text=True, env=env,
                          timeout=timeout)
    lines = proc.stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1])
    except (IndexError, ValueError):
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ProbeFailedError(f"the dry run's probe of the {kind} of {dataset} failed (exit {proc.returncode}"
                               f"{', killed: out of memory?' if proc.returncode < 0 else ''}): {tail}") from None
    if "error" in answer:
        raise ValueError(answer["error"])
    return answer


def _main() -> None:
    request = json.loads(sys.stdin.read())
    try:
        answer = measure(request["kind"], request["dataset"], request["config"])
    except (ValueError, FileNotFoundError, MemoryError) as e:
        answer = {"error": f"{type(e).__name__ if isinstance(e, MemoryError) else ''}{e}".strip() or repr(e)}
    print(json.dumps(answer))


if __name__ == "__main__":
    _main()
