"""image_size: the 32x32 CIFAR-10 files read by the real loader and averaged down for the search and the recipe."""
from __future__ import annotations

import pytest
import torch
from search_helpers import cifar_config, one_thread
from search_helpers import tiny_cifar as tiny_search_cifar
from train_helpers import make_cifar, tiny_cifar

from reproduce import image_size
from reproduce.config import ConfigError
from reproduce.search import search
from reproduce.search.data import load_cifar_halves
from reproduce.train import train
from reproduce.train.cifar import augment, draw_augmentation


def test_downscale_averages_blocks_and_keeps_uint8():
    x = torch.zeros(1, 3, 32, 32, dtype=torch.uint8)
    x[..., :4, :4] = 200  # one 4x4 block: one pixel at 8x8
    x[..., 4:8, 4:6] = 100  # half a block: its mean 50
    small = image_size.downscale(x, 8)
    assert small.dtype == torch.uint8 and small.shape == (1, 3, 8, 8)
    assert small[0, 0, 0, 0] == 200 and small[0, 0, 1, 1] == 50 and small[0, 0, 0, 1] == 0
    assert image_size.downscale(x, 32) is x
    assert [image_size.crop_padding(s) for s in (8, 16, 32)] == [1, 2, 4]
    with pytest.raises(ValueError, match="8, 16, 32"):
        image_size.downscale(x, 12)


def test_augmentation_of_small_images_crops_with_proportional_padding():
    g = torch.Generator().manual_seed(0)
    p = draw_augmentation(500, g, size=8)
    assert int(p["oy"].max()) == 2 and int(p["oy"].min()) == 0 and int(p["cy"].max()) <= 7
    x = torch.randint(0, 256, (500, 3, 8, 8), dtype=torch.uint8, generator=g)
    out = augment(x, p, torch.zeros(3), torch.ones(3), cutout_length=0)
    assert out.shape == (500, 3, 8, 8)
    centred = (p["oy"] == 1) & (p["ox"] == 1) & ~p["flip"]
    assert torch.allclose(out[centred], x[centred].float() / 255)


def test_recipe_and_search_run_on_8x8_images_from_the_cifar_files(tmp_path):
    data = make_cifar(tmp_path / "c")
    with one_thread():
        task_cfg = tiny_cifar(data, image_size=8, auxiliary=False, epochs=1)
        record = train("cifar10", task_cfg, tmp_path / "run", progress=False)
    assert record["status"] == "finished" and record["config"]["image_size"] == 8

    halves = load_cifar_halves(cifar_config(tiny_search_cifar(tmp_path / "s"), image_size=8), "cpu")
    x, _ = halves.next_valid()
    assert x.shape[-2:] == (8, 8)
    with one_thread():
        rec = search("cifar10", cifar_config(tmp_path / "s", image_size=8, epochs=1), tmp_path / "search",
                     progress=False)
    assert rec["status"] == "finished"


def test_the_auxiliary_head_needs_32x32_images(tmp_path):
    with pytest.raises(ConfigError, match="auxiliary head needs 32x32"):
        tiny_cifar(tmp_path, image_size=16, auxiliary=True).validate()
    with pytest.raises(ConfigError, match="image_size must be"):
        tiny_cifar(tmp_path, image_size=12, auxiliary=False).validate()
    with pytest.raises(ConfigError, match="image_size must be"):
        cifar_config(tmp_path, image_size=12).validate()

