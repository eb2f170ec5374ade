"""The one validator of the run records the harness reads back (record.json).

A record is read by the aggregation, the report, the scheduler (to skip finished runs) and the
experiment driver (to choose a searched cell). All of them read it through :func:`read_record`,
so every record is checked the same way:

* the file itself: UTF-8 JSON holding an object (:mod:`reproduce.jsonfile`), with ``status`` a
  string and, once finished, ``final`` an object, ``curve`` a list of objects and ``config`` an
  object where they are present. Anything else raises :class:`BadRecordError` naming the file:
  such a file was damaged or edited, and no part of it can be trusted.
* its final metrics, against their domain (:func:`metric_problem`): errors and accuracies in
  [0, 100] %, perplexities >= 1, losses >= 0, every value a finite number. A record with a metric
  outside its domain, or without a metric its experiment reports, is *excluded* from the
  statistics, never silently dropped: :func:`metric_problems` gives the reasons, and the report
  lists the record with them.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, List, Mapping, Optional

from .jsonfile import BadFileError, read_json

FINISHED = "finished"
# Numbers in "final" that count or locate things rather than measure the model (not domain-checked).
BOOKKEEPING = ("best_epoch", "rollbacks", "switched_to_asgd_at", "num_classes", "epochs", "steps")
# The domain of a metric, by the end of its name: (lowest, highest) allowed.
DOMAINS = (("_error", 0.0, 100.0), ("_acc", 0.0, 100.0), ("_ppl", 1.0, math.inf), ("_loss", 0.0, math.inf))

FIX = "it was damaged or edited: restore it, or delete its run directory and rerun to redo that run"


class BadRecordError(BadFileError):
    """A record.json that is not a record."""


def number(value: Any) -> Optional[float]:
    """``value`` as a finite float, or None (booleans, strings, None, NaN, inf and integers too big
    for a float, such as 10**400, are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def _show(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10 ** 15:
        return f"an integer of {len(str(abs(value)))} digits"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def metric_problem(name: str, value: Any) -> Optional[str]:
    """Why ``value`` cannot be the final metric ``name`` (None when it can)."""
    x = number(value)
    if x is None:
        return f"{name} is {_show(value)}, not a finite number"
    for suffix, low, high in DOMAINS:
        if name.endswith(suffix) and not low <= x <= high:
            bounds = f"[{low:g}, {high:g}]" if math.isfinite(high) else f">= {low:g}"
            return f"{name} {x:.6g} is outside its domain {bounds}"
    return None


def measured(final: Mapping[str, Any]) -> List[str]:
    """The names in a record's ``final`` that measure the model (bookkeeping counts left out)."""
    return [k for k in final if k not in BOOKKEEPING]


def metric_problems(record: Mapping[str, Any], required: Iterable[str] = ()) -> List[str]:
    """Why a (structurally valid, finished) record cannot enter the statistics; empty when it can.

    Every measured final metric must lie in its domain, and every ``required`` metric (those its
    experiment reports) must be there.
    """
    final = record.get("final") or {}
    problems = [f"it has no {name}" for name in required if name not in final]
    problems += [p for p in (metric_problem(k, final[k]) for k in measured(final)) if p]
    return problems


def check_record(record: Any, where) -> dict:
    """``record`` if it has the structure of a record; BadRecordError naming ``where`` otherwise."""
    def refuse(problem: str) -> BadRecordError:
        return BadRecordError(f"{where}: {problem}; {FIX}")

    if not isinstance(record, dict):
        raise refuse(f"holds {type(record).__name__}, not a record (a JSON object)")
    if not isinstance(record.get("status"), str):
        raise refuse("has no status")
    seed = record.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise refuse(f"has seed {_show(seed)}, not an integer")
    if record["status"] == FINISHED:
        for key, kind in (("final", dict), ("curve", list), ("config", dict)):
            if key in record and not isinstance(record[key], kind):  # one that lacks them is excluded later
                raise refuse(f"is finished but its {key} is {_show(record[key])}, not a JSON "
                             f"{'object' if kind is dict else 'list'}")
        if not all(isinstance(row, dict) for row in record.get("curve", ())):
            raise refuse("is finished but its curve holds something other than one object per epoch")
    return record


def read_record(path) -> Optional[dict]:
    """The record in ``path`` (checked by :func:`check_record`), or None when there is none."""
    path = Path(path)
    if not path.exists():
        return None
    return check_record(read_json(path, expect=None, fix=FIX), path)


def is_finished(record: Optional[Mapping[str, Any]]) -> bool:
    return bool(record) and record.get("status") == FINISHED
