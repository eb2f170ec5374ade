"""Exported models of runs on other data than the paper's: the directory records classes, channels,
mean/std and size; zoo.load / zoo.transforms / zoo.info read them; the card names the data actually used
and says when the figures are not comparable with the paper's."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from image_helpers import write_image_folder
from PIL import Image
from search_helpers import one_thread
from train_helpers import make_cifar, make_imagefolder, tiny_cifar, tiny_imagenet

import zoo
from reproduce.export import export_run
from reproduce.train import RECIPES, train

CELL = "DARTS_V2"


@pytest.fixture(scope="module")
def gray_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("d")
    data = write_image_folder(root / "gray", {"circle": 6, "square": 4}, size=12)
    config = RECIPES["images"](data=str(data), C=4, layers=3, epochs=1, batch_size=8, device="cpu",
                               deterministic=True, arch=CELL)
    with one_thread():
        record = train("images", config, root / "run", progress=False)
    return data, record, export_run(root / "run", root / "model")


def test_the_saved_model_records_classes_channels_size_and_normalisation(gray_model):
    data, record, saved = gray_model
    info = zoo.info(str(saved))
    assert info["class_names"] == ["circle", "square"]
    assert info["args"]["in_chans"] == 1 and info["args"]["num_classes"] == 2
    assert info["preprocessing"]["input_size"] == [1, 12, 12]
    assert info["preprocessing"]["mean"] == record["data"]["mean"] and info["data"]["image_size"] == 12
    model = zoo.load(str(saved))
    assert model.in_chans == 1 and model.num_classes == 2


def test_transforms_take_a_grayscale_or_colour_pil_image_as_training_saw_it(gray_model):
    data, record, saved = gray_model
    model, tf = zoo.load(str(saved)), zoo.transforms(str(saved))
    path = sorted((data / "train" / "square").iterdir())[0]
    x = tf(Image.open(path))
    pixels = torch.from_numpy(np.asarray(Image.open(path), dtype=np.float32) / 255.0)[None]
    expected = (pixels - record["data"]["mean"][0]) / record["data"]["std"][0]
    assert torch.allclose(x, expected, atol=1e-6)
    assert tf(Image.open(path).convert("RGB")).shape == (1, 12, 12)  # colour input made grayscale
    assert model(x[None]).shape == (1, 2)


def test_the_card_names_the_folder_its_classes_and_size_and_says_not_comparable(gray_model):
    data, _, saved = gray_model
    card = (saved / "README.md").read_text()
    assert f"image folder {data}: 2 classes (circle, square), 1-channel 12x12 images" in card
    assert "NOT comparable with the paper: own data: no paper target" in card
    assert "CIFAR-10" not in card and "profile paper" not in card and "'input_size': [1, 12, 12]" in card


def test_an_image_folder_given_to_the_imagenet_recipe_is_not_called_imagenet(tmp_path):
    data = make_imagefolder(tmp_path / "three", classes=3, per_class=2)
    with one_thread():
        train("imagenet", tiny_imagenet(data, C=8), tmp_path / "run", progress=False)
    card = (export_run(tmp_path / "run", tmp_path / "m") / "README.md").read_text()
    assert "ILSVRC2012" not in card.replace("not ImageNet (ILSVRC2012)", "") and "imagenet-1k" not in card
    assert "3 classes, not ImageNet (ILSVRC2012)" in card and "NOT comparable with the paper" in card
    assert "profile paper" not in card and zoo.info(str(tmp_path / "m"))["class_names"] == [
        "n00000000", "n00000001", "n00000002"]


def test_a_small_dataset_in_cifar10_format_at_8x8_is_not_called_cifar10(tmp_path):
    data = make_cifar(tmp_path / "digits")
    with one_thread():
        train("cifar10", tiny_cifar(data, epochs=1, image_size=8, auxiliary=False), tmp_path / "run",
              progress=False)
    saved = export_run(tmp_path / "run", tmp_path / "m")
    card = (saved / "README.md").read_text()
    assert "not CIFAR-10 (48 training images)" in card and "averaged down from 32x32 to 8x8" in card
    assert "'input_size': [3, 8, 8]" in card and "datasets:\n- cifar10" not in card
    assert zoo.transforms(str(saved))(Image.new("RGB", (32, 32))).shape == (3, 8, 8)


def test_zoo_eval_matches_the_folders_of_a_val_split_lacking_classes_by_name(gray_model, tmp_path):
    from zoo.evaluate import dataset_of
    from zoo.folder_eval import evaluate_folder

    data, _, saved = gray_model
    assert dataset_of(zoo.load(str(saved))) == "folder"  # `zoo eval MODEL --data DIR` needs no --dataset
    val = tmp_path / "val" / "square"
    val.mkdir(parents=True)
    for p in sorted((data / "train" / "square").iterdir())[:2]:
        (val / p.name).write_bytes(p.read_bytes())
    result = evaluate_folder(zoo.load(str(saved)), tmp_path / "val", batch_size=2, workers=0)
    assert set(result["per_class"]) == {"square"} and result["per_class"]["square"]["n"] == 2
