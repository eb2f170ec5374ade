"""Reading and writing genotypes as the text the original prints, without ``eval``.

The original logs ``Genotype(normal=[('sep_conv_3x3', 1), ...], normal_concat=range(2, 6), ...)``
for conv cells and ``Genotype(recurrent=[...], concat=range(1, 9))`` for recurrent cells. We
parse that text with :mod:`ast` and accept only literals, ``range(...)`` and the ``Genotype`` /
``RNNGenotype`` call, so no code in the text can run.
"""
from __future__ import annotations

import ast
from typing import Union

from .quoting import quote
from .types import MAX_NODES, Genotype, RNNGenotype, make_cnn, make_rnn

AnyGenotype = Union[Genotype, RNNGenotype]

# A range in the text lists nodes of one cell (inputs included): checked before it is expanded.
_MAX_RANGE = MAX_NODES + 2

# The longest genotype text: MAX_NODES nodes of two ('sep_conv_3x3', i) edges each, both cells, with room for spaces.
MAX_TEXT = 64 * MAX_NODES * 2 * 2 + 1000

_CNN_FIELDS = Genotype._fields
_RNN_FIELDS = RNNGenotype._fields


def _literal(node: ast.AST, text: str):
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int)) and not isinstance(node.value, bool):
        return node.value
    if (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant)
            and type(node.operand.value) is int):
        return -node.operand.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(e, text) for e in node.elts]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("range", "xrange"):
        if node.keywords or not 1 <= len(node.args) <= 3:
            raise ValueError(f"malformed range(...) in genotype text: {quote(ast.get_source_segment(text, node))}")
        args = [_literal(a, text) for a in node.args]
        if any(type(a) is not int for a in args) or (len(args) == 3 and args[2] == 0):
            raise ValueError(f"malformed range(...) in genotype text: {quote(ast.get_source_segment(text, node))}")
        values = range(*args)
        try:
            size = len(values)
        except OverflowError:  # longer than sys.maxsize
            size = _MAX_RANGE + 1
        if size > _MAX_RANGE:
            raise ValueError(f"range(...) in genotype text has more than {_MAX_RANGE} values; a cell has at most "
                             f"{_MAX_RANGE} nodes (genotypes.types.MAX_NODES intermediate ones)")
        return list(values)
    segment = ast.get_source_segment(text, node) or type(node).__name__
    raise ValueError(f"genotype text may only hold lists, tuples, strings, integers and range(); found "
                     f"{quote(segment)}")


def parse(text: str) -> AnyGenotype:
    """Parse a genotype printed by the original (or by :func:`format`) into a validated genotype.

    The kind (conv or recurrent) is read from the field names. Raises ``ValueError`` with the
    reason for text that is not a genotype.
    """
    if not isinstance(text, str):
        raise TypeError(f"parse() takes the genotype's text, not {type(text).__name__}")
    if len(text) > MAX_TEXT:  # parsed before it is checked: its size bounds the parser's time and memory
        raise ValueError(f"genotype text of {len(text)} characters, longer than any genotype of at most {MAX_NODES} "
                         f"intermediate nodes (under {MAX_TEXT}): {quote(text.strip(), 80)}")
    stripped = text.strip()
    try:
        tree = ast.parse(stripped, mode="eval")
    except SyntaxError as e:
        raise ValueError(
            f"genotype text is not well formed ({e.msg} at column {e.offset}): {quote(stripped, 80)}"
        ) from None
    except (RecursionError, MemoryError):
        raise ValueError(f"genotype text is nested too deeply to be a genotype: {quote(stripped, 80)}") from None
    call = tree.body
    if not (isinstance(call, ast.Call) and isinstance(call.func, (ast.Name, ast.Attribute))):
        raise ValueError(f"expected text of the form Genotype(normal=[...], ...), got {quote(stripped, 80)}")
    name = call.func.id if isinstance(call.func, ast.Name) else call.func.attr
    if name not in ("Genotype", "RNNGenotype"):
        raise ValueError(f"expected Genotype(...) or RNNGenotype(...), got {quote(name)}(...)")
    keys = [k.arg for k in call.keywords]
    if None in keys:
        raise ValueError("genotype text may not use ** arguments")
    fields = _RNN_FIELDS if "recurrent" in keys or (name == "RNNGenotype") else _CNN_FIELDS
    if len(call.args) > len(fields):
        raise ValueError(f"too many positional fields: a {name} has {len(fields)} ({', '.join(fields)})")
    values = dict(zip(fields, (_literal(a, stripped) for a in call.args)))
    for kw in call.keywords:
        if kw.arg not in fields:
            raise ValueError(f"unknown field {quote(kw.arg)}; expected {', '.join(fields)}")
        if kw.arg in values:
            raise ValueError(f"field {quote(kw.arg)} given twice")
        values[kw.arg] = _literal(kw.value, stripped)
    missing = [f for f in fields if f not in values]
    if missing:
        raise ValueError(f"genotype text lacks field(s) {', '.join(missing)}")
    return make_rnn(**values) if fields is _RNN_FIELDS else make_cnn(**values)


def _format_concat(concat) -> str:
    concat = list(concat)
    if len(concat) > 1 and all(type(c) is int for c in concat) and concat == list(range(concat[0], concat[-1] + 1)):
        return f"range({concat[0]}, {concat[-1] + 1})"
    return repr(concat)


def _format_edges(edges) -> str:
    return "[" + ", ".join(f"({op!r}, {index})" for op, index in edges) + "]"


def format(genotype: AnyGenotype) -> str:  # noqa: A001 - the name the contract asks for
    """The genotype as the original prints it (contiguous concats written as ``range``)."""
    if isinstance(genotype, RNNGenotype):
        return f"Genotype(recurrent={_format_edges(genotype.recurrent)}, concat={_format_concat(genotype.concat)})"
    if isinstance(genotype, Genotype):
        return (
            f"Genotype(normal={_format_edges(genotype.normal)}, "
            f"normal_concat={_format_concat(genotype.normal_concat)}, "
            f"reduce={_format_edges(genotype.reduce)}, reduce_concat={_format_concat(genotype.reduce_concat)})"
        )
    raise TypeError(f"format() takes a Genotype or RNNGenotype, not {type(genotype).__name__}")
