"""The zoo's CNNs: every genotype builds with the original's parameter counts, trains and evaluates; drop-path."""
from __future__ import annotations

import pytest
import torch
from network_helpers import CNN_NAMES, _small

import genotypes
import zoo
from zoo.ops import Identity

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
