"""From architecture logits to the discrete genotype, by exactly the original's rule.

The original takes the softmax of the logits in float32 first and ranks edges by their
strongest non-'none' probability. Ranking across edges depends on the softmax (each edge
has its own normaliser), so we take it the same way, in float32, before choosing.
"""
from __future__ import annotations

import numpy as np

from . import cnn as _cnn
from . import rnn as _rnn
from .types import Genotype, RNNGenotype, make_cnn, make_rnn


def _probs(logits, rows: int, cols: int, what: str) -> np.ndarray:
    import torch  # imported here so that naming, parsing and drawing genotypes stay light

    t = torch.as_tensor(logits).detach().to("cpu", torch.float32)
    if tuple(t.shape) != (rows, cols):
        raise ValueError(f"{what} has shape {tuple(t.shape)}, expected ({rows}, {cols})")
    return torch.softmax(t, dim=-1).numpy()


def _best_op(row: np.ndarray, none: int) -> int:
    # Strictly greater keeps the first of equal weights, as the original's loop does.
    best = None
    for k in range(len(row)):
        if k != none and (best is None or row[k] > row[best]):
            best = k
    return best


def _strength(row: np.ndarray, none: int) -> float:
    return max(row[k] for k in range(len(row)) if k != none)


def _cnn_edges(W: np.ndarray, steps: int, primitives) -> list:
    none = primitives.index("none")
    gene, start = [], 0
    for i in range(steps):
        rows = W[start:start + i + 2]
        # sorted() is stable: ties keep the lower input index, as in the original.
        edges = sorted(range(i + 2), key=lambda j: -_strength(rows[j], none))[:2]
        gene += [(primitives[_best_op(rows[j], none)], j) for j in edges]
        start += i + 2
    return gene


def num_cnn_edges(steps: int = 4) -> int:
    return sum(i + 2 for i in range(steps))


def cnn(alphas_normal, alphas_reduce, steps: int = 4, multiplier: int = 4, primitives=_cnn.PRIMITIVES) -> Genotype:
    """Genotype of a conv search cell from its logits (``num_edges x len(primitives)`` each)."""
    primitives = list(primitives)
    rows = num_cnn_edges(steps)
    normal = _cnn_edges(_probs(alphas_normal, rows, len(primitives), "alphas_normal"), steps, primitives)
    reduce = _cnn_edges(_probs(alphas_reduce, rows, len(primitives), "alphas_reduce"), steps, primitives)
    concat = range(2 + steps - multiplier, steps + 2)
    return make_cnn(normal, concat, reduce, concat)


def num_rnn_edges(steps: int = _rnn.STEPS) -> int:
    return steps * (steps + 1) // 2


def rnn(weights, steps: int = _rnn.STEPS, concat: int = _rnn.CONCAT, primitives=_rnn.PRIMITIVES) -> RNNGenotype:
    """Genotype of a recurrent search cell from its logits (``steps*(steps+1)/2 x len(primitives)``)."""
    primitives = list(primitives)
    none = primitives.index("none")
    W = _probs(weights, num_rnn_edges(steps), len(primitives), "weights")
    gene, start = [], 0
    for i in range(steps):
        rows = W[start:start + i + 1]
        j = sorted(range(i + 1), key=lambda x: -_strength(rows[x], none))[0]
        gene.append((primitives[_best_op(rows[j], none)], j))
        start += i + 1
    return make_rnn(gene, range(steps + 1)[-concat:])
