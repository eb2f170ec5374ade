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


def _batch_norms(ops):
    return [bn for op in ops for bn in op.modules() if isinstance(bn, nn.BatchNorm2d)]


def _compare(name, k, stride, layout, affine=False, accurate=False, training=True, size=16, configure=None):
    ops = _ops(name, k, stride, affine=affine)
    for bn in _batch_norms(ops):
        if configure is not None:
            configure(bn)
        if accurate:
            accurate_bn.use_accurate_statistics(bn)
            bn.copy_up_to = 0  # the column sums at every size
    twins = copy.deepcopy(ops)
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


def _momentum_none(bn):
    bn.momentum = None  # the cumulative average
    bn.num_batches_tracked.fill_(3)


def _no_running_statistics(bn):
    bn.track_running_stats = False


@pytest.mark.parametrize("configure", [_momentum_none, _no_running_statistics])
@pytest.mark.parametrize("training", [True, False])
def test_stacked_with_the_cumulative_average_or_without_running_statistics(configure, training):
    for accurate in (False, True):
        _compare("sep_conv_3x3", 3, 1, torch.channels_last, accurate=accurate, training=training, configure=configure)


def test_small_inputs_take_the_path_they_take_alone_so_a_second_derivative_still_works():
    """Each edge's BatchNorm input of at most 8192 values goes through the NCHW copy (accurate_bn.py), stacked or
    not: 4 x 4 x 16 x 16 is 4096 values per edge, 16384 stacked (the column sums would refuse a second
    derivative)."""
    ops = _ops("sep_conv_3x3", 4, 1)
    for op in ops:
        accurate_bn.use_accurate_statistics(op)
    r = torch.relu(torch.randn(4, 4, 16, 16, dtype=torch.float64)).contiguous(memory_format=torch.channels_last)
    r.requires_grad_(True)
    out = sum((y ** 2).sum() for y in _stacked(ops, r))
    (g,) = torch.autograd.grad(out, r, create_graph=True)
    g.sum().backward()  # no "trying to differentiate twice"
    assert r.grad is not None


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
    mixed = copy.deepcopy(ops)
    mixed[1].op[3].eval()  # modes differ
    assert not stacked_ops.stackable(mixed)
    mixed = copy.deepcopy(ops)
    mixed[1].op[2].bias = nn.Parameter(torch.zeros(4, dtype=torch.float64))
    assert not stacked_ops.stackable(mixed)
    mixed = copy.deepcopy(ops)
    for bn in _batch_norms(mixed):
        bn.momentum = None
    assert stacked_ops.stackable(mixed)
    mixed[1].op[3].num_batches_tracked.fill_(2)  # the cumulative average weighs by each module's own count
    assert not stacked_ops.stackable(mixed)
    hooked = copy.deepcopy(ops)
    hooked[0].op[2].register_forward_hook(lambda *a: None)  # a stacked layer would not call it
    assert not stacked_ops.stackable(hooked)


def test_the_cpu_supernet_stacks_the_conv_ops_of_the_edges_leaving_each_state(stacked_calls):
    torch.manual_seed(0)
    model = Network(C=4, num_classes=10, layers=3).double()
    alphas = model.new_alphas(dtype=torch.float64)
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    fused = model(x, *alphas)
    # per cell, the 4 conv op types on the edges leaving states 0..3 (4, 4, 3 and 2 edges); state 4's one edge
    # runs its ops as they are
    assert sorted(stacked_calls) == sorted([4, 4, 4, 4, 4, 4, 4, 4, 3, 3, 3, 3, 2, 2, 2, 2] * 3)
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


def test_the_channels_last_supernet_with_the_accurate_batchnorm_equals_the_originals_computation():
    """Outputs, gradients of the weights and the alphas, and the running statistics after two training steps'
    forwards, stacked (fused) against edge by edge (reference=True), in channels_last with the CPU search's
    BatchNorm at its default bound."""
    torch.manual_seed(0)
    model = accurate_bn.use_accurate_statistics(Network(C=8, num_classes=10, layers=3).double()).to(
        memory_format=torch.channels_last)
    reference = copy.deepcopy(model)
    alphas = model.new_alphas(dtype=torch.float64)
    twin_alphas = [a.detach().clone().requires_grad_(True) for a in alphas]
    g = torch.Generator().manual_seed(3)
    for _ in range(2):
        x = torch.randn(8, 3, 32, 32, dtype=torch.float64, generator=g).contiguous(memory_format=torch.channels_last)
        fused, edge_by_edge = model(x, *alphas), reference(x, *twin_alphas, reference=True)
        torch.testing.assert_close(fused, edge_by_edge, rtol=1e-10, atol=1e-12)
        fused.square().sum().backward()
        edge_by_edge.square().sum().backward()
    for a, b in zip(alphas, twin_alphas):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-9, atol=1e-12)
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-9, atol=1e-12, msg=name)
    saved = model.state_dict()
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(saved[key], value, rtol=1e-10, atol=1e-12, msg=key)
