"""The conv-cell supernet of the search, equal to the original cnn/model_search.py.

Module structure and parameter names are the original's (``cells.0._ops.3._ops.4.op.1.weight``),
so its state dict loads here with strict=True, and the other way round (the shared pool BNs below
are copied to every edge when a state dict is taken). Every edge is a MixedOp over the 8 primitives with
non-affine BatchNorm, pools followed by non-affine BatchNorm, weighted by the softmax of the
architecture logits. The architecture logits are *not* parameters of this module: they are
passed to ``forward`` so that the weights and the architecture can be differentiated apart.

The forward pass computes the same function as the original with less work:

- the 'none' op contributes ``w * 0`` to the value and nothing to any gradient, so it is skipped;
- ``relu(h)`` of an input state is computed once and shared by all its conv ops and edges;
- the parameter-free ops of an input state (max pool + BN, avg pool + BN, identity) give the
  same tensor on every edge that leaves that state (non-affine BN in training mode normalises
  with batch statistics), so they are computed once per state, with the BN module of the first
  edge leaving it, whose running statistics serve all those edges in eval mode (in the original
  every edge's BN receives the same updates, so eval outputs agree too);
- a node's weighted sum over all ops of all incoming edges is one ``tensordot`` (NCHW tensors).
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from genotypes.cnn import PRIMITIVES
from zoo.cnn import imagenet_stems
from zoo.ops import OPS, FactorizedReduce, Identity, ReLUConvBN

from .architect import copy_tensors_

NONE = PRIMITIVES.index("none")


def num_edges(steps: int = 4) -> int:
    return sum(2 + i for i in range(steps))


class MixedOp(nn.Module):
    """All primitives on one edge; ``forward(x, weights)`` is the plain weighted sum (the original's)."""

    def __init__(self, C: int, stride: int):
        super().__init__()
        self.stride = stride
        self._ops = nn.ModuleList()
        for primitive in PRIMITIVES:
            op = OPS[primitive](C, stride, False)
            if "pool" in primitive:
                op = nn.Sequential(op, nn.BatchNorm2d(C, affine=False))
            self._ops.append(op)

    def forward(self, x, weights):
        return sum(w * op(x) for w, op in zip(weights, self._ops))


def _after_relu(module: nn.Module, r: torch.Tensor) -> torch.Tensor:
    """A conv op (SepConv/DilConv: ``op[0]`` is its ReLU) applied to an input already through ReLU."""
    seq = module.op
    for k in range(1, len(seq)):
        r = seq[k](r)
    return r


def _factorized_reduce_after_relu(fr: FactorizedReduce, r: torch.Tensor) -> torch.Tensor:
    return fr.bn(torch.cat([fr.conv_1(r), fr.conv_2(r[:, :, 1:, 1:])], dim=1))


def _weighted_sum(w: torch.Tensor, outs: List[torch.Tensor]) -> torch.Tensor:
    """``sum_k w[k] * outs[k]``: one tensordot for contiguous tensors, a chain that keeps channels_last otherwise."""
    first = outs[0]
    w = w.to(first.dtype)  # under autocast the ops give bf16 while the softmax weights stay float32
    if first.is_contiguous() or not first.is_contiguous(memory_format=torch.channels_last):
        return torch.tensordot(w, torch.stack(outs), dims=1)
    s = first * w[0]
    for k in range(1, len(outs)):
        s = torch.addcmul(s, outs[k], w[k])
    return s


class Cell(nn.Module):
    def __init__(self, steps, multiplier, C_prev_prev, C_prev, C, reduction, reduction_prev):
        super().__init__()
        self.reduction = reduction
        if reduction_prev:
            self.preprocess0 = FactorizedReduce(C_prev_prev, C, affine=False)
        else:
            self.preprocess0 = ReLUConvBN(C_prev_prev, C, 1, 1, 0, affine=False)
        self.preprocess1 = ReLUConvBN(C_prev, C, 1, 1, 0, affine=False)
        self._steps = steps
        self._multiplier = multiplier
        self._ops = nn.ModuleList()
        leaving: List[List[int]] = [[] for _ in range(steps + 1)]  # input state -> the edges leaving it, in order
        for i in range(steps):
            for j in range(2 + i):
                stride = 2 if reduction and j < 2 else 1
                leaving[j].append(len(self._ops))
                self._ops.append(MixedOp(C, stride))
        self._leaving = [edges for edges in leaving if edges]

    def sync_shared_statistics(self) -> None:
        """Copy the running statistics of each state's shared pool BNs (those of the first edge leaving
        it, the only ones the fused forward updates) to the pool BNs of the other edges leaving it."""
        src, dst = [], []
        for first, *others in self._leaving:
            for k in (1, 2):  # max pool + BN, avg pool + BN
                bn = self._ops[first]._ops[k][1]
                for other in others:
                    twin = self._ops[other]._ops[k][1]
                    for name in ("running_mean", "running_var", "num_batches_tracked"):
                        if getattr(bn, name) is not None:
                            src.append(getattr(bn, name))
                            dst.append(getattr(twin, name))
        copy_tensors_(dst, src)

    def _shared(self, mixed: MixedOp, h: torch.Tensor):
        """Per input state: relu(h), max pool + BN, avg pool + BN, and the identity (stride 1)."""
        ops = mixed._ops
        r = torch.relu(h)
        mx = ops[1][1](ops[1][0](h))
        av = ops[2][1](ops[2][0](h))
        return r, mx, av

    def forward(self, s0, s1, weights, reference: bool = False):
        s0 = self.preprocess0(s0)
        s1 = self.preprocess1(s1)
        states = [s0, s1]
        if reference:  # the original's computation, op by op
            offset = 0
            for _ in range(self._steps):
                s = sum(self._ops[offset + j](h, weights[offset + j]) for j, h in enumerate(states))
                offset += len(states)
                states.append(s)
            return torch.cat(states[-self._multiplier:], dim=1)
        shared = []
        offset = 0
        for _ in range(self._steps):
            outs: List[torch.Tensor] = []
            for j, h in enumerate(states):
                mixed = self._ops[offset + j]
                if j == len(shared):
                    shared.append(self._shared(mixed, h))
                r, mx, av = shared[j]
                ops = mixed._ops
                skip = h if isinstance(ops[3], Identity) else _factorized_reduce_after_relu(ops[3], r)
                outs += [mx, av, skip, _after_relu(ops[4], r), _after_relu(ops[5], r),
                         _after_relu(ops[6], r), _after_relu(ops[7], r)]
            w = weights[offset:offset + len(states), NONE + 1:].reshape(-1)
            states.append(_weighted_sum(w, outs))
            offset += len(states) - 1
        return torch.cat(states[-self._multiplier:], dim=1)


class Network(nn.Module):
    """The search supernet: ``forward(x, alphas_normal, alphas_reduce) -> logits``.

    ``in_chans``: channels of the input images (timm's name). ``stem``: ``cifar`` (the original's, one 3x3
    conv to ``stem_multiplier * C`` channels at full resolution) or ``imagenet`` (three stride-2 convs to ``C``
    channels, as the evaluation network for large images; the first cell's input is then a reduced one).
    """

    def __init__(self, C: int = 16, num_classes: int = 10, layers: int = 8, steps: int = 4, multiplier: int = 4,
                 stem_multiplier: int = 3, in_chans: int = 3, stem: str = "cifar"):
        super().__init__()
        if NONE != 0:  # the fused forward relies on the original's op order
            raise AssertionError("PRIMITIVES must start with 'none'")
        if stem not in ("cifar", "imagenet"):
            raise ValueError(f"stem must be cifar or imagenet, got {stem!r}")
        self._C, self._num_classes, self._layers = C, num_classes, layers
        self._steps, self._multiplier = steps, multiplier
        if stem == "cifar":
            C_curr = stem_multiplier * C
            self.stem = nn.Sequential(nn.Conv2d(in_chans, C_curr, 3, padding=1, bias=False), nn.BatchNorm2d(C_curr))
        else:
            C_curr = C
            self.stem0, self.stem1 = imagenet_stems(in_chans, C)
        C_prev_prev, C_prev, C_curr = C_curr, C_curr, C
        self.cells = nn.ModuleList()
        reduction_prev = stem == "imagenet"
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                C_curr *= 2
            self.cells.append(Cell(steps, multiplier, C_prev_prev, C_prev, C_curr, reduction, reduction_prev))
            reduction_prev = reduction
            C_prev_prev, C_prev = C_prev, multiplier * C_curr
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_prev, num_classes)

    def state_dict(self, *args, **kwargs):
        """The module's state dict, with the shared pool BN statistics on every edge (as the original's)."""
        for cell in self.cells:
            cell.sync_shared_statistics()
        return super().state_dict(*args, **kwargs)

    @property
    def alpha_shape(self) -> Tuple[int, int]:
        return num_edges(self._steps), len(PRIMITIVES)

    def new_alphas(self, device=None, dtype=None) -> List[torch.Tensor]:
        """Architecture logits [normal, reduce], each ``1e-3 * N(0, 1)``, as leaves that require grad."""
        k, n = self.alpha_shape
        return [(1e-3 * torch.randn(k, n)).to(device=device, dtype=dtype).requires_grad_(True) for _ in range(2)]

    def forward(self, x, alphas_normal, alphas_reduce, reference: bool = False):
        weights_normal = F.softmax(alphas_normal, dim=-1)
        weights_reduce = F.softmax(alphas_reduce, dim=-1)
        if hasattr(self, "stem"):
            s0 = s1 = self.stem(x)
        else:
            s0 = self.stem0(x)
            s1 = self.stem1(s0)
        for cell in self.cells:
            weights = weights_reduce if cell.reduction else weights_normal
            s0, s1 = s1, cell(s0, s1, weights, reference=reference)
        out = self.global_pooling(s1)
        return self.classifier(out.flatten(1))


def genotype(alphas: Sequence[torch.Tensor], steps: int = 4, multiplier: int = 4):
    import genotypes

    return genotypes.derive.cnn(alphas[0], alphas[1], steps=steps, multiplier=multiplier)
