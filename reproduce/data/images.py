"""Image data of any source as one description: classes, channels, size, normalisation, splits.

:func:`load_images` reads

- an ImageFolder tree (``DIR/train/<class>/*``, with ``val/`` and ``test/`` when present;
  :mod:`zoo.image_folder`),
- CIFAR-10 python batches (``DIR/cifar-10-batches-py``, e.g. written by ``zoo.datasets.write_cifar10``),
- a torchvision dataset by name, ``torchvision:NAME:ROOT`` (MNIST, FashionMNIST, CIFAR10, CIFAR100,
  SVHN, ...; downloaded into ROOT when missing and online),
- from Python: an :class:`ImageData`, a ``torch.utils.data.Dataset`` of (image, label) pairs, or
  ``(uint8 images [N, C, H, W] or [N, H, W], labels)`` tensors,

into an :class:`ImageData`: uint8 tensors decoded once (the search and the CIFAR-style training keep
them on the device and augment there), the class names in label order, the channel count and the
side of the square images. The search, the training recipes and the exported model's card all read
this description (:meth:`ImageData.describe`); the mean and std that normalise the images are
computed on the images that train the weights (:func:`channel_stats`) unless given
(:func:`parse_normalize`).
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from zoo import datasets as zds
from zoo import image_folder

log = logging.getLogger(__name__)

Split = Tuple[torch.Tensor, torch.Tensor]
TORCHVISION = "torchvision:"


class DataSourceError(ValueError):
    """Data that cannot be read as images (the message names the source and the fix)."""


@dataclasses.dataclass
class ImageData:
    """Decoded images: ``train`` and the ``evals`` the data has ("val", "test") as (uint8 [N, C, S, S], int64 [N])."""

    source: str
    classes: List[str]
    train: Split
    evals: Dict[str, Split] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        x, y = self.train
        if x.dtype != torch.uint8 or x.dim() != 4 or x.shape[-1] != x.shape[-2] or x.shape[1] not in (1, 3):
            raise DataSourceError(f"{self.source}: images must be uint8 [N, 1 or 3, S, S], got {x.dtype} "
                                  f"{list(x.shape)}")
        if len(self.classes) < 2:
            raise DataSourceError(f"{self.source}: {len(self.classes)} class; a classifier needs at least 2")
        for name, (xs, ys) in {"train": self.train, **self.evals}.items():
            if len(xs) != len(ys):
                raise DataSourceError(f"{self.source}: {name} has {len(xs)} images but {len(ys)} labels")
            if len(ys) and (int(ys.min()) < 0 or int(ys.max()) >= len(self.classes)):
                raise DataSourceError(f"{self.source}: {name} labels outside 0..{len(self.classes) - 1}")
            if tuple(xs.shape[1:]) != tuple(x.shape[1:]):
                raise DataSourceError(f"{self.source}: {name} images are {list(xs.shape[1:])}, train's "
                                      f"{list(x.shape[1:])}; give --image-size N to resize them all")

    @property
    def channels(self) -> int:
        return int(self.train[0].shape[1])

    @property
    def size(self) -> int:
        return int(self.train[0].shape[-1])

    def describe(self) -> dict:
        """What runs, records and model cards say about the data (no pixels)."""
        return {"source": self.source, "classes": list(self.classes), "num_classes": len(self.classes),
                "in_chans": self.channels, "image_size": self.size,
                "splits": {name: len(y) for name, (_, y) in {"train": self.train, **self.evals}.items()}}


def channel_stats(images: torch.Tensor) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 images [N, C, H, W], in [0, 1] units."""
    if len(images) == 0:
        raise DataSourceError("no images to compute the normalisation from")
    x = images.transpose(0, 1).reshape(images.shape[1], -1).double().div_(255.0)
    mean, std = x.mean(1), x.std(1, unbiased=False)
    return tuple(round(float(v), 8) for v in mean), tuple(round(max(float(v), 1e-3), 8) for v in std)


