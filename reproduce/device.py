"""The one place for where and how a run computes: the device, bf16 autocast and progress bars.

Training, search and the benchmarks ask here, so ``--device auto``, ``--amp bf16`` and the
progress bars mean the same everywhere.
"""
from __future__ import annotations

import contextlib
import sys
from typing import Iterable, Optional

import torch


def _local_gpu(local_rank: int) -> torch.device:
    """This process's GPU: cuda:LOCAL_RANK when it sees all of the machine's GPUs (torchrun, a Slurm job
    with --gpus-per-node), its only GPU when the scheduler binds one GPU to each task."""
    count = torch.cuda.device_count()
    if local_rank < count:
        return torch.device(f"cuda:{local_rank}")
    if count == 1:
        return torch.device("cuda:0")
    raise ValueError(f"process with LOCAL_RANK {local_rank} sees {count} GPUs: give each process its own GPU "
                     "(as many GPUs as processes per machine, or one visible GPU per process)")


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` (this process's GPU when there is one, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    if name == "auto":
        return _local_gpu(local_rank) if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but no CUDA device is available here; use --device cpu")
    if device.type == "cuda" and device.index is None:
        device = _local_gpu(local_rank)
    return device


# The fastest exact settings per device type, measured (results/bench/README-search.md, "Defaults per
# device"): channels_last for the conv search where it is faster and safe. A device type not measured
# keeps the plain layout. CPU: measured faster (~1.2x per second-order step), but PyTorch 2.14.1's CPU
# backward of a strided 1x1 convolution in channels_last (the reduction cells' FactorizedReduce) aborts
# or segfaults at small sizes (C=2..4, 8-16 px; a double free), so it cannot be the default there.
SEARCH_CHANNELS_LAST: dict = {}


def search_channels_last(device: torch.device, asked: Optional[bool] = None, table: Optional[dict] = None) -> bool:
    """channels_last for the conv search on ``device``: ``asked`` when given, else the measured default."""
    table = SEARCH_CHANNELS_LAST if table is None else table
    return bool(asked) if asked is not None else table.get(torch.device(device).type, False)


def autocast(device: torch.device, amp: str, cache: bool = True):
    """bf16 autocast when asked (``cache=False`` inside CUDA graph capture, which needs it)."""
    if amp == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16, cache_enabled=cache)
    return contextlib.nullcontext()


def progress_bar(iterable: Optional[Iterable], total: Optional[int], desc: str, enabled: bool):
    """tqdm over ``iterable`` on a terminal when enabled, else ``iterable`` itself.

    With ``iterable=None`` returns a manual bar (``update()``/``close()``), or None when disabled.
    """
    if not enabled or not sys.stderr.isatty():
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True)
