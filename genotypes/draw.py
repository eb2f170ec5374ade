"""Cell diagrams with graphviz, in the style of the paper's figures.

Input nodes are green, intermediate nodes blue, the output yellow; each edge is labelled
with its op. Only nodes in the cell's concat feed the output (this matters for NASNet and
AmoebaNet, whose outputs skip some nodes).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import List, Union

from .types import Genotype, RNNGenotype

FORMATS = ("pdf", "png", "svg")

_NODE = dict(style="filled", shape="rect", align="center", fontsize="20", height="0.5", width="0.5",
             penwidth="2", fontname="times")
_EDGE = dict(fontsize="20", fontname="times")
_INPUT, _INNER, _OUTPUT = "darkseagreen2", "lightblue", "palegoldenrod"


class DotNotFoundError(FileNotFoundError, RuntimeError):
    """graphviz's ``dot`` program is not installed (or not on PATH)."""


def _require_dot() -> None:
    if shutil.which("dot") is None:
        raise DotNotFoundError(
            "graphviz's 'dot' program is not on PATH; install it with your system's package manager "
            "(e.g. 'apt-get install graphviz', 'brew install graphviz', 'conda install graphviz')"
        )


def _digraph(title: str):
    from graphviz import Digraph

    g = Digraph(engine="dot", node_attr=_NODE, edge_attr=_EDGE)
    g.attr(rankdir="LR", label=title, labelloc="t", fontsize="22", fontname="times")
    return g


def cnn_cell(edges, concat, title: str = ""):
    """A graphviz Digraph of one conv cell (edges as in ``Genotype.normal``)."""
    g = _digraph(title)
    g.node("c_{k-2}", fillcolor=_INPUT)
    g.node("c_{k-1}", fillcolor=_INPUT)
    steps = len(edges) // 2
    for i in range(steps):
        g.node(str(i), fillcolor=_INNER)
    names = ["c_{k-2}", "c_{k-1}"] + [str(i) for i in range(steps)]
    for k, (op, j) in enumerate(edges):
        g.edge(names[j], str(k // 2), label=op, fillcolor="gray")
    g.node("c_{k}", fillcolor=_OUTPUT)
    for j in concat:
        g.edge(names[j], "c_{k}", fillcolor="gray")
    return g


def rnn_cell(recurrent, concat, title: str = ""):
    """A graphviz Digraph of a recurrent cell."""
    g = _digraph(title)
    g.node("x_{t}", fillcolor=_INPUT)
    g.node("h_{t-1}", fillcolor=_INPUT)
    g.node("0", fillcolor=_INNER)
    g.edge("x_{t}", "0", fillcolor="gray")
    g.edge("h_{t-1}", "0", fillcolor="gray")
    for i in range(1, len(recurrent) + 1):
        g.node(str(i), fillcolor=_INNER)
    for i, (op, j) in enumerate(recurrent):
        g.edge(str(j), str(i + 1), label=op, fillcolor="gray")
    g.node("h_{t}", fillcolor=_OUTPUT)
    for j in concat:
        g.edge(str(j), "h_{t}", fillcolor="gray")
    return g


def _render(graph, path: Path, fmt: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = graph.pipe(format=fmt)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def plot(genotype: Union[Genotype, RNNGenotype], path, format: str = "pdf", title: str = "") -> List[Path]:  # noqa: A002
    """Draw a genotype; returns the files written.

    A conv genotype gives two files, ``<path>_normal.<format>`` and ``<path>_reduce.<format>``;
    a recurrent genotype gives ``<path>_recurrent.<format>``. ``path`` is a file stem (a
    trailing extension equal to ``format`` is dropped).
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
    _require_dot()
    stem = Path(path)
    if stem.suffix == "." + format:
        stem = stem.with_suffix("")
    prefix = f"{title} " if title else ""
    if isinstance(genotype, RNNGenotype):
        g = rnn_cell(genotype.recurrent, genotype.concat, f"{prefix}recurrent cell".strip())
        return [_render(g, stem.with_name(f"{stem.name}_recurrent.{format}"), format)]
    if isinstance(genotype, Genotype):
        out = []
        for cell, edges, concat in (("normal", genotype.normal, genotype.normal_concat),
                                    ("reduce", genotype.reduce, genotype.reduce_concat)):
            label = "normal cell" if cell == "normal" else "reduction cell"
            g = cnn_cell(edges, concat, f"{prefix}{label}")
            out.append(_render(g, stem.with_name(f"{stem.name}_{cell}.{format}"), format))
        return out
    raise TypeError(f"plot() takes a Genotype or RNNGenotype, not {type(genotype).__name__}")
