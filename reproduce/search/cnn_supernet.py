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
- a node's weighted sum over all ops of all incoming edges is one ``tensordot`` (NCHW tensors);
- on a CPU, each conv op type of all the edges leaving a state runs as one op with stacked channels
  (:mod:`.stacked_ops`): the same products and sums, with the fixed cost of one call instead of 2-4.

PC-DARTS (Xu et al., ICLR 2020; the authors' model_search.py and model_search_imagenet.py) is the same
supernet with two options, the search-method seam (docs/pcdarts.md):

- ``partial_channels=K`` (> 1): each edge runs its operations on the first C/K channels of its input only;
  the other channels bypass them (max-pooled 2x2 on the stride-2 edges of a reduction cell), are
  concatenated after the operations' output, and the result is channel-shuffled in K groups, so that the
  next edge sees other channels first. Every op then has C/K channels (same parameter names as DARTS's).
- ``edge_normalization=True``: each node weights its incoming edges by the softmax of per-node edge logits
  (the betas: ``betas_normal``, ``betas_reduce``, one per edge), passed to ``forward`` after the alphas.

Both are linear in the edge outputs, so the fused forward sums a node's partial outputs (weights
``beta_j * w_jo``) and its bypassed channels (weights ``beta_j``) once each, then shuffles once per node;
the authors' computation, edge by edge, is ``forward(..., reference=True)``. ``stem='imagenet'`` is the
three-conv stem of the ImageNet search (model_search_imagenet.py), where the first cell's s0 is reduced.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

import genotypes
from genotypes.cnn import PRIMITIVES
from zoo.cnn import imagenet_stems
from zoo.ops import OPS, FactorizedReduce, Identity, ReLUConvBN, is_channels_last

from . import stacked_ops
from .architect import copy_tensors_

NONE = PRIMITIVES.index("none")


def num_edges(steps: int = 4) -> int:
    return sum(2 + i for i in range(steps))


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Channel ``g * (C / groups) + i`` goes to ``i * groups + g`` (the authors' channel_shuffle)."""
    b, c, h, w = x.shape
    return x.reshape(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


def node_softmax(betas: torch.Tensor, steps: int = 4) -> torch.Tensor:
    """Edge weights of PC-DARTS's edge normalisation: the softmax of the betas over each node's incoming edges
    (2, 3, ..., steps + 1 of them, in the order of the alphas' rows)."""
    parts, start = [], 0
    for i in range(steps):
        parts.append(F.softmax(betas[start:start + 2 + i], dim=-1))
        start += 2 + i
    return torch.cat(parts)


def arch_softmax(name: str, logits: torch.Tensor, steps: int = 4) -> torch.Tensor:
    """The weights of a logit tensor: over the ops of each edge; PC-DARTS's betas over each node's incoming edges."""
    return node_softmax(logits, steps) if name.startswith("betas") else F.softmax(logits, dim=-1)


class MixedOp(nn.Module):
    """All primitives on one edge; ``forward(x, weights)`` is the plain weighted sum (the original's). With
    ``partial > 1`` (PC-DARTS) the ops see the first C/partial channels and the rest bypass them."""

    def __init__(self, C: int, stride: int, partial: int = 1):
        super().__init__()
        self.stride, self.partial = stride, partial
        if partial > 1:  # the authors' pool of the bypassed channels on reduction edges (no parameters)
            self.mp = nn.MaxPool2d(2, 2)
        C_op = C // partial
        self._ops = nn.ModuleList()
        for primitive in PRIMITIVES:
            op = OPS[primitive](C_op, stride, False)
            if "pool" in primitive:
                op = nn.Sequential(op, nn.BatchNorm2d(C_op, affine=False))
            self._ops.append(op)

    def forward(self, x, weights, channels=None):
        if self.partial == 1:
            return sum(w * op(x) for w, op in zip(weights, self._ops))
        if channels is not None:  # the paper's formula: ops on the sampled channels, the others in their place
            out = sum(w * op(x[:, channels]) for w, op in zip(weights, self._ops))
            base = x if out.shape[2] == x.shape[2] else self.mp(x)
            return base.index_copy(1, channels, out.to(base.dtype))  # autocast: the ops may give bf16
        k = x.shape[1] // self.partial
        out = sum(w * op(x[:, :k]) for w, op in zip(weights, self._ops))
        rest = x[:, k:]
        if out.shape[2] != x.shape[2]:
            rest = self.mp(rest)
        return channel_shuffle(torch.cat([out, rest], dim=1), self.partial)


def _after_relu(module: nn.Module, r: torch.Tensor) -> torch.Tensor:
    """A conv op (SepConv/DilConv: ``op[0]`` is its ReLU) applied to an input already through ReLU."""
    seq = module.op
    for k in range(1, len(seq)):
        r = seq[k](r)
    return r


def _factorized_reduce_after_relu(fr: FactorizedReduce, r: torch.Tensor) -> torch.Tensor:
    return fr.reduce(r)


def _weighted_sum(w: torch.Tensor, outs: List[torch.Tensor]) -> torch.Tensor:
    """``sum_k w[k] * outs[k]``: one tensordot for contiguous tensors, a chain that keeps channels_last otherwise."""
    first = outs[0]
    w = w.to(first.dtype)  # under autocast the ops give bf16 while the softmax weights stay float32
    if not is_channels_last(first):
        return torch.tensordot(w, torch.stack(outs), dims=1)
    s = first * w[0]
    for k in range(1, len(outs)):  # in place: the sum stays in cache (no backward saves it); 2% of a CPU step
        s.addcmul_(outs[k], w[k])
    return s


class Cell(nn.Module):
    def __init__(self, steps, multiplier, C_prev_prev, C_prev, C, reduction, reduction_prev, partial: int = 1,
                 stack_edges: Optional[bool] = None):
        super().__init__()
        self.reduction, self.partial = reduction, partial
        self.stack_edges = stack_edges  # None: on CPUs (see _conv_outputs)
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
                self._ops.append(MixedOp(C, stride, partial))
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
        """Per input state: the ops' input (all channels, or the first C/K), its relu, max pool + BN, avg pool +
        BN, and (PC-DARTS) the bypassed channels, pooled on a reduction edge."""
        ops = mixed._ops
        part, rest = h, None
        if self.partial > 1:
            k = h.shape[1] // self.partial
            part, rest = h[:, :k], h[:, k:]
            if mixed.stride > 1:
                rest = mixed.mp(rest)
        r = torch.relu(part)
        mx = ops[1][1](ops[1][0](part))
        av = ops[2][1](ops[2][0](part))
        return part, r, mx, av, rest

    def _conv_outputs(self, state: int, r: torch.Tensor) -> Dict[int, List[torch.Tensor]]:
        """Edge -> the outputs of its conv ops (sep_conv_3x3, sep_conv_5x5, dil_conv_3x3, dil_conv_5x5), for every
        edge leaving ``state``, whose input after the ReLU is ``r``. On a CPU each op type on all those edges is one
        stacked op (:mod:`.stacked_ops`); GPUs, where it was not measured yet, run the ops one by one
        (``stack_edges`` True or False decides on every device)."""
        edges = self._leaving[state]
        by_op = []
        repeated = None
        on = self.stack_edges if self.stack_edges is not None else r.device.type == "cpu"
        stack = on and len(edges) > 1
        for o in range(NONE + 4, len(PRIMITIVES)):
            ops = [self._ops[e]._ops[o] for e in edges]
            if stack and stacked_ops.stackable(ops):
                if repeated is None:
                    repeated = torch.cat([r] * len(ops), dim=1)
                by_op.append(stacked_ops.stacked_forward(ops, repeated))
            else:
                by_op.append([_after_relu(op, r) for op in ops])
        return {e: [outputs[i] for outputs in by_op] for i, e in enumerate(edges)}

    def forward(self, s0, s1, weights, edge_weights=None, reference: bool = False, channels=None):
        s0 = self.preprocess0(s0)
        s1 = self.preprocess1(s1)
        states = [s0, s1]
        if reference or channels is not None:  # the original's computation, op by op (PC-DARTS: with edge weights)
            offset = 0
            for _ in range(self._steps):
                terms = [self._ops[offset + j](h, weights[offset + j], None if channels is None else
                                               channels[offset + j]) for j, h in enumerate(states)]
                if edge_weights is not None:
                    terms = [edge_weights[offset + j] * t for j, t in enumerate(terms)]
                s = sum(terms)
                offset += len(states)
                states.append(s)
            return torch.cat(states[-self._multiplier:], dim=1)
        shared = []
        convs: Dict[int, List[torch.Tensor]] = {}
        offset = 0
        for _ in range(self._steps):
            outs: List[torch.Tensor] = []
            bypass: List[torch.Tensor] = []
            for j, h in enumerate(states):
                mixed = self._ops[offset + j]
                if j == len(shared):
                    shared.append(self._shared(mixed, h))
                    convs.update(self._conv_outputs(j, shared[j][1]))
                part, r, mx, av, rest = shared[j]
                ops = mixed._ops
                skip = part if isinstance(ops[3], Identity) else _factorized_reduce_after_relu(ops[3], r)
                outs += [mx, av, skip, *convs.pop(offset + j)]
                bypass.append(rest)
            n = len(states)
            w = weights[offset:offset + n, NONE + 1:]
            if edge_weights is not None:
                w = w * edge_weights[offset:offset + n, None]
            node = _weighted_sum(w.reshape(-1), outs)
            if self.partial > 1:
                e = edge_weights[offset:offset + n] if edge_weights is not None else w.new_ones(n)
                node = channel_shuffle(torch.cat([node, _weighted_sum(e, bypass)], dim=1), self.partial)
            states.append(node)
            offset += n
        return torch.cat(states[-self._multiplier:], dim=1)


ARCH_NAMES = ("alphas_normal", "alphas_reduce", "betas_normal", "betas_reduce")


class Network(nn.Module):
    """The search supernet: ``forward(x, alphas_normal, alphas_reduce[, betas_normal, betas_reduce]) -> logits``.

    ``partial_channels`` (K; 1: DARTS) and ``edge_normalization`` (the betas) make it PC-DARTS's;
    ``stem``: 'cifar' (one conv) or 'imagenet' (three stride-2 convs, the first cell's s0 reduced);
    ``in_chans``: channels of the input images (timm's name).
    ``partial_selection``: 'shuffle' (the authors' code: the first C/K channels, then a channel shuffle) or
    'random' (their paper's formula: a fresh random C/K channels per edge and forward, the others in place; on a
    reduction edge all channels max-pooled first, as the code pools its bypass; seeded by ``selection_seed``).
    ``edge_bn_updates``: how many momentum updates the BatchNorm running statistics inside the edges take per
    training forward (their ``num_batches_tracked`` still counts one): 2 reproduces the authors'
    model_search_imagenet.py, whose cell runs every mixed op a second time only to read its output's device.
    ``stack_edges``: whether the conv ops of the edges leaving a state run as one stacked op (:mod:`.stacked_ops`;
    the same function); None (default): on CPUs, where it was measured faster.
    """

    def __init__(self, C: int = 16, num_classes: int = 10, layers: int = 8, steps: int = 4, multiplier: int = 4,
                 stem_multiplier: int = 3, partial_channels: int = 1, edge_normalization: bool = False,
                 stem: str = "cifar", edge_bn_updates: int = 1, partial_selection: str = "shuffle",
                 selection_seed: int = 0, in_chans: int = 3, stack_edges: Optional[bool] = None):
        super().__init__()
        if NONE != 0:  # the fused forward relies on the original's op order
            raise AssertionError("PRIMITIVES must start with 'none'")
        if partial_channels < 1 or C % (2 * partial_channels):
            raise ValueError(f"C={C} must be a multiple of 2 * partial_channels = {2 * partial_channels} (each edge's "
                             "ops take C / partial_channels channels, an even number for the reduction edges)")
        if stem not in ("cifar", "imagenet"):
            raise ValueError(f"stem must be 'cifar' or 'imagenet', not {stem!r}")
        if partial_selection not in ("shuffle", "random") or (partial_selection == "random" and partial_channels < 2):
            raise ValueError(f"partial_selection must be 'shuffle', or 'random' with partial_channels > 1, not "
                             f"{partial_selection!r} with {partial_channels}")
        self.random_selection, self.selection_seed = partial_selection == "random", selection_seed
        if self.random_selection:  # counts the training forwards: the channels drawn depend on it (resumable)
            self.register_buffer("selection_step", torch.zeros((), dtype=torch.long))
        self._C, self._num_classes, self._layers = C, num_classes, layers
        self._steps, self._multiplier = steps, multiplier
        self.partial_channels, self.edge_normalization = partial_channels, edge_normalization
        C_curr = stem_multiplier * C
        reduction_prev = stem == "imagenet"
        if reduction_prev:
            self.stem0, self.stem1 = imagenet_stems(in_chans, C_curr)
        else:
            self.stem = nn.Sequential(nn.Conv2d(in_chans, C_curr, 3, padding=1, bias=False), nn.BatchNorm2d(C_curr))
        C_prev_prev, C_prev, C_curr = C_curr, C_curr, C
        self.cells = nn.ModuleList()
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                C_curr *= 2
            self.cells.append(Cell(steps, multiplier, C_prev_prev, C_prev, C_curr, reduction, reduction_prev,
                                   partial_channels, stack_edges))
            reduction_prev = reduction
            C_prev_prev, C_prev = C_prev, multiplier * C_curr
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_prev, num_classes)
        if edge_bn_updates != 1:  # n momentum updates with the same batch statistics are one with this momentum
            for cell in self.cells:
                for bn in cell._ops.modules():
                    if isinstance(bn, nn.BatchNorm2d):
                        bn.momentum = 1 - (1 - bn.momentum) ** edge_bn_updates

    def _sampled_channels(self, device) -> List[List[torch.Tensor]]:
        """``partial_selection='random'`` (the paper's formula): for every cell and edge a fresh sorted random
        subset of C/K input channels, drawn from (selection_seed, number of training forwards so far)."""
        g = torch.Generator().manual_seed(self.selection_seed * 1_000_003 + int(self.selection_step))
        if self.training:
            self.selection_step += 1
        out = []
        for cell in self.cells:
            C = cell.preprocess1.op[1].out_channels
            out.append([torch.randperm(C, generator=g)[:C // self.partial_channels].sort().values.to(device)
                        for _ in cell._ops])
        return out

    def state_dict(self, *args, **kwargs):
        """The module's state dict, with the shared pool BN statistics on every edge (as the original's)."""
        for cell in self.cells:
            cell.sync_shared_statistics()
        return super().state_dict(*args, **kwargs)

    @property
    def alpha_shape(self) -> Tuple[int, int]:
        return num_edges(self._steps), len(PRIMITIVES)

    @property
    def arch_names(self) -> Tuple[str, ...]:
        return ARCH_NAMES if self.edge_normalization else ARCH_NAMES[:2]

    def new_alphas(self, device=None, dtype=None) -> List[torch.Tensor]:
        """Architecture logits [normal, reduce] (and, with edge normalisation, the betas [normal, reduce]), each
        ``1e-3 * N(0, 1)``, drawn in this order, as leaves that require grad."""
        k, n = self.alpha_shape
        shapes = [(k, n), (k, n)] + ([(k,), (k,)] if self.edge_normalization else [])
        return [(1e-3 * torch.randn(shape)).to(device=device, dtype=dtype).requires_grad_(True) for shape in shapes]

    def forward(self, x, alphas_normal, alphas_reduce, betas_normal=None, betas_reduce=None, reference: bool = False):
        if (betas_normal is not None) != self.edge_normalization:
            raise ValueError("the betas go with edge_normalization=True, and only with it")
        weights_normal = F.softmax(alphas_normal, dim=-1)
        weights_reduce = F.softmax(alphas_reduce, dim=-1)
        edges_normal = edges_reduce = None
        if self.edge_normalization:
            edges_normal = node_softmax(betas_normal, self._steps)
            edges_reduce = node_softmax(betas_reduce, self._steps)
        if hasattr(self, "stem"):
            s0 = s1 = self.stem(x)
        else:
            s0 = self.stem0(x)
            s1 = self.stem1(s0)
        channels = self._sampled_channels(x.device) if self.random_selection else [None] * len(self.cells)
        for cell, sampled in zip(self.cells, channels):
            if cell.reduction:
                weights, edges = weights_reduce, edges_reduce
            else:
                weights, edges = weights_normal, edges_normal
            s0, s1 = s1, cell(s0, s1, weights, edges, reference=reference, channels=sampled)
        out = self.global_pooling(s1)
        return self.classifier(out.flatten(1))


def genotype(alphas: Sequence[torch.Tensor], steps: int = 4, multiplier: int = 4, max_skip=None):
    """The genotype of [alphas_normal, alphas_reduce] or, with PC-DARTS's betas, of all four (``max_skip``:
    P-DARTS's cap, :func:`genotypes.derive.cnn`)."""
    betas = dict(zip(ARCH_NAMES[2:], alphas[2:]))
    return genotypes.derive.cnn(alphas[0], alphas[1], steps=steps, multiplier=multiplier, max_skip=max_skip, **betas)