def parse_normalize(text: str, channels: int) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
    """``"M1,M2,M3/S1,S2,S3"`` (one number per channel; one number is repeated) -> (mean, std)."""
    try:
        mean_text, std_text = text.split("/")
        mean = [float(v) for v in mean_text.split(",")]
        std = [float(v) for v in std_text.split(",")]
    except ValueError:
        raise DataSourceError(f"--normalize {text!r}: give MEAN/STD, one number per channel, e.g. "
                              "0.5,0.5,0.5/0.25,0.25,0.25 (or 0.5/0.25 for every channel)") from None
    mean, std = (v * channels if len(v) == 1 else v for v in (mean, std))
    if len(mean) != channels or len(std) != channels or min(std) <= 0:
        raise DataSourceError(f"--normalize {text!r}: need {channels} means and {channels} positive stds for "
                              f"{channels}-channel images")
    return tuple(mean), tuple(std)


def resize_square(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 [N, C, H, W] -> uint8 [N, C, size, size]: shorter side to ``size`` (bilinear, antialiased), centre crop."""
    h, w = images.shape[-2:]
    if (h, w) == (size, size):
        return images
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    x = F.interpolate(images.float(), size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
    top, left = (nh - size) // 2, (nw - size) // 2
    return x[..., top:top + size, left:left + size].round().clamp(0, 255).to(torch.uint8)


def _as_uint8(image) -> np.ndarray:
    """One image (PIL, uint8 or float tensor/array, HW or CHW or HWC) as uint8 [C, H, W]."""
    if not torch.is_tensor(image) and not isinstance(image, np.ndarray) and hasattr(image, "mode"):  # PIL
        a = np.asarray(image_folder.as_channels(image, 1 if image.mode in image_folder.GRAY_MODES else 3))
        return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
    a = image.detach().cpu().numpy() if torch.is_tensor(image) else np.asarray(image)
    if a.dtype != np.uint8:
        a = np.clip(np.round(a.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)  # [0, 1] floats
    if a.ndim == 2:
        return a[None]
    return a if a.shape[0] in (1, 3) else a.transpose(2, 0, 1)


def from_dataset(dataset, source: str = "a Dataset", image_size: int = 0) -> Split:
    """A ``Dataset`` of (image, label) pairs decoded into uint8 [N, C, H, W] and int64 labels, each image resized
    to ``image_size`` when given (so that images of mixed sizes can be stacked)."""
    xs, ys = [], []
    for i in range(len(dataset)):
        image, label = dataset[i]
        x = _as_uint8(image)
        if image_size:
            x = resize_square(torch.from_numpy(np.array(x))[None], image_size)[0].numpy()  # a copy: PIL's are read-only
        xs.append(x)
        ys.append(int(label))
    if not xs:
        raise DataSourceError(f"{source} is empty")
    channels = {x.shape[0] for x in xs}
    if len(channels) > 1:  # some grayscale, some colour: all colour
        xs = [np.repeat(x, 3, 0) if x.shape[0] == 1 else x for x in xs]
    if len({x.shape for x in xs}) > 1:
        raise DataSourceError(f"{source}: images of different sizes; give --image-size N to resize them")
    return torch.from_numpy(np.stack(xs)), torch.tensor(ys, dtype=torch.int64)


def _tensors(images, labels, source: str) -> Split:
    x = torch.as_tensor(images)
    if x.dim() == 3:
        x = x[:, None]
    if x.dtype != torch.uint8 or x.dim() != 4:
        raise DataSourceError(f"{source}: images must be uint8 [N, C, H, W] or [N, H, W], got {x.dtype} "
                              f"{list(x.shape)}")
    return x, torch.as_tensor(labels).long()


def _torchvision_sets(spec: str) -> Tuple[str, str, list]:
    """(name, root, [train set, test set]) of ``torchvision:NAME:ROOT``, downloaded into ROOT when missing."""
    parts = spec[len(TORCHVISION):].split(":", 1)
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise DataSourceError(f"--data {spec!r}: write torchvision:NAME:ROOT, e.g. torchvision:MNIST:data/mnist")
    name, root = parts
    import torchvision.datasets as tvd

    cls = getattr(tvd, name, None)
    if not isinstance(cls, type):
        raise DataSourceError(f"--data {spec!r}: torchvision.datasets has no dataset {name!r} (e.g. MNIST, "
                              "FashionMNIST, CIFAR10, CIFAR100, SVHN)")
    split_kw = ({"split": "train"}, {"split": "test"}) if name in ("SVHN", "STL10") else ({"train": True},
                                                                                          {"train": False})
    sets = []
    for kw in split_kw:
        try:
            sets.append(cls(root, download=True, **kw))
        except Exception as e:  # offline, checksum, disk: all the same to the user
            raise zds.DatasetNotFoundError(f"torchvision {name} not found in {root} and not downloadable "
                                           f"({type(e).__name__}: {e}); download it there when online") from None
    return name, root, sets


def _torchvision(spec: str, image_size: int = 0) -> Tuple[str, List[str], Split, Dict[str, Split]]:
    name, root, sets = _torchvision_sets(spec)
    classes = [str(c) for c in getattr(sets[0], "classes", [])] or None
    train, test = (from_dataset(s, f"torchvision {name}", image_size) for s in sets)
    classes = classes or [str(i) for i in range(int(train[1].max()) + 1)]
    return f"torchvision {name} ({root})", classes, train, {"test": test}


def _folder(path: Path, image_size: int) -> Tuple[str, List[str], Split, Dict[str, Split]]:
    if (path / zds.CIFAR10_DIRNAME).is_dir() or path.name == zds.CIFAR10_DIRNAME:
        train = zds.load_cifar10(path, train=True, download=False)
        test = zds.load_cifar10(path, train=False, download=False)
        return f"CIFAR-10 python batches ({path})", list(zds.CIFAR10_CLASSES), train, {"test": test}
    tree, splits, _ = image_folder.read_image_folder(path, image_size)
    return f"image folder {path}", tree.classes, splits["train"], {k: v for k, v in splits.items() if k != "train"}


def _other_files(root: Path) -> List[str]:
    """What a would-be CIFAR-10 folder holds besides CIFAR-10 (its archive and extracted folder)."""
    if not root.is_dir():
        return []
    ours = {zds.CIFAR10_DIRNAME, "cifar-10-python.tar.gz"}
    return sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir() if p.name not in ours)


def load_cifar10(root, train: bool, download: bool) -> Split:
    """``zoo.datasets.load_cifar10``, but never downloading into a folder that holds other data (e.g. one's
    own image folder given to a CIFAR-10 command): that is refused in one line pointing to ``images``."""
    path = Path(str(root)).expanduser()
    other = _other_files(path) if download else []
    if other and not (path / zds.CIFAR10_DIRNAME).is_dir() and not (path / zds.CIFAR10_TEST_FILE).exists():
        hint = (f"it looks like an image folder: use `search images --data {root}` / `train images --data {root}`"
                if image_folder.looks_like_image_folder(path) else "point --data at an empty or CIFAR-10 folder")
        raise zds.DatasetNotFoundError(f"CIFAR-10 not found in {path}, and not downloaded there: it holds other "
                                       f"data ({', '.join(other[:5])}{', ...' if len(other) > 5 else ''}); {hint}")
    return zds.load_cifar10(root, train=train, download=download)


def _directory(data) -> Path:
    path = Path(str(data)).expanduser()
    if not path.is_dir():
        raise zds.DatasetNotFoundError(f"--data {data}: no such directory; {image_folder.LAYOUT_HELP}, or "
                                       "torchvision:NAME:ROOT")
    return path


def load_images(data, image_size: int = 0) -> ImageData:
    """The images of ``data`` (a path, ``torchvision:NAME:ROOT``, an ImageData, a Dataset or (images, labels)),
    resized to ``image_size`` x ``image_size`` when given (else all must share one square size)."""
    if isinstance(data, ImageData):
        source, classes, train, evals = data.source, data.classes, data.train, data.evals
    elif isinstance(data, (tuple, list)) and len(data) == 2 and torch.is_tensor(data[0]):
        train = _tensors(*data, "tensors")
        source, classes, evals = "tensors given in Python", [str(i) for i in range(int(train[1].max()) + 1)], {}
    elif isinstance(data, torch.utils.data.Dataset):
        train = from_dataset(data, image_size=image_size)
        source, evals = f"{type(data).__name__} given in Python", {}
        classes = [str(c) for c in getattr(data, "classes", [])] or [str(i) for i in range(int(train[1].max()) + 1)]
    elif isinstance(data, str) and data.startswith(TORCHVISION):
        source, classes, train, evals = _torchvision(data, image_size)
    else:
        source, classes, train, evals = _folder(_directory(data), image_size)
    present = torch.unique(train[1]).numel()
    if present < 2:
        raise DataSourceError(f"{source}: the training labels name {present} class; a classifier needs at least 2")
    if image_size:
        train = (resize_square(train[0], image_size), train[1])
        evals = {k: (resize_square(x, image_size), y) for k, (x, y) in evals.items()}
    elif train[0].shape[-1] != train[0].shape[-2]:
        raise DataSourceError(f"{source}: images are {train[0].shape[-2]}x{train[0].shape[-1]}, not square; give "
                              "--image-size N to resize and centre-crop them to N x N")
    return ImageData(source=source, classes=list(classes), train=train, evals=evals)


def image_side(data, image_size: int = 0) -> int:
    """The side of the images the network will see, found without decoding the data: ``image_size`` when given,
    else that of the first training image (a folder's first file, CIFAR-10's 32, a torchvision dataset's or a
    Python source's first image); the loaders check later that all images share it."""
    if image_size:
        return int(image_size)
    if isinstance(data, ImageData):
        return data.size
    if isinstance(data, (tuple, list)) and len(data) == 2 and torch.is_tensor(data[0]):
        return int(data[0].shape[-1])
    if isinstance(data, torch.utils.data.Dataset):
        return int(_as_uint8(data[0][0]).shape[-1])
    if str(data).startswith(TORCHVISION):
        return int(_as_uint8(_torchvision_sets(str(data))[2][0][0][0]).shape[-1])
    path = _directory(data)
    if (path / zds.CIFAR10_DIRNAME).is_dir() or path.name == zds.CIFAR10_DIRNAME:
        return 32
    first = image_folder.scan(path).splits["train"][0][0]
    return int(min(image_folder.open_image(first).size))


def plan(data: str, image_size: int = 0, in_memory_mb: Optional[int] = None) -> str:
    """What ``--dry-run`` says of image data without decoding it: its splits, classes, channels and size, the
    path it takes (decoded once into uint8 tensors kept on the device, or, above ``in_memory_mb`` MiB for an
    image folder in a training recipe, streamed from disk) and about how much memory that is."""
    if str(data).startswith(TORCHVISION):
        return f"data: {data}: a torchvision dataset, downloaded when missing, decoded once into uint8 tensors"
    path = Path(str(data)).expanduser()
    if (path / zds.CIFAR10_DIRNAME).is_dir():
        n, channels, size, what = 60000, 3, image_size or 32, f"CIFAR-10 python batches ({path})"
    else:
        tree = image_folder.scan(path)
        files = [f for split in tree.splits.values() for f, _ in split]
        channels = image_folder.folder_channels(files)
        size = image_size or image_folder.open_image(files[0]).size[0]
        n = len(files)
        counts = ", ".join(f"{len(v)} {k}" for k, v in tree.splits.items())
        what = f"image folder {path}: {counts} images, {len(tree.classes)} classes"
    kib = n * channels * size * size / 1024
    memory = f"{kib / 1024:.1f} MiB" if kib >= 1024 else f"{kib:.0f} KiB"
    shape = f"data: {what}, {channels} channel{'s' if channels > 1 else ''}, {size}x{size}"
    if in_memory_mb is not None and kib / 1024 > in_memory_mb and "image folder" in what:
        return (f"{shape}; the training runs stream it from disk (about {memory} decoded, more than --in-memory-mb "
                f"{in_memory_mb}), each batch decoded as it is needed; the searches decode it into memory")
    return f"{shape}; decoded once into uint8 tensors kept on the device (about {memory})"


__all__ = ["ImageData", "DataSourceError", "load_images", "load_cifar10", "channel_stats", "parse_normalize",
           "resize_square", "from_dataset", "plan", "image_side"]
