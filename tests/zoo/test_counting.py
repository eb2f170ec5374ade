"""count_parameters and count_macs, and the conventions they follow (see zoo/counting.py)."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import zoo

# DARTS_V2 multiply-accumulates by this project's convention (Conv2d and Linear only, eval mode, auxiliary head
# not run, per image). The paper reports 574M for the ImageNet model without stating its convention.
DARTS_V2_CIFAR_MACS = 528_359_040
DARTS_V2_IMAGENET_MACS = 529_911_552


def _toy():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),  # 8*10*10 outputs x 3*3*3 = 21,600
        nn.BatchNorm2d(8),  # not counted
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False),  # depthwise: 800 x 9 = 7,200
        nn.Conv2d(8, 4, 1, stride=2, bias=False),  # 4*5*5 outputs x 8 = 800
        nn.AdaptiveAvgPool2d(1),  # not counted
        nn.Flatten(),
        nn.Linear(4, 5),  # 20
    )


def test_count_macs_counts_convolutions_and_linear_layers_per_image():
    assert zoo.count_macs(_toy(), (1, 3, 10, 10)) == 21_600 + 7_200 + 800 + 20
    assert zoo.count_macs(_toy(), (4, 3, 10, 10)) == 21_600 + 7_200 + 800 + 20  # per image, whatever the batch


# The full-size networks are counted on the meta device (shapes only, no arithmetic): the count depends
# on shapes alone, and a real 224x224 forward would cost seconds on a small CPU.

def test_count_macs_of_darts_v2_cifar_is_the_documented_figure():
    with torch.device("meta"):
        model = zoo.NetworkCIFAR(36, 10, 20, True, "DARTS_V2")
    assert zoo.count_macs(model, (1, 3, 32, 32)) == DARTS_V2_CIFAR_MACS


def test_count_macs_of_darts_v2_imagenet_is_the_documented_figure():
    with torch.device("meta"):
        model = zoo.NetworkImageNet(48, 1000, 14, True, "DARTS_V2")
    assert zoo.count_macs(model, (1, 3, 224, 224)) == DARTS_V2_IMAGENET_MACS


def test_count_macs_is_the_same_on_a_real_device_and_on_meta():
    real = zoo.NetworkCIFAR(8, 10, 5, True, "DARTS_V2")
    with torch.device("meta"):
        meta = zoo.NetworkCIFAR(8, 10, 5, True, "DARTS_V2")
    assert zoo.count_macs(real, (2, 3, 32, 32)) == zoo.count_macs(meta, (2, 3, 32, 32)) > 0


def test_count_macs_figures_are_the_ones_the_module_documents():
    import zoo.counting

    doc = zoo.counting.__doc__
    assert f"{DARTS_V2_CIFAR_MACS / 1e6:.1f}M" in doc and f"{DARTS_V2_IMAGENET_MACS / 1e6:.1f}M" in doc
    assert "574M" in doc


def test_count_macs_leaves_the_model_as_it_was():
    model = zoo.NetworkCIFAR(8, 10, 3, True, "DARTS_V2").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    zoo.count_macs(model, (2, 3, 32, 32))
    assert model.training
    assert all(not m._forward_hooks for m in model.modules())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # BN statistics untouched
    model.eval()
    zoo.count_macs(model, (1, 3, 32, 32))
    assert not model.training


def test_count_macs_ignores_the_auxiliary_head():
    with_aux = zoo.NetworkCIFAR(8, 10, 5, True, "DARTS_V2")
    without = zoo.NetworkCIFAR(8, 10, 5, False, "DARTS_V2")
    assert zoo.count_macs(with_aux, (1, 3, 32, 32)) == zoo.count_macs(without, (1, 3, 32, 32))


def test_count_parameters_leaves_out_the_auxiliary_head_by_default():
    model = zoo.NetworkCIFAR(8, 10, 5, True, "DARTS_V2")
    aux = sum(p.numel() for p in model.auxiliary_head.parameters())
    total = sum(p.numel() for p in model.parameters())
    assert aux > 0
    assert zoo.count_parameters(model) == total - aux
    assert zoo.count_parameters(model, exclude_auxiliary=False) == total
    assert zoo.count_parameters(zoo.NetworkCIFAR(8, 10, 5, False, "DARTS_V2")) == total - aux


def test_count_parameters_counts_tied_weights_once():
    model = zoo.RNNModel(100, 16, 16, 16)
    expected = 100 * 16 + (16 + 16) * 32 + 8 * 16 * 32 + 100  # embedding, W0, 8 steps, decoder bias
    assert zoo.count_parameters(model) == expected


def test_count_parameters_of_the_ptb_model_is_22_96_million():
    assert zoo.count_parameters(zoo.RNNModel(10000, 850, 850, 850, genotype="DARTS_V2")) == 22_960_000


def test_count_parameters_excludes_buffers():
    bn = nn.BatchNorm2d(4)
    assert zoo.count_parameters(bn) == 8


@pytest.mark.parametrize("name,cifar", [("DARTS_V2", 3_349_342), ("DARTS_V1", 3_169_414)])
def test_count_parameters_matches_the_original_count_parameters_in_mb(name, cifar):
    # the original: np.sum(np.prod(v.size()) for name, v in model.named_parameters() if "auxiliary" not in name)
    model = zoo.NetworkCIFAR(36, 10, 20, True, name)
    original = sum(v.numel() for n, v in model.named_parameters() if "auxiliary" not in n)
    assert zoo.count_parameters(model) == original == cifar


def test_count_macs_accepts_one_image_shape_and_refuses_bad_shapes():
    assert zoo.count_macs(_toy(), (3, 10, 10)) == zoo.count_macs(_toy(), (1, 3, 10, 10))
    with pytest.raises(ValueError, match="input_size"):
        zoo.count_macs(_toy(), (10, 10))
