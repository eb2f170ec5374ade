"""CIFAR-10 training (original cnn/train.py with --auxiliary --cutout), data kept on the device.

The original fed the GPU through a 2-worker PIL DataLoader, which starves any modern GPU. Here
the whole training set sits on the device as uint8 (150 MB) and every batch is augmented there in
one go: random crop 32 with 4 pixels of zero padding, horizontal flip, CIFAR mean/std
normalisation, cutout 16, in the original's order and with its quirks:

- the padding is added to the raw image (value 0) *before* normalisation, so padded pixels
  become ``-mean/std``, as torchvision's RandomCrop on the PIL image does;
- cutout is applied after normalisation, so the cut square is 0 = the mean colour, and its centre
  is uniform over the whole image, so the square is clipped at the borders (on average smaller
  than 16x16).

The random crop offsets, flips, cutout centres and the data order are drawn for the *global*
batch from a generator seeded per epoch, so they do not depend on the number of processes.
Per epoch: lr = 0.5 lr0 (1 + cos(pi epoch / epochs)) (the original stepped CosineAnnealingLR
once per epoch before training, so epoch 0 runs at lr0), drop-path = p * epoch / epochs. The
last, partial batch of an epoch is kept (the original's DataLoader kept it).

The same task trains on one's own images (``train images``, :class:`~reproduce.train.recipes.ImagesConfig`):
their classes, channels and size, the mean and std of the images that train the weights, the
stem by image size (:mod:`reproduce.data.own`), and the recipe by image size too: this one up to 64 px,
above it the ImageNet recipe's training (:mod:`reproduce.train.imagenet`: its step schedule and label
smoothing; its random resized crop, flip and colour jitter at the images' size, each image's draws seeded
from the epoch's generator) on the same in-memory or streamed images, evaluated as this recipe evaluates.
"""
from __future__ import annotations

import logging
import math
from typing import Dict

import torch
import torch.nn.functional as F

import zoo
from zoo.datasets import CIFAR_MEAN, CIFAR_STD, DatasetNotFoundError, load_cifar10

from .. import distributed, image_size
from ..config import ConfigError
from ..data.augment import augment as shared_augment
from ..data.augment import augment_each, imagenet_train_transform, normalize
from ..data.images import load_cifar10 as guarded_load_cifar10
from ..data.own import resolve_stem, training_images
from ..data.split import data_identity
from ..data.stream import StreamedImages
from ..device import autocast, progress_bar
from ..distributed import shard_range
from ..optim import make_sgd
from ..rundir import RunDir
from .common import (
    GraphedCNNStep,
    RecipeTask,
    cnn_train_step,
    maybe_compile,
    seed_epoch,
    set_drop_path,
    set_lr,
    step_lr,
)
from .recipes import ImagesConfig

log = logging.getLogger(__name__)

PAD = 4
SIZE = 32


def draw_augmentation(n: int, generator: torch.Generator, size: int = SIZE) -> Dict[str, torch.Tensor]:
    """Crop offsets in [0, 2*pad], flips, cutout centres in [0, size) for n images (on the CPU); the padding
    is PAD = 4 at 32x32 and in proportion at other sizes (reproduce.image_size)."""
    pad = image_size.crop_padding(size)
    return {
        "oy": torch.randint(0, 2 * pad + 1, (n,), generator=generator),
        "ox": torch.randint(0, 2 * pad + 1, (n,), generator=generator),
        "flip": torch.randint(0, 2, (n,), generator=generator).bool(),
        "cy": torch.randint(0, size, (n,), generator=generator),
        "cx": torch.randint(0, size, (n,), generator=generator),
    }


def augment(x_u8: torch.Tensor, p: Dict[str, torch.Tensor], mean: torch.Tensor, std: torch.Tensor,
            cutout_length: int, channels_last: bool = False) -> torch.Tensor:
    """The training augmentation (:func:`reproduce.data.augment.augment`) with the draws of
    :func:`draw_augmentation` (on the images' device)."""
    return shared_augment(x_u8, p["oy"], p["ox"], p["flip"], mean, std, cutout_length, p["cy"], p["cx"],
                          channels_last)


