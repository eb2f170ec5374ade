"""The zoo's networks equal the original (quark0/darts f276dd3): outputs, state-dict layout, counts, behaviour."""
from __future__ import annotations

import collections
import re
from pathlib import Path

import pytest
import torch

import genotypes
import zoo
from zoo.ops import Identity

CNN_NAMES = ["DARTS_V1", "DARTS_V2", "NASNet", "AmoebaNet"]  # every CNN genotype of the original
RNN_NAMES = ["ENAS", "DARTS_V1", "DARTS_V2"]
ZOO_DIR = Path(zoo.__file__).resolve().parent
TOL = 1e-5  # the reference README's equivalence tolerance
FIXTURES = [("cifar_small.pt", zoo.NetworkCIFAR), ("imagenet_small.pt", zoo.NetworkImageNet)]


def _no_nbt(keys):
    return [k for k in keys if not k.endswith("num_batches_tracked")]


def _small(cls, name, num_classes=10, auxiliary=True, C=8, layers=5):
    torch.manual_seed(0)
    return cls(C, num_classes, layers, auxiliary, name)


# ---------------------------------------------------------------- reference fixtures (outputs)

@pytest.mark.parametrize("fixture,cls", FIXTURES)
def test_cnn_eval_output_equals_the_original_fixture(load_pt, fixture, cls):
    ref = load_pt(fixture)
    model = cls(**ref["config"])
    model.load_state_dict(ref["state_dict"], strict=True)
    model.eval()
    with torch.no_grad():
        logits = model(ref["input"])
    assert isinstance(logits, torch.Tensor)
    assert logits.shape == ref["logits"].shape
    torch.testing.assert_close(logits, ref["logits"], atol=TOL, rtol=0)


@pytest.mark.parametrize("fixture,cls", FIXTURES)
def test_cnn_fixture_loads_without_num_batches_tracked_as_the_original_files_lack_it(load_pt, fixture, cls):
    ref = load_pt(fixture)
    stripped = {k: v for k, v in ref["state_dict"].items() if not k.endswith("num_batches_tracked")}
    model = cls(**ref["config"])
    model.load_state_dict(stripped, strict=True)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(ref["input"]), ref["logits"], atol=TOL, rtol=0)


def test_rnn_eval_output_and_hidden_equal_the_original_fixture(load_pt):
    ref = load_pt("ptb_small.pt")
    model = zoo.RNNModel(**ref["config"])
    model.load_state_dict(ref["state_dict"], strict=True)
    model.eval()
    with torch.no_grad():
        log_prob, hidden = model(ref["input"], model.init_hidden(ref["input"].size(1)))
    assert log_prob.shape == ref["log_prob"].shape
    torch.testing.assert_close(log_prob, ref["log_prob"], atol=TOL, rtol=0)
    assert isinstance(hidden, list) and len(hidden) == 1
    torch.testing.assert_close(hidden[0], ref["hidden"], atol=TOL, rtol=0)


def test_rnn_fixture_state_dict_has_tied_weights(load_pt):
    ref = load_pt("ptb_small.pt")
    assert torch.equal(ref["state_dict"]["encoder.weight"], ref["state_dict"]["decoder.weight"])


# ---------------------------------------------------------------- manifests (state-dict layout)

