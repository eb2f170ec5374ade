"""The image-folder reader on small folders of real PNG files: shapes, channels, sizes, conversions, bad data."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zoo.datasets import DatasetFormatError, DatasetNotFoundError
from zoo.image_folder import read_image_folder, scan

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reproduce"))
from image_helpers import write_image_folder  # noqa: E402


def test_classes_follow_sorted_folder_names_and_labels_their_images(tmp_path):
    root = write_image_folder(tmp_path, {"zebra": 2, "ant": 3, "moth": 1}, size=6)
    tree, splits, channels = read_image_folder(root)
    assert tree.classes == ["ant", "moth", "zebra"] and channels == 1
    x, y = splits["train"]
    assert x.shape == (6, 1, 6, 6) and x.dtype.is_floating_point is False
    assert y.tolist() == [0, 0, 0, 1, 2, 2]


def test_rgb_images_give_three_channels_and_val_test_splits_are_read(tmp_path):
    root = write_image_folder(tmp_path, {"a": 2, "b": 2}, size=5, mode="RGB",
                              splits={"val": {"a": 1}, "test": {"a": 1, "b": 1}})
    tree, splits, channels = read_image_folder(root)
    assert channels == 3 and set(splits) == {"train", "val", "test"}
    assert splits["val"][0].shape == (1, 3, 5, 5) and splits["test"][1].tolist() == [0, 1]


def test_rgba_and_palette_images_are_converted_as_pil_does_and_logged_once_per_mode(tmp_path, caplog):
    root = write_image_folder(tmp_path, {"a": 2, "b": 2}, size=4)
    rgba = Image.fromarray(np.full((4, 4, 4), 200, np.uint8), "RGBA")
    rgba.save(root / "train" / "a" / "rgba.png")
    palette = Image.fromarray(np.full((4, 4, 3), 90, np.uint8), "RGB").convert("P")
    palette.save(root / "train" / "b" / "p1.png")
    palette.save(root / "train" / "b" / "p2.png")
    with caplog.at_level(logging.INFO, logger="zoo.image_folder"):
        _, splits, channels = read_image_folder(root)
    assert channels == 3  # a colour image among them: all RGB
    x, _ = splits["train"]
    files = [p.name for p in sorted((root / "train" / "a").iterdir())] + \
            [p.name for p in sorted((root / "train" / "b").iterdir())]
    i = files.index("rgba.png")
    assert x[i].tolist() == np.asarray(rgba.convert("RGB")).transpose(2, 0, 1).tolist()
    j = files.index("p1.png")
    assert x[j].tolist() == np.asarray(palette.convert("RGB")).transpose(2, 0, 1).tolist()
    notes = [r.getMessage() for r in caplog.records if "converted" in r.getMessage()]
    assert notes == ["converted 2 P images to RGB as PIL's Image.convert does",
                     "converted 1 RGBA image to RGB as PIL's Image.convert does"]


def test_image_size_resizes_shorter_side_and_centre_crops_mixed_sizes(tmp_path):
    root = write_image_folder(tmp_path, {"a": 2, "b": 2}, size=10, sizes={"b": 14})
    with pytest.raises(DatasetFormatError, match="different sizes.*--image-size"):
        read_image_folder(root)
    _, splits, _ = read_image_folder(root, image_size=8)
    assert splits["train"][0].shape == (4, 1, 8, 8)


def test_non_square_images_need_an_image_size(tmp_path):
    root = write_image_folder(tmp_path, {"a": 1, "b": 1}, size=6)
    for p in (root / "train").rglob("*.png"):
        Image.new("L", (6, 9), 50).save(p)
    with pytest.raises(DatasetFormatError, match="6x9, not square"):
        read_image_folder(root)
    assert read_image_folder(root, image_size=5)[1]["train"][0].shape == (2, 1, 5, 5)


@pytest.mark.parametrize("damage, message", [
    ("corrupt", "b/bad.png: not a readable image"),
    ("empty", "c: empty class folder"),
    ("single", "1 class folder (a); a classifier needs at least 2 classes"),
    ("val_extra", "val/zz: class 'zz' is not in"),
    ("no_train", "no train/ folder"),
])
def test_bad_data_is_refused_naming_the_file_or_folder(tmp_path, damage, message):
    counts = {"a": 2} if damage == "single" else {"a": 2, "b": 2}
    root = write_image_folder(tmp_path / "data", counts, size=4,
                              splits={"val": {"zz": 1}} if damage == "val_extra" else None)
    if damage == "corrupt":
        (root / "train" / "b" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    elif damage == "empty":
        (root / "train" / "c").mkdir()
    elif damage == "no_train":
        (root / "train").rename(root / "training")
    error = DatasetNotFoundError if damage == "no_train" else DatasetFormatError
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_image_folder(root)


def test_scan_lists_files_without_decoding_and_val_may_lack_classes(tmp_path):
    root = write_image_folder(tmp_path, {"a": 2, "b": 1}, size=4, splits={"val": {"b": 1}})
    tree = scan(root)
    assert [label for _, label in tree.splits["val"]] == [1]
    assert len(tree.splits["train"]) == 3
