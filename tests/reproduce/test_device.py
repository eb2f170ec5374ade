"""reproduce.device: the one place for device choice, autocast, progress bars and per-device defaults."""
from __future__ import annotations

import torch

from reproduce.device import SEARCH_CHANNELS_LAST, autocast, pick_device, search_channels_last
from reproduce.search.accurate_bn import AccurateStatisticsBatchNorm2d
from reproduce.search.config import CIFAR10SearchConfig
from reproduce.search.loop import CNNSearch


def test_the_conv_search_takes_the_measured_fastest_layout_per_device_and_an_explicit_choice_wins():
    assert CIFAR10SearchConfig().channels_last is None  # the default: the device's
    # CPU: channels_last, faster than NCHW, with the BatchNorm statistics summed accurately (exact)
    assert search_channels_last(torch.device("cpu")) is True
    assert search_channels_last(torch.device("cuda")) is False  # not measured there: the plain layout
    assert search_channels_last(torch.device("cpu"), False) is False  # the explicit switch wins
    without = dict(SEARCH_CHANNELS_LAST, cpu=False)  # a device whose measured default is off
    assert search_channels_last(torch.device("cpu"), None, without) is False
    assert search_channels_last(torch.device("cpu"), True, without) is True
    searcher = CNNSearch(CIFAR10SearchConfig(C=4, layers=3, batch_size=2, device="cpu"), torch.device("cpu"),
                         load_data=False)
    conv = next(m for m in searcher.model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3))
    assert searcher.channels_last and conv.weight.is_contiguous(memory_format=torch.channels_last)
    batchnorms = [m for m in searcher.model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert batchnorms and all(type(m) is AccurateStatisticsBatchNorm2d for m in batchnorms)
    plain = CNNSearch(CIFAR10SearchConfig(C=4, layers=3, batch_size=2, device="cpu", channels_last=False),
                      torch.device("cpu"), load_data=False)
    assert not plain.channels_last
    assert all(type(m) is torch.nn.BatchNorm2d for m in plain.model.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_device_and_autocast_are_asked_in_one_place():
    assert pick_device("cpu") == torch.device("cpu")
    with autocast(torch.device("cpu"), "bf16"):
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), "none"):
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.float32
