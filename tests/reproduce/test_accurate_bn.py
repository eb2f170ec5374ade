"""reproduce.search.accurate_bn: BatchNorm2d on channels_last inputs with accurately summed batch statistics."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from reproduce.search import accurate_bn
from reproduce.search.accurate_bn import COPY_UP_TO, AccurateStatisticsBatchNorm2d, column_sums, use_accurate_statistics

CL = torch.channels_last


def _pair(channels: int, affine: bool, momentum):
    plain = nn.BatchNorm2d(channels, affine=affine, momentum=momentum).double()
    ours = use_accurate_statistics(nn.BatchNorm2d(channels, affine=affine, momentum=momentum).double())
    if affine:
        with torch.no_grad():
            for p in (plain.weight, plain.bias):
                p.uniform_(0.5, 1.5)
        ours.load_state_dict(plain.state_dict())
    return plain, ours


@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("shape", [(4, 6, 5, 5), (2, 8, 48, 48), (2, 32, 15, 15), (3, 20, 25, 25), (5, 70, 11, 11),
                                   (1, 3, 61, 61)])
def test_it_computes_what_batchnorm2d_computes(affine, momentum, shape):
    # float64: the arithmetic is compared, not round-off. Output, input gradient, parameter gradients and
    # the running statistics over two steps; the output stays channels_last. The first shape is small enough
    # for the NCHW copy; the others take the column sums: 4608 rows of 8 folded 8 times; 450 rows of 32 folded
    # once; 1875 and 605 rows (odd counts) not folded; 3721 rows of 3 (odd, narrow): summed in float64.
    torch.manual_seed(0)
    plain, ours = _pair(shape[1], affine, momentum)
    for _ in range(2):
        x = torch.randn(shape, dtype=torch.float64) * 0.1 + 3
        grad = torch.randn_like(x)
        a, b = x.clone().requires_grad_(), x.contiguous(memory_format=CL).requires_grad_()
        ya, yb = plain(a), ours(b)
        ya.backward(grad)
        yb.backward(grad.contiguous(memory_format=CL))
        assert yb.is_contiguous(memory_format=CL) and b.grad.is_contiguous(memory_format=CL)
        torch.testing.assert_close(yb, ya, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-12, atol=1e-12)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(ours, name), getattr(plain, name), rtol=1e-12, atol=1e-12)
    if affine:
        # sums over every value of both steps: float64 round-off at their scale
        torch.testing.assert_close(ours.weight.grad, plain.weight.grad, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(ours.bias.grad, plain.bias.grad, rtol=1e-10, atol=1e-10)
    assert ours.state_dict().keys() == plain.state_dict().keys()


def test_the_test_shapes_take_both_paths():
    assert 4 * 6 * 5 * 5 <= COPY_UP_TO < min(2 * 8 * 48 * 48, 2 * 32 * 15 * 15, 3 * 20 * 25 * 25, 5 * 70 * 11 * 11,
                                             1 * 3 * 61 * 61)
    # and both backwards: by column sums where PyTorch's channels_last kernel is slow, its own elsewhere
    assert [accurate_bn._slow_native_backward(c) for c in (8, 20, 3, 32, 70)] == [True, True, True, False, False]


def test_its_float32_statistics_are_as_accurate_as_nchw_where_channels_last_batchnorm_is_not():
    # PyTorch's channels_last CPU BatchNorm adds 16384 rows one after another in float32; a shifted input makes
    # that visible. Ours stays within a few float32 roundings of float64 (the bound holds with a wide margin on
    # any CPU: cascaded sums of 16384 values).
    torch.manual_seed(0)
    x64 = torch.randn(16, 8, 32, 32, dtype=torch.float64) * 0.1 + 100
    ref = nn.BatchNorm2d(8, affine=False).double()(x64)
    ours = use_accurate_statistics(nn.BatchNorm2d(8, affine=False))(x64.float().contiguous(memory_format=CL))
    error = ((ours.double() - ref).norm() / ref.norm()).item()
    assert error < 2e-4  # measured 5.7e-5 (NCHW 3.9e-5; PyTorch's channels_last kernel 7.4e-4)


@pytest.mark.parametrize("rows, columns", [(16384, 8), (4096, 3), (1001, 4), (7, 70), (1, 5)])
def test_column_sums_are_the_sums_over_rows(rows, columns):
    torch.manual_seed(0)
    x = torch.randn(rows, columns) + 10
    torch.testing.assert_close(column_sums(x).double(), x.double().sum(0), rtol=2e-6, atol=1e-5)


def test_other_inputs_take_batchnorm2ds_own_path():
    bn = use_accurate_statistics(nn.BatchNorm2d(4))
    assert isinstance(bn, AccurateStatisticsBatchNorm2d)
    nchw = torch.randn(2, 4, 3, 3)
    torch.testing.assert_close(bn(nchw), nn.BatchNorm2d(4)(nchw))
    with pytest.raises(ValueError, match="more than 1 value per channel"):  # BatchNorm2d's own refusal
        bn(torch.randn(1, 4, 1, 1).contiguous(memory_format=CL))
    fresh = use_accurate_statistics(nn.BatchNorm2d(4)).eval()  # running statistics: elementwise, no batch sums
    x = torch.randn(2, 4, 3, 3).contiguous(memory_format=CL)
    torch.testing.assert_close(fresh(x), nn.BatchNorm2d(4).eval()(x))


def test_a_second_derivative_is_refused_rather_than_wrong():
    bn = use_accurate_statistics(nn.BatchNorm2d(4))
    x = torch.randn(2, 4, 80, 80).contiguous(memory_format=CL).requires_grad_()  # past COPY_UP_TO: the column sums
    (g,) = torch.autograd.grad(bn(x).pow(2).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="twice|once_differentiable|double"):
        g.sum().backward()


def test_eval_mode_with_tracking_switched_off_uses_the_running_statistics_as_batchnorm2d_does():
    # BatchNorm2d takes batch statistics in eval mode only when it has no running statistics
    plain, ours = _pair(8, False, 0.1)
    with torch.no_grad():
        for bn in (plain, ours):
            bn.running_mean.fill_(2.0)
            bn.running_var.fill_(4.0)
            bn.eval()
            bn.track_running_stats = False
    x = torch.randn(2, 8, 48, 48, dtype=torch.float64)
    torch.testing.assert_close(ours(x.contiguous(memory_format=CL)), plain(x), rtol=1e-12, atol=1e-12)


def test_other_devices_keep_their_own_kernels(monkeypatch):
    from reproduce.search import accurate_bn

    def refuse(*args):
        raise AssertionError("the column sums ran on a non-CPU tensor")

    monkeypatch.setattr(accurate_bn._BatchNormFunction, "apply", refuse)
    bn = use_accurate_statistics(nn.BatchNorm2d(8)).to("meta")
    y = bn(torch.empty(2, 8, 48, 48, device="meta").contiguous(memory_format=CL))
    assert y.device.type == "meta"
