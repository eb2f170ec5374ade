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
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import List, Optional, Tuple

import torch

from ..device import pick_device
from ..distributed import Dist
from ..rundir import RunDir
from ..tasks import TASKS, make_config

log = logging.getLogger(__name__)

PROBE_STEPS = 2
RECURRENT_SEARCHES = ("ptb", "text")
# the directory holding the reproduce package: when it is a checkout (not site-packages, which must not come
# before the standard library), it goes first on the child's PYTHONPATH so that the child runs the same code
_ROOT = Path(__file__).resolve().parents[2]
_CHECKOUT = (_ROOT / "pyproject.toml").is_file()


class ProbeFailedError(ValueError):
    """The probe's process ended without an answer (one line: the CLI prints it as an error)."""


def time_epochs(task, epochs: int = 2, taken: Optional[List[int]] = None) -> Tuple[float, int]:
    """Seconds and steps of the last of ``epochs`` probe epochs (the first pays the warm-up); the steps are
    PROBE_STEPS, or what ``taken`` counted during that epoch."""
    seconds, steps = 0.0, PROBE_STEPS
    for epoch in range(epochs):
        if taken is not None:
            taken.clear()
        t = time.perf_counter()
        task.run_epoch(epoch)
        seconds = time.perf_counter() - t
        if taken:
            steps = len(taken)
    return seconds, steps


def own_peak_bytes() -> Optional[int]:
    """This process's resident high-water mark (Linux ``VmHWM``); None where /proc is missing."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration, ValueError):
        return None


def _trim_recurrent(task, bptt: int) -> Tuple[int, List[int]]:
    """The recurrent search has no limit field: its epoch is cut to about the probe's steps here. Returns the steps
    of a whole epoch (as its loop counts them), read before the cut, and a list that counts the weight steps
    taken (the loop draws a half-length step 5 % of the time, so the cut epoch may take 3 or 4 of them)."""
    data = task.searcher.data
    steps = max(1, (data.train.size(0) - 2) // bptt + 1)
    data.train = data.train[:PROBE_STEPS * bptt + 2]
    data.valid = data.valid[:bptt + 1]  # one evaluation batch
    taken: List[int] = []
    task.searcher.w_opt.register_step_post_hook(lambda *_: taken.append(1))
    return steps, taken


def measure(kind: str, dataset: str, config: dict) -> dict:
    """Run the probe here (in the child): ``config`` is already the probe's (its limits and epochs set)."""
    cfg = make_config(kind, dataset, config)
    device = pick_device(cfg.device)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        task = TASKS[kind, dataset][1](dataset, cfg, Dist(device=device), RunDir(tmp), progress=False)
        taken = None
        if kind == "search" and dataset in RECURRENT_SEARCHES:
            out["steps_per_epoch"], taken = _trim_recurrent(task, cfg.bptt)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        seconds, steps = time_epochs(task, taken=taken)
        out["seconds_per_step"] = seconds / steps
        out["peak_bytes"] = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else own_peak_bytes()
    return out


def run_probe(kind: str, dataset: str, config: dict, timeout: Optional[float] = None, gpu: Optional[str] = None
              ) -> dict:
    """``measure`` in a fresh child process. Out of memory (the child's torch.OutOfMemoryError or MemoryError, or
    the child killed by SIGKILL, as the kernel's OOM killer does) is the answer ``{"oom": True}``; a config or
    data error comes back as ValueError, a child that ended without an answer as :class:`ProbeFailedError`."""
    env = dict(os.environ)
    if _CHECKOUT:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ROOT), env.get("PYTHONPATH")) if p)
    if gpu is not None:  # the GPU the runs will take (--gpus), seen by the child as its cuda:0
        env["CUDA_VISIBLE_DEVICES"] = gpu
    request = json.dumps({"kind": kind, "dataset": dataset, "config": config}, default=str)
    proc = subprocess.run([sys.executable, "-m", __name__], input=request, capture_output=True, text=True, env=env,
                          timeout=timeout)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode == -signal.SIGKILL and not lines:  # what the kernel's OOM killer sends
        return {"oom": True, "signal": "SIGKILL"}
    try:
        answer = json.loads(lines[-1])
    except (IndexError, ValueError):
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ProbeFailedError(f"the dry run's probe of the {kind} of {dataset} failed (exit {proc.returncode}"
                               f"{', killed: out of memory?' if proc.returncode < 0 else ''}): {tail}") from None
    if answer.get("oom"):
        return answer
    if "error" in answer:
        log.debug("the probe's stderr:\n%s", proc.stderr)  # a bug's traceback (python -m reproduce -v ...)
        raise ValueError(answer["error"])
    return answer


# torch.OutOfMemoryError is torch 2.5's name; torch 2.4 (which pyproject allows) has only the CUDA one
_OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)

# what a run reports to the user as the message alone (the CLI's user errors); anything else is named by its type
_USER_ERRORS = (ValueError, KeyError, OSError, ModuleNotFoundError)


def _main() -> None:
    request = json.loads(sys.stdin.read())
    try:
        answer = measure(request["kind"], request["dataset"], request["config"])
    except (_OUT_OF_MEMORY, MemoryError) as e:
        answer = {"oom": True, "error": f"{type(e).__name__}: {e}"}
    except _USER_ERRORS as e:
        answer = {"error": str(e.args[0] if isinstance(e, KeyError) and e.args else e) or type(e).__name__}
    except Exception as e:  # noqa: BLE001 - a bug: the parent says it in one line, the traceback goes to stderr
        traceback.print_exc()
        answer = {"error": f"the dry run's probe failed: {type(e).__name__}: {e}"}
    print(json.dumps(answer))


if __name__ == "__main__":
    _main()
