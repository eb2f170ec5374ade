"""The one optimizer builder of training and search."""
from __future__ import annotations

import torch


def make_sgd(params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0) -> torch.optim.SGD:
    """torch.optim.SGD with the fused kernel where this PyTorch has one for the device (the same update
    in one kernel instead of a Python loop over ~180 tensors), else the multi-tensor one."""
    params = list(params)
    try:
        return torch.optim.SGD(params, lr, momentum=momentum, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.SGD(params, lr, momentum=momentum, weight_decay=weight_decay, foreach=True)
