"""Search data kept on the device: the two halves of CIFAR-10 with batched crop+flip, and PTB batches.

CIFAR-10 (original cnn/train_search.py): the training set is split at ``train_portion``; the
first part trains the weights, the rest the architecture. Both parts use the training
augmentation (4-pixel zero padding, random 32x32 crop, horizontal flip, then normalisation),
as the original's loaders do (both sample from the same augmented dataset). Images stay on the
device as uint8; augmentation is one gather per batch. Batches of the weight half follow one
random permutation per epoch; architecture batches come from a persistent iterator over the
other half that reshuffles when it runs out (the original starts a fresh loader per step).
All randomness comes from one CPU generator whose state is saved with the checkpoint.

Under N processes (``share=(rank, world)``) every process draws the indices and the augmentation of
the global batch from that generator, so the streams do not depend on the number of processes, and
keeps its contiguous slice (:func:`reproduce.distributed.shard_range`).
"""
from __future__ import annotations

import math
from typing import Dict, Iterator, Optional, Tuple

import torch

from zoo import datasets as zds

from .. import image_size
from ..corpora import load_corpus
from ..data import own
from ..data.augment import augment
from ..data.images import DataSourceError, load_cifar10, load_images
from ..data.split import digest as split_digest
from ..data.split import stratified_split
from ..distributed import shard_range
from .config import ImageNetSearchConfig, ImageSearchConfig
from .imagenet import ImageNetSearchData


