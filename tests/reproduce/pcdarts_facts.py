"""Inputs and digests for checking our PC-DARTS search against facts recorded from the authors' code.

The facts in ``tests/reproduce/data/pcdarts_*.json`` were produced by a script kept outside the repository
(it imports the authors' code, github.com/yuhuixu1993/PC-DARTS at commit b74702f, exported and ported only
to run: ``.cuda()`` removed, Python 3 / torch 2.14 call forms, their ``genotypes.py`` renamed so that it does
not hide ours). That script builds the authors' supernet in float64 on the CPU, gives it the weights and
architecture parameters of :func:`seeded_weights` / :func:`seeded_arch`, feeds the batches of
:func:`batches` to their own ``train()`` of train_search.py (CIFAR) or train_search_imagenet.py (ImageNet)
epoch by epoch, with the learning rate their scheduler gives under the PyTorch their README names, and
writes what :func:`facts_of` returns: per epoch the training loss and digests of the architecture parameters, at the
end the architecture parameters and Adam's state in full, and each weight, BatchNorm statistic and SGD
momentum buffer as :func:`digest` (sum, sum of squares, a fixed random projection), plus the genotype their
``model.genotype()`` derives.
"""
from __future__ import annotations

import math
from typing import Dict, Iterator, List, Tuple

import torch

ARCH_NAMES = ("alphas_normal", "alphas_reduce", "betas_normal", "betas_reduce")
BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def seeded_weights(named_parameters, seed: int) -> None:
    """Every weight ``N(0, 1) / sqrt(fan_in)``, drawn in name order: the same values in any module whose
    parameters have these names and shapes (ours and the authors' share them)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in sorted(named_parameters, key=lambda item: item[0]):
            fan_in = p[0].numel() if p.dim() > 1 else p.numel()
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) / math.sqrt(fan_in))


def seeded_arch(edges: int, ops: int, seed: int) -> List[torch.Tensor]:
    """alphas_normal, alphas_reduce (``edges x ops``), betas_normal, betas_reduce (``edges``), all ``N(0, 0.5^2)``:
    far from uniform, so that every weight matters and the derived genotype is not decided by rounding."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(edges, ops), (edges, ops), (edges,), (edges,)]
    return [(0.5 * torch.randn(s, generator=g, dtype=torch.float64)).requires_grad_(True) for s in shapes]


def batches(n: int, batch: int, size: int, classes: int, seed: int) -> List[Tuple[torch.Tensor, ...]]:
    """``n`` steps of (x, y, x_arch, y_arch) in float64."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        x = torch.randn(batch, 3, size, size, generator=g, dtype=torch.float64)
        y = torch.randint(0, classes, (batch,), generator=g)
        xv = torch.randn(batch, 3, size, size, generator=g, dtype=torch.float64)
        yv = torch.randint(0, classes, (batch,), generator=g)
        out.append((x, y, xv, yv))
    return out


class ScriptedData:
    """The searcher's data interface over fixed batches: ``steps_per_epoch`` weight batches per epoch, and
    one architecture batch drawn per step (as the authors' loop draws one every step, warm-up included)."""

    def __init__(self, steps: List[Tuple[torch.Tensor, ...]], steps_per_epoch: int):
        self.steps, self.train_steps = steps, steps_per_epoch
        self._epoch, self._valid = 0, 0

    def train_batches(self) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        start = self._epoch * self.train_steps
        self._epoch += 1
        for x, y, _, _ in self.steps[start:start + self.train_steps]:
            yield x, y

    def next_valid(self) -> Tuple[torch.Tensor, torch.Tensor]:
        _, _, xv, yv = self.steps[self._valid]
        self._valid += 1
        return xv, yv


def digest(t: torch.Tensor) -> List[float]:
    """[sum, sum of squares, <t, r>] with r ~ N(0, 1) from a generator seeded by the tensor's size: a change
    of any element moves the projection."""
    t = t.detach().to(torch.float64).flatten()
    r = torch.randn(t.numel(), generator=torch.Generator().manual_seed(t.numel()), dtype=torch.float64)
    return [t.sum().item(), (t * t).sum().item(), (t * r).sum().item()]


def facts_of(state_dict: Dict[str, torch.Tensor], arch: List[torch.Tensor], momentum: Dict[str, torch.Tensor],
             adam_state: List[dict]) -> dict:
    """The final state as recorded: architecture and Adam's state in full; weights, BatchNorm statistics and
    momentum buffers as digests (the batch counts as they are)."""
    bn = {k: digest(v) if v.dtype.is_floating_point else int(v)
          for k, v in state_dict.items() if k.rsplit(".", 1)[-1] in BN_BUFFERS}
    weights = {k: digest(v) for k, v in state_dict.items() if k.rsplit(".", 1)[-1] not in BN_BUFFERS}
    return {"bn": bn, "weights": weights,
            "arch": {name: a.detach().double().tolist() for name, a in zip(ARCH_NAMES, arch)},
            "momentum": {k: digest(v) for k, v in momentum.items()},
            "adam": [{"step": int(s["step"]), "exp_avg": s["exp_avg"].double().tolist(),
                      "exp_avg_sq": s["exp_avg_sq"].double().tolist()} for s in adam_state]}
