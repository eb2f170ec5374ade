"""The supernets equal the original's computation; the architecture gradients are the paper's (float64)."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

import genotypes
from reproduce.search import architect
from reproduce.search.cnn_supernet import Network
from reproduce.search.rnn_supernet import RNNModelSearch

pytestmark = pytest.mark.usefixtures("single_thread")


def _tiny_cnn(seed=0):
    torch.manual_seed(seed)
    model = Network(C=4, num_classes=5, layers=3).double()
    alphas = model.new_alphas(dtype=torch.float64)
    with torch.no_grad():  # larger logits than 1e-3 * N(0,1), so every softmax weight matters
        for a in alphas:
            a.normal_(0, 0.5)
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64, generator=g)
    y = torch.randint(0, 5, (4,), generator=g)
    xv = torch.randn(4, 3, 8, 8, dtype=torch.float64, generator=g)
    yv = torch.randint(0, 5, (4,), generator=g)
    return model, alphas, (x, y), (xv, yv)


def test_supernet_has_the_papers_1930618_weight_parameters():
    model = Network(C=16, num_classes=10, layers=8)
    assert sum(p.numel() for p in model.parameters()) == 1_930_618
    assert [tuple(a.shape) for a in model.new_alphas()] == [(14, 8), (14, 8)]


def test_supernet_keeps_the_originals_state_dict_names_and_non_affine_bn():
    model = Network(C=4, num_classes=10, layers=3)
    keys = model.state_dict().keys()
    for key in ("stem.0.weight", "stem.1.weight", "cells.0.preprocess0.op.1.weight",
                "cells.0._ops.0._ops.4.op.1.weight", "cells.1._ops.0._ops.3.conv_1.weight",
                "cells.0._ops.0._ops.1.1.running_mean", "classifier.weight"):
        assert key in keys
    mixed = model.cells[0]._ops[0]
    assert [type(op).__name__ for op in mixed._ops] == [
        "Zero", "Sequential", "Sequential", "Identity", "SepConv", "SepConv", "DilConv", "DilConv"]
    bns = [m for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d) and not n.startswith("stem")]
    assert bns and all(not bn.affine for bn in bns)
    assert [c.reduction for c in model.cells] == [False, True, True]  # at layers // 3 and 2 * layers // 3


def test_fused_supernet_forward_and_gradients_equal_the_op_by_op_original():
    model, alphas, (x, y), _ = _tiny_cnn()
    reference_model = copy.deepcopy(model)
    outs = []
    for m, reference in ((model, False), (reference_model, True)):
        loss = F.cross_entropy(m(x, *alphas, reference=reference), y)
        outs.append((loss.detach(), torch.autograd.grad(loss, alphas + list(m.parameters()))))
    (l1, g1), (l2, g2) = outs
    torch.testing.assert_close(l1, l2, rtol=1e-12, atol=1e-12)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    # eval mode: the running statistics of the shared pool BNs equal those the original keeps per edge
    model.eval()
    reference_model.eval()
    torch.testing.assert_close(model(x, *alphas), reference_model(x, *alphas, reference=True), rtol=1e-10, atol=1e-12)


def _tiny_rnn(seed=0, dropout=0.0):
    torch.manual_seed(seed)
    d = dropout
    model = RNNModelSearch(30, 8, 8, 8, d, d, d, d, 0.0).double()
    alphas = model.new_alphas(dtype=torch.float64)
    with torch.no_grad():
        alphas[0].normal_(0, 0.5)
    g = torch.Generator().manual_seed(seed + 1)
    data = [torch.randint(0, 30, (5, 3), generator=g) for _ in range(4)]
    return model, alphas, data


def test_rnn_search_cell_equals_the_originals_activation_by_activation_loop():
    model, alphas, (x, _, _, _) = _tiny_rnn(dropout=0.3)
    hidden = model.init_hidden(3)
    torch.manual_seed(5)
    fast, _ = model(x, hidden, alphas[0])
    cell = model.rnns[0]
    cell.cell = cell.cell_reference
    torch.manual_seed(5)
    ref, _ = model(x, hidden, alphas[0])
    torch.testing.assert_close(fast, ref, rtol=1e-10, atol=1e-12)
    assert sum(p.numel() for p in model.parameters()) == 30 * 8 + 30 + 16 * 16 + 8 * 8 * 16


def test_first_order_gradient_is_grad_alpha_of_the_validation_loss_and_no_weight_gradient():
    model, alphas, _, (xv, yv) = _tiny_cnn()
    grads, _ = architect.first_order(alphas, lambda: (F.cross_entropy(model(xv, *alphas), yv), None))
    expected = torch.autograd.grad(F.cross_entropy(model(xv, *alphas), yv), alphas)
    for a, b in zip(grads, expected):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert all(p.grad is None for p in model.parameters())


def test_virtual_step_uses_momentum_buffer_and_weight_decay():
    torch.manual_seed(0)
    params = [torch.randn(3, 2, dtype=torch.float64, requires_grad=True), torch.randn(4, dtype=torch.float64,
                                                                                      requires_grad=True)]
    opt = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=3e-4)
    assert architect.momentum_buffers(opt, params) is None  # before the first step: zero momentum
    for p in params:
        p.grad = torch.randn_like(p)
    opt.step()
    bufs = architect.momentum_buffers(opt, params)
    assert bufs is not None
    grads = [torch.randn_like(p) for p in params]
    before = [p.detach().clone() for p in params]
    architect.virtual_step_(params, grads, lr=0.05, momentum=0.9, weight_decay=3e-4, buffers=bufs)
    for p, w, g, b in zip(params, before, grads, bufs):
        torch.testing.assert_close(p.detach(), w - 0.05 * (0.9 * b + g + 3e-4 * w), rtol=1e-14, atol=1e-15)


def _unrolled_hypergradient(model, alphas, train, valid, lr, momentum, wd, buffers):
    """d/da L_val(w - lr * (momentum * buf + grad_w L_train(w, a) + wd * w), a), by autograd through the step."""
    names = [n for n, _ in model.named_parameters()]
    params = [p.detach().requires_grad_(True) for p in model.parameters()]

    def loss(ws, batch):
        out = torch.func.functional_call(model, dict(zip(names, ws)), (batch[0], *alphas))
        return F.cross_entropy(out, batch[1])

    g = torch.autograd.grad(loss(params, train), params, create_graph=True)
    w_new = [p - lr * (momentum * b + gi + wd * p) for p, gi, b in zip(params, g, buffers)]
    return torch.autograd.grad(loss(w_new, valid), alphas)


def test_second_order_gradient_is_close_to_the_exact_unrolled_hypergradient():
    model, alphas, train, valid = _tiny_cnn(seed=3)
    params = list(model.parameters())
    opt = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=3e-4)
    F.cross_entropy(model(train[0], *[a.detach() for a in alphas]), train[1]).backward()
    opt.step()  # so that a momentum buffer exists
    bufs = [b.clone() for b in architect.momentum_buffers(opt, params)]
    # r: the finite-difference radius; float64 allows a small one, so that no ReLU or max-pool
    # switches inside it and the central difference is accurate to O(r^2)
    lr, r = 0.5, 1e-5
    exact = _unrolled_hypergradient(model, alphas, train, valid, lr, 0.9, 3e-4, bufs)
    before = [p.detach().clone() for p in params]
    grads, _ = architect.second_order(
        model, alphas, lambda: (F.cross_entropy(model(train[0], *alphas), train[1]), None),
        lambda: (F.cross_entropy(model(valid[0], *alphas), valid[1]), None),
        lr, momentum=0.9, weight_decay=3e-4, buffers=architect.momentum_buffers(opt, params), r=r)
    for p, w in zip(params, before):  # the weights are put back exactly
        assert torch.equal(p.detach(), w)
    first = torch.autograd.grad(F.cross_entropy(model(valid[0], *alphas), valid[1]), alphas)
    for g, e, f in zip(grads, exact, first):
        # the implicit term is not negligible, and the finite difference matches it to O(eps^2)
        assert (e - f).norm() > 1e-3 * e.norm()
        torch.testing.assert_close(g, e, rtol=1e-6, atol=1e-8 * e.norm().item())


def test_second_order_rnn_gradient_includes_the_clip_coefficient_as_the_original():
    model, alphas, (x, y, xv, yv) = _tiny_rnn(seed=1)
    hidden = model.init_hidden(3)
    names = [n for n, _ in model.named_parameters()]
    params = list(model.parameters())

    def nll(ws, inp, tgt):
        out, _ = torch.func.functional_call(model, dict(zip(names, ws)), (inp, hidden, alphas[0]))
        return F.nll_loss(out.view(-1, out.size(2)), tgt.reshape(-1))

    lr, wd, clip = 2.0, 5e-7, 0.05
    # what the original computes: coef = clip / ||g|| (g clipped), v = grad_w' L_val clipped, then
    # grad_a L_val(w') - lr * coef * (d^2 L_train / da dw) v
    g = torch.autograd.grad(nll(params, x, y), params)
    gnorm = torch.sqrt(sum((t ** 2).sum() for t in g))
    coef = clip / (gnorm + 1e-6)
    assert coef < 1  # the clipping is active in this test
    w_new = [(p - lr * (coef * gi + wd * p)).detach().requires_grad_(True) for p, gi in zip(params, g)]
    out = torch.autograd.grad(nll(w_new, xv, yv), alphas + w_new)
    da, v = out[:1], out[1:]
    vnorm = torch.sqrt(sum((t ** 2).sum() for t in v))
    v = [t * min(1.0, float(clip / (vnorm + 1e-6))) for t in v]
    gg = torch.autograd.grad(nll(params, x, y), params, create_graph=True)
    mixed = torch.autograd.grad(sum((a * b).sum() for a, b in zip(gg, v)), alphas)
    expected = da[0] - lr * coef * mixed[0]

    grads, _ = architect.second_order(
        model, alphas, lambda: (nll(params, x, y), None), lambda: (nll(params, xv, yv), None), lr,
        weight_decay=wd, clip=clip, r=1e-5)
    torch.testing.assert_close(grads[0], expected, rtol=1e-6, atol=1e-9)


def _rnn_expected_second_order(model, alphas, data, lr, wd, clip, tied_held: bool):
    """The original's (tied weight held at w in the virtual step) or the formula's (stepped) gradient,
    written out with torch.func; ``v`` and the finite difference cover every weight in both."""
    x, y, xv, yv = data
    hidden = model.init_hidden(3)
    names = [n for n, _ in model.named_parameters()]
    params = list(model.parameters())
    tied = next(i for i, p in enumerate(params) if p is model.encoder.weight)

    def nll(ws, inp, tgt):
        out, _ = torch.func.functional_call(model, dict(zip(names, ws)), (inp, hidden, alphas[0]))
        return F.nll_loss(out.view(-1, out.size(2)), tgt.reshape(-1))

    g = torch.autograd.grad(nll(params, x, y), params)
    coef = clip / (torch.sqrt(sum((t ** 2).sum() for t in g)) + 1e-6)
    w_new = [(p - lr * (min(1.0, float(coef)) * gi + wd * p)).detach() for p, gi in zip(params, g)]
    if tied_held:
        w_new[tied] = params[tied].detach().clone()
    w_new = [t.requires_grad_(True) for t in w_new]
    out = torch.autograd.grad(nll(w_new, xv, yv), alphas + w_new)
    da, v = out[:1], out[1:]
    vnorm = torch.sqrt(sum((t ** 2).sum() for t in v))
    v = [t * min(1.0, float(clip / (vnorm + 1e-6))) for t in v]
    gg = torch.autograd.grad(nll(params, x, y), params, create_graph=True)
    mixed = torch.autograd.grad(sum((a * b).sum() for a, b in zip(gg, v)), alphas)
    return da[0] - lr * coef * mixed[0], nll, params


@pytest.mark.parametrize("tied_held", [True, False], ids=["held-original", "stepped-formula"])
def test_second_order_rnn_tied_weight_held_as_the_original_or_stepped_as_the_formula(tied_held):
    model, alphas, data = _tiny_rnn(seed=1)
    lr, wd, clip = 2.0, 5e-7, 0.05
    expected, nll, params = _rnn_expected_second_order(model, alphas, data, lr, wd, clip, tied_held)
    x, y, xv, yv = data
    w = model.encoder.weight.detach().clone()
    seen = {}

    def valid_loss():  # the pass at w': record where the tied embedding and another weight are
        seen["tied"] = model.encoder.weight.detach().clone()
        seen["decoder"] = model.decoder.weight.detach().clone()
        seen["other"] = [p.detach().clone() for p in params if p is not model.encoder.weight]
        return nll(params, xv, yv), None

    before = [p.detach().clone() for p in params if p is not model.encoder.weight]
    grads, _ = architect.second_order(
        model, alphas, lambda: (nll(params, x, y), None), valid_loss, lr, weight_decay=wd, clip=clip, r=1e-5,
        hold=[model.encoder.weight] if tied_held else [])
    assert torch.equal(seen["tied"], seen["decoder"])  # one tied tensor
    assert torch.equal(seen["tied"], w) == tied_held  # the embedding stays at w in the unrolled pass (original)
    assert all(not torch.equal(a, b) for a, b in zip(seen["other"], before))  # every other weight is at w'
    torch.testing.assert_close(grads[0], expected, rtol=1e-6, atol=1e-9)
    other_expected, _, _ = _rnn_expected_second_order(model, alphas, data, lr, wd, clip, not tied_held)
    assert (other_expected - expected).norm() > 1e-3 * expected.norm()  # the two really differ


def test_rnn_search_holds_the_tied_weight_by_default_and_steps_it_on_request():
    from reproduce.search.config import PTBSearchConfig
    from reproduce.search.loop import RNNSearch

    assert PTBSearchConfig().virtual_step_tied_weight == "held"
    searcher = RNNSearch.__new__(RNNSearch)  # the choice only: no data needed
    searcher.model, _, _ = _tiny_rnn()
    searcher.config = PTBSearchConfig()
    assert [t is searcher.model.encoder.weight for t in searcher.held_in_virtual_step()] == [True]
    searcher.config = PTBSearchConfig(virtual_step_tied_weight="stepped")
    assert searcher.held_in_virtual_step() == []
    with pytest.raises(ValueError, match="virtual_step_tied_weight must be held or stepped"):
        PTBSearchConfig(virtual_step_tied_weight="both").validate()


def test_derived_genotypes_equal_genotypes_derive_on_the_same_logits():
    from reproduce.search import cnn_supernet, rnn_supernet

    torch.manual_seed(0)
    a = [torch.randn(14, 8), torch.randn(14, 8)]
    assert cnn_supernet.genotype(a) == genotypes.derive.cnn(a[0], a[1])
    w = [torch.randn(36, 5)]
    assert rnn_supernet.genotype(w) == genotypes.derive.rnn(w[0])


def test_channels_last_supernet_computes_the_same_logits_and_gradients():
    model, alphas, (x, y), _ = _tiny_cnn(seed=4)
    cl_model = copy.deepcopy(model).to(memory_format=torch.channels_last)
    results = []
    for m, inp in ((model, x), (cl_model, x.contiguous(memory_format=torch.channels_last))):
        loss = F.cross_entropy(m(inp, *alphas), y)
        results.append((loss.detach(), torch.autograd.grad(loss, alphas)))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-12, atol=1e-12)
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_bf16_autocast_supernet_runs_in_either_memory_format_and_stays_close_to_float32(memory_format):
    torch.manual_seed(0)
    model = Network(C=4, num_classes=5, layers=3).to(memory_format=memory_format)
    alphas = model.new_alphas()
    x = torch.randn(4, 3, 8, 8).contiguous(memory_format=memory_format)
    y = torch.randint(0, 5, (4,))
    ref_logits = model(x, *alphas)
    ref = torch.autograd.grad(F.cross_entropy(ref_logits, y), alphas)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(x, *alphas).float()
    grads = torch.autograd.grad(F.cross_entropy(logits, y), alphas)
    torch.testing.assert_close(logits, ref_logits, rtol=0.1, atol=0.1)
    for g, r in zip(grads, ref):
        assert torch.isfinite(g).all()
        assert F.cosine_similarity(g.flatten(), r.flatten(), dim=0) > 0.9


def test_a_saved_supernet_holds_every_edges_pool_statistics_as_the_originals_would():
    # The fused forward updates only the first edge's pool BNs of each state; state_dict() copies them to the
    # other edges, so the original's per-edge computation evaluates the saved weights exactly as the fused one.
    model, alphas, (x, y), (xv, _) = _tiny_cnn(seed=2)
    reference_model = copy.deepcopy(model)
    for inp in (x, xv, x * 2):  # training-mode passes: running statistics move (fused: first edges only)
        model(inp, *alphas)
        reference_model(inp, *alphas, reference=True)
    saved = model.state_dict()
    for key, value in reference_model.state_dict().items():
        torch.testing.assert_close(saved[key], value, rtol=1e-12, atol=1e-12, msg=key)
    loaded = copy.deepcopy(reference_model)
    loaded.load_state_dict(saved)
    loaded.eval()
    model.eval()
    torch.testing.assert_close(loaded(xv, *alphas, reference=True), model(xv, *alphas), rtol=1e-10, atol=1e-12)
