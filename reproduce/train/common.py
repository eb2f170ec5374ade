"""Bits shared by the recipes: the task base class, per-epoch seeding, drop-path, compile, the CNN training step."""
from __future__ import annotations

import logging
import random
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import genotypes
from zoo.topk import topk_correct

from ..device import autocast
from ..distributed import Dist
from ..rundir import RunDir
from .recipes import genotype_of

log = logging.getLogger(__name__)

__all__ = ["RecipeTask", "seed_epoch", "set_lr", "set_drop_path", "maybe_compile", "cnn_train_step", "topk_correct",
           "step_lr", "GraphedCNNStep"]


class RecipeTask:
    """What every training recipe's task shares. A recipe's task implements the runner's task protocol
    (:mod:`reproduce.runner`) itself: ``run_epoch``, ``state_dict``/``load_state_dict`` and ``final`` are its
    own; the kind, the genotype the config names and the record fields of a training are here."""

    kind = "train"
    on_step = None  # set by the runner (the live logs): called after every step

    data_record = None  # one's own data: what it was (classes, channels, size, mean/std, splits), for the record

    def __init__(self, dataset: str, config, d: Dist, rundir: RunDir, progress: bool):
        self.dataset, self.config, self.d, self.rundir, self.progress = dataset, config, d, rundir, progress
        self.device = d.device
        self.genotype = genotype_of(config)

    def record_fields(self, curve: list) -> dict:
        fields = {"experiment": self.config.experiment or f"train-{self.dataset}",
                  "genotype": genotypes.format(self.genotype), "world_size": self.d.world,
                  "epochs": self.config.epochs}
        if self.data_record:
            fields["data"] = self.data_record
        return fields


def seed_epoch(seed: int, epoch: int, rank: int = 0, salt: int = 0) -> int:
    """Seed every generator from (seed, epoch, salt[, rank]) at the start of an epoch.

    Re-seeding per epoch makes a resumed run continue exactly as an uninterrupted one without
    saving generator states. Python and NumPy streams are shared by all processes (the LM's
    sequence lengths must agree across ranks); torch's differs per rank (dropout/drop-path masks).
    Returns a seed for a torch.Generator shared by all ranks (data order, augmentation).
    """
    shared = np.random.SeedSequence([seed, epoch, salt])
    a, b = (int(v) for v in shared.generate_state(2))
    random.seed(a)
    np.random.seed(a)
    torch.manual_seed(int(np.random.SeedSequence([seed, epoch, salt, rank, 1]).generate_state(1)[0]))
    return b


def step_lr(config, epoch: int) -> float:
    """The ImageNet recipe's schedule: lr0 * gamma ** (epoch // decay_period) (the original stepped StepLR once per
    epoch before training, so epoch 0 runs at lr0)."""
    return config.learning_rate * config.gamma ** (epoch // config.decay_period)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def set_drop_path(model: nn.Module, prob: float, compiled: bool) -> None:
    """Set the network's drop-path probability for an epoch.

    Eager: a float, as the original. Compiled (``compiled`` true; callers pass false when the run
    never drops paths, so the compiled graph has no drop-path ops at all): one 0-dim tensor on the
    model's device, updated in place, so the compiled graph is not specialised on the value and is
    reused by every epoch (a float would cost one recompilation per epoch: 600 for the CIFAR-10
    recipe).
    """
    if not compiled:
        model.drop_path_prob = prob
        return
    current = getattr(model, "drop_path_prob", None)
    if not torch.is_tensor(current):
        device = next(model.parameters()).device
        current = model.drop_path_prob = torch.zeros((), device=device)
    current.fill_(prob)


def maybe_compile(model: nn.Module, enabled: bool, epochs: int) -> nn.Module:
    """torch.compile the model when asked.

    The drop-path probability is a tensor then (:func:`set_drop_path`), so epochs share one graph;
    what still compiles anew is a batch of another size (the last of an epoch, evaluation). The
    recompile limit is raised so that compilation never silently falls back to eager mode.
    """
    if not enabled:
        return model
    import torch._dynamo

    limit = max(64, 2 * epochs + 8)
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, max(getattr(torch._dynamo.config, name), limit))
    return torch.compile(model)


def cnn_train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, *,
                   auxiliary_weight: float, grad_clip: float, params, device: torch.device, amp: str = "none",
                   label_smoothing: float = 0.0, autocast_cache: bool = True, stats: Optional[dict] = None):
    """One step of the original cnn/train.py: loss (+ weighted auxiliary loss), backward, clip, SGD.

    Returns (loss, number of correct top-1 predictions) as device tensors, so no step waits for the
    device. With ``stats`` (a dict, for the live logs) it also gets ``grad_norm``: the gradients'
    norm before clipping.
    """
    with autocast(device, amp, autocast_cache):
        out = model(x)
        logits, logits_aux = out if isinstance(out, tuple) else (out, None)
        loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
        if logits_aux is not None:
            loss = loss + auxiliary_weight * F.cross_entropy(logits_aux, y, label_smoothing=label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = nn.utils.clip_grad_norm_(params, grad_clip, foreach=True)
    optimizer.step()
    if stats is not None:
        stats["grad_norm"] = grad_norm.detach()
    correct = (logits.detach().argmax(1) == y).sum()
    return loss.detach(), correct


class GraphedCNNStep:
    """:func:`cnn_train_step` replayed from a CUDA graph: one launch per step instead of thousands.

    The DARTS networks run thousands of small kernels per step, so on a fast GPU a step is bound
    by the host launching them. A CUDA graph records the whole step (forward with drop-path masks
    drawn on the device, auxiliary loss, backward, clipping, fused SGD) once and replays it.
    The first ``warmup`` full batches of each capture run eagerly (on a side stream, as capture
    requires; they are real training steps); the learning rate and drop-path probability are
    baked into the graph, so the caller recaptures when they change (every epoch).

    EXPERIMENTAL: written after measuring that eager steps are launch-bound on an H100 (see
    results/bench/README-train.md), but not yet run on a GPU; off by default.
    """

    def __init__(self, model, optimizer, params, device, warmup: int = 3, **step_kw):
        self.model, self.optimizer, self.params, self.device = model, optimizer, params, device
        self.warmup, self.step_kw = warmup, step_kw
        self.reset()

    def reset(self) -> None:
        self.graph = None
        self.static = None
        self.warm = 0

    def __call__(self, x: torch.Tensor, y: torch.Tensor):
        kw = dict(self.step_kw, autocast_cache=False)
        if self.graph is None and self.warm < self.warmup:
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                out = cnn_train_step(self.model, self.optimizer, x, y, params=self.params, device=self.device, **kw)
            torch.cuda.current_stream(self.device).wait_stream(side)
            self.warm += 1
            return out
        if self.graph is None:
            sx, sy = x.clone(), y.clone()
            graph = torch.cuda.CUDAGraph()
            self.optimizer.zero_grad(set_to_none=True)
            with torch.cuda.graph(graph):
                loss, correct = cnn_train_step(self.model, self.optimizer, sx, sy, params=self.params,
                                               device=self.device, **kw)
            self.graph, self.static = graph, (sx, sy, loss, correct)
        sx, sy, loss, correct = self.static
        sx.copy_(x)
        sy.copy_(y)
        self.graph.replay()
        return loss.clone(), correct.clone()
