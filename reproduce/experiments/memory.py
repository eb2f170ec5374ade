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
from typing import Callable, Optional, Tuple

import torch

# The batch size named by a refusal leaves this share of the available memory unused: two measurements of the
# same probe differ by a few MB, and the suggested batch size must fit when the dry run is rerun with it.
HEADROOM = 0.95


class DoesNotFitError(ValueError):
    """A planned run's estimated peak memory exceeds what the device has (one line, with the batch size that fits)."""


def available_memory(device: torch.device) -> Tuple[Optional[int], str]:
    """(bytes a run may use on ``device``, what that figure is); None where it cannot be told.

    A GPU: its total memory (a run has the GPU to itself). A CPU: ``MemAvailable`` of /proc/meminfo, the memory
    the kernel can give a new process without swapping (free memory plus the caches it can drop)."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory, "the GPU's total memory"
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return None, "unknown"
    for line in text.splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024, "available memory (MemAvailable)"
    return None, "unknown"


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


def refusal(run: str, batch: int, peak: int, available: int, what: str, option: str,
            peak_at: Callable[[int], Optional[int]]) -> DoesNotFitError:
    """The one-line refusal of ``run`` (batch size ``batch``, measured ``peak``); ``peak_at(b)`` measures the peak
    at batch size ``b`` (a second probe) to tell the batch size that would fit."""
    head = (f"{run} needs about {format_bytes(peak)} at its peak at batch size {batch}, more than the "
            f"{format_bytes(available)} of {what}")
    smaller = max(1, batch // 2)
    other = peak_at(smaller) if smaller < batch else None
    if other is None:
        return DoesNotFitError(f"{head}; no smaller batch size to try: ask for a smaller network or free memory")
    line = LinearPeak.from_probes(batch, peak, smaller, other)
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