def _manifest_items(model):
    return [(k, list(v.shape)) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")]


def test_cifar_full_size_state_dict_matches_the_manifest_key_for_key(load_json):
    manifest = load_json("cnn_manifests.json")["cifar10_darts_v2_c36_l20_aux"]
    model = zoo.NetworkCIFAR(36, 10, 20, True, "DARTS_V2")
    assert _manifest_items(model) == [(k, list(s)) for k, s in manifest]


def test_imagenet_full_size_state_dict_matches_the_manifest_key_for_key(load_json):
    manifest = load_json("cnn_manifests.json")["imagenet_darts_v2_c48_l14_aux"]
    model = zoo.NetworkImageNet(48, 1000, 14, True, "DARTS_V2")
    assert _manifest_items(model) == [(k, list(s)) for k, s in manifest]


def test_ptb_full_size_state_dict_matches_the_manifest_key_for_key(load_json):
    manifest = load_json("rnn_manifest.json")["ptb_darts_v2_850"]
    model = zoo.RNNModel(10000, 850, 850, 850, genotype="DARTS_V2")
    assert _manifest_items(model) == [(k, list(s)) for k, s in manifest]
    assert model.decoder.weight is model.encoder.weight


def test_imagenet_auxiliary_head_has_no_batchnorm_after_its_768_channel_conv():
    model = zoo.NetworkImageNet(8, 10, 5, True, "DARTS_V2")
    bns = [m for m in model.auxiliary_head.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert [bn.num_features for bn in bns] == [128]
    cifar = zoo.NetworkCIFAR(8, 10, 5, True, "DARTS_V2")
    assert [m.num_features for m in cifar.auxiliary_head.modules() if isinstance(m, torch.nn.BatchNorm2d)] == [128, 768]


@pytest.mark.parametrize("cls,size", [(zoo.NetworkCIFAR, 32), (zoo.NetworkImageNet, 224)])
def test_manifest_like_dict_with_metadata_but_without_num_batches_tracked_loads_strictly(cls, size):
    # A modern state dict with the buffers deleted keeps BatchNorm's version metadata; it must still load.
    src, dst = _small(cls, "DARTS_V2"), _small(cls, "DARTS_V2")
    with torch.no_grad():
        for p in src.parameters():
            p.add_(0.1)
    sd = src.state_dict()
    for k in [k for k in sd if k.endswith("num_batches_tracked")]:
        del sd[k]
    assert hasattr(sd, "_metadata")
    dst.load_state_dict(sd, strict=True)
    for k, v in sd.items():
        assert torch.equal(dst.state_dict()[k], v), k


# ---------------------------------------------------------------- mismatched state dicts

def _snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _unchanged(model, before):
    return all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def _perturbed(model):
    return collections.OrderedDict((k, v + 1 if v.is_floating_point() else v) for k, v in model.state_dict().items())


def test_state_dict_with_missing_keys_raises_listing_them_and_loads_nothing():
    model = _small(zoo.NetworkCIFAR, "DARTS_V2")
    sd = _perturbed(model)
    del sd["classifier.weight"], sd["cells.0._ops.0.op.1.weight"]
    before = _snapshot(model)
    with pytest.raises(zoo.StateDictMismatchError) as info:
        model.load_state_dict(sd)
    msg = str(info.value)
    assert "missing keys (2)" in msg and "classifier.weight" in msg and "cells.0._ops.0.op.1.weight" in msg
    assert "num_batches_tracked" not in msg
    assert _unchanged(model, before)


def test_state_dict_with_unexpected_keys_raises_listing_them_and_loads_nothing():
    model = _small(zoo.NetworkCIFAR, "DARTS_V2")
    sd = _perturbed(model)
    sd["cells.0.extra.weight"] = torch.zeros(3)
    before = _snapshot(model)
    with pytest.raises(zoo.StateDictMismatchError, match=r"unexpected keys \(1\):\s+cells\.0\.extra\.weight"):
        model.load_state_dict(sd)
    assert _unchanged(model, before)


def test_state_dict_with_misshaped_keys_raises_listing_shapes_and_loads_nothing():
    model = _small(zoo.NetworkCIFAR, "DARTS_V2")
    wrong = _small(zoo.NetworkCIFAR, "DARTS_V2", num_classes=100)
    before = _snapshot(model)
    with pytest.raises(zoo.StateDictMismatchError) as info:
        model.load_state_dict(wrong.state_dict())
    msg = str(info.value)
    assert "shape mismatches (4)" in msg  # both classifiers, weight and bias
    assert re.search(r"classifier\.weight: file \(100, \d+\) vs model \(10, \d+\)", msg)
    assert "classifier.bias: file (100,) vs model (10,)" in msg
    assert _unchanged(model, before)


def test_state_dict_with_a_non_tensor_value_is_refused_and_loads_nothing():
    model = _small(zoo.NetworkCIFAR, "DARTS_V2")
    sd = _perturbed(model)
    sd["classifier.weight"] = 3
    before = _snapshot(model)
    with pytest.raises(zoo.StateDictMismatchError, match=r"classifier\.weight: file int is not a tensor"):
        model.load_state_dict(sd)
    assert _unchanged(model, before)


def test_count_macs_of_a_network_without_convolutions_is_a_clear_error():
    with pytest.raises(TypeError, match="no convolution"):
        zoo.count_macs(zoo.RNNModel(20, 8, 8, 8), (1, 3, 32, 32))


def test_state_dict_of_another_genotype_lists_every_kind_of_difference():
    model = _small(zoo.NetworkCIFAR, "DARTS_V2")
    other = _small(zoo.NetworkCIFAR, "NASNet")
    with pytest.raises(zoo.StateDictMismatchError) as info:
        model.load_state_dict(other.state_dict())
    msg = str(info.value)
    assert "missing keys" in msg and "unexpected keys" in msg and "shape mismatches" in msg
    assert "... and" in msg  # long lists are cut, with the count
    assert "genotype" in msg  # the hint names what to check
    assert isinstance(info.value, ValueError)


def test_state_dict_mismatch_hints_at_a_dataparallel_prefix():
    model = _small(zoo.NetworkCIFAR, "DARTS_V2", layers=3)
    sd = {"module." + k: v for k, v in model.state_dict().items()}
    with pytest.raises(zoo.StateDictMismatchError, match="module\\."):
        model.load_state_dict(sd)


def test_rnn_state_dict_mismatch_raises_and_loads_nothing():
    model = zoo.RNNModel(50, 24, 24, 24, genotype="DARTS_V2")
    before = _snapshot(model)
    other = zoo.RNNModel(50, 24, 24, 24, genotype="ENAS")
    with pytest.raises(zoo.StateDictMismatchError, match=r"unexpected keys \(3\)"):
        model.load_state_dict(other.state_dict())
    assert _unchanged(model, before)


def test_non_strict_loading_is_still_possible():
    model = _small(zoo.NetworkCIFAR, "DARTS_V2", layers=3)
    sd = model.state_dict()
    del sd["classifier.bias"]
    result = model.load_state_dict(sd, strict=False)
    assert "classifier.bias" in result.missing_keys


# ---------------------------------------------------------------- every genotype: build, counts, forward, backward

@pytest.mark.parametrize("name", CNN_NAMES)
def test_every_cnn_genotype_builds_full_size_with_the_original_parameter_counts(load_json, name):
    counts = load_json("param_counts.json")
    cifar = zoo.NetworkCIFAR(36, 10, 20, True, name)
    assert zoo.count_parameters(cifar) == counts[f"cifar_{name}"]
    imagenet = zoo.NetworkImageNet(48, 1000, 14, True, name)
    assert zoo.count_parameters(imagenet) == counts[f"imagenet_{name}"]


def test_param_counts_reference_covers_every_cnn_genotype(load_json):
    assert set(load_json("param_counts.json")) == {f"{d}_{n}" for d in ("cifar", "imagenet") for n in CNN_NAMES}


def test_darts_v2_cifar_has_the_original_logged_parameter_size():
    # The original logs "param size = 3.349342MB" for DARTS_V2 on CIFAR-10.
    assert zoo.count_parameters(zoo.NetworkCIFAR(36, 10, 20, True, "DARTS_V2")) / 1e6 == 3.349342


@pytest.mark.parametrize("name", CNN_NAMES)
@pytest.mark.parametrize("cls,size,classes", [(zoo.NetworkCIFAR, 32, 10), (zoo.NetworkImageNet, 224, 20)])
def test_every_cnn_genotype_trains_with_aux_and_evaluates(name, cls, size, classes):
    model = _small(cls, name, num_classes=classes)
    model.drop_path_prob = 0.2
    x = torch.randn(2, 3, size, size)
    model.train()
    out = model(x)
    assert isinstance(out, tuple) and len(out) == 2
    logits, aux = out
    assert logits.shape == aux.shape == (2, classes)
    (logits.logsumexp(1).sum() + 0.4 * aux.logsumexp(1).sum()).backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert [n for n, g in grads.items() if g is None] == []
    assert all(torch.isfinite(g).all() for g in grads.values())
    assert any(g.abs().sum() > 0 for n, g in grads.items() if n.startswith("auxiliary_head"))
    model.eval()
    with torch.no_grad():
        out = model(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, classes)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", [n for n in genotypes.names("cnn") if n not in CNN_NAMES + ["DARTS"]])
def test_later_cnn_genotypes_build_and_train(name):
    model = _small(zoo.NetworkCIFAR, name, layers=3).train()
    logits, aux = model(torch.randn(2, 3, 32, 32))
    (logits.sum() + aux.sum()).backward()
    assert all(p.grad is not None for p in model.parameters())
    assert zoo.count_parameters(zoo.NetworkCIFAR(36, 10, 20, True, name)) > 3_000_000


def test_network_without_auxiliary_returns_logits_in_train_mode_too():
    model = _small(zoo.NetworkCIFAR, "DARTS_V2", auxiliary=False, layers=3).train()
    out = model(torch.randn(2, 3, 32, 32))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 10)
    assert not hasattr(model, "auxiliary_head")


def test_nasnet_and_amoebanet_use_the_extra_ops():
    from zoo.ops import SepConv

    nasnet = _small(zoo.NetworkCIFAR, "NASNet", layers=3)
    k7 = [m for m in nasnet.modules() if isinstance(m, SepConv) and m.op[1].kernel_size == (7, 7)]
    assert len(k7) == 2 * 2  # two sep_conv_7x7 per reduction cell; with 3 layers cells 1 and 2 reduce
    amoeba = _small(zoo.NetworkCIFAR, "AmoebaNet", layers=3)
    factorised = [m for m in amoeba.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size in ((1, 7), (7, 1))]
    assert len(factorised) == 2 * 2  # conv_7x1_1x7 once per reduction cell (cells 1 and 2), two convs each


def test_genotype_may_be_given_as_object_name_or_text_alike():
    g = genotypes.get("DARTS_V1")
    models = [_small(zoo.NetworkCIFAR, spec, layers=3) for spec in (g, "DARTS_V1", genotypes.format(g))]
    assert all(m.genotype == g for m in models)
    sds = [m.state_dict() for m in models]
    assert all(list(sd) == list(sds[0]) for sd in sds)
    assert "sep_conv_3x3" in repr(models[0])


def test_bad_genotype_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="Did you mean 'DARTS_V2'"):
        zoo.NetworkCIFAR(8, 10, 3, False, "DARTS_V3")
    with pytest.raises(ValueError, match="not well formed"):
        zoo.NetworkImageNet(8, 10, 3, False, "Genotype(normal=[")
    with pytest.raises(TypeError, match="conv Genotype"):
        zoo.NetworkCIFAR(8, 10, 3, False, genotypes.get("DARTS_V2", "rnn"))
    with pytest.raises(ValueError, match="unknown op"):
        zoo.NetworkCIFAR(8, 10, 3, False, genotypes.cnn.DARTS_V2._replace(normal=(("conv_9", 0),) * 8))
    with pytest.raises(TypeError, match="recurrent RNNGenotype"):
        zoo.RNNModel(10, 8, 8, 8, genotype=genotypes.get("DARTS_V2"))
    with pytest.raises(ValueError, match="kind='cnn'"):
        zoo.RNNModel(10, 8, 8, 8, genotype="NASNet")
    with pytest.raises(ValueError, match="ninp == nhid == nhidlast"):
        zoo.RNNModel(10, 8, 16, 8)


