"""Image folders too large to decode into memory: each batch decoded from disk as the recipe asks for it.

:class:`StreamedImages` stands where the in-memory path holds a uint8 tensor [N, C, S, S]: ``len``,
``shape`` and indexing by a tensor of indices or a slice, which decodes those files (``workers``
threads; PIL releases the GIL while it decodes) into the same uint8 batch the in-memory path would
have gathered. The recipe's augmentation, its random draws and everything after are unchanged, so a
streamed run computes what the in-memory run computes. Streaming needs ``--image-size``: every
image is decoded to that size, so no file can turn out to have another size mid-run.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np
import torch

from zoo import image_folder

from .images import DataSourceError

# Images per chunk when the normalisation is computed from the files.
STATS_CHUNK = 256


class StreamedImages:
    """The images of ``files`` (decoded to ``channels`` x ``size`` x ``size`` uint8) read on demand."""

    def __init__(self, files: Sequence[Path], channels: int, size: int, workers: int = 4, device="cpu"):
        self.files, self.channels, self.size = list(files), int(channels), int(size)
        self.workers, self.device = max(1, int(workers)), torch.device(device)

    def __len__(self) -> int:
        return len(self.files)

    @property
    def shape(self) -> Tuple[int, int, int, int]:
        return len(self.files), self.channels, self.size, self.size

    def to(self, device) -> "StreamedImages":
        return StreamedImages(self.files, self.channels, self.size, self.workers, device)

    def subset(self, index) -> "StreamedImages":
        return StreamedImages([self.files[int(i)] for i in index], self.channels, self.size, self.workers,
                              self.device)

    def _decode(self, path: Path) -> np.ndarray:
        image = image_folder.resize_and_crop(image_folder.as_channels(image_folder.open_image(path), self.channels),
                                             self.size)
        a = np.asarray(image, dtype=np.uint8)
        return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)

    def __getitem__(self, index) -> torch.Tensor:
        if isinstance(index, slice):
            picked: List[Path] = self.files[index]
        else:
            picked = [self.files[int(i)] for i in torch.as_tensor(index).reshape(-1).tolist()]
        with ThreadPoolExecutor(self.workers) as pool:
            arrays = list(pool.map(self._decode, picked))
        batch = np.stack(arrays) if arrays else np.zeros((0, self.channels, self.size, self.size), np.uint8)
        return torch.from_numpy(batch).to(self.device)


def streamed_folder(config):
    """``(description, (train images, labels), {split: (images, labels)})`` of an image folder whose decoded
    images would exceed ``config.in_memory_mb`` MiB (estimated from the file count and the first image), or
    None: the folder is decoded into memory (and any other source too)."""
    path = Path(str(config.data)).expanduser()
    if str(config.data).startswith("torchvision:") or not image_folder.looks_like_image_folder(path):
        return None
    tree = image_folder.scan(path)
    files = [f for split in tree.splits.values() for f, _ in split]
    side = config.image_size or image_folder.open_image(files[0]).size[0]
    mib = len(files) * 3 * side * side / 2 ** 20
    if mib <= config.in_memory_mb:
        return None
    if not config.image_size:
        raise DataSourceError(f"{path}: about {mib:.0f} MiB decoded, more than --in-memory-mb {config.in_memory_mb}, "
                              "so it is streamed from disk, which needs --image-size N (every image decoded to N x N)")
    channels = image_folder.folder_channels(files)

    def split(name):
        entries = tree.splits[name]
        images = StreamedImages([f for f, _ in entries], channels, config.image_size, config.workers)
        return images, torch.tensor([label for _, label in entries], dtype=torch.long)

    base = {"source": f"image folder {path}", "classes": list(tree.classes), "num_classes": len(tree.classes),
            "in_chans": channels, "image_size": int(config.image_size),
            "splits": {name: len(entries) for name, entries in tree.splits.items()}}
    return base, split("train"), {name: split(name) for name in tree.splits if name != "train"}


def streamed_stats(images: StreamedImages) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
    """Per-channel mean and (population) std of streamed images, in [0, 1] units, in one pass over the files."""
    total = torch.zeros(images.channels, dtype=torch.float64)
    squares = torch.zeros(images.channels, dtype=torch.float64)
    count = 0
    for start in range(0, len(images), STATS_CHUNK):
        x = images[start:start + STATS_CHUNK].cpu().double().div_(255.0)
        total += x.sum(dim=(0, 2, 3))
        squares += x.pow(2).sum(dim=(0, 2, 3))
        count += x.shape[0] * x.shape[2] * x.shape[3]
    mean = total / count
    std = (squares / count - mean.pow(2)).clamp_min(0).sqrt()
    return tuple(round(float(v), 8) for v in mean), tuple(round(max(float(v), 1e-3), 8) for v in std)


__all__ = ["StreamedImages", "streamed_folder", "streamed_stats"]
