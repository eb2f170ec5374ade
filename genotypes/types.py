"""The two genotype types and their validation.

Field names are the original's so that the text it prints in its logs parses back.
Concat fields are normalised to tuples of ints: the original mixes lists and ``range``
objects, which would otherwise make equal genotypes compare unequal.
"""
from __future__ import annotations

import itertools
import operator
from typing import NamedTuple, Sequence, Tuple

from .quoting import quote
from .spaces import CNN_OPS, RNN_PRIMITIVES

Edge = Tuple[str, int]

# The most intermediate nodes a cell may have. The paper's cells have 4 (conv) and 8 (recurrent);
# a genotype far beyond that is a mistake, or a small file asking us to build an enormous network.
# Edge lists and concat ranges are checked against it *before* they are read in full.
MAX_NODES = 64
CNN_MAX_EDGES = 2 * MAX_NODES  # two inputs per node


class Genotype(NamedTuple):
    """A conv-cell architecture: ``(op, input_index)`` pairs, two per intermediate node."""

    normal: Tuple[Edge, ...]
    normal_concat: Tuple[int, ...]
    reduce: Tuple[Edge, ...]
    reduce_concat: Tuple[int, ...]


class RNNGenotype(NamedTuple):
    """A recurrent-cell architecture: one ``(activation, predecessor)`` pair per step."""

    recurrent: Tuple[Edge, ...]
    concat: Tuple[int, ...]


def _int(value):
    """``value`` as a plain int if it is an integer (numpy and torch integers too), else None."""
    if isinstance(value, bool) or isinstance(value, float):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def _bounded(values, limit: int, what: str, unit: str) -> tuple:
    """``values`` as a tuple, refusing more than ``limit`` items without reading (or allocating) more.

    A ``range`` is measured by its length, so ``range(1, 3 * 10**8)`` is refused at once.
    """
    size = None
    try:
        size = len(values)
    except TypeError:
        pass
    except OverflowError:  # a range longer than sys.maxsize
        size = limit + 1
    if size is None:
        try:
            values = tuple(itertools.islice(values, limit + 1))
        except TypeError:
            raise ValueError(f"{what} is {quote(values)}, expected a list or range") from None
        size = len(values)
    if size > limit:
        raise ValueError(f"{what} has {size if size <= 10 ** 15 else 'more than 10**15'} {unit}; a cell has at most "
                         f"{MAX_NODES} intermediate nodes (genotypes.types.MAX_NODES), so at most {limit}")
    return tuple(values)


def _edges(edges: Sequence, what: str, limit: int) -> Tuple[Edge, ...]:
    out = []
    for i, edge in enumerate(_bounded(edges, limit, what, "edges")):
        try:
            op, index = edge
        except (TypeError, ValueError):
            raise ValueError(f"{what}: edge {i} is {quote(edge)}, expected an (op, input_index) pair") from None
        if not isinstance(op, str):
            raise ValueError(f"{what}: edge {i} has op {quote(op)}, expected an op name")
        if _int(index) is None:
            raise ValueError(f"{what}: edge {i} has input index {quote(index)}, expected an integer")
        out.append((str(op), _int(index)))
    return tuple(out)


def _concat(concat, what: str) -> Tuple[int, ...]:
    if isinstance(concat, (str, bytes)) or not hasattr(concat, "__iter__"):
        raise ValueError(f"{what} is {quote(concat)}, expected a list or range of node indices")
    values = _bounded(concat, MAX_NODES + 2, what, "nodes")
    ints = tuple(_int(v) for v in values)
    if None in ints:
        raise ValueError(f"{what} is {quote(values)}, expected integers")
    return ints


def make_cnn(normal, normal_concat, reduce, reduce_concat) -> Genotype:
    """Build and validate a conv genotype from loosely typed fields (lists, ranges)."""
    g = Genotype(
        _edges(normal, "normal", CNN_MAX_EDGES),
        _concat(normal_concat, "normal_concat"),
        _edges(reduce, "reduce", CNN_MAX_EDGES),
        _concat(reduce_concat, "reduce_concat"),
    )
    validate_cnn(g)
    return g


def make_rnn(recurrent, concat) -> RNNGenotype:
    """Build and validate a recurrent genotype from loosely typed fields."""
    g = RNNGenotype(_edges(recurrent, "recurrent", MAX_NODES), _concat(concat, "concat"))
    validate_rnn(g)
    return g


def _check_concat(concat: Tuple[int, ...], num_states: int, what: str) -> None:
    if not concat:
        raise ValueError(f"{what} is empty: a cell must output at least one node")
    if len(set(concat)) != len(concat):
        raise ValueError(f"{what} {quote(list(concat))} repeats a node")
    bad = [c for c in concat if not 0 <= c < num_states]
    if bad:
        raise ValueError(f"{what} {quote(list(concat))} names node(s) {quote(bad)}, but the cell has nodes "
                         f"0..{num_states - 1}")


def validate_cnn(g: Genotype) -> None:
    """Raise ValueError naming the first problem: unknown op, bad input index, edge count, concat."""
    for field, concat_field in (("normal", "normal_concat"), ("reduce", "reduce_concat")):
        # A Genotype may be built directly (as the original's code does): check the types too.
        edges = _edges(getattr(g, field), field, CNN_MAX_EDGES)
        if len(edges) < 2 or len(edges) % 2:
            raise ValueError(f"{field} has {len(edges)} edges; a conv cell needs two per node (an even number >= 2)")
        for i, (op, index) in enumerate(edges):
            if op not in CNN_OPS:
                raise ValueError(f"{field}: unknown op {quote(op)} on edge {i}; known ops: {', '.join(CNN_OPS)}")
            node = i // 2
            if not 0 <= index < node + 2:
                raise ValueError(
                    f"{field}: edge {i} (node {node + 2}) takes input {quote(index)}, "
                    f"but node {node + 2} can only read nodes 0..{node + 1}"
                )
        _check_concat(_concat(getattr(g, concat_field), concat_field), len(edges) // 2 + 2, concat_field)


def validate_rnn(g: RNNGenotype) -> None:
    """Raise ValueError naming the first problem of a recurrent genotype."""
    ops = [p for p in RNN_PRIMITIVES if p != "none"]
    recurrent = _edges(g.recurrent, "recurrent", MAX_NODES)
    if not recurrent:
        raise ValueError("recurrent has no steps")
    for i, (op, pred) in enumerate(recurrent):
        if op not in ops:
            raise ValueError(f"recurrent: unknown activation {quote(op)} on step {i}; known: {', '.join(ops)}")
        if not 0 <= pred <= i:
            raise ValueError(
                f"recurrent: step {i} (state {i + 1}) reads state {quote(pred)}, but it can only read states 0..{i}"
            )
    _check_concat(_concat(g.concat, "concat"), len(recurrent) + 1, "concat")
