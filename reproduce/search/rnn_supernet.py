"""The recurrent search network, equal to the original rnn/model_search.py.

The search cell has 8 steps; non-affine BatchNorm on every state; each step mixes the four
activations of every earlier state, weighted by the softmax of the ``36 x 5`` architecture logits
('none' is in the softmax but adds nothing); the output is the mean of the last 8 states.
The logits are not parameters: ``forward(input, hidden, weights)`` takes them.

Per step the original evaluates ``states + c * (f_k(h) - states)`` for every activation k and
weights it; here the same sum is written ``P * states + c * (sum_k p_k f_k(h) - P * states)``
with ``P = sum_k p_k`` (one pass over the states instead of four).
"""
from __future__ import annotations

from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

import genotypes
from genotypes.rnn import CONCAT, PRIMITIVES, STEPS
from zoo.rnn import ACTIVATIONS, DARTSCell, RNNModel

NONE = PRIMITIVES.index("none")
_ACTS = [(k, ACTIVATIONS[name]) for k, name in enumerate(PRIMITIVES) if k != NONE]


def num_edges(steps: int = STEPS) -> int:
    return steps * (steps + 1) // 2


class DARTSCellSearch(DARTSCell):
    def __init__(self, ninp: int, nhid: int, dropouth: float, dropoutx: float, steps: int = STEPS,
                 concat: int = CONCAT):
        super().__init__(ninp, nhid, dropouth, dropoutx, genotype=None, steps=steps)
        self.bn = nn.BatchNorm1d(nhid, affine=False)
        self.steps, self.concat = steps, concat
        self.weights: Optional[torch.Tensor] = None  # set by RNNModelSearch.forward
        # False (the original): in eval mode every state is normalised with the one BatchNorm's running
        # statistics, shared by the initial state and the 8 steps although their distributions differ.
        # True: in eval mode too, each state is normalised with its own statistics over the batch, as in
        # training (the running statistics are neither used nor updated).
        self.batch_stats_in_eval = False

    def norm(self, s: torch.Tensor) -> torch.Tensor:
        if self.batch_stats_in_eval and not self.training:
            return F.batch_norm(s, None, None, training=True, momentum=0.0, eps=self.bn.eps)
        return self.bn(s)

    def cell(self, x_proj: torch.Tensor, h_prev: torch.Tensor, h_mask: Optional[torch.Tensor]) -> torch.Tensor:
        s0 = self.norm(self._init_state(x_proj, h_prev, h_mask))
        probs = F.softmax(self.weights, dim=-1)
        states = s0.unsqueeze(0)
        offset = 0
        for i in range(self.steps):
            masked = states * h_mask.unsqueeze(0) if h_mask is not None else states
            ch = masked.reshape(-1, self.nhid).mm(self._Ws[i]).view(i + 1, -1, 2 * self.nhid)
            c, h = torch.split(ch, self.nhid, dim=-1)
            c = c.sigmoid()
            p = probs[offset:offset + i + 1]  # [i+1, ops]
            mix = sum(p[:, k, None, None] * fn(h) for k, fn in _ACTS)
            total = sum(p[:, k, None, None] for k, _ in _ACTS)
            weighted = total * states
            s = (weighted + c * (mix - weighted)).sum(0)
            s = self.norm(s)
            states = torch.cat([states, s.unsqueeze(0)], 0)
            offset += i + 1
        return states[-self.concat:].mean(0)

    def cell_reference(self, x_proj, h_prev, h_mask):
        """The original's loop, activation by activation (for tests)."""
        s0 = self.norm(self._init_state(x_proj, h_prev, h_mask))
        probs = F.softmax(self.weights, dim=-1)
        offset = 0
        states = s0.unsqueeze(0)
        for i in range(self.steps):
            masked = states * h_mask.unsqueeze(0) if h_mask is not None else states
            ch = masked.reshape(-1, self.nhid).mm(self._Ws[i]).view(i + 1, -1, 2 * self.nhid)
            c, h = torch.split(ch, self.nhid, dim=-1)
            c = c.sigmoid()
            s = torch.zeros_like(s0)
            for k, fn in _ACTS:
                unweighted = states + c * (fn(h) - states)
                s = s + torch.sum(probs[offset:offset + i + 1, k].unsqueeze(-1).unsqueeze(-1) * unweighted, dim=0)
            s = self.norm(s)
            states = torch.cat([states, s.unsqueeze(0)], 0)
            offset += i + 1
        return torch.mean(states[-self.concat:], dim=0)


class RNNModelSearch(RNNModel):
    """Embedding -> search cell -> tied decoder; ``forward(input, hidden, weights, return_h=False)``."""

    def __init__(self, ntoken: int, ninp: int, nhid: int, nhidlast: int, dropout: float = 0.5,
                 dropouth: float = 0.5, dropoutx: float = 0.5, dropouti: float = 0.5, dropoute: float = 0.1):
        super().__init__(ntoken, ninp, nhid, nhidlast, dropout, dropouth, dropoutx, dropouti, dropoute,
                         genotype=None, cell_cls=DARTSCellSearch)

    @property
    def alpha_shape(self):
        cell = self.rnns[0]
        return num_edges(cell.steps), len(PRIMITIVES)

    def new_alphas(self, device=None, dtype=None) -> List[torch.Tensor]:
        """Architecture logits ``[weights]`` (36 x 5), ``1e-3 * N(0, 1)``, leaves that require grad."""
        return [(1e-3 * torch.randn(*self.alpha_shape)).to(device=device, dtype=dtype).requires_grad_(True)]

    def forward(self, input, hidden, weights, return_h: bool = False):
        for rnn in self.rnns:
            rnn.weights = weights
        try:
            return super().forward(input, hidden, return_h=return_h)
        finally:
            for rnn in self.rnns:
                rnn.weights = None


def genotype(alphas, steps: int = STEPS, concat: int = CONCAT):
    return genotypes.derive.rnn(alphas[0], steps=steps, concat=concat)
