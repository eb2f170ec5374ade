"""The dry run's memory check: what the device has, whether a run's measured peak fits in it, and, when it does
not, the batch size that would.

The peak of a run is modelled as ``fixed + per_sample * batch_size``: activations and their gradients grow with
the batch; the process itself (torch, the interpreter), the data held, the parameters, their gradients and the
optimizer's state do not. Two probes at the planned batch size and at half of it separate the two parts; one
probe scaled in proportion would count the fixed part (on a CPU, hundreds of MB of the process alone) as
per-sample memory and name a batch size far smaller than needed.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Callable, NamedTuple, Optional, Tuple

import torch

# The batch size named by a refusal leaves this share of the available memory unused: two measurements of the
# same probe differ by a few MB, and the suggested batch size must fit when the dry run is rerun with it.
HEADROOM = 0.95


class DoesNotFitError(ValueError):
    """A planned run's estimated peak memory exceeds what the device has (one line, with the batch size that fits)."""


def available_memory(device: torch.device, gpu: Optional[str] = None) -> Tuple[Optional[int], str]:
    """(bytes a run may use on ``device``, what that figure is); None where it cannot be told.

    A GPU: its total memory (a run has the GPU to itself); ``gpu``: the index given to ``--gpus``, which the runs
    take. A CPU: ``MemAvailable`` of /proc/meminfo, the memory the kernel can give a new process without swapping
    (free memory plus the caches it can drop). Other accelerators: not told."""
    if device.type == "cuda":
        index = int(gpu) if gpu is not None and gpu.isdigit() else device
        return torch.cuda.get_device_properties(index).total_memory, "the GPU's total memory"
    if device.type != "cpu":
        return None, "unknown"
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return None, "unknown"
    for line in text.splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024, "available memory (MemAvailable)"
    return None, "unknown"


class Probed(NamedTuple):
    """What a probe at some batch size gave: whether it ran out of memory, and its peak (None: not told)."""
    out_of_memory: bool
    peak_bytes: Optional[int]


@dataclasses.dataclass(frozen=True)
class LinearPeak:
    """peak(batch) = fixed + per_sample * batch, from two measured probes."""
    fixed: float
    per_sample: float

    @classmethod
    def from_probes(cls, batch_a: int, peak_a: int, batch_b: int, peak_b: int) -> "LinearPeak":
        per_sample = max(0.0, (peak_a - peak_b) / (batch_a - batch_b))
        return cls(fixed=peak_a - per_sample * batch_a, per_sample=per_sample)

    def at(self, batch: int) -> float:
        return self.fixed + self.per_sample * batch

    def largest_batch(self, budget: float) -> int:
        """The largest batch size whose peak is within ``budget`` (0: none; the fixed part alone is over it)."""
        if self.fixed > budget:
            return 0
        if self.per_sample <= 0:
            return 1 << 30  # the batch does not move the peak: any batch fits
        return int(math.floor((budget - self.fixed) / self.per_sample))


def refusal(run: str, batch: int, peak: Optional[int], available: Optional[int], what: str, option: str,
            peak_at: Callable[[int], Probed]) -> DoesNotFitError:
    """The one-line refusal of ``run`` at batch size ``batch``: its measured ``peak`` exceeds ``available``, or
    (``peak`` None) its probe ran out of memory. ``peak_at(b)`` probes batch size ``b``. The batch size named is
    found by halving until a probe runs, then from the line through two measured peaks."""
    if peak is not None:
        head = (f"{run} needs about {format_bytes(peak)} at its peak at batch size {batch}, more than the "
                f"{format_bytes(available)} of {what}")
    else:
        head = f"{run} ran out of memory at batch size {batch} in the dry run's probe on {what.split(' on ')[-1]}"
    ran = []  # (batch size, peak) of the smaller probes that ran: one is enough beside a measured peak, else two
    smaller = batch // 2
    while smaller >= 1 and len(ran) < (1 if peak is not None else 2):
        probed = peak_at(smaller)
        if not probed.out_of_memory:
            if probed.peak_bytes is None:  # ran, but its peak cannot be told: the largest batch that ran fits
                return DoesNotFitError(f"{head}; batch size {smaller} ran: rerun with {option} {smaller}")
            ran.append((smaller, probed.peak_bytes))
        smaller //= 2
    if not ran:
        return DoesNotFitError(f"{head}; " + ("no smaller batch size to try" if batch == 1 else
                                              "even batch size 1 ran out of memory")
                               + ": ask for a smaller network or free memory")
    points = ([(batch, peak)] if peak is not None else []) + ran
    if len(points) == 1 or available is None:  # batch size 1 alone ran, or no memory figure to fit a line against
        b, p = ran[0]
        return DoesNotFitError(f"{head}; batch size {b} ran (about {format_bytes(p)}): rerun with {option} {b}")
    line = LinearPeak.from_probes(*points[0], *points[1])
    fits = min(batch - 1, line.largest_batch(HEADROOM * available))
    if fits < 1:
        return DoesNotFitError(f"{head}; even batch size 1 would not fit (about {format_bytes(line.at(1))}: the "
                               "network, its data and the process take that much): ask for a smaller network or free "
                               "memory")
    return DoesNotFitError(f"{head}; batch size {fits} would fit (about {format_bytes(line.at(fits))}): rerun with "
                           f"{option} {fits}")


def format_bytes(n: float) -> str:
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20)):
        if n >= size:
            return f"{n / size:.1f} {unit}" if unit == "GB" else f"{n / size:.0f} {unit}"
    return f"{n / 1024:.0f} kB"