# ---------------------------------------------------------------- drop-path

def _count_drop_path_calls(model, monkeypatch):
    import zoo.cnn

    calls = []
    real = zoo.cnn.drop_path

    def spy(x, p):
        calls.append(p)
        return real(x, p)

    monkeypatch.setattr(zoo.cnn, "drop_path", spy)
    return calls


def test_drop_path_is_off_by_default_and_in_eval_mode(monkeypatch):
    model = _small(zoo.NetworkCIFAR, "DARTS_V2", layers=3)
    assert model.drop_path_prob == 0
    calls = _count_drop_path_calls(model, monkeypatch)
    model.train()(torch.randn(2, 3, 32, 32))
    assert calls == []
    model.drop_path_prob = 0.5
    model.eval()(torch.randn(2, 3, 32, 32))
    assert calls == []


def test_drop_path_applies_in_train_mode_to_every_edge_but_identity(monkeypatch):
    model = _small(zoo.NetworkCIFAR, "DARTS_V2", layers=3)
    model.drop_path_prob = 0.3
    calls = _count_drop_path_calls(model, monkeypatch)
    model.train()(torch.randn(2, 3, 32, 32))
    non_identity = sum(not isinstance(op, Identity) for cell in model.cells for op in cell._ops)
    identity = sum(isinstance(op, Identity) for cell in model.cells for op in cell._ops)
    assert identity > 0  # DARTS_V2's normal cells hold skip_connects at stride 1
    assert len(calls) == non_identity and set(calls) == {0.3}


