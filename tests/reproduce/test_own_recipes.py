"""The training recipe of one's own images: the CIFAR recipe up to 64 px, the ImageNet recipe above (the stem's
rule), ``--recipe`` to choose, every field still an option; the choice in config.json, the record, the dry run
and the exported card."""
from __future__ import annotations

import json

import pytest
import torch
from image_helpers import write_image_folder
from search_helpers import one_thread

import zoo
from reproduce.__main__ import main
from reproduce.config import ConfigError
from reproduce.data.augment import augment_each, imagenet_train_transform
from reproduce.export import export_run
from reproduce.tasks import make_config
from reproduce.train import train
from reproduce.train.recipes import ImageNetConfig

TINY = dict(C=4, layers=3, epochs=1, batch_size=4, device="cpu", deterministic=True)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """96x96 RGB images (above 64 px) and 16x16 grayscale ones, 2 classes of 4 each."""
    root = tmp_path_factory.mktemp("recipes")
    return (write_image_folder(root / "large", {"a": 4, "b": 4}, size=96, mode="RGB"),
            write_image_folder(root / "small", {"a": 4, "b": 4}, size=16))


def test_large_images_take_the_imagenet_recipe_small_ones_the_cifar_recipe(folders):
    large, small = folders
    big = make_config("train", "images", {"data": str(large)})
    imagenet = ImageNetConfig()
    assert big.recipe == "imagenet" and not big.cutout
    for name in ("epochs", "C", "layers", "label_smooth", "batch_size", "learning_rate", "gamma", "weight_decay",
                 "drop_path_prob"):
        assert getattr(big, name) == getattr(imagenet, name), name
    little = make_config("train", "images", {"data": str(small)})
    assert (little.recipe, little.epochs, little.C, little.layers, little.cutout, little.label_smooth) == (
        "cifar", 600, 36, 20, True, 0.0)
    # --image-size decides, as it decides the stem
    assert make_config("train", "images", {"data": str(small), "image_size": 96}).recipe == "imagenet"
    # images given from Python: their side
    x = torch.zeros(4, 3, 96, 96, dtype=torch.uint8)
    assert make_config("train", "images", {"data": "tensors"}, data=(x, torch.tensor([0, 1, 0, 1]))
                       ).recipe == "imagenet"


def test_the_recipe_is_overridden_and_every_field_over_it(folders):
    large, small = folders
    cifar = make_config("train", "images", {"data": str(large), "recipe": "cifar"})
    assert (cifar.recipe, cifar.epochs, cifar.C, cifar.cutout, cifar.label_smooth) == ("cifar", 600, 36, True, 0.0)
    mixed = make_config("train", "images", {"data": str(small), "recipe": "imagenet", "epochs": 3, "lr": 0.5,
                                            "label_smooth": 0.2})
    assert (mixed.recipe, mixed.epochs, mixed.learning_rate, mixed.label_smooth, mixed.C) == (
        "imagenet", 3, 0.5, 0.2, 48)
    with pytest.raises(ConfigError, match="cutout belongs to the cifar recipe"):
        make_config("train", "images", {"data": str(large), "cutout": True})


def test_the_imagenet_augmentation_at_any_size_and_channels_draws_per_image():
    g = torch.Generator().manual_seed(0)
    for channels in (1, 3):
        x = torch.randint(0, 256, (3, channels, 20, 20), dtype=torch.uint8, generator=g)
        tf = imagenet_train_transform(20, [0.5] * channels, [0.25] * channels, tensors=True)
        seeds = torch.tensor([1, 2, 3])
        out = augment_each(x, tf, seeds)
        assert out.shape == (3, channels, 20, 20) and out.dtype == torch.float32
        assert torch.equal(augment_each(x[1:], tf, seeds[1:]), out[1:])  # an image's draws are its own seed's
        assert not torch.equal(augment_each(x, tf, seeds + 10), out)


def test_runs_on_large_and_small_images_complete_and_export_naming_their_recipe(folders, tmp_path, capsys):
    large, small = folders
    with one_thread():
        big = train("images", {"data": str(large), **TINY}, tmp_path / "big", progress=False)
        assert main(["train", "images", "--data", str(small), "--out", str(tmp_path / "small"), "--recipe", "imagenet",
                     "--epochs", "2", "--C", "4", "--layers", "3", "--batch-size", "4", "--lr", "0.05",
                     "--device", "cpu", "--no-progress"]) == 0
    capsys.readouterr()
    assert big["config"]["recipe"] == big["data"]["recipe"] == "imagenet" and big["data"]["stem"] == "imagenet"
    assert json.loads((tmp_path / "big" / "config.json").read_text())["recipe"] == "imagenet"
    small_record = json.loads((tmp_path / "small" / "record.json").read_text())
    assert small_record["data"]["recipe"] == "imagenet" and small_record["data"]["stem"] == "cifar"
    curve = [json.loads(line) for line in (tmp_path / "small" / "metrics.jsonl").read_text().splitlines()]
    assert [m["lr"] for m in curve] == [0.05, 0.05 * 0.97]  # the ImageNet recipe's step decay
    big_model = export_run(tmp_path / "big", tmp_path / "big-model")
    assert isinstance(zoo.load(str(big_model)), zoo.NetworkImageNet)
    assert "the ImageNet recipe" in (big_model / "README.md").read_text()
    with one_thread():
        cifar = train("images", {"data": str(small), **TINY}, tmp_path / "cifar", progress=False)
    assert cifar["config"]["recipe"] == cifar["data"]["recipe"] == "cifar"
    card = (export_run(tmp_path / "cifar", tmp_path / "cifar-model") / "README.md").read_text()
    assert "the CIFAR recipe" in card and "the ImageNet recipe" not in card


def test_the_dry_run_names_the_recipe(folders, tmp_path, capsys):
    large, _ = folders
    assert main(["images", "--data", str(large), "--out", str(tmp_path / "x"), "--dry-run", "--launcher", "slurm",
                 "--C", "4", "--layers", "3", "--epochs", "1", "--device", "cpu", "--no-progress"]) == 0
    assert "training recipe: the ImageNet recipe" in capsys.readouterr().out and not (tmp_path / "x").exists()


def test_a_streamed_imagenet_recipe_run_equals_the_in_memory_run(folders, tmp_path):
    """The per-image seeds make the ImageNet recipe's draws independent of where the images come from."""
    _, small = folders
    base = dict(data=str(small), image_size=16, normalize="0.5/0.25", recipe="imagenet", arch="DARTS_V2",
                auxiliary=False, **TINY)
    with one_thread():
        memory = train("images", base, tmp_path / "memory", progress=False)
        streamed = train("images", dict(base, in_memory_mb=0, workers=2), tmp_path / "stream", progress=False)
    assert streamed["data"]["path"] == "streamed from disk" and streamed["data"]["recipe"] == "imagenet"
    assert [{k: v for k, v in m.items() if k != "time_s"} for m in streamed["curve"]] == [
        {k: v for k, v in m.items() if k != "time_s"} for m in memory["curve"]]
    assert streamed["final"] == memory["final"]
