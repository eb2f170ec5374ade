"""Parameter and multiply-add counts.

Conventions (published counts differ, so they are stated):

- ``count_parameters`` counts each parameter tensor once (tied RNN weights once) and, by
  default, leaves out the auxiliary head, as the original's ``count_parameters_in_MB`` does.
- ``count_macs`` counts multiply-accumulates of ``Conv2d`` and ``Linear`` layers only, for one
  input of ``input_size`` in eval mode (so the auxiliary head is not run): a conv costs
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
    """Multiply-accumulates of one forward pass of a conv network (see module docstring)."""
    if not any(isinstance(m, nn.Conv2d) for m in model.modules()):
        raise TypeError(f"count_macs counts conv networks (one image in, logits out); {type(model).__name__} "
                        "has no convolution")
    total = 0

    def conv_hook(module: nn.Conv2d, inputs, output):
        nonlocal total
        kh, kw = module.kernel_size
        total += output.numel() * (module.in_channels // module.groups) * kh * kw

    def linear_hook(module: nn.Linear, inputs, output):
        nonlocal total
        total += output.numel() * module.in_features

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    param = next(model.parameters())
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(tuple(input_size), device=param.device, dtype=param.dtype))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    batch = input_size[0] if input_size else 1
    return total // max(batch, 1)