def _cifar10(config):
    """The CIFAR-10 files as the original's recipe reads them: (train, evaluated split, its name)."""
    try:
        train_x, train_y = guarded_load_cifar10(config.data, train=True, download=config.download)
    except DatasetNotFoundError as e:
        raise DatasetNotFoundError(f"{e}; or rerun with --download") from None
    if config.valid_split:
        if config.valid_split >= len(train_x):
            raise ConfigError(f"valid_split {config.valid_split} leaves no training images "
                              f"(the training set has {len(train_x)})")
        # The held-out images are the last valid_split of the training files, in file order.
        cut = len(train_x) - config.valid_split
        eval_x, eval_y = train_x[cut:], train_y[cut:]
        train_x, train_y = train_x[:cut], train_y[:cut]
        eval_name = "valid"
    else:
        eval_x, eval_y = load_cifar10(config.data, train=False, download=config.download)
        eval_name = "test"
    if config.limit:
        train_x, train_y = train_x[:config.limit], train_y[:config.limit]
    if config.limit_eval:
        eval_x, eval_y = eval_x[:config.limit_eval], eval_y[:config.limit_eval]
    train_x, eval_x = (image_size.downscale(x, config.image_size) for x in (train_x, eval_x))
    return (train_x, train_y), (eval_x, eval_y), eval_name


