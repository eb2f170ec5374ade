"""The search: epochs of (architecture step, weight step), as a task of the one runner (:mod:`reproduce.runner`,
which owns the run directory, the lock, resume, the per-epoch metrics and checkpoint, and the record).

Run directory (see DESIGN.md): ``config.json``, ``metrics.jsonl`` (one line per epoch, with the
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
from typing import Callable, Dict, List, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import genotypes
from zoo import datasets as zds
from zoo.fileio import append_jsonl, atomic_write_text

from .. import config as run_config
from .. import distributed, runner
from ..config import ConfigError
from ..device import autocast, progress_bar, search_channels_last
from ..distributed import Dist
from ..jsonfile import read_json_lines
from ..optim import make_sgd
from ..rundir import RunDir, check_finite
from . import architect, bn_groups
from .cnn_supernet import Network
from .config import CIFAR10SearchConfig, PTBSearchConfig
from .data import PTBData, load_cifar_halves
from .rnn_supernet import RNNModelSearch

log = logging.getLogger(__name__)

SEARCH_CONFIGS = {"cifar10": CIFAR10SearchConfig, "ptb": PTBSearchConfig}
GENOTYPES, ALPHAS = "genotypes.jsonl", "alphas.jsonl"

StepCallback = Callable[[int, int], None]


class _Base:
    d: Dist
    model: nn.Module
    alphas: List[torch.Tensor]
    w_opt: torch.optim.Optimizer
    a_opt: torch.optim.Optimizer
    alpha_names: tuple

    def use_processes(self, d: Optional[Dist]) -> Dist:
        """This searcher's processes (one process on ``self.device`` when ``d`` is None), and the model's
        BatchNorm statistics as the config's ``bn_groups`` / ``sync_bn`` ask for them."""
        self.d = d if d is not None else Dist(device=self.device)
        c = self.config
        groups = bn_groups.resolve_groups(c.bn_groups, self.d.world, c.sync_bn)
        if c.sync_bn and self.d.enabled:
            if self.device.type != "cuda":
                raise ConfigError("--sync-bn needs GPUs (SyncBatchNorm); on CPUs use --bn-groups")
            self.model = bn_groups.use_sync(self.model)
        else:
            self.model = bn_groups.use_groups(self.model, groups // self.d.world)
        return self.d

    def end_epoch_statistics(self) -> None:
        """Average the BatchNorm running statistics over the processes (each updated them from its groups)."""
        self.d.average_(bn_groups.running_statistics(self.model))

    def arch_update(self, grads: List[torch.Tensor]) -> None:
        self.a_opt.zero_grad(set_to_none=True)
        architect.set_grads_(self.alphas, grads)
        self.a_opt.step()

    def alphas_dict(self) -> Dict[str, list]:
        return {name: a.detach().cpu().tolist() for name, a in zip(self.alpha_names, self.alphas)}

    def softmax_dict(self) -> Dict[str, list]:
        return {name: F.softmax(a.detach().float().cpu(), dim=-1).tolist()
                for name, a in zip(self.alpha_names, self.alphas)}

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "alphas": [a.detach().clone() for a in self.alphas],
                "w_opt": self.w_opt.state_dict(), "a_opt": self.a_opt.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        with torch.no_grad():
            for a, s in zip(self.alphas, state["alphas"]):
                a.copy_(s)
        self.w_opt.load_state_dict(state["w_opt"])
        self.a_opt.load_state_dict(state["a_opt"])


class CNNSearch(_Base):
    """Conv-cell search on CIFAR-10 (original cnn/train_search.py)."""

    alpha_names = ("alphas_normal", "alphas_reduce")

    def __init__(self, config: CIFAR10SearchConfig, device: torch.device, load_data: bool = True,
                 dist: Optional[Dist] = None):
        self.config, self.device = config, device
        self.model = Network(config.C, 10, config.layers, config.steps, config.multiplier,
                             config.stem_multiplier).to(device)
        d = self.use_processes(dist)
        self.data = load_cifar_halves(config, device, (d.rank, d.world)) if load_data else None
        if self.data is not None:
            self._check_batches()
        self.channels_last = search_channels_last(device, config.channels_last)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
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
        cosine = (1 + math.cos(math.pi * epoch / c.epochs)) / 2
        return c.learning_rate_min + (c.learning_rate - c.learning_rate_min) * cosine

    def logits(self, x, alphas):
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.config.amp):
            return self.forward_model(x, *alphas).float()

    def loss_fn(self, x, y):
        # the local mean over the number of processes: local sum / global count (the slices are equal)
        return lambda: (F.cross_entropy(self.logits(x, self.alphas), y) / self.d.world, None)

    def arch_step(self, x, y, xv, yv, lr: float) -> None:
        c = self.config
        if c.order == 1:
            grads, _ = architect.first_order(self.alphas, self.loss_fn(xv, yv), all_reduce=self.d.all_reduce_sum_)
        else:
            params = list(self.model.parameters())
            grads, _ = architect.second_order(
                self.model, self.alphas, self.loss_fn(x, y), self.loss_fn(xv, yv), lr, momentum=c.momentum,
                weight_decay=c.weight_decay, buffers=architect.momentum_buffers(self.w_opt, params), r=c.unrolled_eps,
                all_reduce=self.d.all_reduce_sum_)
        self.arch_update(grads)

    def weight_step(self, x, y):
        self.w_opt.zero_grad(set_to_none=True)
        logits = self.logits(x, [a.detach() for a in self.alphas])
        loss = F.cross_entropy(logits, y)
        (loss / self.d.world).backward()
        self.d.all_reduce_grads_(list(self.model.parameters()))  # before the clip: the global norm
        nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.w_opt.step()
        return loss.detach(), logits.detach()

    def train_epoch(self, epoch: int, progress: bool, callback: Optional[StepCallback]) -> dict:
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
            self.arch_step(x, y, xv, yv, lr)
            loss, logits = self.weight_step(x, y)
            loss_sum += loss.double() * y.numel()
            correct += (logits.argmax(1) == y).sum()
            n += y.numel()
            if callback is not None:
                callback(epoch, step)
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

    def genotype(self):
        return genotypes.derive.cnn(self.alphas[0], self.alphas[1], steps=self.config.steps,
                                    multiplier=self.config.multiplier)

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["data"] = self.data.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.data.load_state_dict(state["data"])

    def final_metrics(self, row: dict) -> dict:
        return {k: row[k] for k in ("train_loss", "train_acc", "valid_loss", "valid_acc")}


