"""Where and how a run computes: ``pick_device``, ``autocast`` and ``progress_bar`` are the zoo's
(:mod:`zoo.device`, the one implementation), and the harness's measured per-device defaults live here.
"""
from __future__ import annotations

import os
from typing import Optional

import torch

from zoo.device import autocast, pick_device, progress_bar

# The fastest exact settings per device type, measured (results/bench/README-search.md, "Defaults per
# device"): channels_last for the conv search where it is faster and exact. A device type not measured
# keeps the plain layout. CPU: channels_last with the BatchNorm statistics summed accurately
# (search/accurate_bn.py; the CPU's own channels_last BatchNorm has far larger float32 round-off, which the
# second-order finite difference amplifies: reproduce/benchmarks/channels_last_accuracy.py), faster than
# NCHW and as accurate.
SEARCH_CHANNELS_LAST: dict = {"cpu": True}


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. under taskset or a container's cpuset)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def max_threads() -> int:
    """The most torch CPU threads a run may ask for: 4 per usable core, at least 64 (a config may be written on
    a smaller machine than the node that runs it) and at most 1024. Far more threads than cores only exhaust
    memory (100,000 threads: a MemoryError while reading the data, not a faster run)."""
    return min(1024, max(64, 4 * usable_cores()))


def search_channels_last(device: torch.device, asked: Optional[bool] = None, table: Optional[dict] = None) -> bool:
    """channels_last for the conv search on ``device``: ``asked`` when given, else the measured default."""
    table = SEARCH_CHANNELS_LAST if table is None else table
    return bool(asked) if asked is not None else table.get(torch.device(device).type, False)


__all__ = ["pick_device", "autocast", "progress_bar", "search_channels_last", "SEARCH_CHANNELS_LAST", "usable_cores",
           "max_threads"]