class CIFARTask(RecipeTask):
    """The CIFAR-10 recipe, on CIFAR-10 (:class:`CIFAR10Config`) or on one's own images (:class:`ImagesConfig`:
    their classes, channels, size, normalisation and hold-outs from :func:`reproduce.data.own.training_images`;
    ``data``: images given from Python)."""

    def __init__(self, dataset: str, config, d: distributed.Dist, rundir: RunDir, progress: bool, data=None):
        super().__init__(dataset, config, d, rundir, progress)
        dev = self.device
        self.local_batch = d.local_batch(config.batch_size)
        self.data_record, self.test_split = None, None
        if isinstance(config, ImagesConfig):
            own = training_images(config, data)
            (train_x, train_y), (eval_x, eval_y), self.eval_name = own.train, own.evaluate, own.eval_name
            mean, std, self.data_record, self.test_split = own.mean, own.std, own.record, own.test
        else:
            (train_x, train_y), (eval_x, eval_y), self.eval_name = _cifar10(config)
            mean, std = CIFAR_MEAN, CIFAR_STD
        if len(train_x) < d.world:
            raise ConfigError(f"{len(train_x)} training images cannot be split across {d.world} processes")
        self.size = int(train_x.shape[-1])
        # one's own images: the recipe the config names ('auto' only in a config built without make_config)
        self.recipe = resolve_stem(getattr(config, "recipe", "cifar"), self.size)
        self.label_smooth = getattr(config, "label_smooth", 0.0)
        self.transform = None
        if self.recipe == "imagenet":
            self.transform = imagenet_train_transform(self.size, mean, std, tensors=True)
        if self.data_record is not None:
            self.data_record["recipe"] = self.recipe
        self.cutout_length = config.cutout_length
        if self.data_record is not None and not config.cutout_length:  # own images: 0 is half the side
            self.cutout_length = self.size // 2
        self.mean = torch.tensor(mean, device=dev)
        self.std = torch.tensor(std, device=dev)
        self.train_x, self.train_y = train_x.to(dev), train_y.to(dev)
        self.memory_format = mf = torch.channels_last if config.channels_last else torch.contiguous_format
        self.eval_x, self.eval_y = self._normalized(eval_x), eval_y.to(dev)
        setup_cnn(self, network(config, self.genotype, self.data_record), config, d, dev, mf)
        self.graphed = None
        if config.cuda_graphs:
            if dev.type != "cuda" or d.enabled or config.compile:
                raise ConfigError("cuda_graphs needs one process on a CUDA device and no --compile "
                                  f"(device {dev}, {d.world} processes, compile={config.compile})")
            self.graphed = GraphedCNNStep(self.model, self.optimizer, self.params, dev,
                                          auxiliary_weight=config.auxiliary_weight, grad_clip=config.grad_clip,
                                          amp=config.amp, label_smoothing=self.label_smooth)

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}
        if self.data_record is not None:  # one's own images: the resumed run must train on the same ones
            state["data"] = data_identity(self.data_record)
        return state

    def load_state_dict(self, state: dict) -> None:
        if self.data_record is not None and "data" in state and state["data"] != data_identity(self.data_record):
            raise ValueError(f"the run trained on other images than {self.config.data} holds now (classes, size, "
                             "normalisation or the images themselves differ): restore them, or start afresh in "
                             "another --out directory")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])

    # -- one epoch -----------------------------------------------------------------------------
    def lr_at(self, epoch: int) -> float:
        if self.recipe == "imagenet":
            return step_lr(self.config, epoch)
        return 0.5 * self.config.learning_rate * (1 + math.cos(math.pi * epoch / self.config.epochs))

    def run_epoch(self, epoch: int) -> dict:
        cfg, d, dev = self.config, self.d, self.device
        gen, lr, drop_prob = begin_cnn_epoch(self, epoch)
        if self.graphed is not None:  # lr and drop-path are baked into the graph: capture anew
            self.graphed.reset()
        n = len(self.train_x)
        perm = torch.randperm(n, generator=gen)
        if self.transform is None:
            aug = draw_augmentation(n, gen, self.size)
        else:  # a seed per image in epoch order: the ImageNet recipe's draws, whatever the processes
            aug = {"seed": torch.randint(0, 2 ** 62, (n,), generator=gen)}
        perm, aug = perm.to(dev), {k: v.to(dev) for k, v in aug.items()}
        self.train_model.train()
        loss_sum = torch.zeros((), device=dev, dtype=torch.float64)
        correct = torch.zeros((), device=dev, dtype=torch.long)
        seen = 0
        starts = range(0, n, cfg.batch_size)
        for step, start in enumerate(progress_bar(starts, len(starts), f"epoch {epoch}", self.progress)):
            stop = min(start + cfg.batch_size, n)
            if stop - start < d.world:  # a last batch too small to give every process an example
                break
            lo, hi = shard_range(start, stop, d.rank, d.world)
            idx = perm[lo:hi]
            p = {k: v[lo:hi] for k, v in aug.items()}
            if self.transform is None:
                x = augment(self.train_x[idx], p, self.mean, self.std, self.cutout_length if cfg.cutout else 0,
                            cfg.channels_last)
            else:
                x = augment_each(self.train_x[idx], self.transform, p["seed"].cpu(), cfg.channels_last)
            y = self.train_y[idx]
            stats = {} if self.on_step is not None else None
            if self.graphed is not None and hi - lo == cfg.batch_size:
                loss, c = self.graphed(x, y)  # the gradients' norm stays inside the graph
            else:
                loss, c = cnn_train_step(self.train_model, self.optimizer, x, y, auxiliary_weight=cfg.auxiliary_weight,
                                         grad_clip=cfg.grad_clip, params=self.params, device=dev, amp=cfg.amp,
                                         label_smoothing=self.label_smooth, stats=stats)
            loss_sum += loss.double() * (hi - lo)
            correct += c
            seen += hi - lo
            if stats is not None:  # this process's share of the batch
                self.on_step(epoch, step, {"train_loss": loss, "train_acc": 100.0 * c / (hi - lo), "lr": lr, **stats})
        totals = d.all_reduce_sum(torch.stack([loss_sum, correct.double(), torch.tensor(float(seen), device=dev,
                                                                                         dtype=torch.float64)]))
        train_loss, train_correct, train_seen = (float(v) for v in totals.cpu())
        ev = self.evaluate(self.eval_x, self.eval_y)
        return {"lr": lr, "drop_path_prob": drop_prob, "train_loss": train_loss / train_seen,
                "train_acc": 100.0 * train_correct / train_seen,
                f"{self.eval_name}_loss": ev["loss"], f"{self.eval_name}_error": ev["error"]}

    @torch.no_grad()
    def evaluate(self, xs: torch.Tensor, ys: torch.Tensor) -> dict:
        cfg, d, dev = self.config, self.d, self.device
        self.eval_model.eval()
        lo, hi = shard_range(0, len(xs), d.rank, d.world)
        loss_sum = torch.zeros((), device=dev, dtype=torch.float64)
        correct = torch.zeros((), device=dev, dtype=torch.long)
        for start in range(lo, hi, cfg.eval_batch_size):
            x, y = xs[start:min(start + cfg.eval_batch_size, hi)], ys[start:min(start + cfg.eval_batch_size, hi)]
            if x.dtype == torch.uint8:  # a streamed batch, decoded just now
                x = self._normalized(x)
            with autocast(dev, cfg.amp):
                logits = self.eval_model(x)
            loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").double()
            correct += (logits.argmax(1) == y).sum()
        totals = d.all_reduce_sum(torch.stack([loss_sum, correct.double()]))
        loss, c = (float(v) for v in totals.cpu())
        return {"loss": loss / len(xs), "error": 100.0 - 100.0 * c / len(xs)}

    def final(self, curve: list) -> dict:
        last = curve[-1]
        out = {f"{self.eval_name}_error": last[f"{self.eval_name}_error"],
               f"{self.eval_name}_loss": last[f"{self.eval_name}_loss"],
               "train_loss": last["train_loss"], "train_acc": last["train_acc"]}
        if self.eval_name == "valid":  # the selection protocol also gets the test error of the final weights
            if self.test_split is not None:
                test_x, test_y = self.test_split
            else:
                test_x, test_y = load_cifar10(self.config.data, train=False, download=False)
                if self.config.limit_eval:
                    test_x, test_y = test_x[:self.config.limit_eval], test_y[:self.config.limit_eval]
                test_x = image_size.downscale(test_x, self.config.image_size)
            ev = self.evaluate(self._normalized(test_x), test_y.to(self.device))
            out.update(test_error=ev["error"], test_loss=ev["loss"])
        if self.data_record is not None:  # what always guessing the most frequent class would score
            counts = torch.bincount(self.eval_y.cpu(), minlength=self.data_record["num_classes"])
            out[f"{self.eval_name}_majority_error"] = 100.0 - 100.0 * float(counts.max()) / float(counts.sum())
        return out

    def _normalized(self, x_u8: torch.Tensor) -> torch.Tensor:
        """Evaluation images on the device, normalised, in the run's memory format (streamed images: as they
        are, each batch normalised when it is decoded)."""
        if isinstance(x_u8, StreamedImages):
            return x_u8.to(self.device)
        c = x_u8.shape[1]
        x = normalize(x_u8.to(self.device), self.mean.view(1, c, 1, 1), self.std.view(1, c, 1, 1))
        return x.contiguous(memory_format=self.memory_format)


