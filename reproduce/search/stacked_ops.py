"""One op type on all the edges that leave a state, computed as one op (the search supernet's fused forward).

The k edges leaving a state of a cell apply, e.g., ``sep_conv_3x3`` to the same input, each with its own weights.
Stacked along the channels (the input repeated k times), each layer of the k ops is one layer of the stacked op:
a depthwise convolution with k times the groups, a pointwise one becomes a grouped one with k groups, a
BatchNorm normalises k*C channels, each with its own statistics, and a ReLU is a ReLU. Each output channel is
computed from the same inputs and weights by the same kind of kernel as in its own op (equal to float round-off:
a kernel may add the same products in another order), but one call does the work of k.

Why: at the sizes of a CPU search (C = 8 to 16) each call is small and its fixed costs dominate. Measured with
torch 2.14.1 on a 2-vCPU Intel Xeon (AVX-512), forward and backward of the four conv ops on the 4 edges that
leave a cell's input (C = 8, 32x32, batch 16, channels_last, 2 threads): 66 ms op by op, 39 ms stacked.

BatchNorm running statistics: every edge's own modules are updated, as if each had seen its slice.
Layers other than ReLU, zero-padded convolutions and plain or :mod:`.accurate_bn` BatchNorms with the same
settings and mode (e.g. ``--bn-groups``'s :class:`.bn_groups.GroupedBatchNorm`, SyncBatchNorm), and layers with
hooks (a stacked layer calls no module), are not stacked: the ops then run one by one.
"""
from __future__ import annotations

from typing import List, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo.ops import DilatedConv2d

from . import accurate_bn
from .architect import copy_tensors_

_BATCH_NORMS = (nn.BatchNorm2d, accurate_bn.AccurateStatisticsBatchNorm2d)


def _same(layers: Sequence[nn.Module], *names: str) -> bool:
    first = layers[0]
    return all(getattr(layer, name) == getattr(first, name) for layer in layers[1:] for name in names)


def _hooked(layer: nn.Module) -> bool:
    return bool(layer._forward_hooks or layer._forward_pre_hooks or layer._backward_hooks
                or layer._backward_pre_hooks)


def _stackable_layer(layers: Sequence[nn.Module]) -> bool:
    """Whether one stacked layer computes what each of ``layers`` does (a stacked layer calls no module: hooked
    layers are left to run themselves)."""
    kind, first = type(layers[0]), layers[0]
    if any(type(layer) is not kind or _hooked(layer) for layer in layers):
        return False
    if kind is nn.ReLU:
        return True
    if kind in (nn.Conv2d, DilatedConv2d):
        return first.padding_mode == "zeros" and _same(layers, "stride", "padding", "dilation", "groups",
                                                       "kernel_size", "in_channels", "out_channels") and all(
            (layer.bias is None) == (first.bias is None) for layer in layers)
    if kind not in _BATCH_NORMS:
        return False
    settings = ("training", "eps", "momentum", "affine", "track_running_stats", "num_features")
    if not _same(layers, *settings, *(("copy_up_to",) if kind is not nn.BatchNorm2d else ())):
        return False
    if any((layer.running_mean is None) != (first.running_mean is None) for layer in layers):
        return False
    # the cumulative average (momentum None) weighs the batch by each module's own count
    return first.momentum is not None or first.num_batches_tracked is None or all(
        torch.equal(layer.num_batches_tracked, first.num_batches_tracked) for layer in layers)


def stackable(ops: Sequence[nn.Module]) -> bool:
    """Whether the ``op`` Sequentials of ``ops`` (SepConv, DilConv) can run as one stacked op, layer by layer."""
    depth = len(ops[0].op)
    return all(len(op.op) == depth for op in ops) and all(
        _stackable_layer([op.op[i] for op in ops]) for i in range(1, depth))


def _cat(tensors: List) -> torch.Tensor:
    return None if tensors[0] is None else torch.cat(tensors)


def _batch_norm(bns: Sequence[nn.Module], y: torch.Tensor) -> torch.Tensor:
    """What each of ``bns`` does to its slice of the channels of ``y`` (BatchNorm2d's forward, on stacked buffers)."""
    first = bns[0]
    factor = accurate_bn.count_batch(bns)
    batch_statistics = accurate_bn.uses_batch_statistics(first)
    buffers = accurate_bn.passes_buffers(first)
    mean = torch.cat([bn.running_mean for bn in bns]) if buffers else None
    var = torch.cat([bn.running_var for bn in bns]) if buffers else None
    weight, bias = _cat([bn.weight for bn in bns]), _cat([bn.bias for bn in bns])
    if isinstance(first, accurate_bn.AccurateStatisticsBatchNorm2d):
        # the bound per edge: each edge's BatchNorm takes the path it would take alone
        out = accurate_bn.batch_norm(y, mean, var, weight, bias, batch_statistics, factor, first.eps,
                                     first.copy_up_to * len(bns))
    else:
        out = F.batch_norm(y, mean, var, weight, bias, batch_statistics, factor, first.eps)
    if buffers and batch_statistics:  # updated in place on the stacked copies: back to each module
        k = len(bns)
        copy_tensors_([bn.running_mean for bn in bns] + [bn.running_var for bn in bns],
                      list(mean.chunk(k)) + list(var.chunk(k)))
    return out


def stacked_forward(ops: Sequence[nn.Module], repeated: torch.Tensor) -> List[torch.Tensor]:
    """The outputs of the layers after the ReLU (``op[1:]``) of each of ``ops``, whose input after the ReLU,
    repeated ``len(ops)`` times along the channels, is ``repeated``; :func:`stackable` must hold."""
    k = len(ops)
    y = repeated
    for i in range(1, len(ops[0].op)):
        layers = [op.op[i] for op in ops]
        first = layers[0]
        if isinstance(first, nn.ReLU):
            y = torch.relu(y)
        elif isinstance(first, nn.Conv2d):
            weight, bias = _cat([layer.weight for layer in layers]), _cat([layer.bias for layer in layers])
            if isinstance(first, DilatedConv2d):
                y = first.convolve(y, weight, bias, first.groups * k)
            else:
                y = F.conv2d(y, weight, bias, first.stride, first.padding, first.dilation, first.groups * k)
        else:
            y = _batch_norm(layers, y)
    return list(y.chunk(k, dim=1))
