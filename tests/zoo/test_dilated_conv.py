"""zoo.ops.DilatedConv2d: a dilated convolution computed on the input's phases equals nn.Conv2d's."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo.ops import OPS, DilatedConv2d, DilConv


def _reference_and_ours(conv: DilatedConv2d, x: torch.Tensor):
    """(output, input grad, weight grad) of the plain dilated convolution, then of ``conv``."""
    gy = None
    results = []
    for ours in (False, True):
        xx = x.detach().clone(memory_format=torch.preserve_format).requires_grad_()
        w = conv.weight
        y = conv(xx) if ours else F.conv2d(xx, w, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)
        if gy is None:
            gy = torch.randn(y.shape, dtype=y.dtype, generator=torch.Generator().manual_seed(1))
            gy = gy.contiguous(memory_format=torch.channels_last if not x.is_contiguous() else torch.contiguous_format)
        gx, gw = torch.autograd.grad(y, (xx, w), gy)
        results.append((y, gx, gw))
    return results


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("kernel, stride, size, groups", [
    (3, 1, 16, "depthwise"), (5, 1, 16, "depthwise"), (3, 2, 16, "depthwise"), (5, 2, 16, "depthwise"),
    (5, 2, 15, "depthwise"),  # stride 2 at an odd size: the subsample has ceil(15 / 2) rows
    (3, 1, 15, "depthwise"),  # stride 1 at an odd size: the plain convolution (the phases differ in size)
    (3, 1, 8, "depthwise"),  # stride 1 at 8x8: the plain convolution (4x4 phases)
    (3, 1, 16, "dense"), (5, 2, 9, "dense"),
])
def test_dilated_conv_equals_the_plain_dilated_convolution(channels_last, kernel, stride, size, groups):
    # float64, so that the only difference (the order of the sums) is far below what is compared
    torch.manual_seed(0)
    c = 6
    conv = DilatedConv2d(c, c, kernel, stride=stride, padding=kernel - 1, dilation=2,
                         groups=c if groups == "depthwise" else 1, bias=False).double()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(3, c, size, size, dtype=torch.float64).contiguous(memory_format=fmt)
    (y0, gx0, gw0), (y, gx, gw) = _reference_and_ours(conv, x)
    assert y.shape == y0.shape
    torch.testing.assert_close(y, y0, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gx, gx0, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gw, gw0, rtol=1e-12, atol=1e-11)
    if channels_last:  # the layout is kept, so the next conv runs channels_last too
        assert y.is_contiguous(memory_format=torch.channels_last) and not y.is_contiguous()


def test_dilated_conv_takes_the_phase_paths_for_darts_shapes():
    conv = OPS["dil_conv_5x5"](4, 1, False).op[1]
    x = torch.zeros(2, 4, 16, 16)
    assert conv._phase_plan(x) == "phases"
    assert OPS["dil_conv_3x3"](4, 2, False).op[1]._phase_plan(x) == "subsample"
    assert conv._phase_plan(torch.zeros(2, 4, 17, 17)) is None  # odd size at stride 1: the plain convolution
    assert conv._phase_plan(torch.zeros(2, 4, 8, 8)) is None  # 4x4 phases: the plain convolution is faster
    assert conv._phase_plan(torch.zeros(2, 4, 16, 16, device="meta")) is None  # not a CPU: the plain convolution


def test_dil_conv_keeps_the_originals_module_and_state_dict():
    op = DilConv(4, 4, 3, 1, 2, 2)
    assert isinstance(op.op[1], nn.Conv2d) and op.op[1].dilation == (2, 2)
    plain = nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=4, bias=False)
    assert op.op[1].state_dict().keys() == plain.state_dict().keys()
    op.op[1].load_state_dict(plain.state_dict())  # strict: the same names and shapes
    x = torch.randn(2, 4, 8, 8)
    torch.testing.assert_close(op.op[1](x), plain(x), rtol=1e-5, atol=1e-6)


def test_darts_shapes_run_undilated_convolutions(monkeypatch):
    # what makes it fast: no dilated kernel runs (a DilatedConv2d that were plain nn.Conv2d would fail here)
    import zoo.ops

    dilations = []
    conv2d = F.conv2d

    def recording(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
        dilations.append(dilation)
        return conv2d(x, w, b, stride, padding, dilation, groups)

    monkeypatch.setattr(zoo.ops.F, "conv2d", recording)
    x = torch.randn(2, 4, 16, 16)
    for name, stride in (("dil_conv_3x3", 1), ("dil_conv_5x5", 2)):
        OPS[name](4, stride, False).op[1](x).sum().backward()
    assert dilations == [1, 1]


@pytest.mark.parametrize("height, width, dilation, bias", [(16, 24, 2, True), (18, 12, 3, False)])
def test_rectangular_inputs_bias_and_dilation_3(height, width, dilation, bias):
    torch.manual_seed(0)
    for stride in (1, dilation):
        conv = DilatedConv2d(4, 4, 3, stride=stride, padding=dilation, dilation=dilation, groups=4, bias=bias).double()
        x = torch.randn(2, 4, height, width, dtype=torch.float64)
        (y0, gx0, gw0), (y, gx, gw) = _reference_and_ours(conv, x)
        for a, b in ((y, y0), (gx, gx0), (gw, gw0)):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-11)


def test_graph_captures_that_must_not_depend_on_the_size_get_the_plain_convolution():
    # torch.fx symbolic tracing (feature extractors) cannot branch on a traced size, and torch.export with a
    # dynamic height would be refused: both see nn.Conv2d's computation
    conv = OPS["dil_conv_5x5"](4, 1, False)
    traced = torch.fx.symbolic_trace(conv)
    x = torch.randn(2, 4, 16, 16)
    conv.eval()
    torch.testing.assert_close(traced(x), conv(x))
    height = torch.export.Dim("height", min=4, max=64)
    exported = torch.export.export(conv.op[1], (x,), dynamic_shapes=({2: height},))
    torch.testing.assert_close(exported.module()(torch.randn(2, 4, 20, 16)).shape, torch.Size([2, 4, 20, 16]))