def network(config, genotype, data_record=None):
    """NetworkCIFAR for CIFAR-10; for one's own images the network of its stem (CIFAR's up to 64 px, ImageNet's
    above) with the data's classes and channels."""
    if data_record is None:
        return zoo.NetworkCIFAR(config.C, 10, config.layers, config.auxiliary, genotype)
    cls = zoo.NetworkCIFAR if data_record["stem"] == "cifar" else zoo.NetworkImageNet
    channels = {"in_chans": data_record["in_chans"]} if data_record["in_chans"] != 3 else {}
    return cls(config.C, data_record["num_classes"], config.layers, config.auxiliary, genotype, **channels)


def setup_cnn(recipe, model, config, d, device, memory_format) -> None:
    """What the CIFAR-10 and ImageNet recipes share: the model on the device, its parameter count (as
    the original counts it), the paper's SGD, and the train view (DDP-wrapped) and eval view, compiled
    when asked."""
    recipe.model = model.to(device, memory_format=memory_format)
    recipe.parameters = zoo.count_parameters(recipe.model)
    recipe.params = list(recipe.model.parameters())
    recipe.optimizer = make_sgd(recipe.params, config.learning_rate, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    recipe.train_model = maybe_compile(distributed.wrap(recipe.model, d), config.compile, config.epochs)
    recipe.eval_model = maybe_compile(recipe.model, config.compile, config.epochs)


def begin_cnn_epoch(recipe, epoch: int):
    """What an epoch of the CIFAR-10 and ImageNet recipes starts with: seeding, the learning rate, the
    drop-path probability (ramped linearly). Returns (data generator, lr, drop-path probability)."""
    cfg = recipe.config
    gen = torch.Generator().manual_seed(seed_epoch(cfg.seed, epoch, recipe.d.rank))
    lr = recipe.lr_at(epoch)
    set_lr(recipe.optimizer, lr)
    drop_prob = cfg.drop_path_prob * epoch / cfg.epochs
    set_drop_path(recipe.model, drop_prob, cfg.compile and cfg.drop_path_prob > 0)
    return gen, lr, drop_prob
