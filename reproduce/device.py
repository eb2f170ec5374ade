"""Where and how a run computes: ``pick_device``, ``autocast`` and ``progress_bar`` are the zoo's
(:mod:`zoo.device`, the one implementation), and the harness's measured per-device defaults live here.
"""
from __future__ import annotations

from typing import Optional

import torch

from zoo.device import autocast, pick_device, progress_bar

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


__all__ = ["pick_device", "autocast", "progress_bar", "search_channels_last", "SEARCH_CHANNELS_LAST"]
