"""Data-parallel training under ``torchrun`` (NCCL on GPUs, gloo on CPUs), and the single-process case.

Launch: ``torchrun --nproc_per_node 8 -m reproduce train cifar10 --out DIR`` (several machines:
add ``--nnodes``/``--rdzv-endpoint`` as usual). Each process reads ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK`` from the environment torchrun sets; without them the run is one process.

Semantics: ``batch_size`` is the global batch. Each process takes its ``batch_size / world``
slice of every global batch (the order and the augmentation of the global batch do not depend on
the number of processes), gradients are averaged by DistributedDataParallel, and the learning rate
is the recipe's, unscaled: an update equals the single-process update on the whole batch, up to
BatchNorm, whose batch statistics are computed per process over the local slice (as in the
original's nn.DataParallel ImageNet run), and up to per-process dropout/drop-path masks.
Only rank 0 writes files; every rank returns the record.

The architecture search (:mod:`reproduce.search`) uses the same object for what DDP's hooks cannot do
there (its gradients come from ``torch.autograd.grad``): :meth:`Dist.all_reduce_sum_` sums a list of
tensors over the processes through one flat buffer, :meth:`Dist.average_` averages BatchNorm running
statistics, and :meth:`Dist.check_same` stops every rank with one line when the ranks' copies of a
tensor (the architecture logits) are no longer identical.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from typing import Optional, Sequence

import torch
import torch.distributed as dist

from .config import ConfigError
from .device import pick_device

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialized_here: bool = False

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def local_batch(self, global_batch: int, name: str = "batch_size") -> int:
        if global_batch % self.world:
            raise ConfigError(f"{name} {global_batch} does not divide across {self.world} processes; "
                              f"use a multiple of {self.world} (it is the global batch)")
        return global_batch // self.world

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def all_reduce_sum_(self, tensors: Sequence[torch.Tensor]) -> None:
        """Sum every tensor over the processes, in place, as one collective on one flat buffer (so that a
        norm taken afterwards, e.g. the architect's eps = r / ||v||, is the same on every rank)."""
        if not self.enabled or not tensors:
            return
        flat = torch.cat([t.reshape(-1) for t in tensors])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        with torch.no_grad():
            for t, part in zip(tensors, flat.split([t.numel() for t in tensors])):
                t.copy_(part.view(t.shape))

    def all_reduce_grads_(self, params: Sequence[torch.Tensor]) -> None:
        """Sum the ``.grad`` of every parameter over the processes (a missing one counts as zeros)."""
        if not self.enabled:
            return
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        self.all_reduce_sum_([p.grad for p in params])

    def average_(self, tensors: Sequence[torch.Tensor]) -> None:
        """Replace every tensor by its mean over the processes (in place, one collective)."""
        if self.enabled and tensors:
            self.all_reduce_sum_(tensors)
            with torch.no_grad():
                torch._foreach_div_(list(tensors), float(self.world))

    def check_same(self, tensors: Sequence[torch.Tensor], what: str) -> None:
        """Raise :class:`RanksDivergedError` on every rank unless ``tensors`` are bit-identical on all ranks."""
        if not self.enabled:
            return
        digest = hashlib.sha256()
        for t in tensors:
            digest.update(t.detach().cpu().contiguous().numpy().tobytes())
        # two 48-bit halves of the digest, exact in float64; the ranks agree when min == max for both
        value = int.from_bytes(digest.digest()[:12], "big")
        parts = torch.tensor([value >> 48, value & (2**48 - 1)], dtype=torch.float64, device=self.device)
        low, high = parts.clone(), parts.clone()
        dist.all_reduce(low, op=dist.ReduceOp.MIN)
        dist.all_reduce(high, op=dist.ReduceOp.MAX)
        if not torch.equal(low, high):
            raise RanksDivergedError(
                f"the {what} differ between the {self.world} processes (rank {self.rank} digest "
                f"{digest.hexdigest()[:12]}): the ranks diverged, so the run stopped; a nondeterministic kernel or "
                "a rank-dependent input is the usual cause (rerun with --deterministic, or resume from the last "
                "checkpoint)")

    def close(self) -> None:
        if self.initialized_here and dist.is_initialized():
            dist.destroy_process_group()


class RanksDivergedError(RuntimeError):
    """The processes of one run no longer hold the same architecture (or weights)."""


def world_size() -> int:
    """The number of processes torchrun started (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def shard_range(start: int, stop: int, rank: int, world: int):
    """This rank's contiguous part of [start, stop), as torch.tensor_split divides it."""
    n = stop - start
    q, r = divmod(n, world)
    lo = start + rank * q + min(rank, r)
    return lo, lo + q + (1 if rank < r else 0)


def setup(device_name: str) -> Dist:
    """Join the process group torchrun describes (if any) and pick this process's device."""
    world = world_size()
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    device = pick_device(device_name, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world <= 1:
        return Dist(device=device)
    initialized_here = False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
        initialized_here = True
    log.info("process %d of %d on %s (%s)", rank, world, device, dist.get_backend())
    return Dist(rank=rank, world=world, local_rank=local_rank, device=device, initialized_here=initialized_here)


def wrap(model: torch.nn.Module, d: Dist) -> torch.nn.Module:
    """DistributedDataParallel around ``model`` when there are several processes, else ``model``."""
    if not d.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids: Optional[list] = [d.device.index] if d.device.type == "cuda" else None
    return DDP(model, device_ids=ids)
