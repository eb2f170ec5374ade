"""Quoting values read from files in error messages: a few dozen characters at most, built in bounded time.

``repr()`` of a value from a file can be enormous: a list whose items share one sublist, 60 levels deep,
is a few hundred bytes in a pickle and 2**60 items when printed; a 10 MB string or a million-digit
integer is printed whole. Every message that quotes something read from a file (a checkpoint, a
config.json, a genotype text) goes through :func:`quote`. It lives here, at the bottom of the package
graph, because the genotype checks quote what the zoo's readers hand them.
"""
from __future__ import annotations

from typing import Any, List

QUOTE_LIMIT = 48  # characters of a quoted value
_MAX_DEPTH = 3  # containers inside containers shown before "..."
_MAX_INT_BITS = 128  # larger ints are described by their size (printing one costs time quadratic in its digits)
_BRACKETS = ((list, "[]"), (tuple, "()"), (dict, "{}"), (set, "{}"), (frozenset, "{}"))


def quote(value: Any, limit: int = QUOTE_LIMIT) -> str:
    """A short rendering of ``value`` for an error message: at most ``limit`` characters (``...`` marks a cut).

    Containers are walked only as far as the text allows, never through ``repr()``, so a shared or
    self-containing structure costs no more than a plain one; other objects show their type name.
    """
    parts: List[str] = []
    room = [limit + 1]

    def put(text: str) -> None:
        parts.append(text)
        room[0] -= len(text)

    def walk(v: Any, depth: int) -> None:
        if room[0] <= 0:
            return
        if isinstance(v, (str, bytes, bytearray)):
            put(repr(v[: room[0]]))
        elif v is None or isinstance(v, (bool, float)):
            put(repr(v))
        elif isinstance(v, int):
            put(str(int(v)) if v.bit_length() <= _MAX_INT_BITS else f"<int of {v.bit_length()} bits>")
        elif isinstance(v, range):
            put("range(")
            for i, bound in enumerate((v.start, v.stop, v.step)):
                put(", " if i else "")
                walk(bound, depth + 1)
            put(")")
        elif isinstance(v, (list, tuple, dict, set, frozenset)):
            brackets = next(b for kind, b in _BRACKETS if isinstance(v, kind))
            if depth >= _MAX_DEPTH:
                put(brackets[0] + "..." + brackets[1])
                return
            put(brackets[0])
            for i, item in enumerate(v.items() if isinstance(v, dict) else v):
                if room[0] <= 0:
                    break
                put(", " if i else "")
                if isinstance(v, dict):
                    walk(item[0], depth + 1)
                    put(": ")
                    item = item[1]
                walk(item, depth + 1)
            put(("," if type(v) is tuple and len(v) == 1 else "") + brackets[1])
        else:
            put(f"<{type(v).__name__[:limit]}>")

    walk(value, 0)
    text = "".join(parts)
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


__all__ = ["quote", "QUOTE_LIMIT"]
