"""The one CIFAR augmentation (original cnn/utils.py's train transform and Cutout), batched on the device.

Random crop with zero padding, horizontal flip, per-channel normalisation and, for training, cutout, in the
original's order and with its quirks:

- the padding is added to the raw image (value 0) *before* normalisation, so padded pixels become
  ``-mean/std``, as torchvision's RandomCrop on the PIL image does;
- cutout comes after normalisation, so the cut square is 0 = the mean colour, and its centre is
  uniform over the whole image, so the square is clipped at the borders.

The padding is 4 pixels at 32x32 (the original's) and ``size // 8`` at other sizes
(:func:`reproduce.image_size.crop_padding`). The random draws are the caller's: the search draws
per batch and the training per epoch, each in its own order (both equal to their reference runs).
Any number of channels.

The ImageNet recipe's augmentation (original cnn/train_imagenet.py: random resized crop, horizontal flip,
colour jitter, normalisation) is :func:`imagenet_train_transform`, at any size and for PIL images (the
ImageNet recipe's DataLoader) or uint8 tensors (one's own images, :func:`augment_each`).
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from ..image_size import crop_padding


def normalize(x_u8: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> (x / 255 - mean) / std, with mean and std broadcast against ``x_u8``."""
    return (x_u8.float().div_(255.0) - mean) / std


def augment(x_u8: torch.Tensor, oy: torch.Tensor, ox: torch.Tensor, flip: torch.Tensor, mean: torch.Tensor,
            std: torch.Tensor, cutout_length: int = 0, cy: Optional[torch.Tensor] = None,
            cx: Optional[torch.Tensor] = None, channels_last: bool = False) -> torch.Tensor:
    """Crop (offsets ``oy``, ``ox`` in [0, 2 pad] of the zero-padded image), flip, normalise and cut out
    (centres ``cy``, ``cx``) uint8 images [B, C, S, S]; every argument on the images' device.
    Returns float [B, C, S, S], channels_last strides when asked."""
    B, C, size = x_u8.size(0), x_u8.size(1), x_u8.size(-1)
    dev = x_u8.device
    pad = crop_padding(size)
    padded = F.pad(x_u8, (pad, pad, pad, pad)).permute(0, 2, 3, 1)  # [B, S + 2 pad, S + 2 pad, C]
    ar = torch.arange(size, device=dev)
    rows = oy[:, None] + ar
    cols = ox[:, None] + torch.where(flip[:, None], size - 1 - ar, ar)
    b = torch.arange(B, device=dev)[:, None, None]
    crop = padded[b, rows[:, :, None], cols[:, None, :]]  # [B, S, S, C]
    x = normalize(crop, mean.reshape(1, 1, 1, C), std.reshape(1, 1, 1, C))
    if cutout_length > 0:
        half = cutout_length // 2
        y1, y2 = (cy - half).clamp(0, size), (cy + half).clamp(0, size)
        x1, x2 = (cx - half).clamp(0, size), (cx + half).clamp(0, size)
        in_r = (ar[None] >= y1[:, None]) & (ar[None] < y2[:, None])
        in_c = (ar[None] >= x1[:, None]) & (ar[None] < x2[:, None])
        keep = ~(in_r[:, :, None] & in_c[:, None, :])
        x = x * keep[..., None]
    x = x.permute(0, 3, 1, 2)  # NCHW view with channels_last strides
    return x if channels_last else x.contiguous()


def imagenet_train_transform(size: int, mean: Sequence[float], std: Sequence[float], tensors: bool = False):
    """The ImageNet recipe's training transform: RandomResizedCrop(size), horizontal flip, ColorJitter(0.4, 0.4,
    0.4, 0.2), normalise. ``tensors``: it takes uint8 [C, S, S] tensors (1 or 3 channels; on one channel the
    saturation and hue jitter change nothing, as on a grayscale PIL image) instead of PIL images."""
    from torchvision import transforms  # torchvision is imported only by the recipes that use it

    return transforms.Compose([
        transforms.RandomResizedCrop(size),
        transforms.RandomHorizontalFlip(),
        transforms.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.2),
        transforms.ConvertImageDtype(torch.float32) if tensors else transforms.ToTensor(),
        transforms.Normalize(mean, std),
    ])


def augment_each(x_u8: torch.Tensor, transform, seeds: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """``transform`` (e.g. :func:`imagenet_train_transform` with ``tensors``) applied to each uint8 image of ``x_u8``,
    image i's random draws made by torch's CPU generator seeded with ``seeds[i]``: the draws depend on the image's
    seed only, not on the batch it lands in nor the number of processes. The generator's state is restored."""
    with torch.random.fork_rng(devices=[]):
        out = []
        for image, seed in zip(x_u8, seeds.tolist()):
            torch.default_generator.manual_seed(int(seed))  # the CPU generator only: CUDA's draws stay the run's
            out.append(transform(image))
    x = torch.stack(out)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


__all__ = ["augment", "normalize", "imagenet_train_transform", "augment_each"]
