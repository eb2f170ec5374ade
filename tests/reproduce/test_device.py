"""reproduce.device: the one place for device choice, autocast, progress bars and per-device defaults."""
from __future__ import annotations

import torch

from reproduce.device import SEARCH_CHANNELS_LAST, autocast, pick_device, search_channels_last
from reproduce.search.config import CIFAR10SearchConfig
from reproduce.search.loop import CNNSearch


def test_the_conv_search_takes_the_measured_fastest_layout_per_device_and_an_explicit_choice_wins():
    assert CIFAR10SearchConfig().channels_last is None  # the default: the device's
    # CPU: measured faster but unsafe (PyTorch's CPU channels_last kernels crash at small sizes): off
    assert search_channels_last(torch.device("cpu")) is False
    assert search_channels_last(torch.device("cuda")) is False  # not measured there: the plain layout
    assert search_channels_last(torch.device("cpu"), True) is True  # the explicit switch wins
    with_table = dict(SEARCH_CHANNELS_LAST, cpu=True)  # a device whose measured default is on
    assert search_channels_last(torch.device("cpu"), None, with_table) is True
    assert search_channels_last(torch.device("cpu"), False, with_table) is False
    cfg = CIFAR10SearchConfig(C=4, layers=3, batch_size=2, device="cpu", channels_last=True)
    searcher = CNNSearch(cfg, torch.device("cpu"), load_data=False)
    conv = next(m for m in searcher.model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3))
    assert searcher.channels_last and conv.weight.is_contiguous(memory_format=torch.channels_last)
    plain = CNNSearch(CIFAR10SearchConfig(C=4, layers=3, batch_size=2, device="cpu"), torch.device("cpu"),
                      load_data=False)
    assert not plain.channels_last


def test_device_and_autocast_are_asked_in_one_place():
    assert pick_device("cpu") == torch.device("cpu")
    with autocast(torch.device("cpu"), "bf16"):
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), "none"):
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.float32
