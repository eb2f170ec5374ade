"""One op type on all the edges leaving a state as one stacked op (reproduce/search/stacked_ops.py): the same
outputs, gradients and BatchNorm running statistics as the ops one by one, and the supernet's use of it."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn

from reproduce.search import accurate_bn, bn_groups, stacked_ops
from reproduce.search.cnn_supernet import Network
from zoo.ops import OPS

CONV_OPS = ("sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}


def _ops(name, k, stride, C=4, affine=False, seed=0):
    torch.manual_seed(seed)
    ops = [OPS[name](C, stride, affine).double() for _ in range(k)]
    for op in ops:  # non-trivial running statistics and affine parameters, different per op
        for bn in op.modules():
            if isinstance(bn, nn.BatchNorm2d):
                bn.running_mean.normal_()
                bn.running_var.uniform_(0.5, 2.0)
                if affine:
                    bn.weight.data.normal_()
                    bn.bias.data.normal_()
    return ops


def _one_by_one(ops, r):
    outs = []
    for op in ops:
        y = r
        for layer in list(op.op)[1:]:
            y = layer(y)
        outs.append(y)
    return outs


def _stacked(ops, r):
    return stacked_ops.stacked_forward(ops, torch.cat([r] * len(ops), dim=1))


def _buffers(ops):
    return [b.clone() for op in ops for b in op.buffers()]


def _compare(name, k, stride, layout, affine=False, accurate=False, training=True, size=16):
    ops = _ops(name, k, stride, affine=affine)
    twins = copy.deepcopy(ops)
    if accurate:
        for op in ops + twins:
            accurate_bn.use_accurate_statistics(op)
            for bn in op.modules():
                if isinstance(bn, nn.BatchNorm2d):
                    bn.copy_up_to = 0  # the column sums at every size
    for op in ops + twins:
        op.train(training)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 4, size, size, dtype=torch.float64, generator=g).contiguous(memory_format=layout)
    r1 = torch.relu(x).requires_grad_(True)
    r2 = r1.detach().clone().requires_grad_(True)
    assert stacked_ops.stackable(ops)
    expected, got = _one_by_one(twins, r1), _stacked(ops, r2)
    seeds = [torch.randn(e.shape, dtype=torch.float64, generator=g) for e in expected]
    sum((e * s).sum() for e, s in zip(expected, seeds)).backward()
    sum((o * s).sum() for o, s in zip(got, seeds)).backward()
    for e, o in zip(expected, got):
        torch.testing.assert_close(o, e, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(r2.grad, r1.grad, rtol=1e-12, atol=1e-12)
    for a, b in zip([p.grad for op in twins for p in op.parameters()], [p.grad for op in ops for p in op.parameters()]):
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)
    for a, b in zip(_buffers(twins), _buffers(ops)):
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)
    return ops


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("name", CONV_OPS)
def test_a_stacked_op_gives_each_ops_outputs_gradients_and_running_statistics(name, stride, layout):
    ops = _compare(name, 4, stride, LAYOUTS[layout])
    assert all(int(bn.num_batches_tracked) == 1 for op in ops for bn in op.modules()
               if isinstance(bn, nn.BatchNorm2d))


@pytest.mark.parametrize("name", ["sep_conv_3x3", "dil_conv_5x5"])
def test_stacked_with_the_accurate_batchnorm_affine_parameters_two_edges_and_in_eval_mode(name):
    cl = torch.channels_last
    _compare(name, 2, 1, cl, accurate=True)  # column sums (the CPU search's channels_last BatchNorm)
    _compare(name, 3, 2, cl, affine=True)
    _compare(name, 4, 1, cl, training=False)  # running statistics, which stay as they were
    _compare(name, 2, 1, torch.contiguous_format, accurate=True, size=32)  # phases of the dilated conv


def test_ops_with_other_batchnorms_or_settings_are_not_stacked():
    ops = _ops("sep_conv_3x3", 2, 1)
    assert stacked_ops.stackable(ops)
    grouped = copy.deepcopy(ops)
    bn_groups.use_groups(grouped[0], 2)
    bn_groups.use_groups(grouped[1], 2)
    assert not stacked_ops.stackable(grouped)  # --bn-groups: statistics per sub-batch
    mixed = copy.deepcopy(ops)
    mixed[1].op[3].momentum = 0.5
    assert not stacked_ops.stackable(mixed)
    mixed = copy.deepcopy(ops)
    accurate_bn.use_accurate_statistics(mixed[0])
    assert not stacked_ops.stackable(mixed)
    assert not stacked_ops.stackable([ops[0], _ops("dil_conv_3x3", 1, 1)[0]])


def test_the_cpu_supernet_stacks_the_conv_ops_of_the_edges_leaving_each_state(monkeypatch):
    calls = []
    real = stacked_ops.stacked_forward

    def counting(ops, repeated):
        calls.append(len(ops))
        return real(ops, repeated)

    monkeypatch.setattr(stacked_ops, "stacked_forward", counting)
    torch.manual_seed(0)
    model = Network(C=4, num_classes=10, layers=3).double()
    alphas = model.new_alphas(dtype=torch.float64)
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    fused = model(x, *alphas)
    # per cell, the 4 conv op types on the edges leaving states 0..3 (4, 4, 3 and 2 edges); state 4's one edge
    # runs its ops as they are
    assert sorted(calls) == sorted([4, 4, 4, 4, 4, 4, 4, 4, 3, 3, 3, 3, 2, 2, 2, 2] * 3)
    reference = copy.deepcopy(model)
    torch.testing.assert_close(fused, reference(x, *alphas, reference=True), rtol=1e-10, atol=1e-12)


def test_the_supernet_runs_ops_one_by_one_where_they_cannot_be_stacked(monkeypatch):
    monkeypatch.setattr(stacked_ops, "stacked_forward", lambda *a: pytest.fail("stacked"))
    torch.manual_seed(0)
    model = bn_groups.use_groups(Network(C=4, num_classes=10, layers=3).double(), 2)
    alphas = model.new_alphas(dtype=torch.float64)
    x = torch.randn(4, 3, 16, 16, dtype=torch.float64)
    reference = copy.deepcopy(model)
    torch.testing.assert_close(model(x, *alphas), reference(x, *alphas, reference=True), rtol=1e-10, atol=1e-12)
