"""Parameter and multiply-add counts.

Conventions (published counts differ, so they are stated):

- ``count_parameters`` counts each parameter tensor once (tied RNN weights once) and, by
  default, leaves out the auxiliary head, as the original's ``count_parameters_in_MB`` does.
- ``count_macs`` counts multiply-accumulates of convolutions and matrix products (``Conv2d`` and
  ``Linear``) only, for one input of ``input_size`` in eval mode (so the auxiliary head is not run),
  with ``torch.utils.flop_counter``: a conv costs
  ``out_elements * (C_in / groups) * kH * kW``, a linear layer ``in_features * out_features``
  per row. Pools, BatchNorm, ReLU and additions are not counted. By this convention DARTS_V2
  has 528.4M MACs on CIFAR-10 (32x32) and 529.9M on ImageNet (224x224); the paper reports 574M
  for ImageNet without stating its convention, so its figure is not reproduced by this count.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn


def count_parameters(model: nn.Module, exclude_auxiliary: bool = True) -> int:
    seen, total = set(), 0
    for name, p in model.named_parameters():  # named_parameters already drops shared tensors
        if exclude_auxiliary and "auxiliary" in name:
            continue
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


def count_macs(model: nn.Module, input_size: Sequence[int] = (1, 3, 32, 32)) -> int:
    """Multiply-accumulates of one forward pass of a conv network on one image (see module docstring).

    ``input_size`` is ``(C, H, W)`` or ``(N, C, H, W)`` (the count is per image). Counted with
    ``torch.utils.flop_counter`` (convolutions and matrix products; half its FLOPs are MACs).
    """
    from torch.utils.flop_counter import FlopCounterMode

    if not any(isinstance(m, nn.Conv2d) for m in model.modules()):
        raise TypeError(f"count_macs counts conv networks (one image in, logits out); {type(model).__name__} "
                        "has no convolution")
    size = tuple(int(s) for s in input_size)
    if len(size) == 3:
        size = (1, *size)
    if len(size) != 4 or min(size) < 1:
        raise ValueError(f"input_size must be (C, H, W) or (N, C, H, W) with positive sizes, got {tuple(input_size)}")
    was_training = model.training
    param = next(model.parameters())
    try:
        model.eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(size, device=param.device, dtype=param.dtype))
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2 // size[0]
