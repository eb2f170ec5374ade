"""A BatchNorm2d that sums the batch statistics of a channels_last input accurately (the conv search on CPU).

Why: PyTorch's CPU BatchNorm adds a channels_last input's values up row after row in float32, so its batch
statistics carry 15-30x the round-off of the NCHW kernel's, and the second-order search's finite difference
(eps = 0.01 / ||v||) amplifies that 100-fold (reproduce/benchmarks/channels_last_accuracy.py). Here the mean
and the variance (two passes: the mean, then the squared deviations from it) are column sums of the
``[N*H*W, C]`` view of the NHWC storage, taken by ``torch.sum`` over rows folded to at least 64 columns:
PyTorch sums such an outer dimension by cascades of partial sums, but a row narrower than one SIMD vector
(C = 8 on AVX-512) row by row. The rest is PyTorch's own channels_last kernels: the output is BatchNorm's
elementwise transform with these statistics, and the input gradient is its training-mode backward, given the
same statistics, except where that kernel is slow (fewer than 32 channels, not a multiple of 16: it goes
element by element there), where the backward's two sums are folded column sums too
(:func:`_slow_native_backward`). Against float64, the second-order architecture gradient is then as accurate
as in NCHW.

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
        deviations = (wide - _columns(mean, fold)).square_()
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
        if _slow_native_backward(x.shape[1]):
            dx, dw, db = _backward_by_column_sums(grad, x, weight, mean, invstd, mask)
        else:
            dx, dw, db = torch.ops.aten.native_batch_norm_backward(grad, x, weight, None, None, mean, invstd, True,
                                                                   ctx.eps, mask)
        return dx, dw, db, None


def _slow_native_backward(channels: int) -> bool:
    """Whether PyTorch's channels_last BatchNorm backward takes its slow path: it goes through the channels of a
    row 16 at a time, and the rest one by one. Measured with torch 2.14.1 (2 threads, Intel Xeon, AVX-512 and
    AVX2 kernels alike), input gradient of 16 x C x 32 x 32: C = 8 1.1 ms, 12 1.4 ms, 24 1.3 ms against 0.15,
    0.23, 0.47 ms by :func:`_backward_by_column_sums`; C = 16 and 32 0.03 and 0.34 ms, C = 40 (16 x 16 pixels)
    0.16 ms against 0.19: the native kernel there."""
    return channels < 32 and channels % 16 != 0


def _columns(v: torch.Tensor, fold: int) -> torch.Tensor:
    """A per-channel vector laid along the columns of a view folded ``fold`` times (expand: repeat is slower)."""
    return v.expand(fold, -1).reshape(-1)


def _backward_by_column_sums(grad, x, weight, mean, invstd, mask):
    """BatchNorm's training-mode backward given the batch statistics, on the folded ``[N*H*W, C]`` views of the
    channels_last ``grad`` and ``x``, its two sums over the batch (of grad, and of grad times the normalised x) as
    cascaded column sums: dx = weight * invstd * (grad - mean(grad) - x_hat * mean(grad * x_hat))."""
    n, c, h, w = x.shape
    m = n * h * w
    wide_x, fold = _folded(_rows(x))
    wide_grad, _ = _folded(_rows(grad))
    x_hat = (wide_x - _columns(mean, fold)).mul_(_columns(invstd, fold))
    sum_grad = _sums(wide_grad, fold)
    sum_grad_x_hat = _sums(wide_grad * x_hat, fold)
    dx = None
    if mask[0]:
        scale = invstd if weight is None else invstd * weight
        dx = wide_grad.addcmul(x_hat, _columns(sum_grad_x_hat / m, fold), value=-1).sub_(
            _columns(sum_grad / m, fold)).mul_(_columns(scale, fold))
        dx = dx.view(n, h, w, c).permute(0, 3, 1, 2)
    return dx, sum_grad_x_hat if mask[1] else None, sum_grad if mask[2] else None


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
        if not (uses_batch_statistics(self) and _takes_this_path(x)):
            return super().forward(x)
        factor = count_batch([self])
        buffers = passes_buffers(self)
        return batch_norm(x, self.running_mean if buffers else None, self.running_var if buffers else None,
                          self.weight, self.bias, True, factor, self.eps, self.copy_up_to)


# nn.BatchNorm2d.forward's rules, for this module and for stacked_ops's BatchNorm of several modules at once
def uses_batch_statistics(bn: nn.BatchNorm2d) -> bool:
    """Batch statistics in training, or when there are no running statistics to use."""
    return bn.training or (bn.running_mean is None and bn.running_var is None)


def count_batch(bns) -> float:
    """Count a training batch in the ``num_batches_tracked`` of each of ``bns`` (modules of equal settings) where
    they track it; returns the momentum factor of the running statistics' update (0.0: no update)."""
    first = bns[0]
    if not (first.training and first.track_running_stats and first.num_batches_tracked is not None):
        return 0.0
    torch._foreach_add_([bn.num_batches_tracked for bn in bns], 1)
    return first.momentum if first.momentum is not None else 1.0 / float(first.num_batches_tracked)


def passes_buffers(bn: nn.BatchNorm2d) -> bool:
    """Whether the running statistics go to ``F.batch_norm`` (to be used, or updated in training)."""
    return (not bn.training or bn.track_running_stats) and bn.running_mean is not None


def use_accurate_statistics(model: nn.Module) -> nn.Module:
    """Every plain BatchNorm2d of ``model`` becomes an :class:`AccurateStatisticsBatchNorm2d` (in place: the same
    objects, parameters and buffers, so state dicts and optimizers are unchanged)."""
    for module in model.modules():
        if type(module) is nn.BatchNorm2d:
            module.__class__ = AccurateStatisticsBatchNorm2d
    return model
