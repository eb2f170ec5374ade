"""ImageNet training (original cnn/train_imagenet.py with --auxiliary) from an ImageFolder tree.

Data: ``data/train/<class>/*`` and ``data/val/<class>/*``. Training transform as the original:
RandomResizedCrop(224), horizontal flip, ColorJitter(0.4, 0.4, 0.4, 0.2), normalise; evaluation:
resize 256, centre crop 224. Decoding runs in ``workers`` processes per training process, batches
are pinned and copied with ``non_blocking=True`` so the copy overlaps the previous step.

Schedule: lr = lr0 * gamma ** (epoch // decay_period) (the original stepped StepLR once per
epoch before training, so epoch 0 runs at lr0); label-smoothed cross entropy (0.1) for the main
and the auxiliary loss, plain cross entropy for evaluation; top-1 and top-5 error on val every
epoch. The record's final metrics are those of the last epoch (and the best top-1 seen, which the
original tracked to keep model_best).
"""
from __future__ import annotations

import logging
from typing import List

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

import zoo
from zoo.datasets import IMAGENET_MEAN, IMAGENET_STD, imagenet_eval_transform, imagenet_folder

from .. import distributed
from ..config import ConfigError
from ..data.augment import imagenet_train_transform
from ..device import autocast, progress_bar
from ..distributed import shard_range
from ..rundir import RunDir
from .cifar import begin_cnn_epoch, setup_cnn
from .common import RecipeTask, cnn_train_step, step_lr, topk_correct

log = logging.getLogger(__name__)


def train_transform():
    """The original's training transform of ImageNet's PIL images (224 px crops, ImageNet's mean and std)."""
    return imagenet_train_transform(224, IMAGENET_MEAN, IMAGENET_STD)


def _limit(dataset, n: int):
    """An evenly spaced subset of n examples (so every class keeps some), or the whole set."""
    if not n or n >= len(dataset):
        return dataset
    step = len(dataset) / n
    return Subset(dataset, [int(i * step) for i in range(n)])


class ImageNetTask(RecipeTask):
    def __init__(self, dataset: str, config, d: distributed.Dist, rundir: RunDir, progress: bool):
        super().__init__(dataset, config, d, rundir, progress)
        dev = self.device
        self.local_batch = d.local_batch(config.batch_size)
        train_set = imagenet_folder(config.data, "train", transform=train_transform())
        val_set = imagenet_folder(config.data, "val", transform=imagenet_eval_transform())
        if train_set.classes != val_set.classes:
            raise ConfigError(f"{config.data}: train/ and val/ have different class folders "
                              f"({len(train_set.classes)} vs {len(val_set.classes)}); they must match")
        self.num_classes = len(train_set.classes)
        self.train_set = _limit(train_set, config.limit)
        self.val_set = _limit(val_set, config.limit_eval)
        if len(self.train_set) < d.world:
            raise ConfigError(f"{len(self.train_set)} training images cannot be split across {d.world} processes")
        self.pin = dev.type == "cuda"
        mf = torch.channels_last if config.channels_last else torch.contiguous_format
        self.memory_format = mf
        setup_cnn(self, zoo.NetworkImageNet(config.C, self.num_classes, config.layers, config.auxiliary, self.genotype),
                  config, d, dev, mf)
        self.best_top1_error = None

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "best_top1_error": self.best_top1_error}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.best_top1_error = state.get("best_top1_error")

    def _loader(self, dataset, batches: List[List[int]], generator: torch.Generator) -> DataLoader:
        return DataLoader(dataset, batch_sampler=batches, num_workers=self.config.workers, pin_memory=self.pin,
                          generator=generator, persistent_workers=False)

    def lr_at(self, epoch: int) -> float:
        return step_lr(self.config, epoch)

    def run_epoch(self, epoch: int) -> dict:
        cfg, d, dev = self.config, self.d, self.device
        gen, lr, _ = begin_cnn_epoch(self, epoch)
        n = len(self.train_set)
        perm = torch.randperm(n, generator=gen).tolist()
        batches = []
        for start in range(0, n, cfg.batch_size):
            stop = min(start + cfg.batch_size, n)
            if stop - start < d.world:
                break
            lo, hi = shard_range(start, stop, d.rank, d.world)
            batches.append(perm[lo:hi])
        # worker seeds come from a per-rank generator so ranks augment differently
        worker_gen = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,), generator=gen)) + d.rank)
        self.train_model.train()
        loss_sum = torch.zeros((), device=dev, dtype=torch.float64)
        correct = torch.zeros((), device=dev, dtype=torch.long)
        seen = 0
        loader = self._loader(self.train_set, batches, worker_gen)
        for step, (x, y) in enumerate(progress_bar(loader, len(batches), f"epoch {epoch}", self.progress)):
            x = x.to(dev, non_blocking=True, memory_format=self.memory_format)
            y = y.to(dev, non_blocking=True)
            stats = {} if self.on_step is not None else None
            loss, c = cnn_train_step(self.train_model, self.optimizer, x, y, auxiliary_weight=cfg.auxiliary_weight,
                                     grad_clip=cfg.grad_clip, params=self.params, device=dev, amp=cfg.amp,
                                     label_smoothing=cfg.label_smooth, stats=stats)
            loss_sum += loss.double() * len(y)
            correct += c
            seen += len(y)
            if stats is not None:  # this process's share of the batch
                self.on_step(epoch, step, {"train_loss": loss, "train_acc": 100.0 * c / len(y), "lr": lr, **stats})
        totals = d.all_reduce_sum(torch.stack([loss_sum, correct.double(),
                                               torch.tensor(float(seen), device=dev, dtype=torch.float64)]))
        tl, tc, ts = (float(v) for v in totals.cpu())
        ev = self.evaluate()
        if self.best_top1_error is None or ev["top1_error"] < self.best_top1_error:
            self.best_top1_error = ev["top1_error"]
        return {"lr": lr, "train_loss": tl / ts, "train_acc": 100.0 * tc / ts, "valid_loss": ev["loss"],
                "top1_error": ev["top1_error"], "top5_error": ev["top5_error"]}

    @torch.no_grad()
    def evaluate(self) -> dict:
        cfg, d, dev = self.config, self.d, self.device
        self.eval_model.eval()
        n = len(self.val_set)
        lo, hi = shard_range(0, n, d.rank, d.world)
        batches = [list(range(s, min(s + cfg.eval_batch_size, hi))) for s in range(lo, hi, cfg.eval_batch_size)]
        sums = torch.zeros(3, device=dev, dtype=torch.float64)
        for x, y in self._loader(self.val_set, batches, torch.Generator().manual_seed(0)):
            x = x.to(dev, non_blocking=True, memory_format=self.memory_format)
            y = y.to(dev, non_blocking=True)
            with autocast(dev, cfg.amp):
                logits = self.eval_model(x)
            c1, c5 = topk_correct(logits.float(), y)
            sums += torch.stack([F.cross_entropy(logits.float(), y, reduction="sum").double(), c1.double(),
                                 c5.double()])
        loss, c1, c5 = (float(v) for v in d.all_reduce_sum(sums).cpu())
        return {"loss": loss / n, "top1_error": 100.0 - 100.0 * c1 / n, "top5_error": 100.0 - 100.0 * c5 / n}

    def final(self, curve: list) -> dict:
        last = curve[-1]
        return {"top1_error": last["top1_error"], "top5_error": last["top5_error"], "valid_loss": last["valid_loss"],
                "best_top1_error": min(m["top1_error"] for m in curve), "num_classes": self.num_classes}
