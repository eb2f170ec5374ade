"""Search and training on one's own images (``search images`` / ``train images``), end to end on small
folders of PNG files: grayscale and RGB, sizes other than 32, several class counts, imbalanced classes."""
from __future__ import annotations

import json

import pytest
import torch
from image_helpers import write_image_folder
from search_helpers import one_thread
from train_helpers import refused_in_one_line

from reproduce.__main__ import main
from reproduce.data.images import DataSourceError
from reproduce.data.own import check_image_size, fits_network
from reproduce.search import SEARCH_CONFIGS, search
from reproduce.search.cnn_supernet import Network
from reproduce.train import RECIPES, train

TINY_SEARCH = dict(C=4, layers=3, batch_size=8, epochs=1, device="cpu", deterministic=True, order=1)
TINY_TRAIN = dict(C=4, layers=3, batch_size=8, epochs=4, device="cpu", deterministic=True, drop_path_prob=0.0,
                  learning_rate=0.05)


def options(fields: dict) -> list:
    """Config fields as command-line options."""
    out = []
    for k, v in fields.items():
        name = "--" + k.replace("_", "-")
        out += ([name] if v else ["--no-" + name[2:]]) if isinstance(v, bool) else [name, str(v)]
    return out


@pytest.fixture(scope="module")
def gray3(tmp_path_factory):
    """3 imbalanced grayscale classes of 12x12 images, no val/ or test/."""
    return write_image_folder(tmp_path_factory.mktemp("gray3"), {"dark": 20, "mid": 12, "light": 8}, size=12)


def test_searched_cell_trained_on_grayscale_images_beats_the_majority_class(gray3, tmp_path, capsys):
    with one_thread():
        assert main(["search", "images", "--data", str(gray3), "--out", str(tmp_path / "s"), "--no-progress",
                     *options(TINY_SEARCH)]) == 0
        assert main(["train", "images", "--data", str(gray3), "--genotype-from", str(tmp_path / "s"), "--out",
                     str(tmp_path / "t"), "--no-progress",
                     *options(TINY_TRAIN)]) == 0
    searched = json.loads((tmp_path / "s" / "record.json").read_text())
    assert searched["data"]["classes"] == ["dark", "light", "mid"]
    assert searched["data"]["in_chans"] == 1 and searched["data"]["image_size"] == 12
    assert searched["data"]["split"]["rule"] == "stratified" and len(searched["data"]["split"]["digest"]) == 16
    record = json.loads((tmp_path / "t" / "record.json").read_text())
    final = record["final"]
    # held-out test: 4 dark, 2 mid, 2 light -> the majority class scores 50 % error; the classes are far apart
    assert final["test_majority_error"] == 50.0
    assert final["test_error"] <= final["test_majority_error"] - 25
    assert record["data"]["num_classes"] == 3 and record["data"]["split"]["test"]["sizes"] == [32, 8]
    assert len(record["data"]["mean"]) == 1


def test_rgb_images_with_val_and_test_resized_to_another_size(tmp_path):
    root = write_image_folder(tmp_path / "rgb", {"a": 6, "b": 6}, size=20, mode="RGB",
                              splits={"val": {"a": 2, "b": 2}, "test": {"a": 2, "b": 1}})
    with one_thread():
        rec = search("images", SEARCH_CONFIGS["images"](data=str(root), image_size=16, **{**TINY_SEARCH,
                                                                                           "order": 2}),
                     tmp_path / "s", progress=False)
        trained = train("images", RECIPES["images"](data=str(root), image_size=16, genotype=rec["genotype"],
                                                    valid_portion=0.3, **{**TINY_TRAIN, "epochs": 1}),
                        tmp_path / "t", progress=False)
    assert rec["data"]["in_chans"] == 3 and rec["data"]["image_size"] == 16 and rec["data"]["num_classes"] == 2
    assert {"valid_error", "test_error", "valid_majority_error"} <= set(trained["final"])
    assert trained["data"]["split"]["test"]["rule"] == "the data's test/"


