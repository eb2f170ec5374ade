"""PC-DARTS's search directly on ImageNet (the authors' train_search_imagenet.py and model_search_imagenet.py).

What differs from the CIFAR-10 search, all from their script's defaults and README:

- data: from each class of an ImageFolder ``train/`` tree, 10 % of the images train the weights and another
  2.5 % the architecture, drawn once with a recorded seed (:func:`class_subsets`; their README has the two
  subsets copied out before the search, ``imagenet_search/train`` and ``/val``); both are augmented with
  RandomResizedCrop(224) and a horizontal flip, and the architecture iterator starts afresh every epoch (their
  ``valid_queue_iter`` lives inside ``train()``);
- the supernet: the three-conv stem (3C channels, 1/8 of the side) and partial channels K=2;
- batch 1024, lr 0.5 to 0 (cosine) with a linear warm-up over the first 5 epochs (their script applies it when
  the batch is above 256), architecture lr 6e-3;
- the architecture step: first order from epoch 35, its gradient clipped to norm 5 (their ``grad_clip``, the
  weights' clip, applied to the alphas and betas together) before Adam.

The per-class sampling is a small function of its own here (the image data layer of the "own data" issue had
not landed when this was written); the epoch's validation figure uses the evaluation transform (resize,
center crop) over the architecture subset.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from typing import Dict, Iterator, List, Sequence, Tuple

import torch
from torch.utils.data import DataLoader, Subset

from zoo.datasets import IMAGENET_MEAN, IMAGENET_STD, imagenet_eval_transform, imagenet_folder

from .config import ImageNetSearchConfig


def class_subsets(targets: Sequence[int], fractions: Sequence[float], seed: int) -> List[List[int]]:
    """Disjoint per-class random subsets: for each fraction f, ``max(1, floor(f * n_c))`` of the n_c indices of
    every class c, drawn with one generator seeded ``seed`` (classes in increasing order). Each subset is
    returned sorted. A class too small to give every subset an image is an error."""
    by_class: Dict[int, List[int]] = {}
    for i, t in enumerate(targets):
        by_class.setdefault(int(t), []).append(i)
    g = torch.Generator().manual_seed(seed)
    out: List[List[int]] = [[] for _ in fractions]
    for label in sorted(by_class):
        idx = by_class[label]
        counts = [max(1, math.floor(f * len(idx))) for f in fractions]
        if sum(counts) > len(idx):
            raise ValueError(f"class {label} has {len(idx)} images: too few for subsets of {list(fractions)} "
                             f"(at least one image each)")
        perm = torch.randperm(len(idx), generator=g).tolist()
        start = 0
        for k, n in enumerate(counts):
            out[k] += [idx[p] for p in perm[start:start + n]]
            start += n
    return [sorted(s) for s in out]


def train_transform(size: int):
    """Their search's augmentation of both subsets: RandomResizedCrop, horizontal flip, normalise (no jitter)."""
    from torchvision import transforms

    return transforms.Compose([transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip(),
                               transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


class ImageNetSearchData:
    """The two per-class subsets of ``data/train`` as the searcher's data (CifarHalves's interface)."""

    def __init__(self, config: ImageNetSearchConfig, device):
        self.config, self.device = config, torch.device(device)
        folder = imagenet_folder(config.data, "train", transform=train_transform(config.image_size))
        self.num_classes = len(folder.classes)
        self.train_idx, self.arch_idx = class_subsets(folder.targets, (config.train_fraction, config.arch_fraction),
                                                      config.subset_seed)
        self.train_set, self.arch_set = Subset(folder, self.train_idx), Subset(folder, self.arch_idx)
        eval_folder = imagenet_folder(config.data, "train", transform=imagenet_eval_transform(
            resize=config.image_size * 8 // 7, crop=config.image_size))
        self.eval_set = Subset(eval_folder, self.arch_idx)
        # the files as named under train/ (not the absolute path: a moved data directory is the same draw)
        self.files = [os.path.relpath(path, folder.root) for path, _ in folder.samples]
        self.generator = torch.Generator().manual_seed(config.seed)
        self._arch_iter: Iterator = iter(())
        self._arch_loader = None

    def _digest(self, idx: Sequence[int]) -> str:
        return hashlib.sha256("\n".join(self.files[i] for i in idx).encode()).hexdigest()

    def digests(self) -> Dict[str, str]:
        """A digest of each subset's file list (the checkpoint keeps them: a resumed run must draw the same)."""
        return {"train_sha256": self._digest(self.train_idx), "arch_sha256": self._digest(self.arch_idx)}

    def subsets_json(self) -> str:
        """The draw, for the run directory: seed, fractions, counts and a digest of each subset's file list."""
        return json.dumps({"subset_seed": self.config.subset_seed, "train_fraction": self.config.train_fraction,
                           "arch_fraction": self.config.arch_fraction, "classes": self.num_classes,
                           "train_images": len(self.train_idx), "arch_images": len(self.arch_idx),
                           **self.digests()}, indent=1)

    @property
    def train_steps(self) -> int:
        return math.ceil(len(self.train_set) / self.config.batch_size)

    def _loader(self, dataset, shuffle: bool) -> DataLoader:
        # the loader's seeds (shuffle order, workers' augmentation) come from the saved generator
        seed = int(torch.randint(0, 2 ** 62, (1,), generator=self.generator))
        return DataLoader(dataset, batch_size=self.config.batch_size, shuffle=shuffle,
                          num_workers=self.config.workers, generator=torch.Generator().manual_seed(seed),
                          pin_memory=self.device.type == "cuda")

    def _to_device(self, batch) -> Tuple[torch.Tensor, torch.Tensor]:
        x, y = batch
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def train_batches(self) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        """One epoch over the weight subset; the architecture iterator starts afresh too (as theirs)."""
        if self.config.workers == 0:  # augmentation in this process: its randomness from the saved generator
            torch.manual_seed(int(torch.randint(0, 2 ** 62, (1,), generator=self.generator)))
        self._arch_loader = self._loader(self.arch_set, shuffle=True)
        self._arch_iter = iter(self._arch_loader)
        for batch in self._loader(self.train_set, shuffle=True):
            yield self._to_device(batch)

    def next_valid(self) -> Tuple[torch.Tensor, torch.Tensor]:
        try:
            batch = next(self._arch_iter)
        except StopIteration:
            self._arch_iter = iter(self._arch_loader)
            batch = next(self._arch_iter)
        return self._to_device(batch)

    def valid_batches(self) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        loader = DataLoader(self.eval_set, batch_size=self.config.eval_batch_size or self.config.batch_size,
                            num_workers=self.config.workers)
        for batch in loader:
            yield self._to_device(batch)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "subsets": self.digests()}

    def load_state_dict(self, state: dict) -> None:
        # The subsets are drawn again from the folder at every start: images added to or removed from train/
        # since the run began give another draw, and the run would go on with other images without a word.
        if state.get("subsets") != self.digests():
            raise ValueError(f"the run drew other subsets of {self.config.data}/train (checkpoint "
                             f"{state.get('subsets')}, now {self.digests()}): the folder's images changed since the "
                             "run started; restore them, or start afresh in another --out directory")
        self.generator.set_state(state["generator"])