class CifarHalves:
    """The two halves of a labelled image set: the first ``split`` images train the weights, the rest the
    architecture. ``halves`` (index tensors of a stratified split) reorders the images so that its first
    part comes first; without it the split is the original's prefix rule at ``train_portion``."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, train_portion: float, batch_size: int,
                 device, seed: int, eval_batch_size: int = 0, mean=zds.CIFAR_MEAN, std=zds.CIFAR_STD,
                 halves: Optional[Tuple[torch.Tensor, torch.Tensor]] = None, share: Tuple[int, int] = (0, 1)):
        n = int(images.shape[0])
        self.split_digest = None
        if halves is not None:
            self.split_digest = split_digest(*halves, labels, images)  # as the record's (data.own.split_record)
            order = torch.cat(halves)
            images, labels, split = images[order], labels[order], len(halves[0])
        else:
            split = int(math.floor(train_portion * n))
        if split < 1 or split >= n:
            raise ValueError(f"train_portion {train_portion} of {n} images leaves an empty half; "
                             "use more images or another train_portion")
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.labels = labels.to(self.device)
        self.split, self.n = split, n
        self.share = share
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        channels = int(images.shape[1])
        self.mean = torch.tensor(mean, device=self.device).view(1, channels, 1, 1)
        self.std = torch.tensor(std, device=self.device).view(1, channels, 1, 1)
        self.generator = torch.Generator().manual_seed(seed)
        self._valid_perm = torch.randperm(n - split, generator=self.generator)
        self._valid_pos = 0
        self.size = int(images.shape[-1])
        self.pad = image_size.crop_padding(self.size)

    @property
    def train_steps(self) -> int:
        return math.ceil(self.split / self.batch_size)

    def augment(self, index: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Padded random crop + horizontal flip + normalisation of the images at ``index`` (CPU long): the
        randomness of the whole (global) batch is drawn, this process's slice of it is made."""
        b = index.numel()
        oy = torch.randint(0, 2 * self.pad + 1, (b,), generator=self.generator)
        ox = torch.randint(0, 2 * self.pad + 1, (b,), generator=self.generator)
        flip = torch.rand(b, generator=self.generator) < 0.5
        if self.share[1] > 1:
            lo, hi = shard_range(0, b, *self.share)
            index, oy, ox, flip = index[lo:hi], oy[lo:hi], ox[lo:hi], flip[lo:hi]
        dev = self.device
        index = index.to(dev)
        x = augment(self.images[index], oy.to(dev), ox.to(dev), flip.to(dev), self.mean, self.std)
        return x, self.labels[index]

    def train_batches(self) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        """One epoch over the weight half in a fresh random order (last batch may be smaller)."""
        perm = torch.randperm(self.split, generator=self.generator)
        for start in range(0, self.split, self.batch_size):
            yield self.augment(perm[start:start + self.batch_size])

    def next_valid(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """The next architecture batch (persistent; reshuffled when the half is used up)."""
        m = self.n - self.split
        if self._valid_pos >= m:
            self._valid_perm = torch.randperm(m, generator=self.generator)
            self._valid_pos = 0
        idx = self._valid_perm[self._valid_pos:self._valid_pos + self.batch_size] + self.split
        self._valid_pos += self.batch_size
        return self.augment(idx)

    def valid_batches(self) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        """The architecture half once, in order, augmented (for the epoch's validation metrics)."""
        for start in range(self.split, self.n, self.eval_batch_size):
            yield self.augment(torch.arange(start, min(start + self.eval_batch_size, self.n)))

    def state_dict(self) -> Dict[str, object]:
        state = {"generator": self.generator.get_state(), "valid_perm": self._valid_perm.clone(),
                 "valid_pos": self._valid_pos}
        if self.split_digest is not None:  # own data: the split it resumes must be this one
            state["split_digest"] = self.split_digest
        return state

    def load_state_dict(self, state: Dict[str, object]) -> None:
        if state.get("split_digest") != self.split_digest:
            raise ValueError(f"the run split other data into its halves (digest {state.get('split_digest')}, now "
                             f"{self.split_digest}): --data holds other images than when the run started")
        self.generator.set_state(state["generator"])
        self._valid_perm = state["valid_perm"].clone()
        self._valid_pos = int(state["valid_pos"])


def load_search_data(config, device, share: Tuple[int, int] = (0, 1), data=None):
    """The conv search's data: one's own images' stratified halves (``data``: images given from Python), the
    ImageNet search's per-class subsets, or CIFAR-10's two halves; under N processes (``share``) CIFAR-10's and
    one's own images' (the ImageNet search's data runs in one process only)."""
    if isinstance(config, ImageSearchConfig):
        return load_image_halves(config, device, data, share)
    if isinstance(config, ImageNetSearchConfig):
        if share[1] > 1:
            raise ValueError("the ImageNet search runs in one process; torchrun searches cifar10 and ptb")
        return ImageNetSearchData(config, device)
    return load_cifar_halves(config, device, share)


def load_cifar_halves(config, device, share: Tuple[int, int] = (0, 1)) -> CifarHalves:
    images, labels = load_cifar10(config.data, train=True, download=True)
    if config.train_examples:
        images, labels = images[:config.train_examples], labels[:config.train_examples]
    images = image_size.downscale(images, config.image_size)
    return CifarHalves(images, labels, config.train_portion, config.batch_size, device, config.seed,
                       eval_batch_size=config.eval_batch_size, share=share)


class PTBData:
    """Token batches of an awd-lstm-lm corpus on the device (original rnn/train_search.py).

    ``train``: the training split in ``batch_size`` columns; ``search``: the validation split in
    ``batch_size`` columns (architecture batches); ``valid``: the validation split in
    ``eval_batch_size`` columns (the epoch's validation perplexity). Under N processes
    (``share=(rank, world)``) ``train`` and ``search`` hold this process's contiguous columns of the
    global batch; ``valid`` is whole on every process.
    """

    def __init__(self, path, batch_size: int, eval_batch_size: int, device, share: Tuple[int, int] = (0, 1),
                 corpus=None):
        corpus = load_corpus(path, "ptb") if corpus is None else corpus
        self.ntokens = len(corpus.dictionary)
        lo, hi = shard_range(0, batch_size, *share)
        self.train = zds.batchify(corpus.train, batch_size)[:, lo:hi].contiguous().to(device)
        self.search = zds.batchify(corpus.valid, batch_size)[:, lo:hi].contiguous().to(device)
        self.valid = zds.batchify(corpus.valid, eval_batch_size, device)
        for name, data, bs in (("train", self.train, batch_size), ("valid", self.search, batch_size),
                               ("valid", self.valid, eval_batch_size)):
            if data.size(0) < 3:
                raise ValueError(f"{path}: the {name} split has too few tokens for batch size {bs} "
                                 f"({data.size(0)} rows); use a smaller batch size or a larger corpus")


def load_image_halves(config, device, data=None, share: Tuple[int, int] = (0, 1)) -> CifarHalves:
    """One's own images (``data``, or the source ``config.data`` names) split into stratified halves, normalised
    with the mean and std of the half that trains the weights. The halves also say what the supernet needs
    (``num_classes``, ``in_chans``, ``stem``) and the record's description of the data (``record``)."""
    images = load_images(config.data if data is None else data, config.image_size)
    stem = own.resolve_stem(config.stem, images.size)
    own.check_image_size(images.size, stem)
    x, y = images.train
    held_out = None
    if "test" not in images.evals and "val" not in images.evals:  # the training's test split: never searched on
        keep, held = own.test_hold_out(y, config)
        held_out = own.split_record("stratified hold-out of train/, left out of the search", (keep, held), y, x,
                                    seed=config.split_seed, test_portion=config.test_portion)
        x, y = x[keep], y[keep]
    part = own.stratified_part(y, config.train_examples, config.split_seed)
    if part is not None:
        x, y = x[part], y[part]
    halves = stratified_split(y, config.train_portion, config.split_seed)
    if len(halves[1]) == 0:
        raise DataSourceError("the search's architecture half is empty (a class with a single image stays in the "
                                  "weights' half, and no class has more): add images or lower --train-portion")
    mean, std = own.normalization(config.normalize, x[halves[0]])
    searched = CifarHalves(x, y, config.train_portion, config.batch_size, device, config.seed,
                           eval_batch_size=config.eval_batch_size, mean=mean, std=std, halves=halves, share=share)
    split = own.split_record("stratified", halves, y, x, seed=config.split_seed, train_portion=config.train_portion)
    if held_out is not None:
        split["test_held_out"] = held_out
    searched.record = own.describe(images.describe(), mean, std, stem, split=split)
    searched.num_classes, searched.in_chans, searched.stem = len(images.classes), images.channels, stem
    return searched
