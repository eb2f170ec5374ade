"""One's own images at their edges: the test hold-out kept out of the search, Datasets of tensors, mixed sizes
from Python, empty splits and hold-outs, a single class, one conversion line per folder, and the exported
preprocessing of images in other modes."""
from __future__ import annotations

import logging

import pytest
import torch
from PIL import Image
from train_helpers import make_imagefolder, train_interrupted

from reproduce import config as run_config
from reproduce.data.images import DataSourceError, load_images
from reproduce.data.own import training_images
from reproduce.search.config import ImageSearchConfig
from reproduce.search.data import load_image_halves
from reproduce.train.recipes import ImagesConfig
from zoo.datasets import DatasetFormatError
from zoo.pretrained_cfg import eval_transforms_of


def _folder_without_test(root, classes=3, per_class=10):
    """An image folder of train/ only (distinct random images), so both the search and the training hold out."""
    g = torch.Generator().manual_seed(1)
    for c in range(classes):
        d = root / "train" / f"class{c}"
        d.mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(torch.randint(0, 256, (8, 8, 3), dtype=torch.uint8, generator=g).numpy()).save(
                d / f"{i}.png")
    return root


def _pixels(x: torch.Tensor) -> set:
    return {bytes(im.numpy().tobytes()) for im in x}


def test_the_search_never_sees_the_images_the_training_holds_out_as_its_test_split(tmp_path):
    folder = _folder_without_test(tmp_path / "own")
    search_cfg = run_config.build(ImageSearchConfig, dict(data=str(folder), C=4, layers=3, batch_size=4,
                                                          device="cpu"))
    halves = load_image_halves(search_cfg, "cpu")
    train_cfg = run_config.build(ImagesConfig, dict(data=str(folder), device="cpu"))
    trained = training_images(train_cfg)
    test_images = _pixels(trained.evaluate[0])
    assert trained.eval_name == "test" and len(test_images) == 6  # 20 % of 10 per class, 3 classes
    searched = _pixels(halves.images.cpu())  # both halves: the weights' and the architecture's
    assert len(searched) == 24 and not searched & test_images
    held = halves.record["split"]["test_held_out"]
    assert held["sizes"] == [24, 6] and held["test_portion"] == 0.2


def test_an_experiments_searches_take_the_trainings_test_hold_out(tmp_path):
    from reproduce.experiments import ExperimentOptions, plan_experiment

    folder = _folder_without_test(tmp_path / "own")
    common = dict(experiment="images", runs=1, out=str(tmp_path / "exp"), data=str(folder), device="cpu",
                  search=True, progress=False, report=False)
    plan = plan_experiment(ExperimentOptions(**common, train_overrides={"split_seed": 5, "test_portion": 0.3}))
    search = plan.searches[0].config
    assert (search["split_seed"], search["test_portion"]) == (5, 0.3)
    with pytest.raises(ValueError, match="--search-split-seed 2 differs from the training's 0") as e:
        plan_experiment(ExperimentOptions(**common, search_overrides={"split_seed": 2}))
    assert "\n" not in str(e.value) and not (tmp_path / "exp").exists()


class TensorItems(torch.utils.data.Dataset):
    """Items as a model zoo's transforms give them: uint8 CHW tensors, or floats in [0, 1] (ToTensor)."""

    def __init__(self, floats: bool, sizes=(8,)):
        self.floats, self.sizes = floats, sizes

    def __len__(self):
        return 6

    def __getitem__(self, i):
        side = self.sizes[i % len(self.sizes)]
        x = torch.full((3, side, side), 10 * i, dtype=torch.uint8)
        return (x.float() / 255 if self.floats else x), i % 2


@pytest.mark.parametrize("floats", [False, True])
def test_a_dataset_of_tensors_loads(floats):
    data = load_images(TensorItems(floats))
    assert data.train[0].shape == (6, 3, 8, 8) and data.train[0][3, 0, 0, 0].item() == 30


def test_image_size_resizes_a_datasets_images_of_mixed_sizes():
    with pytest.raises(DataSourceError, match="different sizes"):
        load_images(TensorItems(False, sizes=(8, 10)))
    data = load_images(TensorItems(False, sizes=(8, 10)), image_size=8)
    assert data.train[0].shape == (6, 3, 8, 8) and data.size == 8


def test_labels_from_python_must_name_two_classes():
    with pytest.raises(DataSourceError, match="name 1 class"):
        load_images((torch.zeros(4, 8, 8, dtype=torch.uint8), torch.tensor([1, 1, 1, 1])))


