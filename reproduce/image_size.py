"""Smaller images for small machines: the 32x32 CIFAR-10 images averaged down to 16x16 or 8x8.

The conv search and the CIFAR-10 recipe take an ``image_size`` (32, the paper's, by default). A
smaller size is read from the same CIFAR-10 files by the same loader, then each image is averaged
over blocks of (32 / size)^2 pixels; the random-crop padding shrinks in proportion (4 pixels at 32,
as the original, 2 at 16, 1 at 8), so the augmentation moves the content by the same share of the
image. The networks are unchanged: their stem and global pooling take any size. The demo uses it
(its digits are 8x8 images upscaled into the CIFAR-10 format, so 8 or 16 loses nothing of them).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

FULL = 32
SIZES = (8, 16, 32)


def check(size: int) -> None:
    if size not in SIZES:
        raise ValueError(f"image_size must be one of {', '.join(map(str, SIZES))} (the 32x32 images averaged "
                         f"over 1, 4 or 16 pixels), got {size}")


def crop_padding(size: int) -> int:
    """Zero padding of the random crop: the original's 4 pixels at 32x32, in proportion below."""
    return size // 8


def downscale(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 [N, C, 32, 32] -> uint8 [N, C, size, size], each pixel the rounded mean of its block."""
    check(size)
    if images.shape[-1] == size:
        return images
    if tuple(images.shape[-2:]) != (FULL, FULL):
        raise ValueError(f"expected 32x32 images, got {tuple(images.shape[-2:])}")
    k = FULL // size
    return F.avg_pool2d(images.float(), k).round().to(torch.uint8)
