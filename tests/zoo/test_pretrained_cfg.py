"""model.pretrained_cfg (timm's description of the weights and their inputs) and zoo.transforms reading it."""
from __future__ import annotations

import pytest
import torch
from PIL import Image

import zoo
from zoo.datasets import CIFAR_MEAN, CIFAR_STD, IMAGENET_MEAN


def _small_cifar(**kw):
    torch.manual_seed(0)
    return zoo.NetworkCIFAR(8, 10, 5, False, "DARTS_V2", **kw).eval()


def test_a_created_network_describes_its_inputs_and_has_no_weights_source():
    cfg = _small_cifar().pretrained_cfg
    assert cfg["mean"] == pytest.approx(list(CIFAR_MEAN)) and cfg["std"] == pytest.approx(list(CIFAR_STD))
    assert cfg["input_size"] == [3, 32, 32] and cfg["crop_pct"] == 1.0 and cfg["interpolation"] == "bilinear"
    assert cfg["num_classes"] == 10 and cfg["classifier"] == "classifier" and cfg["first_conv"] == "stem.0"
    assert cfg["source"] is None and cfg["architecture"] == "NetworkCIFAR"
    named = zoo.create_model("darts-imagenet", C=8, layers=5).pretrained_cfg
    assert named["architecture"] == "darts-imagenet" and named["input_size"] == [3, 224, 224]
    assert named["crop_pct"] == pytest.approx(224 / 256) and named["mean"] == pytest.approx(list(IMAGENET_MEAN))
    assert named["first_conv"] == "stem0.0"


def test_a_loaded_network_names_its_weights_source_and_follows_its_head_and_stem(tmp_path):
    source = {"provenance": "a test", "url": "https://example.org/w.pt", "sha256": "ab" * 32}
    d = zoo.save_pretrained(_small_cifar(), tmp_path / "m", name="darts-cifar10", source=source)
    model = zoo.load(str(d))
    cfg = model.pretrained_cfg
    assert cfg["source"] == source and cfg["url"] == source["url"] and cfg["architecture"] == "darts-cifar10"
    assert cfg["license"] == "apache-2.0" and cfg["dataset"] == "cifar10"
    assert zoo.pretrained_cfg(str(d)) == cfg  # from the directory, without loading the weights
    assert cfg["verified"] is None and cfg["verification"] == ""  # the source record says nothing of it
    unverified = {**source, "verified": False, "verification": "not verified against a published digest"}
    cfg = zoo.load(str(zoo.save_pretrained(_small_cifar(), tmp_path / "u", source=unverified))).pretrained_cfg
    assert cfg["verified"] is False and cfg["verification"] == "not verified against a published digest"
    grey = zoo.load(str(d), in_chans=1, num_classes=4)
    cfg = grey.pretrained_cfg
    assert cfg["input_size"] == [1, 32, 32] and cfg["num_classes"] == 4
    assert cfg["mean"] == pytest.approx([sum(CIFAR_MEAN) / 3]) and cfg["std"] == pytest.approx([sum(CIFAR_STD) / 3])
    grey.reset_classifier(0)
    assert grey.pretrained_cfg["num_classes"] == 0


def test_the_recurrent_network_has_a_pretrained_cfg_too(zoo_ref):
    c = zoo_ref("ptb_small.pt")["config"]
    cfg = zoo.RNNModel(c["ntoken"], c["ninp"], c["nhid"], c["nhidlast"], genotype=c["genotype"]).pretrained_cfg
    assert cfg["num_classes"] == c["ntoken"] and cfg["classifier"] == "decoder" and cfg["source"] is None
    assert "tokenizer" in cfg["preprocessing"] and "mean" not in cfg


def test_transforms_accept_a_saved_model_directory_that_load_accepts(tmp_path):
    d = zoo.save_pretrained(_small_cifar(), tmp_path / "m")
    t = zoo.transforms(str(d))
    red = t(Image.new("RGB", (32, 32), color=(255, 0, 0)))
    assert red.shape == (3, 32, 32) and red[0, 0, 0] == pytest.approx((1 - CIFAR_MEAN[0]) / CIFAR_STD[0])
    assert t(Image.new("RGB", (64, 48))).shape == (3, 32, 32)  # any image comes to the input size
    assert zoo.transforms(tmp_path / "m")(Image.new("RGB", (32, 32))).shape == (3, 32, 32)  # a Path too
    with pytest.raises(zoo.ModelLoadError, match="not a saved model"):
        zoo.transforms(str(tmp_path))


def test_transforms_and_pretrained_cfg_of_a_hub_id_read_its_config(tmp_path, monkeypatch):
    from zoo import loader as Loader

    d = zoo.save_pretrained(_small_cifar(in_chans=1), tmp_path / "m")
    monkeypatch.setattr(Loader, "hub_download", lambda repo, revision=None: d)
    assert zoo.pretrained_cfg("hf-hub:org/grey")["input_size"] == [1, 32, 32]
    assert zoo.transforms("hf-hub:org/grey@v1")(Image.new("RGB", (32, 32))).shape == (1, 32, 32)


def test_transforms_follow_the_model_in_chans():
    grey = zoo.transforms(_small_cifar(in_chans=1))
    assert grey(Image.new("RGB", (32, 32), color=(255, 255, 255))).shape == (1, 32, 32)
    with pytest.raises(ValueError, match="1 or 3 channels"):
        zoo.transforms(_small_cifar(in_chans=4))
    with pytest.raises(ValueError, match="text"):
        zoo.transforms("darts-ptb")
