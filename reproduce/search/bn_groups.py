"""BatchNorm statistics over G fixed, contiguous sub-batches (``--bn-groups G``) and ``--sync-bn``.

Why: under N processes each process sees only its slice of the global batch, so plain BatchNorm
normalises with per-process statistics, which is not what one process computes. With ``G`` groups
the statistics of a batch of ``B`` examples are taken over each of its ``G`` contiguous blocks of
``B / G`` examples. When N divides G, process r holds exactly the groups ``r*G/N .. (r+1)*G/N - 1``,
so one process and N processes compute the same thing (to float round-off). G = 1 is the paper's
recipe (the whole batch); G = N is "per-process statistics", the default under N processes.

Running statistics: each update uses the mean over the groups of the groups' batch statistics
(mean, unbiased variance); for G = 1 that is the plain update. The update is linear, so each process
updates from its own groups and :func:`running_statistics` of every process are averaged
(``Dist.average_``) at the end of each epoch: every rank then holds what one process computes.

``--sync-bn`` (GPUs): ``torch.nn.SyncBatchNorm``, statistics over the whole global batch (G = 1).
The module tree, parameters and buffers stay the same objects, so state dicts are unchanged.
"""
from __future__ import annotations

from typing import List

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import ConfigError


class GroupedBatchNorm(nn.Module):
    """Wraps nothing: a BatchNorm whose training-mode statistics are taken per group of the batch.

    Built by :func:`use_groups` from an existing BatchNorm; shares its parameters and buffers.
    """

    def __init__(self, bn: nn.modules.batchnorm._BatchNorm, groups: int):
        super().__init__()
        self.groups = groups
        self.num_features, self.eps, self.momentum = bn.num_features, bn.eps, bn.momentum
        self.affine, self.track_running_stats = bn.affine, bn.track_running_stats
        self.weight, self.bias = bn.weight, bn.bias
        self.register_buffer("running_mean", bn.running_mean)
        self.register_buffer("running_var", bn.running_var)
        self.register_buffer("num_batches_tracked", bn.num_batches_tracked)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g, n, c = self.groups, x.shape[0], x.shape[1]
        if not self.training:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        if n % g:
            raise ConfigError(f"a batch of {n} examples does not split into {g} BatchNorm groups per process; "
                              "use a batch size divisible by --bn-groups")
        rest = x.shape[2:]
        # [g*m, C, ...] -> [m, g*C, ...]: group k's channels become channels k*C .. (k+1)*C - 1
        xg = x.reshape(g, n // g, c, *rest).transpose(0, 1).reshape(n // g, g * c, *rest)
        weight = self.weight.repeat(g) if self.weight is not None else None
        bias = self.bias.repeat(g) if self.bias is not None else None
        tracking = self.track_running_stats and self.running_mean is not None
        mean = self.running_mean.repeat(g) if tracking else None
        var = self.running_var.repeat(g) if tracking else None
        if tracking:
            self.num_batches_tracked.add_(1)
        factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        y = F.batch_norm(xg, mean, var, weight, bias, True, factor, self.eps)
        if tracking:  # the EMA is linear: the mean of the groups' updates is the update by their mean
            with torch.no_grad():
                self.running_mean.copy_(mean.view(g, c).mean(0))
                self.running_var.copy_(var.view(g, c).mean(0))
        return y.reshape(n // g, g, c, *rest).transpose(0, 1).reshape(x.shape)

    def extra_repr(self) -> str:
        return f"{self.num_features}, groups={self.groups}, affine={self.affine}"


def _replace(module: nn.Module, make) -> nn.Module:
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return make(module)
    for name, child in module.named_children():
        new = _replace(child, make)
        if new is not child:
            setattr(module, name, new)
    return module


def use_groups(model: nn.Module, local_groups: int) -> nn.Module:
    """Every BatchNorm of ``model`` computes its batch statistics over ``local_groups`` sub-batches (in place)."""
    if local_groups == 1:
        return model  # plain BatchNorm over this process's batch is one group already
    return _replace(model, lambda bn: GroupedBatchNorm(bn, local_groups))


def use_sync(model: nn.Module) -> nn.Module:
    """SyncBatchNorm everywhere: statistics over the global batch of all processes (GPUs)."""
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


def running_statistics(model: nn.Module) -> List[torch.Tensor]:
    """The float running statistics of every BatchNorm (what the processes average after an epoch)."""
    return [b for name, b in model.named_buffers()
            if name.rsplit(".", 1)[-1] in ("running_mean", "running_var") and b is not None]


def resolve_groups(bn_groups: int, world: int, sync_bn: bool) -> int:
    """The number of groups a run uses: 1 with --sync-bn; else at least one per process (the default
    1 becomes ``world``, per-process statistics); N processes need N to divide it."""
    if sync_bn:
        if bn_groups != 1:
            raise ConfigError(f"--sync-bn computes statistics over the whole batch; it does not go with "
                              f"--bn-groups {bn_groups}")
        return 1
    groups = world if bn_groups == 1 else bn_groups
    if groups % world:
        raise ConfigError(f"--bn-groups {bn_groups} does not split across {world} processes; use a multiple of "
                          f"{world} (or --sync-bn on GPUs for whole-batch statistics)")
    return groups