def test_an_empty_test_folder_and_empty_hold_outs_are_refused_in_one_line(tmp_path):
    folder = make_imagefolder(tmp_path / "a", classes=2, per_class=4)
    (folder / "test").mkdir()
    with pytest.raises(DatasetFormatError, match="no images in any class folder") as e:
        load_images(folder, 8)
    assert "\n" not in str(e.value)
    single = _folder_without_test(tmp_path / "b", classes=2, per_class=1)
    cfg = run_config.build(ImagesConfig, dict(data=str(single), device="cpu"))
    with pytest.raises(DataSourceError, match="test hold-out of the training images is empty"):
        training_images(cfg)
    two = _folder_without_test(tmp_path / "c", classes=2, per_class=2)  # one test image per class, one to train
    cfg = run_config.build(ImagesConfig, dict(data=str(two), device="cpu", valid_portion=0.5))
    with pytest.raises(DataSourceError, match="validation hold-out .* is empty"):
        training_images(cfg)


def test_images_converted_from_other_modes_are_logged_once_per_folder(tmp_path, caplog):
    for split in ("train", "test"):
        for c in ("a", "b"):
            d = tmp_path / split / c
            d.mkdir(parents=True)
            Image.new("RGBA", (8, 8), (1, 2, 3, 4)).save(d / "x.png")
            Image.new("RGB", (8, 8)).save(d / "y.png")
    with caplog.at_level(logging.INFO):
        load_images(tmp_path)
    lines = [r.getMessage() for r in caplog.records if "converted" in r.getMessage()]
    assert lines == ["converted 4 RGBA images to RGB as PIL's Image.convert does"]


@pytest.mark.parametrize("mode", ["RGBA", "P", "L", "CMYK"])
def test_an_exported_colour_models_transforms_take_images_of_any_mode(mode):
    cfg = {"input_size": (3, 8, 8), "crop_pct": 1.0, "mean": (0.5,) * 3, "std": (0.25,) * 3,
           "interpolation": "bilinear"}
    x = eval_transforms_of(cfg)(Image.new(mode, (8, 8)))
    assert x.shape == (3, 8, 8)


def test_a_training_resumed_on_other_images_is_refused_and_keeps_its_checkpoint(tmp_path):
    from search_helpers import one_thread

    from reproduce.rundir import DamagedCheckpointError
    from reproduce.train import RECIPES, train
    folder = _folder_without_test(tmp_path / "own", classes=2, per_class=5)
    config = RECIPES["images"](data=str(folder), C=4, layers=3, epochs=2, batch_size=4, device="cpu",
                               deterministic=True, arch="DARTS_V2")
    out = tmp_path / "run"
    with one_thread():
        train_interrupted(config, out, "images")
    checkpoint = (out / "checkpoint.pt").read_bytes()
    Image.new("RGB", (8, 8), (9, 9, 9)).save(folder / "train" / "class0" / "0.png")  # one image changed
    with one_thread(), pytest.raises(DamagedCheckpointError, match="trained on other images") as e:
        train("images", config, out, progress=False)
    assert "\n" not in str(e.value) and (out / "checkpoint.pt").read_bytes() == checkpoint


def test_seeds_trained_on_other_images_are_not_aggregated_as_repeats():
    from reproduce.aggregate import MixedConfigError, check_consistent

    def record(seed, digest):
        data = {"classes": ["a", "b"], "in_chans": 3, "image_size": 8, "mean": [0.5] * 3, "std": [0.2] * 3,
                "digest": digest, "source": f"image folder /data/{digest}"}
        return {"experiment": "images", "kind": "train", "dataset": "images", "genotype": "g", "seed": seed,
                "config": {"seed": seed, "data": f"/data/{digest}"}, "data": data}

    check_consistent([record(0, "x"), dict(record(1, "x"), data=dict(record(1, "x")["data"], source="moved"))])
    with pytest.raises(MixedConfigError, match="data"):
        check_consistent([record(0, "x"), record(1, "y")])
    with pytest.raises(MixedConfigError, match="data"):
        check_consistent([record(0, "x"), dict(record(1, "x"), data=dict(record(1, "x")["data"], classes=["a", "c"]))])


def test_a_run_saved_before_a_field_existed_is_told_to_start_afresh(tmp_path):
    """A saved config without a field this version has cannot be resumed "with the saved values"."""
    import json

    from reproduce.rundir import RunConfigMismatchError, RunDir

    (tmp_path / "config.json").write_text(json.dumps({"seed": 0, "epochs": 2}))
    with pytest.raises(RunConfigMismatchError, match="earlier version of this code, without the field.s. "
                                                     "test_portion.*Start afresh in another --out"):
        RunDir(tmp_path).check_config({"seed": 0, "epochs": 2, "test_portion": 0.2})

