"""timm's backbone conventions on the conv networks: in_chans (and the adapted pretrained stem), drop_path_rate."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

import zoo
from zoo import loader as Loader
from zoo import registry
from zoo.backbone import adapt_input_conv, adapt_mean_std
from zoo.registry import Source


def _small(cls=zoo.NetworkCIFAR, **kw):
    torch.manual_seed(0)
    return cls(8, 10, 5, True, "DARTS_V2", **kw).eval()


def _stem(model):
    return (model.stem if isinstance(model, zoo.NetworkCIFAR) else model.stem0)[0]


# ---------------------------------------------------------------- in_chans at creation

@pytest.mark.parametrize("cls,size", [(zoo.NetworkCIFAR, 32), (zoo.NetworkImageNet, 224)])
@pytest.mark.parametrize("in_chans", [1, 4])
def test_in_chans_at_creation_builds_a_stem_for_that_many_channels(cls, size, in_chans):
    model = _small(cls, in_chans=in_chans)
    assert _stem(model).weight.shape[1] == in_chans and model.in_chans == in_chans
    assert model.config["in_chans"] == in_chans
    with torch.no_grad():
        assert model(torch.randn(2, in_chans, size, size)).shape == (2, 10)


def test_rgb_networks_keep_the_original_config_and_bad_in_chans_are_refused():
    assert "in_chans" not in _small().config and _small().in_chans == 3
    for bad in (0, -1, 2.0, True, 10 ** 6):
        with pytest.raises(ValueError, match="in_chans"):
            _small(in_chans=bad)


def test_create_model_takes_in_chans_and_drop_path_rate_by_name():
    model = zoo.create_model("darts-cifar10", C=8, layers=5, in_chans=1, drop_path_rate=0.1)
    assert model.config["in_chans"] == 1 and model.config["drop_path_rate"] == 0.1
    assert model.drop_path_prob == 0.1


def test_in_chans_is_saved_and_loaded(tmp_path):
    model = _small(in_chans=2)
    x = torch.randn(2, 2, 32, 32)
    d = zoo.save_pretrained(model, tmp_path / "m")
    assert json.loads((d / "config.json").read_text())["args"]["in_chans"] == 2
    loaded = zoo.load(str(d))
    assert loaded.in_chans == 2
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


# ---------------------------------------------------------------- the pretrained stem, adapted as timm does

def test_adapt_input_conv_sums_for_one_channel_and_repeats_and_scales_for_more():
    w = torch.randn(6, 3, 3, 3)
    assert torch.allclose(adapt_input_conv(1, w), w.sum(1, keepdim=True))
    w5 = adapt_input_conv(5, w)
    assert w5.shape == (6, 5, 3, 3)
    assert torch.allclose(w5, torch.cat([w, w[:, :2]], 1) * 3 / 5)
    assert torch.allclose(adapt_input_conv(6, w), torch.cat([w, w], 1) / 2)
    assert torch.equal(adapt_input_conv(3, w), w)
    assert adapt_input_conv(1, w.half()).dtype == torch.float16
    with pytest.raises(ValueError, match="RGB"):
        adapt_input_conv(2, torch.randn(6, 4, 3, 3))


def test_adapt_mean_std_follows_the_stem():
    assert adapt_mean_std([0.1, 0.2, 0.6], 1) == pytest.approx([0.3])
    assert adapt_mean_std([0.1, 0.2, 0.6], 4) == pytest.approx([0.1, 0.2, 0.6, 0.1])


@pytest.mark.parametrize("cls,size", [(zoo.NetworkCIFAR, 32), (zoo.NetworkImageNet, 64)])
def test_a_grey_image_through_the_adapted_stem_gives_what_the_rgb_network_gives_for_it(cls, size):
    rgb = _small(cls)
    grey = _small(cls)
    grey.set_in_chans(1)
    x = torch.randn(2, 1, size, size)
    with torch.no_grad():
        assert torch.allclose(grey.forward_features(x), rgb.forward_features(x.expand(-1, 3, -1, -1)), atol=1e-5)


def test_load_with_in_chans_adapts_the_pretrained_stem_and_forgets_the_files_metrics(tmp_path):
    model = _small()
    d = zoo.save_pretrained(model, tmp_path / "m", metrics={"top1_error": 5.0}, metrics_source="a test")
    for n in (1, 4):
        loaded = zoo.load(str(d), in_chans=n)
        assert torch.allclose(_stem(loaded).weight, adapt_input_conv(n, _stem(model).weight))
        assert loaded.in_chans == n and loaded.zoo_config["args"]["in_chans"] == n
        assert loaded.zoo_config["metrics"] == {} and "adapted from 3 to %d" % n in loaded.zoo_config["stem"]
        # every other weight is the file's
        sd, ref = loaded.state_dict(), model.state_dict()
        assert all(torch.equal(sd[k], ref[k]) for k in ref if not k.startswith("stem.0."))
        again = zoo.load(str(zoo.save_pretrained(loaded, tmp_path / f"m{n}")))
        assert again.in_chans == n and torch.equal(_stem(again).weight, _stem(loaded).weight)


def test_create_model_pretrained_with_in_chans_and_drop_path_rate(tmp_path, monkeypatch):
    saved = zoo.save_pretrained(_small(), tmp_path / "published")
    monkeypatch.setattr(Loader, "hub_download", lambda repo, revision=None: saved)
    entry = registry._REGISTRY["darts-cifar10"]
    monkeypatch.setitem(registry._REGISTRY, "darts-cifar10", dataclasses.replace(
        entry, sources=(Source(kind="hub", location="org/darts-cifar10", layout="saved"),),
        args={**entry.args, "C": 8, "layers": 5}))
    model = zoo.create_model("darts-cifar10", pretrained=True, in_chans=1, drop_path_rate=0.2)
    assert model.in_chans == 1 and model.drop_path_prob == 0.2 and model.config["drop_path_rate"] == 0.2
    with pytest.raises(ValueError, match="fix the architecture"):
        zoo.create_model("darts-cifar10", pretrained=True, C=16)


def test_in_chans_does_not_apply_to_the_recurrent_network(zoo_ref, tmp_path):
    ref = zoo_ref("ptb_small.pt")
    c = ref["config"]
    model = zoo.RNNModel(c["ntoken"], c["ninp"], c["nhid"], c["nhidlast"], genotype=c["genotype"])
    d = zoo.save_pretrained(model, tmp_path / "ptb")
    with pytest.raises(ValueError, match="reads words"):
        zoo.load(str(d), in_chans=1)


# ---------------------------------------------------------------- drop_path_rate

def test_drop_path_rate_sets_the_drop_path_probability_and_is_checked():
    assert _small().drop_path_prob == 0.0 and "drop_path_rate" not in _small().config
    assert _small(drop_path_rate=0.3).drop_path_prob == 0.3
    for bad in (-0.1, 1.0, "0.1"):
        with pytest.raises(ValueError, match="drop_path_rate"):
            _small(drop_path_rate=bad)


# ---------------------------------------------------------------- feature maps (features_only, out_indices)

def test_imagenet_feature_maps_are_the_stem_at_a_quarter_then_the_last_cells_at_each_stride():
    model = _small(zoo.NetworkImageNet)  # 5 cells: reductions at cells 1 and 3
    info = model.feature_info
    assert info.reduction() == [4, 8, 16, 32]
    assert info.module_name() == ["stem0", "cells.0", "cells.2", "cells.4"]
    assert info.channels() == [8, 4 * 8, 4 * 16, 4 * 32]
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        last = model.forward_features(x)
        maps = model.features_only()(x)
    assert [tuple(m.shape[1:]) for m in maps] == [(8, 16, 16), (32, 8, 8), (64, 4, 4), (128, 2, 2)]
    sizes = [m.shape[-1] for m in maps]
    assert all(a > b for a, b in zip(sizes, sizes[1:]))
    assert torch.equal(maps[-1], last)
    assert maps[0].min() < 0  # stem0's own output, not the in-place ReLU stem1 applies to it


def test_cifar_feature_maps_are_the_last_module_at_strides_one_two_and_four():
    model = _small()
    info = model.feature_info
    assert info.reduction() == [1, 2, 4] and info.module_name() == ["cells.0", "cells.2", "cells.4"]
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        maps = model.features_only()(x)
    assert [m.shape[1] for m in maps] == info.channels()
    assert [m.shape[-1] for m in maps] == [32, 16, 8]
    # with no cell before the first reduction, the stem is the stride-1 map
    assert zoo.NetworkCIFAR(8, 10, 2, False, "DARTS_V2").feature_info.module_name() == ["stem", "cells.0", "cells.1"]


def test_out_indices_pick_maps_and_drop_the_cells_after_the_last_one():
    full = _small(zoo.NetworkImageNet)
    model = _small(zoo.NetworkImageNet).features_only(out_indices=(1, -2))
    assert model.out_indices == (1, 2) and model.feature_info.reduction() == [8, 16]
    assert model.feature_info.channels() == [32, 64] and len(model.feature_info) == 2
    assert len(model.cells) == 3 and not hasattr(model, "classifier") and not hasattr(model, "auxiliary_head")
    sd = model.state_dict()
    assert set(sd) < set(full.state_dict()) and all(torch.equal(v, full.state_dict()[k]) for k, v in sd.items())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        maps = model(x)
    assert [m.shape[-1] for m in maps] == [8, 4]
    for bad in ((4,), (2, 1), (1, 1), ()):
        with pytest.raises(ValueError, match="out_indices"):
            _small(zoo.NetworkImageNet).features_only(bad)
    with pytest.raises(ValueError, match="features_only network"):
        zoo.save_pretrained(model, "unused")


def test_features_only_through_create_model_and_load(tmp_path):
    model = zoo.create_model("darts-imagenet", C=8, layers=5, features_only=True, out_indices=(2, 3))
    assert model.feature_info.reduction() == [16, 32]
    d = zoo.save_pretrained(_small(), tmp_path / "m")
    backbone = zoo.load(str(d), features_only=True)
    assert backbone.feature_info.reduction() == [1, 2, 4] and not backbone.training
    with torch.no_grad():
        assert len(backbone(torch.randn(1, 3, 32, 32))) == 3


# ------------------------------------------ classifier: reset_classifier(0), get_classifier, forward_head

@pytest.mark.parametrize("cls,size", [(zoo.NetworkCIFAR, 32), (zoo.NetworkImageNet, 224)])
def test_reset_classifier_zero_leaves_the_pooled_features_as_output(cls, size):
    model = _small(cls)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        pooled = model.forward_head(model.forward_features(x), pre_logits=True)
        logits = model.forward_head(model.forward_features(x))
        assert torch.equal(model.get_classifier()(pooled), logits)
        model.reset_classifier(0)
        assert isinstance(model.get_classifier(), torch.nn.Identity) and model.num_classes == 0
        assert torch.equal(model(x), pooled) and pooled.shape == (2, model.num_features)
    model.train()
    out, aux = model(x[:1].expand(2, -1, -1, -1).contiguous())
    assert out.shape == (2, model.num_features) and aux.shape == (2, 768)
    model.reset_classifier(7)
    assert model.eval()(x).shape == (2, 7)


def test_num_classes_zero_at_creation_is_saved_and_loaded(tmp_path):
    model = zoo.NetworkCIFAR(8, 0, 5, False, "DARTS_V2").eval()
    x = torch.randn(1, 3, 32, 32)
    loaded = zoo.load(str(zoo.save_pretrained(model, tmp_path / "m")))
    with torch.no_grad():
        assert loaded(x).shape == (1, model.num_features) and torch.equal(loaded(x), model(x))


def test_a_checkpoint_file_of_a_grey_network_converts_with_its_in_chans(tmp_path):
    model = _small(in_chans=1)
    torch.save(model.state_dict(), tmp_path / "grey.pt")
    loaded = zoo.load(str(tmp_path / "grey.pt"))
    assert loaded.in_chans == 1 and all(torch.equal(v, model.state_dict()[k]) for k, v in loaded.state_dict().items())