def test_tensors_from_python_and_many_classes(tmp_path):
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(60) % 6
    images = (labels * 40).to(torch.uint8)[:, None, None, None].expand(60, 3, 12, 12).clone()
    images += torch.randint(0, 10, images.shape, generator=g, dtype=torch.uint8)
    with one_thread():
        rec = search("images", SEARCH_CONFIGS["images"](data="six levels", **TINY_SEARCH), tmp_path / "s",
                     progress=False, data=(images, labels))
    assert rec["data"]["num_classes"] == 6 and rec["data"]["source"] == "tensors given in Python"
    # no test/ given: 20 % of each class is held out as the trainings' test split, and left out of the search
    assert rec["data"]["split"]["test_held_out"]["sizes"] == [48, 12] and rec["data"]["split"]["sizes"] == [24, 24]


def test_supernet_takes_any_channels_and_the_imagenet_stem_for_large_images():
    net = Network(C=4, num_classes=5, layers=3, in_chans=1, stem="imagenet")
    alphas = net.new_alphas()
    assert net(torch.zeros(2, 1, 96, 96), *alphas).shape == (2, 5)
    cifar = Network(C=4, num_classes=3, layers=3, in_chans=1)
    assert cifar(torch.zeros(2, 1, 20, 20), *cifar.new_alphas()).shape == (2, 3)
    assert cifar.stem[0].weight.shape[1] == 1


def test_image_sizes_that_do_not_halve_evenly_are_refused_with_the_nearest_that_do():
    assert fits_network(12, "cifar") and not fits_network(10, "cifar")
    assert fits_network(224, "imagenet") and fits_network(96, "imagenet") and not fits_network(72, "imagenet")
    with pytest.raises(DataSourceError, match="give --image-size 12 or 8"):
        check_image_size(10, "cifar")


def test_a_resumed_search_refuses_other_data(tmp_path):
    root = write_image_folder(tmp_path / "d", {"a": 8, "b": 8}, size=8)

    class Stop(Exception):
        pass

    def stop(epoch, step):
        if epoch == 1:
            raise Stop()

    config = SEARCH_CONFIGS["images"](data=str(root), **{**TINY_SEARCH, "epochs": 2})
    with one_thread(), pytest.raises(Stop):
        search("images", config, tmp_path / "s", progress=False, callback=stop)
    write_image_folder(tmp_path / "d", {"a": 8, "b": 8}, size=8, seed=1)  # other pixels in the same files
    with pytest.raises(ValueError, match="other data"):
        search("images", config, tmp_path / "s", progress=False)


@pytest.mark.parametrize("damage, needle", [
    ("corrupt", "not a readable image"), ("empty", "empty class folder"), ("single", "at least 2 classes"),
    ("val_extra", "is not in"), ("mixed", "--image-size"),
])
def test_bad_data_fails_in_one_line_before_anything_is_written(tmp_path, capsys, damage, needle):
    root = write_image_folder(tmp_path / "data", {"a": 3} if damage == "single" else {"a": 3, "b": 3}, size=8,
                              splits={"val": {"q": 1}} if damage == "val_extra" else None,
                              sizes={"b": 9} if damage == "mixed" else None)
    if damage == "corrupt":
        (root / "train" / "a" / "000.png").write_bytes(b"broken")
    elif damage == "empty":
        (root / "train" / "c").mkdir()
    for command in ("search", "train"):
        out = tmp_path / command
        refused_in_one_line(capsys, [command, "images", "--data", str(root), "--out", str(out), "--no-progress"],
                            needle)
        assert not out.exists()


def test_a_cifar10_command_never_downloads_into_an_image_folder(gray3, tmp_path, capsys):
    refused_in_one_line(capsys, ["search", "cifar10", "--data", str(gray3), "--out", str(tmp_path / "s"),
                                 "--no-progress"], "not downloaded there", "search images")
    refused_in_one_line(capsys, ["train", "cifar10", "--data", str(gray3), "--download", "--out",
                                 str(tmp_path / "t"), "--no-progress"], "not downloaded there")
    assert sorted(p.name for p in gray3.iterdir()) == ["train"]
