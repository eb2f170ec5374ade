"""The search: epochs of (architecture step, weight step), as a task of the one runner (:mod:`reproduce.runner`,
which owns the run directory, the lock, resume, the per-epoch metrics and checkpoint, and the record);
:func:`reproduce.tasks.search` runs it.

Run directory (see docs/design.md): ``config.json``, ``metrics.jsonl`` (one line per epoch, with the
genotype), ``genotypes.jsonl`` (the derived genotype after every epoch; epoch -1 is the
initialisation), ``alphas.jsonl`` (the architecture logits and their softmax, same epochs),
``checkpoint.pt`` (after every epoch) and, when finished, ``record.json``. Rerunning with the
same config resumes from the last finished epoch; a finished run is returned as it is.

Under ``torchrun`` (N processes, :mod:`reproduce.distributed`) every process draws the global batch and
keeps its slice; each loss is the local sum over the global count and every gradient the architect or
the weight step uses is summed over the processes (``Dist``), so weights and architecture logits stay
identical on every rank and equal one process's to float round-off, BatchNorm aside: its statistics
follow ``bn_groups`` (:mod:`.bn_groups`). Only rank 0 writes files; after every epoch the ranks
compare a digest of the architecture logits and stop together, in one line, if they differ.
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import genotypes
from zoo.fileio import append_jsonl, atomic_write_text

from ..config import ConfigError
from ..device import autocast, progress_bar, search_channels_last
from ..distributed import Dist
from ..jsonfile import read_json_lines
from ..layout import ALPHAS, GENOTYPES, SUBSETS
from ..optim import make_sgd
from ..rundir import RunDir, check_finite
from . import accurate_bn, architect, bn_groups
from .cnn_supernet import Network
from .cnn_supernet import genotype as cnn_genotype
from .config import CIFAR10SearchConfig, early_stop_skips
from .data import CifarHalves, load_search_data
from .rnn_search import RNNSearch
from .searcher import Searcher, StepCallback, StepHook, keeping_loss

log = logging.getLogger(__name__)


class CNNSearch(Searcher):
    """Conv-cell search on CIFAR-10 (original cnn/train_search.py), or PC-DARTS's (docs/pcdarts.md)."""

    def __init__(self, config: CIFAR10SearchConfig, device: torch.device, load_data: bool = True,
                 num_classes: int = 10, dist: Optional[Dist] = None, data=None):
        self.config, self.device = config, device
        share = (dist.rank, dist.world) if dist is not None else (0, 1)
        self.data = load_search_data(config, device, share, data) if load_data else None
        # one's own images: their classes, channels and stem (the data says them; reproduce.data.own)
        self.data_record = getattr(self.data, "record", None)
        c, classes = config, getattr(self.data, "num_classes", num_classes)
        self.model = Network(c.C, classes, c.layers, c.steps, c.multiplier, c.stem_multiplier, c.partial_channels,
                             c.edge_normalization, getattr(self.data, "stem", c.stem), c.edge_bn_updates,
                             c.partial_selection, c.seed, in_chans=getattr(self.data, "in_chans", 3)).to(device)
        self.use_processes(dist)
        if isinstance(self.data, CifarHalves):
            self._check_batches()
        self.alpha_names = self.model.arch_names
        self.channels_last = search_channels_last(device, config.channels_last)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
            if device.type == "cpu":  # the CPU's channels_last BatchNorm is not exact (accurate_bn.py)
                accurate_bn.use_accurate_statistics(self.model)
        self.forward_model = self.model  # what forward passes call (a torch.compile'd wrapper in benchmarks)
        self.alphas = self.model.new_alphas(device)
        self.w_opt = make_sgd(self.model.parameters(), config.learning_rate, momentum=config.momentum,
                              weight_decay=config.weight_decay)
        self.a_opt = torch.optim.Adam(self.alphas, lr=config.arch_learning_rate,
                                      betas=(config.arch_beta1, config.arch_beta2),
                                      weight_decay=config.arch_weight_decay)

    def _check_batches(self) -> None:
        """Every batch must split into equal parts (BatchNorm groups, processes): the last, shorter ones too."""
        c = self.config
        parts = max(bn_groups.resolve_groups(c.bn_groups, self.d.world, c.sync_bn), self.d.world)
        halves = {"weight half": self.data.split, "architecture half": self.data.n - self.data.split}
        for name, size in halves.items():
            if parts > 1 and size % c.batch_size % parts:
                raise ConfigError(f"the {name} ({size} images) ends in a batch of {size % c.batch_size}, which does "
                                  f"not split into {parts} equal parts (BatchNorm groups / processes); choose "
                                  "train_examples, train_portion or batch_size so that it does")

    def lr_at(self, epoch: int) -> float:
        c = self.config
        if epoch < c.lr_warmup_epochs:  # PC-DARTS on ImageNet: linear warm-up, the cosine's value overridden
            return c.learning_rate * (epoch + 1) / c.lr_warmup_epochs
        cosine = (1 + math.cos(math.pi * epoch / c.epochs)) / 2
        return c.learning_rate_min + (c.learning_rate - c.learning_rate_min) * cosine

    def logits(self, x, alphas):
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.config.amp):
            out = self.forward_model(x, *alphas)
        return out.float() if out.dtype in (torch.bfloat16, torch.float16) else out  # float64 stays (the tests')

    def loss_fn(self, x, y):
        # the local mean over the number of processes: local sum / global count (the slices are equal)
        return lambda: (F.cross_entropy(self.logits(x, self.alphas), y) / self.d.world, None)

    def arch_step(self, x, y, xv, yv, lr: float) -> torch.Tensor:
        """One Adam step of the architecture; returns the validation loss it differentiated, this process's mean
        (order 2: at the virtually stepped weights)."""
        c = self.config
        valid_loss, seen = keeping_loss(self.loss_fn(xv, yv), self.d.world)
        if c.order == 1:
            grads, _ = architect.first_order(self.alphas, valid_loss, all_reduce=self.d.all_reduce_sum_)
        else:
            params = list(self.model.parameters())
            grads, _ = architect.second_order(
                self.model, self.alphas, self.loss_fn(x, y), valid_loss, lr, momentum=c.momentum,
                weight_decay=c.weight_decay, buffers=architect.momentum_buffers(self.w_opt, params), r=c.unrolled_eps,
                all_reduce=self.d.all_reduce_sum_)
        if c.arch_grad_clip:  # PC-DARTS on ImageNet: torch's clip_grad_norm_ over alphas and betas together
            architect.clip_(grads, c.arch_grad_clip)
        self.arch_update(grads)
        return seen["loss"]

    def weight_step(self, x, y):
        """One SGD step of the weights; returns (loss, logits, the gradients' norm before clipping)."""
        self.w_opt.zero_grad(set_to_none=True)
        logits = self.logits(x, [a.detach() for a in self.alphas])
        loss = F.cross_entropy(logits, y)
        (loss / self.d.world).backward()
        self.d.all_reduce_grads_(list(self.model.parameters()))  # before the clip: the global norm
        grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.w_opt.step()
        return loss.detach(), logits.detach(), grad_norm.detach()

    def train_epoch(self, epoch: int, progress: bool, hook: Optional[StepHook]) -> dict:
        lr = self.lr_at(epoch)
        for group in self.w_opt.param_groups:
            group["lr"] = lr
        self.model.train()
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        n = 0
        batches = progress_bar(self.data.train_batches(), self.data.train_steps, f"search epoch {epoch}", progress)
        for step, (x, y) in enumerate(batches):
            xv, yv = self.data.next_valid()
            arch_loss = self.arch_step(x, y, xv, yv, lr) if epoch >= self.config.arch_start_epoch else None
            loss, logits, grad_norm = self.weight_step(x, y)
            hits = (logits.argmax(1) == y).sum()
            loss_sum += loss.double() * y.numel()
            correct += hits
            n += y.numel()
            if hook is not None:
                hook(epoch, step, {"train_loss": loss, "train_acc": 100.0 * hits / y.numel(), "arch_loss": arch_loss,
                                   "lr": lr, "arch_lr": self.a_opt.param_groups[0]["lr"], "grad_norm": grad_norm})
        self.end_epoch_statistics()
        loss_sum, correct, n = self._summed(loss_sum, correct, n)
        return {"lr": lr, "train_loss": loss_sum / n, "train_acc": 100.0 * correct / n}

    def _summed(self, loss_sum: torch.Tensor, correct: torch.Tensor, n: int):
        """(loss sum, correct, count) summed over the processes, as Python numbers."""
        totals = torch.stack([loss_sum.double(), correct.double(), torch.tensor(float(n), dtype=torch.float64,
                                                                                device=loss_sum.device)])
        self.d.all_reduce_sum(totals)
        loss_sum, correct, n = (float(v) for v in totals.cpu())
        return loss_sum, correct, n

    @torch.no_grad()
    def evaluate(self) -> dict:
        self.model.eval()
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        n = 0
        for x, y in self.data.valid_batches():  # each process evaluates its slice of every batch
            logits = self.logits(x, self.alphas)
            loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
            correct += (logits.argmax(1) == y).sum()
            n += y.numel()
        loss_sum, correct, n = self._summed(loss_sum, correct, n)
        return {"valid_loss": loss_sum / n, "valid_acc": 100.0 * correct / n}

    def genotype(self, capped: bool = True):
        """The derived genotype (PC-DARTS's: with betas); with the config's ``max_skip`` cap unless ``capped``."""
        return cnn_genotype(self.alphas, steps=self.config.steps, multiplier=self.config.multiplier,
                            max_skip=self.config.max_skip if capped else None)

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["data"] = self.data.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.data.load_state_dict(state["data"])  # first: other data is named as such, not as other shapes
        super().load_state_dict(state)

    def final_metrics(self, row: dict) -> dict:
        return {k: row[k] for k in ("train_loss", "train_acc", "valid_loss", "valid_acc")}


