"""Seeded, stratified splits and per-class subsets of a labelled set, with a digest that pins them.

Every class is split in the same proportion, so a class-ordered file (``zoo.datasets.write_cifar10``
written class by class) cannot put whole classes in one half, as CIFAR-10's prefix rule would. The
indices depend only on the labels, the share and the seed; :func:`digest` names them, so a run that
resumes can check that it still splits the same data the same way.
"""
from __future__ import annotations

import hashlib
import math
from typing import Optional, Tuple

import torch


def _class_members(labels: torch.Tensor, generator: torch.Generator):
    """(class, its indices in a seeded random order) for each class present, in class order."""
    labels = torch.as_tensor(labels).long().cpu()
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten()
        yield c, idx[torch.randperm(len(idx), generator=generator)]


def stratified_split(labels, portion: float, seed: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Indices (sorted) of a ``portion`` / ``1 - portion`` split, class by class.

    A class with n >= 2 examples puts ``round(portion * n)`` of them, at least 1 and at most n - 1,
    into the first part; a class with one example goes to the first part.
    """
    if not 0.0 < portion < 1.0:
        raise ValueError(f"the split share must be in (0, 1), got {portion}")
    g = torch.Generator().manual_seed(int(seed))
    first, second = [], []
    for _, idx in _class_members(labels, g):
        n = len(idx)
        k = n if n < 2 else min(n - 1, max(1, int(round(portion * n))))
        first.append(idx[:k])
        second.append(idx[k:])
    empty = torch.zeros(0, dtype=torch.long)
    return (torch.sort(torch.cat(first or [empty])).values, torch.sort(torch.cat(second or [empty])).values)


def per_class_subset(labels, fraction: float, seed: int) -> torch.Tensor:
    """Indices (sorted) of ``ceil(fraction * n)`` random examples of each class (e.g. PC-DARTS's 10 % and
    2.5 % of ImageNet's training images per class)."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"the subset share must be in (0, 1], got {fraction}")
    g = torch.Generator().manual_seed(int(seed))
    picked = [idx[:max(1, math.ceil(fraction * len(idx)))] for _, idx in _class_members(labels, g)]
    return torch.sort(torch.cat(picked)).values if picked else torch.zeros(0, dtype=torch.long)


def digest(*parts: torch.Tensor) -> str:
    """A short SHA-256 of tensors (indices, labels, the images themselves): equal digests, the same split of
    the same data."""
    h = hashlib.sha256()
    for p in parts:
        t = torch.as_tensor(p).cpu().contiguous()
        h.update(f"{tuple(t.shape)} {t.dtype}".encode())
        h.update(memoryview(t.numpy()).cast("B"))  # the tensor's own bytes, not a copy of them
    return h.hexdigest()[:16]


# What pins one's own data in a record or a checkpoint (images: classes, channels, size, normalisation and a digest
# of the images and labels of every split; text: the vocabulary and a digest of the token ids), not where it lies
# on disk nor how it is read.
DATA_IDENTITY = ("classes", "in_chans", "image_size", "mean", "std", "words", "digest")


def data_identity(record: Optional[dict]) -> Optional[dict]:
    """The fields of a run's data record that say which data it used (None: the paper's datasets, whose files
    may move)."""
    if not record:
        return None
    return {k: record.get(k) for k in DATA_IDENTITY if k in record}


__all__ = ["stratified_split", "per_class_subset", "digest", "data_identity", "DATA_IDENTITY"]
