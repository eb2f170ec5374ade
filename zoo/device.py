"""The one place for where and how the code computes: the device, autocast and progress bars.

The zoo's evaluation and every part of the harness (training, search, benchmarks; through
``reproduce.device``) ask here, so ``--device auto``, ``--amp bf16`` and the progress bars mean the
same everywhere.
"""
from __future__ import annotations

import contextlib
import sys
from typing import Iterable, Optional

import torch

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


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
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"bad device {str(name)[:40]!r}: {str(e).splitlines()[0][:200] if str(e) else ''}; use cpu, "
                         "cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but no CUDA device is available here; use --device cpu")
    backend = getattr(torch, device.type, None) if device.type not in ("cpu", "cuda") else None
    if device.type not in ("cpu", "cuda") and not (callable(getattr(backend, "is_available", None))
                                                    and backend.is_available()):
        raise ValueError(f"device {str(name)[:40]!r} asked for, but no {device.type} device is available here; use "
                         "--device cpu (or cuda, auto)")
    if device.type == "cuda" and device.index is None:
        device = _local_gpu(local_rank)
    return device


def autocast(device: torch.device, amp: Optional[str], cache: bool = True):
    """Autocast to ``amp`` (``bf16``, ``fp16``; ``none``/None: off). ``cache=False`` inside CUDA graph capture."""
    if not amp or amp == "none":
        return contextlib.nullcontext()
    if amp not in AMP_DTYPES:
        raise ValueError(f"amp must be one of none, {', '.join(AMP_DTYPES)}, not {amp!r}")
    return torch.autocast(device_type=device.type, dtype=AMP_DTYPES[amp], cache_enabled=cache)


def progress_bar(iterable: Optional[Iterable], total: Optional[int], desc: str, enabled: bool, unit: str = "it"):
    """tqdm over ``iterable`` on a terminal when enabled, else ``iterable`` itself.

    With ``iterable=None`` returns a manual bar (``update()``/``close()``), or None when disabled.
    """
    if not enabled or not sys.stderr.isatty():
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True, unit=unit)


__all__ = ["pick_device", "autocast", "progress_bar", "AMP_DTYPES"]