def test_drop_path_zeroes_whole_samples_in_train_mode_only():
    torch.manual_seed(0)
    model = _small(zoo.NetworkCIFAR, "DARTS_V2", layers=3, auxiliary=False)
    x = torch.randn(4, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        a = model(x)
        model.drop_path_prob = 0.9
        b = model(x)
    torch.testing.assert_close(a, b)  # eval ignores drop_path_prob
    model.train()
    with torch.no_grad():
        c1, c2 = model(x), model(x)
    assert not torch.allclose(c1, c2)  # random paths dropped in training


# ---------------------------------------------------------------- RNN

@pytest.mark.parametrize("name", RNN_NAMES)
def test_every_rnn_genotype_trains_and_evaluates(name):
    torch.manual_seed(0)
    model = zoo.RNNModel(30, 16, 16, 16, genotype=name)
    g = genotypes.get(name, "rnn")
    assert len(model.rnns[0]._Ws) == len(g.recurrent)
    assert model.rnns[0]._W0.shape == (32, 32)
    tokens = torch.randint(0, 30, (5, 3))
    hidden = model.init_hidden(3)
    assert [h.shape for h in hidden] == [(1, 3, 16)]
    model.train()
    log_prob, new_hidden = model(tokens, hidden)
    assert log_prob.shape == (5, 3, 30) and new_hidden[0].shape == (1, 3, 16)
    torch.testing.assert_close(log_prob.exp().sum(-1), torch.ones(5, 3))
    loss = -log_prob.gather(2, tokens.unsqueeze(2)).mean()
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    model.eval()
    with torch.no_grad():
        a, ha = model(tokens, hidden)
        b, hb = model(tokens, hidden)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(ha[0], hb[0])


def test_rnn_weights_are_tied_and_counted_once():
    model = zoo.RNNModel(10000, 850, 850, 850, genotype="DARTS_V2")
    assert model.decoder.weight is model.encoder.weight
    assert zoo.count_parameters(model) == 22_960_000
    assert "decoder.weight" in model.state_dict() and "encoder.weight" in model.state_dict()


@pytest.mark.parametrize("name, steps", [("ENAS", 11), ("DARTS_V1", 8), ("DARTS_V2", 8)])
def test_every_rnn_genotype_has_the_parameter_count_of_its_steps_at_850_units(name, steps):
    # Tied embedding/decoder (10000 x 850, once) + decoder bias + W0 (1700 x 1700) + one 850 x 1700 per step,
    # counted by hand: DARTS_V2 gives the reference's 22,960,000.
    expected = {"ENAS": 27_295_000, "DARTS_V1": 22_960_000, "DARTS_V2": 22_960_000}[name]
    assert 10000 * 850 + 10000 + 1700 * 1700 + steps * 850 * 1700 == expected
    with torch.device("meta"):
        model = zoo.RNNModel(10000, 850, 850, 850, genotype=name)
    assert zoo.count_parameters(model) == expected


def test_rnn_seeded_initialisation_draws_in_the_original_order():
    # The original creates the embedding, then the cell (W0, then each W_i, uniform in +-0.04), then the
    # decoder, then draws the tied embedding/decoder weight uniformly twice and zeroes the decoder bias.
    ntoken, n, steps = 30, 6, len(genotypes.get("DARTS_V2", "rnn").recurrent)
    torch.manual_seed(7)
    torch.nn.Embedding(ntoken, n)
    W0 = torch.empty(2 * n, 2 * n).uniform_(-0.04, 0.04)
    Ws = [torch.empty(n, 2 * n).uniform_(-0.04, 0.04) for _ in range(steps)]
    torch.nn.Linear(n, ntoken)
    torch.empty(ntoken, n).uniform_(-0.04, 0.04)
    emb = torch.empty(ntoken, n).uniform_(-0.04, 0.04)
    after = torch.rand(3)
    torch.manual_seed(7)
    model = zoo.RNNModel(ntoken, n, n, n, genotype="DARTS_V2")
    assert torch.equal(torch.rand(3), after)
    assert torch.equal(model.encoder.weight, emb)
    assert torch.equal(model.rnns[0]._W0, W0)
    assert all(torch.equal(a, b) for a, b in zip(model.rnns[0]._Ws, Ws))
    assert not model.decoder.bias.any()


def test_rnn_hidden_state_carries_over_between_calls():
    torch.manual_seed(0)
    model = zoo.RNNModel(20, 8, 8, 8).eval()
    tokens = torch.randint(0, 20, (6, 2))
    with torch.no_grad():
        whole, h_whole = model(tokens, model.init_hidden(2))
        first, h = model(tokens[:3], model.init_hidden(2))
        second, h2 = model(tokens[3:], h)
    torch.testing.assert_close(torch.cat([first, second]), whole)
    torch.testing.assert_close(h2[0], h_whole[0])


def test_rnn_return_h_gives_raw_and_dropped_outputs():
    model = zoo.RNNModel(20, 8, 8, 8).eval()
    out = model(torch.randint(0, 20, (4, 2)), model.init_hidden(2), return_h=True)
    log_prob, hidden, raw_outputs, outputs = out
    assert raw_outputs[0].shape == outputs[0].shape == (4, 2, 8)
    torch.testing.assert_close(raw_outputs[0][-1], hidden[0][0])


def test_rnn_train_mode_uses_dropout_and_eval_does_not():
    torch.manual_seed(0)
    model = zoo.RNNModel(20, 8, 8, 8)
    tokens = torch.randint(0, 20, (4, 2))
    model.train()
    with torch.no_grad():
        a, _ = model(tokens, model.init_hidden(2))
        b, _ = model(tokens, model.init_hidden(2))
    assert not torch.allclose(a, b)
    model = zoo.RNNModel(20, 8, 8, 8, dropout=0, dropouth=0, dropoutx=0, dropouti=0, dropoute=0)
    with torch.no_grad():
        model.train()
        a, _ = model(tokens, model.init_hidden(2))
        model.eval()
        b, _ = model(tokens, model.init_hidden(2))
    torch.testing.assert_close(a, b)


def test_rnn_model_with_a_search_cell_has_no_genotype_and_prints():
    from zoo.rnn import DARTSCell

    class SearchCell(DARTSCell):
        def __init__(self, ninp, nhid, dropouth, dropoutx):
            super().__init__(ninp, nhid, dropouth, dropoutx, None)

    model = zoo.RNNModel(20, 8, 8, 8, cell_cls=SearchCell)
    assert model.genotype is None
    assert len(model.rnns[0]._Ws) == genotypes.rnn.STEPS
    assert "SearchCell" in repr(model)


# ---------------------------------------------------------------- modern PyTorch: autocast, channels_last, compile

@pytest.mark.parametrize("cls,size", [(zoo.NetworkCIFAR, 32), (zoo.NetworkImageNet, 224)])
def test_cnn_forward_under_bf16_autocast_on_cpu(cls, size):
    model = _small(cls, "DARTS_V2", layers=3).eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
    assert out.dtype == torch.bfloat16
    assert torch.isfinite(out.float()).all()
    torch.testing.assert_close(out.float(), ref, atol=0.15, rtol=0.1)


def test_cnn_trains_under_bf16_autocast_on_cpu():
    model = _small(zoo.NetworkCIFAR, "DARTS_V2", layers=3).train()
    model.drop_path_prob = 0.2
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, aux = model(torch.randn(2, 3, 32, 32))
    (logits.float().sum() + aux.float().sum()).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_rnn_forward_under_bf16_autocast_on_cpu():
    torch.manual_seed(0)
    model = zoo.RNNModel(20, 8, 8, 8).eval()
    tokens = torch.randint(0, 20, (4, 2))
    with torch.no_grad():
        ref, _ = model(tokens, model.init_hidden(2))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, _ = model(tokens, model.init_hidden(2))
    torch.testing.assert_close(out.float(), ref, atol=0.05, rtol=0.05)


@pytest.mark.parametrize("cls,size", [(zoo.NetworkCIFAR, 32), (zoo.NetworkImageNet, 224)])
def test_channels_last_forward_equals_contiguous(cls, size):
    model = _small(cls, "DARTS_V2", layers=3).eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        ref = model(x)
        model = model.to(memory_format=torch.channels_last)
        out = model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_torch_compile_graph_capture_trains_equal_to_eager():
    # aot_eager traces forward and backward through dynamo/AOTAutograd without a C++ compiler.
    model = _small(zoo.NetworkCIFAR, "DARTS_V2", layers=3, C=4).train()
    x = torch.randn(2, 3, 32, 32)  # the CIFAR auxiliary head needs the 8x8 map of a 32x32 input
    torch.manual_seed(1)
    ref_logits, ref_aux = model(x)
    ref_grad = torch.autograd.grad(ref_logits.sum() + ref_aux.sum(), model.classifier.weight)[0]
    compiled = torch.compile(model, backend="aot_eager")
    torch.manual_seed(1)
    logits, aux = compiled(x)
    grad = torch.autograd.grad(logits.sum() + aux.sum(), model.classifier.weight)[0]
    torch.testing.assert_close(logits, ref_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grad, ref_grad, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_torch_compile_inductor_cell_equals_eager():
    # The default backend (inductor) generates and compiles C++ kernels: ~25 s of CPU for one cell on a cold
    # cache, about a minute for a whole network, so this compiles one tiny DARTS_V2 reduction cell (with
    # sep_conv, dil_conv, max_pool, factorized-reduce skip); the whole network is traced by the aot_eager test.
    from zoo.cnn import Cell

    torch.manual_seed(0)
    cell = Cell(genotypes.get("DARTS_V2"), 8, 8, 4, reduction=True, reduction_prev=False).eval()
    s0, s1 = torch.randn(2, 8, 8, 8), torch.randn(2, 8, 8, 8)
    with torch.no_grad():
        ref = cell(s0, s1)
        out = torch.compile(cell, fullgraph=True)(s0, s1)
    assert out.shape == (2, 16, 4, 4)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- device-agnostic code

def test_no_module_of_the_zoo_hard_codes_cuda():
    offenders = []
    for path in sorted(ZOO_DIR.rglob("*.py")):
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if re.search(r"\.cuda\(|torch\.cuda\.\w+Tensor|Variable\(", code):
                offenders.append(f"{path.name}:{i}: {line.strip()}")
    assert offenders == []


def test_networks_follow_the_device_and_dtype_of_their_parameters():
    model = _small(zoo.NetworkCIFAR, "DARTS_V2", layers=3).to(torch.float64).train()
    model.drop_path_prob = 0.2
    logits, aux = model(torch.randn(2, 3, 32, 32, dtype=torch.float64))
    assert logits.dtype == aux.dtype == torch.float64
    rnn = zoo.RNNModel(20, 8, 8, 8).to(torch.float64).train()
    hidden = rnn.init_hidden(2)
    assert hidden[0].dtype == torch.float64
    log_prob, _ = rnn(torch.randint(0, 20, (3, 2)), hidden)
    assert log_prob.dtype == torch.float64


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_networks_run_on_cuda():
    model = _small(zoo.NetworkCIFAR, "DARTS_V2", layers=3).cuda().train()
    model.drop_path_prob = 0.2
    logits, aux = model(torch.randn(2, 3, 32, 32, device="cuda"))
    (logits.sum() + aux.sum()).backward()
    rnn = zoo.RNNModel(20, 8, 8, 8).cuda().train()
    log_prob, hidden = rnn(torch.randint(0, 20, (3, 2), device="cuda"), rnn.init_hidden(2))
    assert log_prob.is_cuda and hidden[0].is_cuda


def test_drop_path_with_a_tensor_probability_drops_whole_samples_and_is_exact_at_zero():
    from zoo.ops import drop_path

    x = torch.randn(64, 3, 4, 4)
    assert torch.equal(drop_path(x, torch.tensor(0.0)), x)
    torch.manual_seed(0)
    out = drop_path(x, torch.tensor(0.25))
    kept = [i for i in range(64) if out[i].abs().sum() > 0]
    assert 30 < len(kept) < 64  # about 3/4 kept
    for i in range(64):
        expected = x[i] / 0.75 if i in kept else torch.zeros_like(x[i])
        torch.testing.assert_close(out[i], expected)


def test_a_compiled_network_keeps_one_graph_while_a_tensor_drop_path_probability_changes():
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    model = _small(zoo.NetworkCIFAR, "DARTS_V2", layers=3, C=4).train()
    model.drop_path_prob = torch.zeros(())
    compiled = torch.compile(model, backend="eager")
    x = torch.randn(2, 3, 32, 32)
    for p in (0.0, 0.1, 0.2):
        model.drop_path_prob.fill_(p)
        compiled(x)
    assert counters["stats"]["unique_graphs"] == 1
    torch._dynamo.reset()
