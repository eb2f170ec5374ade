"""A BatchNorm2d that sums the batch statistics of a channels_last input accurately (the conv search on CPU).

Why: PyTorch's CPU BatchNorm adds a channels_last input's values up row after row in float32, so its batch
statistics carry 15-30x the round-off of the NCHW kernel's, and the second-order search's finite difference
(eps = 0.01 / ||v||) amplifies that 100-fold (reproduce/benchmarks/channels_last_accuracy.py). Here the mean
and the variance (two passes: the mean, then the squared deviations from it) are column sums of the
``[N*H*W, C]`` view of the NHWC storage, taken by ``torch.sum`` over rows folded to at least 64 columns:
PyTorch sums such an outer dimension by cascades of partial sums, but a row narrower than one SIMD vector
(C = 8 on AVX-512) row by row. The rest is PyTorch's own channels_last kernels: the output is BatchNorm's
elementwise transform with these statistics, and the input gradient is its training-mode backward, given the
same statistics. Against float64, the second-order architecture gradient is then as accurate as in NCHW.

Small inputs (at most 8192 values) go through PyTorch's NCHW kernels on an NCHW copy instead: this way's
dozen small ops cost a fixed ~0.2 ms per forward and backward, more than the copies of a small tensor
(measured 2026-12-02, 1 thread: 376 us against the copy's 271 us at 32 x 8 x 8 x 8; 700 against 1423 at
16 x 8 x 32 x 32). The bound is low because the column sums are the more accurate of the two: with it at
32768, the logits of a 2-process second-order search (per-process BatchNorm over 4 images of 4 x 32 x 32)
differed from one process's by 6.2e-7, past tests/reproduce/test_search_ddp.py's round-off bound, which the
column sums meet. Evaluation mode (running statistics), NCHW inputs and dtypes other than
float32/float64 (autocast's bf16) take ``nn.BatchNorm2d``'s own path. Parameters, buffers and the state dict
are BatchNorm2d's.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from zoo.ops import is_channels_last

_WIDE = 64  # columns to fold the rows into: a whole number of SIMD vectors on every CPU PyTorch targets
COPY_UP_TO = 8192  # values: inputs this small are normalised by PyTorch's NCHW kernels on a copy (docstring)


def _folded(x2: torch.Tensor):
    """A contiguous ``[M, C]`` tensor viewed with ``fold`` rows side by side, so that a row holds at least 64
    values where M allows it; returns (view, fold)."""
    m, c = x2.shape
    fold = 1
    while c * fold < _WIDE and m % (2 * fold) == 0:
        fold *= 2
    return x2.reshape(m // fold, fold * c), fold


def _sums(wide: torch.Tensor, fold: int) -> torch.Tensor:
    """The column sums of the ``[M, C]`` tensor that :func:`_folded` gave as ``wide``, by cascades of partial sums."""
    if wide.shape[1] < 16:  # too few rows to fold (M odd) and too few columns for a vector: sum in float64
        return wide.sum(0, dtype=torch.float64).view(fold, -1).sum(0).to(wide.dtype)
    sums = wide.sum(0)
    return sums.view(fold, -1).sum(0) if fold > 1 else sums


def column_sums(x2: torch.Tensor) -> torch.Tensor:
    """The sums over the rows of a contiguous ``[M, C]`` tensor, by cascades of partial sums."""
    return _sums(*_folded(x2))


def _rows(x: torch.Tensor) -> torch.Tensor:
    """The ``[N*H*W, C]`` view of a channels_last tensor's storage."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


class _BatchNormFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        wide, fold = _folded(_rows(x))
        m = x.numel() // x.shape[1]
        mean = _sums(wide, fold).div_(m)
        # (x - mean)^2 over the folded rows too: a row of C = 8 values is too short for PyTorch's vectorised
        # loops (2x slower at 16 x 8 x 32 x 32); expand, as repeat is slower
        deviations = (wide - mean.expand(fold, -1).reshape(-1)).square_()
        var = _sums(deviations, fold).div_(m)  # biased, as BatchNorm normalises
        y = torch.batch_norm(x, weight, bias, mean, var, False, 0.0, eps, False)
        ctx.eps = eps
        ctx.save_for_backward(x, weight, mean, torch.rsqrt(var + eps))
        ctx.mark_non_differentiable(mean, var)
        return y, mean, var

    @staticmethod
    @once_differentiable
    def backward(ctx, grad, _grad_mean, _grad_var):
        x, weight, mean, invstd = ctx.saved_tensors
        affine = weight is not None
        mask = [ctx.needs_input_grad[0], affine and ctx.needs_input_grad[1], affine and ctx.needs_input_grad[2]]
        grad = grad.contiguous(memory_format=torch.channels_last)
        dx, dw, db = torch.ops.aten.native_batch_norm_backward(grad, x, weight, None, None, mean, invstd, True,
                                                               ctx.eps, mask)
        return dx, dw, db, None


def _takes_this_path(x: torch.Tensor) -> bool:
    # a single value per channel is left to BatchNorm2d, which refuses it in training mode; other devices have
    # their own kernels (cuDNN)
    return (x.device.type == "cpu" and x.dim() == 4 and x.dtype in (torch.float32, torch.float64)
            and x.numel() > x.shape[1] and is_channels_last(x))


def batch_norm(x: torch.Tensor, running_mean, running_var, weight, bias, training: bool, momentum: float, eps: float,
               copy_up_to: int = COPY_UP_TO) -> torch.Tensor:
    """``F.batch_norm`` (the same arguments and in-place update of the running statistics), with the batch
    statistics of a large channels_last CPU input summed accurately (module docstring)."""
    if not (training and _takes_this_path(x)):
        return F.batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)
    if x.numel() <= copy_up_to:
        return F.batch_norm(x.contiguous(), running_mean, running_var, weight, bias, True, momentum, eps
                            ).contiguous(memory_format=torch.channels_last)
    y, mean, var = _BatchNormFunction.apply(x, weight, bias, eps)
    if running_mean is not None:
        m = x.numel() // x.shape[1]
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
            running_var.mul_(1 - momentum).add_(var * (m / (m - 1)), alpha=momentum)
    return y


class AccurateStatisticsBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` whose batch statistics of a channels_last input are summed accurately (module docstring).

    Running statistics are updated as ``nn.BatchNorm2d`` does: momentum (or the cumulative average when it
    is None) on the batch mean and the unbiased batch variance. On the column-sum path the gradient is first
    order only (a second derivative, forward-mode AD and torch.func raise): the architect's finite differences
    need no more.
    """

    copy_up_to = COPY_UP_TO  # a benchmark sets 0 on an instance to measure the column sums at every size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # BatchNorm2d's rule: batch statistics in training, or when there are no running statistics to use
        batch_statistics = self.training or (self.running_mean is None and self.running_var is None)
        if not (batch_statistics and _takes_this_path(x)):
            return super().forward(x)
        factor = 0.0
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        tracking = not self.training or self.track_running_stats  # BatchNorm2d passes the buffers only then
        return batch_norm(x, self.running_mean if tracking else None, self.running_var if tracking else None,
                          self.weight, self.bias, True, factor, self.eps, self.copy_up_to)


def use_accurate_statistics(model: nn.Module) -> nn.Module:
    """Every plain BatchNorm2d of ``model`` becomes an :class:`AccurateStatisticsBatchNorm2d` (in place: the same
    objects, parameters and buffers, so state dicts and optimizers are unchanged)."""
    for module in model.modules():
        if type(module) is nn.BatchNorm2d:
            module.__class__ = AccurateStatisticsBatchNorm2d
    return model
