"""The operations of DARTS cells, state-dict compatible with the original (cnn/operations.py).

Module structure (the ``op`` Sequential and its indices) is part of the state-dict contract:
``cells.0._ops.0.op.1.weight`` must mean the same tensor as in the original files.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class ReLUConvBN(nn.Module):
    """ReLU -> conv -> BatchNorm; the cells' 1x1 preprocessing."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int, affine: bool = True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_out, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )

    def forward(self, x):
        return self.op(x)


class DilatedConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` (same parameters and state dict) that computes a dilated convolution on a CPU as an
    undilated one on the input's subsampled phases: the same products and sums, to float round-off.

    Why: oneDNN's CPU kernels for dilated depthwise convolutions are slow, above all their backward (measured
    with torch 2.14.1 on a 2-core AMD EPYC, forward + backward of DARTS's dil_conv_5x5 at C=16, 32x32, batch 16:
    6.2 ms at stride 2 in channels_last, 0.83 ms this way; 2.7 ms at stride 1 and C=8, 1.6 ms this way;
    reproduce/benchmarks/dilated_conv.py). With dilation d and zero padding p = d*q:

    - at stride d, output pixel i reads input pixels d*(i + a - q), a = 0..k-1: the undilated convolution of
      the subsample ``x[..., ::d, ::d]`` with padding q;
    - at stride 1 and 'same' padding (2p = d(k - 1)), the output pixels of phase r (i = d*j + r) read only
      input pixels of phase r: the d*d phases, stacked along the batch, go through one undilated convolution
      with padding q and are interleaved back (when each phase is at least 8x8).

    Other devices and other shapes run the plain dilated convolution, and so do graph captures that must not
    depend on the input's size: torch.fx's symbolic tracing (feature extractors) and torch.export (where a
    height or width may be declared dynamic).
    """

    def _phase_plan(self, x: torch.Tensor):
        if _capturing_a_graph(x) or any(isinstance(n, torch.SymInt) for n in x.shape):
            return None
        d, p, s, k = self.dilation[0], self.padding, self.stride[0], self.kernel_size[0]
        if (x.device.type != "cpu" or x.dim() != 4 or d == 1 or self.padding_mode != "zeros" or isinstance(p, str)
                or self.dilation[1] != d or self.stride[1] != s or p[0] != p[1] or self.kernel_size[1] != k
                or p[0] % d):
            return None
        if s == d:
            return "subsample"
        # phases smaller than 8x8 are mostly padding: slower than the plain kernel (measured at 8x8 input)
        if (s == 1 and 2 * p[0] == d * (k - 1) and x.shape[2] % d == 0 and x.shape[3] % d == 0
                and min(x.shape[2], x.shape[3]) >= 8 * d):
            return "phases"
        return None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        plan = self._phase_plan(x)
        if plan is None:
            return super().forward(x)
        return self._by_phases(plan, x, self.weight, self.bias, self.groups)

    def convolve(self, x: torch.Tensor, weight: torch.Tensor, bias, groups: int) -> torch.Tensor:
        """This convolution's geometry (kernel size, stride, zero padding, dilation) with the given weight, bias
        and groups: the search's supernet convolves all the edges leaving a state as one grouped convolution."""
        if self.padding_mode != "zeros":
            raise ValueError(f"convolve: only zero padding, not {self.padding_mode!r}")
        plan = self._phase_plan(x)
        if plan is None:
            return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, groups)
        return self._by_phases(plan, x, weight, bias, groups)

    def _by_phases(self, plan: str, x: torch.Tensor, weight: torch.Tensor, bias, groups: int) -> torch.Tensor:
        d, q = self.dilation[0], self.padding[0] // self.dilation[0]
        if plan == "subsample":  # made dense in x's layout (a strided view may lose channels_last)
            sub = x[:, :, ::d, ::d].contiguous(memory_format=torch.channels_last if is_channels_last(x) else
                                               torch.contiguous_format)
            return F.conv2d(sub, weight, bias, 1, q, 1, groups)
        return _from_phases(F.conv2d(_to_phases(x, d), weight, bias, 1, q, 1, groups), d, x.shape[0])


def _capturing_a_graph(x) -> bool:
    exporting = getattr(torch.compiler, "is_exporting", None)  # torch >= 2.5
    # under torch.fx's symbolic tracing the input is a Proxy (is_fx_tracing() would log a warning per process)
    return isinstance(x, torch.fx.Proxy) or (exporting is not None and exporting())


def is_channels_last(x: torch.Tensor) -> bool:
    """Whether ``x`` is laid out channels_last and not also plain contiguous (a tensor with one channel or one
    pixel is both: either layout's code handles it)."""
    return not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def _to_phases(x: torch.Tensor, d: int) -> torch.Tensor:
    """[N, C, H, W] -> [d*d*N, C, H/d, W/d]: batch entry (r*d + t)*N + n is ``x[n, :, r::d, t::d]``, in x's layout."""
    n, c, h, w = x.shape
    if is_channels_last(x):  # permute the NHWC storage, so that the phases stay channels_last
        t = x.permute(0, 2, 3, 1).reshape(n, h // d, d, w // d, d, c).permute(2, 4, 0, 1, 3, 5)
        return t.reshape(d * d * n, h // d, w // d, c).permute(0, 3, 1, 2)
    return x.reshape(n, c, h // d, d, w // d, d).permute(3, 5, 0, 1, 2, 4).reshape(d * d * n, c, h // d, w // d)


def _from_phases(y: torch.Tensor, d: int, n: int) -> torch.Tensor:
    """The inverse of :func:`_to_phases`."""
    c, h, w = y.shape[1], y.shape[2] * d, y.shape[3] * d
    if is_channels_last(y):
        t = y.permute(0, 2, 3, 1).reshape(d, d, n, h // d, w // d, c).permute(2, 3, 0, 4, 1, 5)
        return t.reshape(n, h, w, c).permute(0, 3, 1, 2)
    return y.reshape(d, d, n, c, h // d, w // d).permute(2, 3, 4, 0, 5, 1).reshape(n, c, h, w)


class DilConv(nn.Module):
    """ReLU -> dilated depthwise conv -> pointwise conv -> BatchNorm."""

    def __init__(self, C_in, C_out, kernel_size, stride, padding, dilation, affine=True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            DilatedConv2d(
                C_in, C_in, kernel_size, stride=stride, padding=padding, dilation=dilation, groups=C_in, bias=False
            ),
            nn.Conv2d(C_in, C_out, kernel_size=1, padding=0, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )

    def forward(self, x):
        return self.op(x)


class SepConv(nn.Module):
    """Two stacked (ReLU, depthwise conv, pointwise conv, BatchNorm) blocks; only the first strides."""

    def __init__(self, C_in, C_out, kernel_size, stride, padding, affine=True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel_size, stride=stride, padding=padding, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_in, kernel_size=1, padding=0, bias=False),
            nn.BatchNorm2d(C_in, affine=affine),
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel_size, stride=1, padding=padding, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_out, kernel_size=1, padding=0, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )

    def forward(self, x):
        return self.op(x)


class Identity(nn.Module):
    """skip_connect at stride 1. Drop-path never applies to it (checked by type)."""

    def forward(self, x):
        return x


class Zero(nn.Module):
    """The 'none' op: zeros of the (strided) input's shape."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """Halve the resolution with two 1x1 stride-2 convs on offset grids, concatenated.

    The original's ``conv_1(x)`` and ``conv_2(x[:, :, 1:, 1:])``, 1x1 convolutions with stride 2, are
    computed as the stride-2 subsamples ``x[:, :, ::2, ::2]`` and ``x[:, :, 1::2, 1::2]`` followed by
    1x1 convolutions with stride 1 (so ``conv_1``/``conv_2`` have stride 1 here; the weights and the
    state dict are the original's). The products and sums are the same (outputs and input gradients are
    bit-identical; the weight gradients, sums over batch and pixels, agree to float round-off:
    tests/zoo/test_ops.py), and the strided backward-weights kernel is avoided: oneDNN's
    AVX2 code for it corrupts memory on channels_last inputs with few channels (a double free or a
    segfault; reproduce/benchmarks/channels_last_crash.py).
    """

    def __init__(self, C_in: int, C_out: int, affine: bool = True):
        super().__init__()
        if C_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {C_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(C_in, C_out // 2, 1, stride=1, padding=0, bias=False)
        self.conv_2 = nn.Conv2d(C_in, C_out // 2, 1, stride=1, padding=0, bias=False)
        self.bn = nn.BatchNorm2d(C_out, affine=affine)

    def reduce(self, x: torch.Tensor) -> torch.Tensor:
        """Everything but the ReLU (the search's supernet applies it once per state)."""
        return self.bn(torch.cat([self.conv_1(x[:, :, ::2, ::2]), self.conv_2(x[:, :, 1::2, 1::2])], dim=1))

    def forward(self, x):
        return self.reduce(self.relu(x))


def _conv_7x1_1x7(C, stride, affine):
    return nn.Sequential(
        nn.ReLU(inplace=False),
        nn.Conv2d(C, C, (1, 7), stride=(1, stride), padding=(0, 3), bias=False),
        nn.Conv2d(C, C, (7, 1), stride=(stride, 1), padding=(3, 0), bias=False),
        nn.BatchNorm2d(C, affine=affine),
    )


# name -> builder(C, stride, affine). Pools do not count padding in their average.
OPS = {
    "none": lambda C, stride, affine: Zero(stride),
    "avg_pool_3x3": lambda C, stride, affine: nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False),
    "max_pool_3x3": lambda C, stride, affine: nn.MaxPool2d(3, stride=stride, padding=1),
    "skip_connect": lambda C, stride, affine: Identity() if stride == 1 else FactorizedReduce(C, C, affine=affine),
    "sep_conv_3x3": lambda C, stride, affine: SepConv(C, C, 3, stride, 1, affine=affine),
    "sep_conv_5x5": lambda C, stride, affine: SepConv(C, C, 5, stride, 2, affine=affine),
    "sep_conv_7x7": lambda C, stride, affine: SepConv(C, C, 7, stride, 3, affine=affine),
    "dil_conv_3x3": lambda C, stride, affine: DilConv(C, C, 3, stride, 2, 2, affine=affine),
    "dil_conv_5x5": lambda C, stride, affine: DilConv(C, C, 5, stride, 4, 2, affine=affine),
    "conv_7x1_1x7": _conv_7x1_1x7,
}


def drop_path(x: torch.Tensor, drop_prob) -> torch.Tensor:
    """Zero whole samples with probability ``drop_prob`` and rescale the rest (the original's drop_path).

    ``drop_prob`` is a float (the original's way), or a 0-dim tensor: then nothing branches on its
    value, so a torch.compile'd network keeps one graph while the training loop changes the
    probability every epoch in place (a float would be baked into the graph: one recompile per
    epoch). At a tensor probability of 0 the mask is exactly 1.
    """
    if torch.is_tensor(drop_prob):
        keep = 1.0 - drop_prob
        mask = (torch.rand(x.size(0), 1, 1, 1, device=x.device) < keep).to(x.dtype)
        return x * (mask / keep).to(x.dtype)
    if drop_prob <= 0.0:
        return x
    keep = 1.0 - drop_prob
    mask = torch.empty(x.size(0), 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    # Scale the tiny [B,1,1,1] mask rather than x: one full-size product instead of two.
    return x * mask.div_(keep)
