"""An ImageFolder tree of one's own images, read safely into uint8 tensors.

Layout: ``ROOT/train/<class>/<image>`` with ``ROOT/val/<class>/...`` and/or ``ROOT/test/<class>/...``
when the data has them. Class indices follow the sorted folder names of ``train/`` (as torchvision's
ImageFolder); ``val/`` and ``test/`` may lack classes but never add one. Every image is decoded
here, once: a corrupt file, an empty class folder, a single class or a class that ``train/`` lacks
is refused with one line naming the file or folder, before anything trains.

Channels: 1 when every image is grayscale (PIL modes 1, L, LA, I, I;16, F), else 3. RGBA, palette,
CMYK and the other modes are converted with PIL's own ``Image.convert`` (alpha dropped, palette
expanded); the log says so once per mode. Size: with ``image_size`` each image is resized so that
its shorter side is ``image_size`` (bilinear, antialiased) and centre-cropped to a square, as
``zoo.transforms`` does for an exported model's inputs (:func:`image_preprocessing`); without it every
image must already be one square size.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .datasets import DatasetFormatError, DatasetNotFoundError

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

SPLITS = ("train", "val", "test")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".pbm", ".tif", ".tiff", ".webp")
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F", "La")
LAYOUT_HELP = "expected an ImageFolder tree ROOT/train/<class>/<image> (and optionally ROOT/val/, ROOT/test/)"


@dataclasses.dataclass
class FolderTree:
    """The files of an image folder: ``splits[name]`` lists (path, class index) in order; ``classes`` the names."""

    root: Path
    classes: List[str]
    splits: Dict[str, List[Tuple[Path, int]]]


def _class_files(split_dir: Path) -> Dict[str, List[Path]]:
    out = {}
    for d in sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(p for p in d.iterdir() if p.is_file() and not p.name.startswith(".")
                       and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise DatasetFormatError(f"{d}: empty class folder (no image files with the extensions "
                                     f"{', '.join(IMAGE_EXTENSIONS)}); add images or remove the folder")
        out[d.name] = files
    return out


def looks_like_image_folder(root: PathLike) -> bool:
    """Whether ``root`` has a ``train/`` of class folders (the layout this module reads)."""
    train = Path(root).expanduser() / "train"
    return train.is_dir() and any(p.is_dir() for p in train.iterdir())


def scan(root: PathLike) -> FolderTree:
    """The image files of each split, checked: >= 2 classes, none empty, val/test classes within train's."""
    root = Path(root).expanduser()
    train_dir = root / "train"
    if not train_dir.is_dir():
        raise DatasetNotFoundError(f"{root}: no train/ folder; {LAYOUT_HELP}")
    train = _class_files(train_dir)
    if len(train) < 2:
        raise DatasetFormatError(f"{train_dir}: {len(train)} class folder{'s' if len(train) != 1 else ''} "
                                 f"({', '.join(train) or 'none'}); a classifier needs at least 2 classes")
    classes = sorted(train)
    index = {c: i for i, c in enumerate(classes)}
    splits = {"train": [(f, index[c]) for c in classes for f in train[c]]}
    for name in SPLITS[1:]:
        d = root / name
        if not d.is_dir():
            continue
        found = _class_files(d)
        extra = sorted(set(found) - set(classes))
        if extra:
            raise DatasetFormatError(f"{d / extra[0]}: class {extra[0]!r} is not in {train_dir} (its classes: "
                                     f"{', '.join(classes)}); every class of {name}/ needs training images")
        splits[name] = [(f, index[c]) for c in sorted(found) for f in found[c]]
        if not splits[name]:
            raise DatasetFormatError(f"{d}: no images in any class folder; fill it or remove it (without val/ and "
                                     "test/ a seeded share of train/ is held out)")
    return FolderTree(root=root, classes=classes, splits=splits)


def open_image(path: Path):
    """The decoded PIL image at ``path``; DatasetFormatError naming the file when it is not one."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            return im.copy() if im.mode in ("L", "RGB") else im.convert(im.mode)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise DatasetFormatError(f"{path}: not a readable image ({type(e).__name__}: {e}); fix or remove the "
                                 "file") from None


def as_channels(image, channels: int):
    """``image`` in mode L (1 channel) or RGB (3), converted as PIL's Image.convert does."""
    mode = "L" if channels == 1 else "RGB"
    return image if image.mode == mode else image.convert(mode)


