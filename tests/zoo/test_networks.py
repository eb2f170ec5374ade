"""The zoo's networks equal the original (quark0/darts f276dd3): outputs, state-dict layout, mismatched state dicts.
Every genotype's counts and training: test_networks_genotypes.py; the RNN: test_networks_rnn.py; autocast,
channels_last, compile and devices: test_networks_modern.py."""
from __future__ import annotations

import collections
import re

import pytest
import torch
from network_helpers import TOL, _small

import zoo

FIXTURES = [("cifar_small.pt", zoo.NetworkCIFAR), ("imagenet_small.pt", zoo.NetworkImageNet)]


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
