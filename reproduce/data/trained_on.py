"""What a finished training run was trained on, as its exported model's card and config say it.

A card names the data actually used, its real input size and preprocessing, and whether the figures
can be set against the paper's. "CIFAR-10" and "ImageNet (ILSVRC2012)" are said only of those data
sets (CIFAR-10's 50000 training images, ImageNet's 1000 classes): a folder of one's own images given
to ``train imagenet``, or the demo's digits written in CIFAR-10's file format, are named as what
they are. A run is comparable with the paper only on the paper's data, with the paper's recipe
(:mod:`reproduce.comparable`) and profile.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

from zoo import datasets as zds
from zoo.card import DATASET_NAMES

from .. import comparable

CIFAR10_TRAIN_IMAGES = 50000
IMAGENET_CLASSES = 1000


@dataclasses.dataclass
class TrainedOn:
    name: str  # what the card calls the data
    data: Optional[dict]  # the saved config's "data" (None: the registry dataset's own preprocessing)
    comparable: bool
    why_not: str  # why the figures are not comparable with the paper's ("" when they are)


def _cifar_train_images(path: str) -> Optional[int]:
    try:
        return len(zds.load_cifar10(path, train=True, download=False)[1])
    except (zds.DatasetNotFoundError, zds.DatasetFormatError, OSError):
        return None


def _class_folders(path: str) -> list:
    train = Path(path).expanduser() / "train"
    return sorted(p.name for p in train.iterdir() if p.is_dir()) if train.is_dir() else []


def _own(record: dict) -> tuple:
    """(name, data) of a run that did not see the paper's data, or (None, None)."""
    dataset, cfg, final = record["dataset"], record.get("config") or {}, record.get("final") or {}
    if dataset == "text":
        data = dict(record["data"])
        return f"{data['source']} (vocabulary of {data['vocabulary']} words from its train.txt)", data
    if dataset == "images":
        data = dict(record["data"])
        classes = data["classes"]
        shown = ", ".join(classes[:8]) + (", ..." if len(classes) > 8 else "")
        name = (f"{data['source']}: {len(classes)} classes ({shown}), {data['in_chans']}-channel "
                f"{data['image_size']}x{data['image_size']} images")
        return name, data
    if dataset == "cifar10":
        n = _cifar_train_images(cfg.get("data", ""))
        size = int(cfg.get("image_size", 32))
        if n == CIFAR10_TRAIN_IMAGES and size == 32:
            return None, None
        what = "CIFAR-10" if n == CIFAR10_TRAIN_IMAGES else (
            f"images in CIFAR-10's file format, not CIFAR-10 ({n} training images)" if n is not None else
            "images in CIFAR-10's file format (no longer readable at export)")
        data = {"source": f"{what} at {cfg.get('data')}", "in_chans": 3, "image_size": size,
                "classes": list(zds.CIFAR10_CLASSES) if n == CIFAR10_TRAIN_IMAGES else [str(i) for i in range(10)],
                "mean": list(zds.CIFAR_MEAN), "std": list(zds.CIFAR_STD),
                "resize": size}
        size_note = f", averaged down from 32x32 to {size}x{size}" if size != 32 else ""
        return f"{what} at {cfg.get('data')}{size_note}", data
    if dataset == "imagenet" and final.get("num_classes") not in (None, IMAGENET_CLASSES):
        classes = _class_folders(cfg.get("data", "")) or [str(i) for i in range(int(final["num_classes"]))]
        data = {"source": f"image folder {cfg.get('data')}", "classes": classes, "in_chans": 3, "image_size": 224,
                "resize": 256, "mean": list(zds.IMAGENET_MEAN), "std": list(zds.IMAGENET_STD)}
        return f"image folder {cfg.get('data')}: {len(classes)} classes, not ImageNet (ILSVRC2012)", data
    return None, None


def trained_on(record: dict) -> TrainedOn:
    """The data of a finished training ``record`` and whether its figures are comparable with the paper's."""
    cfg = record.get("config") or {}
    name, data = _own(record)
    reasons = []
    if name is not None:
        reasons.append(comparable.OWN_DATA_REASON)
    differences = comparable.recipe_differences("train", record["dataset"], cfg)
    if differences:
        reasons.append(f"not the paper's recipe: {comparable.describe(differences)}")
    elif cfg.get("profile", "paper") != "paper":
        reasons.append(f"profile {cfg.get('profile')!r}")
    return TrainedOn(name=name or DATASET_NAMES[record["dataset"]], data=data, comparable=not reasons,
                     why_not="; ".join(reasons))


__all__ = ["TrainedOn", "trained_on"]