def resize_and_crop(image, size: int):
    """Shorter side to ``size`` (bilinear, antialiased), then the centred ``size`` x ``size`` square."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    image = TF.resize(image, size, interpolation=InterpolationMode.BILINEAR, antialias=True)
    return TF.center_crop(image, [size, size])


def image_preprocessing(data: Dict) -> Dict:
    """A saved model's ``preprocessing`` for images described as the harness records them (``in_chans``,
    ``image_size``, ``mean``, ``std``; ``resize`` when the shorter side is resized to more than the crop, as
    ImageNet's 256 for 224): colour mode, resize, centre crop, normalisation."""
    size, channels = int(data["image_size"]), int(data["in_chans"])
    return {"mean": list(data["mean"]), "std": list(data["std"]), "input_size": [channels, size, size],
            "resize": int(data.get("resize") or size), "crop": size, "interpolation": "bilinear"}


def folder_channels(files: Sequence[Path]) -> int:
    """1 when every image is grayscale, else 3 (reads only the headers)."""
    from PIL import Image, UnidentifiedImageError

    for f in files:
        try:
            with Image.open(f) as im:
                mode, has_palette = im.mode, im.mode == "P"
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
            raise DatasetFormatError(f"{f}: not a readable image ({type(e).__name__}: {e}); fix or remove the "
                                     "file") from None
        if mode not in GRAY_MODES or has_palette:
            return 3
    return 1


def decode(files: Sequence[Tuple[Path, int]], channels: int, image_size: int = 0,
           converted: Optional[Counter] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """The images as uint8 [N, channels, S, S] and their labels (int64 [N]). The images converted from other
    modes are counted into ``converted`` when given (the caller logs them), else logged here."""
    counting = converted is not None
    converted = Counter() if converted is None else converted
    sizes: Dict[Tuple[int, int], Path] = {}
    arrays = []
    for path, _ in files:
        im = open_image(path)
        if im.mode not in ("L", "RGB"):
            converted[im.mode] += 1
        im = as_channels(im, channels)
        if image_size:
            im = resize_and_crop(im, image_size)
        else:
            sizes.setdefault(im.size, path)
            if len(sizes) > 1:
                (a, pa), (b, pb) = list(sizes.items())[:2]
                raise DatasetFormatError(f"images of different sizes: {pa} is {a[0]}x{a[1]}, {pb} is {b[0]}x{b[1]}; "
                                         "give --image-size N to resize them all to N x N")
            if im.size[0] != im.size[1]:
                raise DatasetFormatError(f"{path} is {im.size[0]}x{im.size[1]}, not square; give --image-size N to "
                                         "resize and centre-crop the images to N x N")
        a = np.asarray(im, dtype=np.uint8)
        arrays.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
    if not counting:
        log_converted(converted, channels)
    images = torch.from_numpy(np.ascontiguousarray(np.stack(arrays))) if arrays else torch.zeros(0, channels, 1, 1,
                                                                                                   dtype=torch.uint8)
    return images, torch.tensor([label for _, label in files], dtype=torch.int64)


def log_converted(converted: Counter, channels: int) -> None:
    """One log line per source mode of the images converted to L or RGB."""
    for mode, n in sorted(converted.items()):
        log.info("converted %d %s image%s to %s as PIL's Image.convert does", n, mode, "s" if n > 1 else "",
                 "L" if channels == 1 else "RGB")


def read_image_folder(root: PathLike, image_size: int = 0, channels: Optional[int] = None):
    """``(tree, {split: (uint8 images, labels)}, channels)`` of an image folder, every image decoded once."""
    tree = scan(root)
    all_files = [f for split in tree.splits.values() for f, _ in split]
    channels = channels or folder_channels(all_files)
    converted: Counter = Counter()
    data = {name: decode(files, channels, image_size, converted) for name, files in tree.splits.items()}
    log_converted(converted, channels)  # once for the whole folder, not once per split
    shapes = {name: tuple(x.shape[-2:]) for name, (x, _) in data.items() if len(x)}
    if len(set(shapes.values())) > 1:
        raise DatasetFormatError(f"{tree.root}: the splits hold images of different sizes ("
                                 + ", ".join(f"{k} {h}x{w}" for k, (h, w) in shapes.items())
                                 + "); give --image-size N to resize them all to N x N")
    return tree, data, channels


__all__ = ["FolderTree", "scan", "image_preprocessing", "decode", "read_image_folder", "looks_like_image_folder",
           "open_image",
           "as_channels", "resize_and_crop", "folder_channels", "SPLITS"]
