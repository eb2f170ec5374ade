"""Image data from every source into one description: a torchvision dataset by name (MNIST files written here
in their real idx format, so nothing is downloaded), a Dataset or tensors from Python, CIFAR-10 batches."""
from __future__ import annotations

import struct

import numpy as np
import pytest
import torch
from PIL import Image
from train_helpers import make_cifar

from reproduce.data.images import DataSourceError, load_images


def write_mnist(root, n_train: int = 20, n_test: int = 8):
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        images = np.repeat((labels * 25).astype(np.uint8)[:, None, None], 28, 1).repeat(28, 2)
        for name, array, magic in ((f"{split}-images-idx3-ubyte", images, 2051),
                                   (f"{split}-labels-idx1-ubyte", labels, 2049)):
            with open(raw / name, "wb") as f:
                f.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape))
                f.write(array.astype(np.uint8).tobytes())
    return root


def test_a_torchvision_dataset_by_name_keeps_its_classes_channels_and_test_split(tmp_path):
    data = load_images(f"torchvision:MNIST:{write_mnist(tmp_path)}", image_size=16)
    assert data.classes[0] == "0 - zero" and len(data.classes) == 10
    assert data.channels == 1 and data.size == 16 and data.train[0].shape == (20, 1, 16, 16)
    assert data.evals["test"][1].tolist() == [0, 1, 2, 3, 4, 5, 6, 7]


def test_unknown_torchvision_names_and_malformed_specs_fail_clearly(tmp_path):
    with pytest.raises(DataSourceError, match="no dataset 'NotADataset'"):
        load_images(f"torchvision:NotADataset:{tmp_path}")
    with pytest.raises(DataSourceError, match="torchvision:NAME:ROOT"):
        load_images("torchvision:MNIST")


class Pictures(torch.utils.data.Dataset):
    classes = ["cat", "dog"]

    def __len__(self):
        return 6

    def __getitem__(self, i):
        mode = "L" if i % 3 else "RGB"  # mixed: all become RGB
        return Image.new(mode, (8, 8), 40 * i if mode == "L" else (40 * i, 0, 0)), i % 2


def test_a_dataset_of_pil_images_from_python(tmp_path):
    data = load_images(Pictures())
    assert data.classes == ["cat", "dog"] and data.channels == 3 and data.train[0].shape == (6, 3, 8, 8)
    assert data.train[0][1].tolist() == [[[40] * 8] * 8] * 3  # a grayscale image repeated over the channels


def test_tensors_from_python_and_their_checks():
    x = torch.zeros(4, 10, 10, dtype=torch.uint8)
    data = load_images((x, torch.tensor([0, 1, 1, 0])))
    assert data.channels == 1 and data.classes == ["0", "1"]
    with pytest.raises(DataSourceError, match="uint8"):
        load_images((x.float(), torch.tensor([0, 1, 1, 0])))


def test_cifar10_batches_are_an_image_source_too(tmp_path):
    data = load_images(make_cifar(tmp_path))
    assert data.classes[0] == "airplane" and data.size == 32 and set(data.evals) == {"test"}
