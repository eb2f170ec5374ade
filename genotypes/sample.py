"""Random cells of the DARTS search spaces: the random-architecture baseline's draws.

A conv cell (``cnn``): each of the ``steps`` intermediate nodes takes two *different* inputs,
drawn uniformly from the nodes before it (the two cell inputs and the earlier intermediate nodes),
each with an op drawn uniformly from the search PRIMITIVES without ``none``; the normal and the
reduction cell are drawn independently and both concatenate the last ``multiplier`` nodes. That is
exactly the set of cells :func:`genotypes.derive.cnn` can return from a search, so a drawn cell and
a searched cell come from the same space (the random baseline of Li & Talwalkar 2019 draws the same).

A recurrent cell (``rnn``): step ``i`` reads one state drawn uniformly from ``0..i`` through an
activation drawn uniformly from the recurrent PRIMITIVES without ``none``; the cell averages the
last ``concat`` states, as :func:`genotypes.derive.rnn` does.

Draws are made with :class:`random.Random` seeded by an integer, whose sequence Python keeps the
same across versions and platforms, so a recorded seed gives the same cells anywhere.
"""
from __future__ import annotations

import random
from typing import List, Union

from . import spaces
from .types import Genotype, RNNGenotype, make_cnn, make_rnn

KINDS = ("cnn", "rnn")


def _ops(primitives) -> List[str]:
    ops = [p for p in primitives if p != "none"]
    if not ops:
        raise ValueError(f"no op to draw from: the primitives {list(primitives)} hold only 'none'")
    return ops


def _rng(seed) -> random.Random:
    if isinstance(seed, random.Random):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int or a random.Random, got {type(seed).__name__}")
    return random.Random(seed)


def _cnn_edges(rng: random.Random, steps: int, ops: List[str]) -> list:
    edges = []
    for node in range(steps):
        for j in sorted(rng.sample(range(node + 2), 2)):
            edges.append((rng.choice(ops), j))
    return edges


def cnn(seed: Union[int, random.Random], steps: int = 4, multiplier: int = 4,
        primitives=spaces.CNN_PRIMITIVES) -> Genotype:
    """A conv cell drawn uniformly from the DARTS space (see the module's docstring)."""
    if steps < 1 or not 1 <= multiplier <= steps:
        raise ValueError(f"need steps >= 1 and 1 <= multiplier <= steps, got steps={steps}, multiplier={multiplier}")
    rng, ops = _rng(seed), _ops(primitives)
    normal = _cnn_edges(rng, steps, ops)
    reduce = _cnn_edges(rng, steps, ops)
    concat = range(2 + steps - multiplier, steps + 2)
    return make_cnn(normal, concat, reduce, concat)


def rnn(seed: Union[int, random.Random], steps: int = spaces.RNN_STEPS, concat: int = spaces.RNN_CONCAT,
        primitives=spaces.RNN_PRIMITIVES) -> RNNGenotype:
    """A recurrent cell drawn uniformly from the DARTS space (see the module's docstring)."""
    if steps < 1 or not 1 <= concat <= steps + 1:
        raise ValueError(f"need steps >= 1 and 1 <= concat <= steps + 1, got steps={steps}, concat={concat}")
    rng, ops = _rng(seed), _ops(primitives)
    recurrent = [(rng.choice(ops), rng.randrange(i + 1)) for i in range(steps)]
    return make_rnn(recurrent, range(steps + 1)[-concat:])


def draw(kind: str, n: int, seed: int) -> list:
    """``n`` cells of ``kind`` ('cnn' or 'rnn') from one seeded stream: the same seed, the same cells.

    The first ``k`` cells of a draw of ``n`` are the draw of ``k``, so more cells can be added
    later under the recorded seed without changing those already trained.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be 'cnn' or 'rnn', not {kind!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the number of cells must be an integer >= 1, got {n!r}")
    rng = _rng(seed)
    one = cnn if kind == "cnn" else rnn
    return [one(rng) for _ in range(n)]


__all__ = ["cnn", "rnn", "draw", "KINDS"]