def _detach_hidden(hidden):
    return [h.detach() for h in hidden]


class RNNSearch(_Base):
    """Recurrent-cell search on PTB (original rnn/train_search.py)."""

    alpha_names = ("weights",)

    def __init__(self, config: PTBSearchConfig, device: torch.device, dist: Optional[Dist] = None):
        self.config, self.device = config, device
        share = (dist.rank, dist.world) if dist is not None else (0, 1)
        self.data = PTBData(config.data, config.batch_size, config.eval_batch_size, device, share)
        c = config
        self.model = RNNModelSearch(self.data.ntokens, c.emsize, c.nhid, c.nhidlast, c.dropout, c.dropouth,
                                    c.dropoutx, c.dropouti, c.dropoute).to(device)
        self.model.share_batch(*distributed.shard_range(0, c.batch_size, *share), c.batch_size)
        for cell in self.model.rnns:
            cell.batch_stats_in_eval = c.valid_bn == "batch"
        self.use_processes(dist)
        self.local_batch = self.data.train.size(1)
        self.alphas = self.model.new_alphas(device)
        self.w_opt = make_sgd(self.model.parameters(), lr=c.learning_rate, weight_decay=c.weight_decay)
        self.a_opt = torch.optim.Adam(self.alphas, lr=c.arch_learning_rate, weight_decay=c.arch_weight_decay)

    def held_in_virtual_step(self) -> List[torch.Tensor]:
        """The weights the second-order virtual step leaves at w: the tied embedding/decoder weight with
        ``virtual_step_tied_weight='held'`` (the original's code), none with 'stepped' (the paper's formula)."""
        return [self.model.encoder.weight] if self.config.virtual_step_tied_weight == "held" else []

    def loss_fn(self, hidden, data, targets):
        def loss():
            log_prob, hidden_next = self.model(data, hidden, self.alphas[0])
            # local mean / processes = local sum / global count (equal slices)
            return (F.nll_loss(log_prob.view(-1, log_prob.size(2)), targets) / self.d.world,
                    _detach_hidden(hidden_next))
        return loss

    def train_epoch(self, epoch: int, progress: bool, callback: Optional[StepCallback]) -> dict:
        c, train, search = self.config, self.data.train, self.data.search
        hidden = self.model.init_hidden(self.local_batch)
        hidden_valid = self.model.init_hidden(self.local_batch)
        reduce = self.d.all_reduce_sum_
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        batches, i, step = 0, 0, 0
        total = max(1, (train.size(0) - 2) // c.bptt + 1)
        bar = progress_bar(None, total, f"search epoch {epoch}", progress)
        params = list(self.model.parameters())
        while i < train.size(0) - 1 - 1:
            bptt = c.bptt if np.random.random() < 0.95 else c.bptt / 2.0
            seq_len = int(bptt)
            lr2 = self.w_opt.param_groups[0]["lr"]
            self.w_opt.param_groups[0]["lr"] = lr2 * seq_len / c.bptt
            self.model.train()
            data_valid, targets_valid = zds.get_batch(search, i % (search.size(0) - 1), c.bptt)
            data, targets = zds.get_batch(train, i, seq_len)
            hidden, hidden_valid = _detach_hidden(hidden), _detach_hidden(hidden_valid)
            valid_loss = self.loss_fn(hidden_valid, data_valid, targets_valid)
            if c.order == 1:
                grads, hidden_valid = architect.first_order(self.alphas, valid_loss, all_reduce=reduce)
            else:
                eta = self.w_opt.param_groups[0]["lr"]
                grads, hidden_valid = architect.second_order(
                    self.model, self.alphas, self.loss_fn(hidden, data, targets), valid_loss, eta,
                    weight_decay=c.weight_decay, clip=c.grad_clip, r=c.unrolled_eps, hold=self.held_in_virtual_step(),
                    all_reduce=reduce)
            self.arch_update(grads)

            self.w_opt.zero_grad(set_to_none=True)
            log_prob, hidden, rnn_hs, dropped_rnn_hs = self.model(data, hidden, self.alphas[0].detach(), return_h=True)
            raw_loss = F.nll_loss(log_prob.view(-1, log_prob.size(2)), targets)
            loss = raw_loss
            if c.alpha > 0:
                loss = loss + c.alpha * dropped_rnn_hs[-1].pow(2).mean()
            loss = loss + c.beta * (rnn_hs[-1][1:] - rnn_hs[-1][:-1]).pow(2).mean()
            (loss / self.d.world).backward()  # every term a mean over equal slices: local sum / global count
            self.d.all_reduce_grads_(params)  # before the clip: the global norm
            nn.utils.clip_grad_norm_(params, c.grad_clip)
            self.w_opt.step()
            self.w_opt.param_groups[0]["lr"] = lr2
            loss_sum += raw_loss.detach().double()
            batches += 1
            i += seq_len
            if bar is not None:
                bar.update(1)
            if callback is not None:
                callback(epoch, step)
            step += 1
        if bar is not None:
            bar.close()
        self.end_epoch_statistics()
        train_loss = float(self.d.all_reduce_sum(loss_sum).item()) / self.d.world / max(batches, 1)
        return {"lr": self.w_opt.param_groups[0]["lr"], "train_loss": train_loss,
                "train_ppl": math.exp(min(train_loss, 700))}

    @torch.no_grad()
    def evaluate(self) -> dict:
        c, source = self.config, self.data.valid
        self.model.eval()
        total = 0.0
        hidden = self.model.init_hidden(c.eval_batch_size)
        for i in range(0, source.size(0) - 1, c.bptt):
            data, targets = zds.get_batch(source, i, c.bptt)
            log_prob, hidden = self.model(data, hidden, self.alphas[0])
            total += F.nll_loss(log_prob.view(-1, log_prob.size(2)), targets).item() * len(data)
        loss = total / len(source)
        return {"valid_loss": loss, "valid_ppl": math.exp(min(loss, 700))}

    def genotype(self):
        return genotypes.derive.rnn(self.alphas[0])

    def final_metrics(self, row: dict) -> dict:
        return {k: row[k] for k in ("train_loss", "train_ppl", "valid_loss", "valid_ppl")}


_SEARCHERS = {"cifar10": CNNSearch, "ptb": RNNSearch}


def _resolve_config(dataset: str, config):
    if dataset not in SEARCH_CONFIGS:
        raise ValueError(f"unknown search dataset {dataset!r}; choose one of {', '.join(SEARCH_CONFIGS)}")
    cls = SEARCH_CONFIGS[dataset]
    if config is None:
        return run_config.build(cls, {})
    if isinstance(config, dict):
        return run_config.build(cls, config)
    if not isinstance(config, cls):
        raise TypeError(f"search {dataset!r} takes a {cls.__name__}, not {type(config).__name__}")
    run_config.validate(config)
    return config


def _trim_jsonl(path: Path, epochs_done: int) -> None:
    if path.exists():
        rows = [r for r in read_json_lines(path) if r.get("epoch", 0) < epochs_done]
        atomic_write_text(path, "".join(json.dumps(r, allow_nan=False) + "\n" for r in rows))


class SearchTask:
    """A search as a task of the one runner: an epoch is (architecture step, weight step) over the
    training half, then the validation; the derived genotype and the architecture logits of every
    epoch go to ``genotypes.jsonl`` and ``alphas.jsonl`` (epoch -1: the initialisation)."""

    kind = "search"

    def __init__(self, dataset: str, config, d: Dist, rundir: RunDir, progress: bool,
                 callback: Optional[StepCallback]):
        self.dataset, self.config, self.rundir, self.d = dataset, config, rundir, d
        self.progress, self.callback = progress, callback
        device = d.device
        # loads the data: a missing dataset fails here
        self.searcher = _SEARCHERS[dataset](config, device, dist=d)
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

    def run_epoch(self, epoch: int) -> dict:
        searcher = self.searcher
        metrics = searcher.train_epoch(epoch, self.progress, self.callback)
        metrics.update(searcher.evaluate())
        for key in ("train_loss", "valid_loss"):
            check_finite(key, metrics[key], epoch)
        for a in searcher.alphas:
            check_finite("architecture logits", float(a.detach().abs().sum()), epoch)
        self.d.check_same(searcher.alphas, f"architecture logits after epoch {epoch}")
        text = self._log_architecture(epoch)
        log.info("genotype = %s", text)
        return {**metrics, "genotype": text}

    def state_dict(self) -> dict:
        return self.searcher.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.searcher.load_state_dict(state)

    def final(self, curve: list) -> dict:
        return self.searcher.final_metrics(curve[-1])

    def record_fields(self, curve: list) -> dict:
        fields = {"experiment": f"search-{self.dataset}-order{self.config.order}", "genotype": curve[-1]["genotype"],
                  "order": self.config.order, "alphas": self.searcher.alphas_dict(), "world_size": self.d.world}
        if hasattr(self.searcher, "channels_last"):  # the memory format the device's default chose
            fields["channels_last"] = self.searcher.channels_last
        return fields


def search(dataset: str, config=None, out="runs/search", progress: bool = True,
           callback: Optional[StepCallback] = None) -> dict:
    """Run (or resume, or return the finished record of) an architecture search.

    ``dataset``: 'cifar10' or 'ptb'; ``config``: a :data:`SEARCH_CONFIGS` dataclass (or a dict of
    overrides); ``out``: the run directory. ``callback(epoch, step)`` is called after every step.
    Returns the record (``kind`` 'search', ``genotype`` the final genotype text, ``final`` metrics).
    The runner (:mod:`reproduce.runner`) owns the directory, the lock, resume and the record. Under
    ``torchrun`` every process calls this (see the module docstring); ``config.processes`` and the
    resolved ``bn_groups`` (1 becomes one group per process) are set from the environment here, so
    config.json and the record say how the run was made.
    """
    config = with_processes(_resolve_config(dataset, config), distributed.world_size())
    return runner.run(out, config,
                      lambda d, rundir, show: SearchTask(dataset, config, d, rundir, show, callback),
                      dist=lambda: distributed.setup(config.device), progress=progress)


def with_processes(config, world: int):
    """``config`` for a run of ``world`` processes: ``processes`` set, ``bn_groups`` resolved (see
    :func:`.bn_groups.resolve_groups`); a per-process default is said once in the log."""
    if config.processes not in (1, world):
        raise ConfigError(f"processes {config.processes} is set by torchrun (WORLD_SIZE), which says {world}; "
                          "drop --processes")
    groups = bn_groups.resolve_groups(config.bn_groups, world, config.sync_bn)
    if groups != config.bn_groups:
        log.warning("%d processes: BatchNorm statistics per process (bn_groups %d), not the paper's whole-batch "
                    "statistics; the run is reported as not comparable (use --sync-bn on GPUs)", world, groups)
    return run_config.build(type(config), {"processes": world, "bn_groups": groups}, base=config)
