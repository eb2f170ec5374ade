"""What a DARTS architecture is: genotype types, search spaces, named cells, text, derivation, plots.

>>> import genotypes
>>> g = genotypes.get("DARTS_V2")
>>> genotypes.parse(genotypes.format(g)) == g
True
"""
from __future__ import annotations

import difflib
from typing import Union

# The drawing code lives in genotypes.draw: a submodule named 'plot' would replace the function plot below
# as the package attribute the first time it was imported.
from . import cnn, derive, draw, rnn, sample
from .quoting import quote
from .text import format, parse
from .types import Genotype, RNNGenotype, make_cnn, make_rnn, validate_cnn, validate_rnn

__all__ = [
    "Genotype", "RNNGenotype", "cnn", "rnn", "derive", "sample", "get", "names", "parse", "format",
    "validate", "plot", "make_cnn", "make_rnn", "UnknownGenotypeError", "resolve",
]

_KINDS = {"cnn": cnn, "rnn": rnn}


class UnknownGenotypeError(KeyError, ValueError):
    """An unknown genotype name; the message lists the known names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


def names(kind: str = "cnn") -> list:
    """Names of the named genotypes of a kind ('cnn' or 'rnn')."""
    return list(_module(kind).NAMED)


def _module(kind: str):
    try:
        return _KINDS[kind]
    except KeyError:
        raise ValueError(f"kind must be 'cnn' or 'rnn', not {quote(kind)}") from None


def get(name: str, kind: str = "cnn") -> Union[Genotype, RNNGenotype]:
    """A named genotype, e.g. ``get("DARTS_V2")`` or ``get("ENAS", kind="rnn")``.

    Matching is exact first, then case-insensitive. An unknown name raises
    :class:`UnknownGenotypeError` listing the known names and the closest one.
    """
    table = _module(kind).NAMED
    if name in table:
        return table[name]
    folded = {k.lower().replace("-", "_"): k for k in table}
    key = str(name).lower().replace("-", "_")
    if key in folded:
        return table[folded[key]]
    other = "rnn" if kind == "cnn" else "cnn"
    other_table = _module(other).NAMED
    if name in other_table or key in {k.lower().replace("-", "_") for k in other_table}:
        hint = f" {quote(name)} is a{'n' if other == 'rnn' else ''} {other} genotype: ask for kind={other!r}."
    else:
        # Compare case-folded so that e.g. 'darts_v3' still finds 'DARTS_V2'.
        close = difflib.get_close_matches(key[:64], list(folded), n=1, cutoff=0.4)  # a name is short: so is the work
        hint = f" Did you mean {folded[close[0]]!r}?" if close else ""
    raise UnknownGenotypeError(f"unknown {kind} genotype {quote(name)}.{hint} Known: {', '.join(table)}")


def resolve(spec, kind: str = "cnn") -> Union[Genotype, RNNGenotype]:
    """The one way every entry point turns what a user gave into a validated genotype of ``kind``.

    ``spec`` is a :class:`Genotype` / :class:`RNNGenotype`, the name of a named genotype
    (``"DARTS_V2"``), or genotype text as the original prints it (``"Genotype(normal=[...], ...)"``).
    A genotype of the other kind raises ``TypeError``; bad text or an unknown name raise ``ValueError``.
    """
    _module(kind)  # an unknown kind is an error before anything else
    expected = _TYPES[kind]
    if isinstance(spec, str):
        text = spec.strip()
        # Genotype text always has a parenthesis; a name never does.
        spec = parse(text) if "(" in text else get(text, kind)
    if not isinstance(spec, expected):
        what = "conv Genotype" if kind == "cnn" else "recurrent RNNGenotype"
        raise TypeError(f"expected a {what} (or its name or text), got {type(spec).__name__}")
    validate(spec)
    return spec


_TYPES = {"cnn": Genotype, "rnn": RNNGenotype}


def validate(genotype) -> None:
    """Raise ValueError naming the first problem of a genotype of either kind."""
    if isinstance(genotype, RNNGenotype):
        validate_rnn(genotype)
    elif isinstance(genotype, Genotype):
        validate_cnn(genotype)
    else:
        raise TypeError(f"not a genotype: {type(genotype).__name__}")


def plot(genotype, path, format: str = "pdf", title: str = ""):  # noqa: A002
    """Draw the cells of a genotype with graphviz (see :func:`genotypes.draw.plot`)."""
    return draw.plot(genotype, path, format=format, title=title)
