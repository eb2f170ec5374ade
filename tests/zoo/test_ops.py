"""Cell operations and RNN regularisers behave as the original's (cnn/operations.py, rnn/model.py, awd-lstm-lm)."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import genotypes
from zoo.ops import OPS, DilConv, FactorizedReduce, Identity, ReLUConvBN, SepConv, Zero, drop_path
from zoo.rnn import DARTSCell, LockedDropout, dropout_mask, embedded_dropout


def test_ops_cover_every_op_a_genotype_may_name():
    assert set(OPS) == set(genotypes.cnn.OPS)


@pytest.mark.parametrize("name", sorted(genotypes.cnn.OPS))
@pytest.mark.parametrize("stride", [1, 2])
def test_every_op_keeps_channels_and_strides_the_map(name, stride):
    torch.manual_seed(0)
    op = OPS[name](6, stride, True)
    x = torch.randn(2, 6, 8, 8, requires_grad=True)
    y = op(x)
    assert y.shape == (2, 6, 8 // stride, 8 // stride)
    y.sum().backward()
    assert x.grad is not None


def test_op_module_types_match_the_original():
    assert isinstance(OPS["none"](4, 1, True), Zero)
    assert isinstance(OPS["skip_connect"](4, 1, True), Identity)
    assert isinstance(OPS["skip_connect"](4, 2, True), FactorizedReduce)
    assert isinstance(OPS["sep_conv_7x7"](4, 1, True), SepConv)
    assert isinstance(OPS["dil_conv_5x5"](4, 1, True), DilConv)
    assert isinstance(OPS["max_pool_3x3"](4, 2, True), nn.MaxPool2d)
    avg = OPS["avg_pool_3x3"](4, 1, True)
    assert isinstance(avg, nn.AvgPool2d) and avg.count_include_pad is False


@pytest.mark.parametrize("name,kernel,padding,dilation", [
    ("sep_conv_3x3", 3, 1, 1), ("sep_conv_5x5", 5, 2, 1), ("sep_conv_7x7", 7, 3, 1),
    ("dil_conv_3x3", 3, 2, 2), ("dil_conv_5x5", 5, 4, 2),
])
def test_separable_and_dilated_convs_have_the_original_geometry(name, kernel, padding, dilation):
    op = OPS[name](4, 2, True)
    depthwise = [m for m in op.modules() if isinstance(m, nn.Conv2d) and m.groups == 4]
    assert all(m.kernel_size == (kernel, kernel) and m.padding == (padding, padding) for m in depthwise)
    assert all(m.dilation == (dilation, dilation) for m in depthwise)
    assert depthwise[0].stride == (2, 2)
    assert all(m.stride == (1, 1) for m in depthwise[1:])  # only the first conv of a SepConv strides
    assert all(m.bias is None for m in op.modules() if isinstance(m, nn.Conv2d))


def test_sep_conv_state_dict_layout_is_the_originals():
    keys = [k for k in SepConv(4, 6, 3, 1, 1).state_dict() if not k.endswith("num_batches_tracked")]
    assert keys == [
        "op.1.weight", "op.2.weight",
        "op.3.weight", "op.3.bias", "op.3.running_mean", "op.3.running_var",
        "op.5.weight", "op.6.weight",
        "op.7.weight", "op.7.bias", "op.7.running_mean", "op.7.running_var",
    ]
    sd = SepConv(4, 6, 3, 1, 1).state_dict()
    assert sd["op.1.weight"].shape == (4, 1, 3, 3) and sd["op.6.weight"].shape == (6, 4, 1, 1)


def test_dil_conv_relu_conv_bn_and_factorized_reduce_layouts_are_the_originals():
    def keys(m):
        return [k for k in m.state_dict() if not k.endswith("num_batches_tracked")]

    bn = ["weight", "bias", "running_mean", "running_var"]
    assert keys(DilConv(4, 4, 3, 1, 2, 2)) == ["op.1.weight", "op.2.weight"] + [f"op.3.{b}" for b in bn]
    assert keys(ReLUConvBN(4, 4, 1, 1, 0)) == ["op.1.weight"] + [f"op.2.{b}" for b in bn]
    assert keys(FactorizedReduce(4, 6)) == ["conv_1.weight", "conv_2.weight"] + [f"bn.{b}" for b in bn]
    assert keys(OPS["conv_7x1_1x7"](4, 2, True)) == ["1.weight", "2.weight"] + [f"3.{b}" for b in bn]


def test_conv_7x1_1x7_strides_each_axis_once():
    op = OPS["conv_7x1_1x7"](4, 2, True)
    assert op[1].kernel_size == (1, 7) and op[1].stride == (1, 2) and op[1].padding == (0, 3)
    assert op[2].kernel_size == (7, 1) and op[2].stride == (2, 1) and op[2].padding == (3, 0)


def test_affine_false_drops_batchnorm_parameters():
    op = OPS["sep_conv_3x3"](4, 1, False)
    assert all(not m.affine for m in op.modules() if isinstance(m, nn.BatchNorm2d))
    assert not any(n.endswith("bias") for n, _ in op.named_parameters())


def test_zero_returns_zeros_of_the_strided_shape():
    x = torch.randn(2, 3, 7, 7)
    assert torch.equal(Zero(1)(x), torch.zeros_like(x))
    y = Zero(2)(x)
    assert y.shape == (2, 3, 4, 4) and not y.any()


def test_avg_pool_does_not_count_padding():
    x = torch.ones(1, 1, 4, 4)
    y = OPS["avg_pool_3x3"](1, 1, True)(x)
    assert torch.equal(y, torch.ones_like(y))  # corners average 4 ones, not 4/9


def test_identity_returns_its_input():
    x = torch.randn(2, 3, 4, 4)
    assert Identity()(x) is x


def test_factorized_reduce_uses_two_offset_grids():
    fr = FactorizedReduce(1, 2, affine=False).eval()
    with torch.no_grad():
        fr.conv_1.weight.fill_(1.0)
        fr.conv_2.weight.fill_(1.0)
    x = torch.arange(16.0).view(1, 1, 4, 4)
    y = fr(x) * torch.sqrt(torch.tensor(1.0 + fr.bn.eps))  # undo the eval BatchNorm (mean 0, var 1)
    torch.testing.assert_close(y[0, 0], x[0, 0, ::2, ::2])
    torch.testing.assert_close(y[0, 1], x[0, 0, 1::2, 1::2])


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("c_in, size", [(4, 16), (6, 8), (6, 7), (16, 32)])
def test_factorized_reduce_computes_the_originals_strided_convolutions(channels_last, c_in, size):
    # the original: conv_1 and conv_2 as 1x1 convolutions with stride 2 on x and x[:, :, 1:, 1:]
    torch.manual_seed(0)
    fr = FactorizedReduce(c_in, 2 * c_in if size % 2 == 0 else c_in + c_in % 2)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    fr = fr.to(memory_format=fmt)
    x = torch.randn(3, c_in, size, size).contiguous(memory_format=fmt)
    if size % 2:  # the two grids differ in size at odd sizes: the original cannot concatenate them either
        with pytest.raises(RuntimeError):
            FactorizedReduce(c_in, 2)(x)
        return
    grads = []
    for ours in (True, False):
        xx = x.clone().requires_grad_()
        fr.zero_grad()
        if ours:
            y = fr(xx)
            weights = (fr.conv_1.weight, fr.conv_2.weight)
        else:  # in NCHW, as the original ran: a strided 1x1 conv's weight gradient in channels_last is the very
            # oneDNN kernel that crashes at few channels (reproduce/benchmarks/channels_last_crash.py). A 1x1
            # weight's strides fit both layouts, so .contiguous() would keep channels_last: fresh NCHW copies.
            weights = tuple(w.detach().clone(memory_format=torch.contiguous_format).requires_grad_()
                            for w in (fr.conv_1.weight, fr.conv_2.weight))
            r = torch.relu(xx).contiguous()
            y = fr.bn(torch.cat([F.conv2d(r, weights[0], stride=2),
                                 F.conv2d(r[:, :, 1:, 1:], weights[1], stride=2)], dim=1))
        y.backward(torch.arange(y.numel(), dtype=y.dtype).view(y.shape) % 5)
        grads.append((y.detach(), xx.grad, weights[0].grad.clone(), weights[1].grad.clone()))
    (y, gx, gw1, gw2), (y0, gx0, gw10, gw20) = grads
    # The same products and sums; which kernel computes them (and in what order it adds) depends on the CPU, the
    # layout and the thread count, so they agree to float32 round-off, not bit for bit (bit-equal on some
    # machines, not on others).
    # (the reference runs in NCHW, ours in the layout under test: other kernels, so round-off relative to the
    # tensors' scale, as for the weight gradients below)
    torch.testing.assert_close(y, y0, rtol=1e-5, atol=1e-5 * float(y0.abs().max()))
    torch.testing.assert_close(gx, gx0, rtol=1e-5, atol=1e-5 * float(gx0.abs().max()))
    # the weight gradients sum over batch and pixels: round-off relative to their scale
    for g, g0 in ((gw1, gw10), (gw2, gw20)):
        torch.testing.assert_close(g, g0, rtol=1e-4, atol=1e-5 * float(g0.abs().max()))


def test_factorized_reduce_needs_even_channels():
    with pytest.raises(ValueError, match="even number of output channels"):
        FactorizedReduce(4, 5)


def test_relu_in_ops_is_not_in_place():
    x = torch.randn(2, 4, 8, 8)
    before = x.clone()
    for name in genotypes.cnn.OPS:
        OPS[name](4, 1, True)(x)
    assert torch.equal(x, before)


# ---------------------------------------------------------------- drop_path

def test_drop_path_with_zero_probability_is_the_identity():
    x = torch.randn(4, 3, 2, 2)
    assert drop_path(x, 0.0) is x


def test_drop_path_drops_whole_samples_and_rescales_the_rest():
    torch.manual_seed(0)
    x = torch.ones(1000, 2, 3, 3)
    y = drop_path(x, 0.25)
    per_sample = y.flatten(1)
    kept = per_sample[:, 0] != 0
    assert torch.equal(per_sample[kept], torch.full_like(per_sample[kept], 1 / 0.75))
    assert torch.equal(per_sample[~kept], torch.zeros_like(per_sample[~kept]))
    assert 0.2 < (~kept).float().mean() < 0.3
    assert torch.equal(x, torch.ones_like(x))  # the input is not modified


def test_drop_path_keeps_gradients_flowing_to_kept_samples():
    torch.manual_seed(0)
    x = torch.ones(64, 2, 1, 1, requires_grad=True)
    drop_path(x, 0.5).sum().backward()
    grads = x.grad.flatten(1)[:, 0]
    assert set(grads.unique().tolist()) <= {0.0, 2.0} and len(grads.unique()) == 2


# ---------------------------------------------------------------- RNN regularisers

def test_dropout_mask_values_are_zero_or_the_inverse_keep_probability():
    torch.manual_seed(0)
    like = torch.empty(0)
    m = dropout_mask(200, 50, 0.75, like)
    assert m.shape == (200, 50)
    values = m.unique().tolist()
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(1 / 0.75)
    assert 0.2 < (m == 0).float().mean() < 0.3
    assert torch.equal(dropout_mask(3, 4, 1.0, like), torch.ones(3, 4))


def test_locked_dropout_shares_one_mask_over_time_and_is_off_in_eval():
    torch.manual_seed(0)
    ld = LockedDropout()
    x = torch.ones(10, 4, 32)
    y = ld.train()(x, 0.5)
    assert torch.equal(y, y[:1].expand_as(y))  # same mask at every time step
    assert set(y.unique().tolist()) == {0.0, 2.0}
    assert ld.eval()(x, 0.5) is x
    assert ld.train()(x, 0.0) is x


def test_embedded_dropout_drops_whole_words():
    torch.manual_seed(0)
    embed = nn.Embedding(100, 8)
    words = torch.arange(100).repeat(3, 1)  # every word three times
    out = embedded_dropout(embed, words, 0.5)
    dropped = (out == 0).all(-1)
    assert torch.equal(dropped, dropped[:1].expand_as(dropped))  # a word is dropped everywhere or nowhere
    assert 0.3 < dropped[0].float().mean() < 0.7
    kept = ~dropped[0]
    torch.testing.assert_close(out[0][kept], embed.weight[kept] / 0.5)
    assert torch.equal(embedded_dropout(embed, words, 0), embed(words))


def test_darts_cell_step_is_the_original_highway_rule():
    torch.manual_seed(0)
    g = genotypes.make_rnn([("tanh", 0), ("relu", 1)], [1, 2])
    cell = DARTSCell(3, 4, 0.0, 0.0, g).eval()
    x, h = torch.randn(2, 3), torch.randn(2, 4)
    W0, W1, W2 = cell._W0, cell._Ws[0], cell._Ws[1]
    # The original: [c0, h0] = [x, h] @ W0; s0 = h + sigmoid(c0) * (tanh(h0) - h); then per step.
    c0, h0 = torch.split(torch.cat([x, h], -1) @ W0, 4, -1)
    s0 = h + c0.sigmoid() * (h0.tanh() - h)
    c1, h1 = torch.split(s0 @ W1, 4, -1)
    s1 = s0 + c1.sigmoid() * (h1.tanh() - s0)
    c2, h2 = torch.split(s1 @ W2, 4, -1)
    s2 = s1 + c2.sigmoid() * (h2.relu() - s1)
    expected = (s1 + s2) / 2
    out, last = cell(x.unsqueeze(0), h.unsqueeze(0))
    torch.testing.assert_close(out[0], expected)
    torch.testing.assert_close(cell.cell(x @ W0[:3], h, None), expected)
    torch.testing.assert_close(last[0], expected)


def test_darts_cell_masks_x_and_h_once_per_sequence_in_training():
    torch.manual_seed(0)
    g = genotypes.get("DARTS_V2", "rnn")
    cell = DARTSCell(4, 4, 0.5, 0.5, g).train()
    seen = []
    real = cell.cell

    def spy(x_proj, h_prev, h_mask):
        seen.append(h_mask)
        return real(x_proj, h_prev, h_mask)

    cell.cell = spy
    cell(torch.randn(5, 2, 4), torch.zeros(1, 2, 4))
    assert len(seen) == 5 and all(m is seen[0] for m in seen)
    assert set(seen[0].unique().tolist()) <= {0.0, 2.0}
