"""From architecture logits to the discrete genotype, by exactly the original's rule.

The original takes the softmax of the logits in float32 first and ranks edges by their
strongest non-'none' probability. Ranking across edges depends on the softmax (each edge
has its own normaliser), so we take it the same way, in float32, before choosing.
"""
from __future__ import annotations

from typing import Optional

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


def _edge_normalised(W: np.ndarray, betas, steps: int, what: str) -> np.ndarray:
    """PC-DARTS: each edge's op probabilities times its edge weight, the softmax of the betas over the edges
    entering the same node (float32, as the authors' genotype() on the GPU). Their paper (Sect. 3.3) and code
    agree: edges and ops are then chosen from these products by the DARTS rule."""
    import torch

    b = torch.as_tensor(betas).detach().to("cpu", torch.float32)
    if tuple(b.shape) != (W.shape[0],):
        raise ValueError(f"{what} has shape {tuple(b.shape)}, expected ({W.shape[0]},)")
    parts, start = [], 0
    for i in range(steps):
        parts.append(torch.softmax(b[start:start + i + 2], dim=-1))
        start += i + 2
    return W * torch.cat(parts).numpy()[:, None]


def cnn(alphas_normal, alphas_reduce, steps: int = 4, multiplier: int = 4, primitives=_cnn.PRIMITIVES,
        max_skip: Optional[int] = None, *, betas_normal=None, betas_reduce=None) -> Genotype:
    """Genotype of a conv search cell from its logits (``num_edges x len(primitives)`` each).

    ``max_skip``: P-DARTS's cap on the skip connections of the normal cell (:func:`cap_skips`); None
    (the default, DARTS) leaves the cell as derived. With PC-DARTS's edge logits (``betas_normal``,
    ``betas_reduce``: ``num_edges`` each) edges and ops are ranked by ``softmax(alpha) * edge weight``
    (:func:`_edge_normalised`), as the authors' code does.
    """
    primitives = list(primitives)
    rows = num_cnn_edges(steps)
    if (betas_normal is None) != (betas_reduce is None):
        raise ValueError("give both betas_normal and betas_reduce, or neither")
    W_normal = _probs(alphas_normal, rows, len(primitives), "alphas_normal")
    W_reduce = _probs(alphas_reduce, rows, len(primitives), "alphas_reduce")
    if betas_normal is not None:
        W_normal = _edge_normalised(W_normal, betas_normal, steps, "betas_normal")
        W_reduce = _edge_normalised(W_reduce, betas_reduce, steps, "betas_reduce")
    normal = (_cnn_edges(W_normal, steps, primitives) if max_skip is None else
              cap_skips(W_normal, steps, primitives, max_skip))
    reduce = _cnn_edges(W_reduce, steps, primitives)
    concat = range(2 + steps - multiplier, steps + 2)
    return make_cnn(normal, concat, reduce, concat)


SKIP = "skip_connect"
REMOVED = -1.0  # below every probability: an operation taken out is never chosen again


def count_skips(edges) -> int:
    """How many of a cell's ``(op, input)`` edges are skip connections."""
    return sum(op == SKIP for op, _ in edges)


def normal_skips(genotype: Genotype) -> int:
    """How many skip connections the normal cell of ``genotype`` has (the sign of DARTS's collapse)."""
    return count_skips(genotype.normal)


def _edge_rows(gene: list, steps: int) -> list:
    """The row of the logits matrix each (op, input) of ``gene`` came from (two per node, node by node)."""
    starts = [sum(k + 2 for k in range(i)) for i in range(steps)]
    return [starts[n // 2] + j for n, (_, j) in enumerate(gene)]


def cap_skips(W: np.ndarray, steps: int, primitives, max_skip: int) -> list:
    """The normal cell derived from probabilities ``W`` with at most ``max_skip`` skip connections, by
    P-DARTS's rule (Chen et al. 2019, their train_search.py): while the derived cell has too many, the
    skip connection of smallest probability among the chosen ones (the first such edge on a tie) is
    taken out of its edge for good, and the cell is derived again (each edge its strongest other
    operation, each node its two strongest edges: a weakened edge may lose its place to another).

    P-DARTS applies it to its last stage's three operations per edge; here every operation of the
    space competes, as in DARTS's derivation. Exact ties are broken as DARTS's rule breaks them.
    """
    if max_skip < 0:
        raise ValueError(f"max_skip must be >= 0, not {max_skip}")
    skip = list(primitives).index(SKIP)
    W = np.array(W, copy=True)
    gene = _cnn_edges(W, steps, primitives)
    while count_skips(gene) > max_skip:
        rows = [r for (op, _), r in zip(gene, _edge_rows(gene, steps)) if op == SKIP]
        weakest = min(rows, key=lambda r: (W[r, skip], r))
        W[weakest, skip] = REMOVED
        gene = _cnn_edges(W, steps, primitives)
    return gene


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