_SEARCHERS = {"cifar10": CNNSearch, "ptb": RNNSearch, "imagenet": CNNSearch, "images": CNNSearch,
              "text": RNNSearch}


def _trim_jsonl(path: Path, epochs_done: int) -> None:
    if path.exists():
        rows = [r for r in read_json_lines(path) if r.get("epoch", 0) < epochs_done]
        atomic_write_text(path, "".join(json.dumps(r, allow_nan=False) + "\n" for r in rows))


class SearchTask:
    """A search as a task of the one runner: an epoch is (architecture step, weight step) over the
    training half, then the validation; the derived genotype and the architecture logits of every
    epoch go to ``genotypes.jsonl`` and ``alphas.jsonl`` (epoch -1: the initialisation)."""

    kind = "search"
    on_step: Optional[StepHook] = None  # set by the runner (the live logs)

    def __init__(self, dataset: str, config, d: Dist, rundir: RunDir, progress: bool,
                 callback: Optional[StepCallback] = None, data=None):
        self.dataset, self.config, self.rundir, self.d = dataset, config, rundir, d
        self.progress, self.callback = progress, callback
        self.stop_at_skips = early_stop_skips(getattr(config, "early_stop", ""))
        device = d.device
        given = {} if data is None else {"data": data}  # images given from Python (search("images", ..., data=))
        self.searcher = _SEARCHERS[dataset](config, device, dist=d, **given)  # missing data fails here
        self.parameters = sum(p.numel() for p in self.searcher.model.parameters())
        log.info("search %s, order %d: %d weight parameters, device %s", dataset, config.order, self.parameters,
                 device)

    def _log_architecture(self, epoch: int) -> str:
        searcher, path = self.searcher, self.rundir.path
        text = genotypes.format(searcher.genotype())
        if not self.d.is_main:
            return text
        append_jsonl(path / GENOTYPES, {"epoch": epoch, "genotype": text})
        append_jsonl(path / ALPHAS, {"epoch": epoch, "logits": searcher.alphas_dict(),
                                     "softmax": searcher.softmax_dict()})
        return text

    def begin(self, start_epoch: int) -> None:
        # Before the first epoch keep nothing: the initial (epoch -1) rows are written again just below.
        for name in (GENOTYPES, ALPHAS) if self.d.is_main else ():
            _trim_jsonl(self.rundir.path / name, start_epoch if start_epoch > 0 else -1)
        if start_epoch == 0:
            self._log_architecture(-1)
        if self.d.is_main and hasattr(self.searcher.data, "subsets_json"):  # the ImageNet search's draw of subsets
            atomic_write_text(self.rundir.path / SUBSETS, self.searcher.data.subsets_json())

    def run_epoch(self, epoch: int) -> dict:
        searcher = self.searcher
        metrics = searcher.train_epoch(epoch, self.progress, self._after_step)
        metrics.update(searcher.evaluate())
        for key in ("train_loss", "valid_loss"):
            check_finite(key, metrics[key], epoch)
        for a in searcher.alphas:
            check_finite("architecture logits", float(a.detach().abs().sum()), epoch)
        self.d.check_same(searcher.alphas, f"architecture logits after epoch {epoch}")
        text = self._log_architecture(epoch)
        log.info("genotype = %s", text)
        return {**metrics, "genotype": text}

    def _after_step(self, epoch: int, step: int, values: dict) -> None:
        if self.on_step is not None:
            self.on_step(epoch, step, values)
        if self.callback is not None:
            self.callback(epoch, step)

    def watch(self) -> dict:
        """What the live logs show after an epoch: the softmax of the architecture logits, the
        derived genotype and (conv cells) the skip connections of its normal cell (with ``max_skip``, also
        before the cap: the count the early stop reads)."""
        searcher = self.searcher
        genotype = searcher.genotype()
        view = {"texts": {"genotype": genotypes.format(genotype)},
                "arrays": {name: np.asarray(m) for name, m in searcher.softmax_dict().items()}, "scalars": {}}
        if isinstance(genotype, genotypes.Genotype):
            view["scalars"]["normal_skips"] = genotypes.derive.normal_skips(genotype)
            if getattr(self.config, "max_skip", None) is not None:  # the cap hides the collapse the uncapped shows
                view["scalars"]["normal_skips_uncapped"] = genotypes.derive.normal_skips(
                    searcher.genotype(capped=False))
        return view

    def stop_reason(self) -> Optional[str]:
        """DARTS+'s early stop: why the search ends now (None: it goes on). It reads the architecture
        as it stands, so a resumed search decides as the uninterrupted one did."""
        if self.stop_at_skips is None:
            return None
        skips = genotypes.derive.normal_skips(self.searcher.genotype(capped=False))
        if skips < self.stop_at_skips:
            return None
        return (f"early_stop {self.config.early_stop}: the normal cell DARTS derives has {skips} skip connections "
                f"(DARTS+ stops at {self.stop_at_skips})")

    def state_dict(self) -> dict:
        return self.searcher.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.searcher.load_state_dict(state)

    def final(self, curve: list) -> dict:
        return self.searcher.final_metrics(curve[-1])

    def record_fields(self, curve: list) -> dict:
        method = "" if getattr(self.config, "method", "darts") == "darts" else f"-{self.config.method}"
        fields = {"experiment": f"search-{self.dataset}{method}-order{self.config.order}", "order": self.config.order,
                  "genotype": curve[-1]["genotype"], "alphas": self.searcher.alphas_dict(), "world_size": self.d.world}
        if hasattr(self.searcher, "channels_last"):  # the memory format the device's default chose
            fields["channels_last"] = self.searcher.channels_last
        if getattr(self.searcher, "data_record", None):  # one's own data: what it was and how it was split
            fields["data"] = self.searcher.data_record
        reason = self.stop_reason()
        if reason and len(curve) < self.config.epochs:
            fields["early_stop"] = {"epoch": curve[-1]["epoch"], "epochs_run": len(curve), "reason": reason}
        return fields

