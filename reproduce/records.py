"""The run record (record.json) as the harness reads it back: one :class:`Record` type, checked once.

A record is read by the scheduler (to skip finished runs), the experiment driver (to choose a
searched cell) and the aggregation behind the report and the terminal summary. All of them read
it through :func:`read_record` or :func:`load_records`, so every record is checked the same way:

* the file itself: UTF-8 JSON holding an object (:mod:`reproduce.jsonfile`), with ``status`` a
  string, ``seed`` an integer, and, once finished, ``final`` an object, ``curve`` a list of objects
  and ``config`` an object where they are present. Anything else raises :class:`BadRecordError`
  naming the file: such a file was damaged or edited, and no part of it can be trusted. Where the
  report reads many records (:func:`load_records`), such a file is *rejected*: listed with its
  reason, never counted, and the other records are reported as usual.
* its numbers, against their domain (:func:`metric_problem`): errors and accuracies in [0, 100] %,
  perplexities >= 1, losses >= 0, every final value a finite number, and the same domains for the
  per-epoch curve. A finished record with a number outside its domain, or without a metric its
  dataset reports (:data:`METRICS`), is *excluded* from the statistics, never silently dropped:
  ``Record.problems`` gives the reasons, and the report lists the record with them.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, List, Mapping, Optional, Sequence, Tuple

from .jsonfile import BadFileError, read_json
from .layout import RECORD

FINISHED = "finished"
# Numbers in "final" that count or locate things rather than measure the model (not domain-checked).
BOOKKEEPING = ("best_epoch", "rollbacks", "switched_to_asgd_at", "num_classes", "epochs", "steps")
# The domain of a metric, by the end of its name: (lowest, highest) allowed.
DOMAINS = (("_error", 0.0, 100.0), ("_acc", 0.0, 100.0), ("_ppl", 1.0, math.inf), ("_loss", 0.0, math.inf))

# The final metrics the paper reports for each dataset (lower is better), in the order tables show them.
# Every training record of the dataset must have them; a dataset added to the harness adds its line here.
METRICS = {
    "cifar10": ("test_error",),
    "imagenet": ("top1_error", "top5_error"),
    "ptb": ("test_ppl", "valid_ppl"),
    "wt2": ("test_ppl", "valid_ppl"),
    "images": ("test_error",),  # one's own images and text (docs/own-data.md)
    "text": ("test_ppl", "valid_ppl"),
}

FIX = "it was damaged or edited: restore it, or delete its run directory and rerun to redo that run"
# How many curve problems one record lists (the first ones; a damaged curve is usually damaged throughout).
CURVE_PROBLEMS_SHOWN = 3


class BadRecordError(BadFileError):
    """A record.json that is not a record."""


def metrics_of(dataset: Optional[str]) -> Tuple[str, ...]:
    """:data:`METRICS` of ``dataset``; () for a dataset the table does not know."""
    return METRICS.get(str(dataset), ())


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


def _has_domain(name: str) -> bool:
    return any(name.endswith(suffix) for suffix, _, _ in DOMAINS)


def row_problems(row: Mapping[str, Any]) -> List[str]:
    """Why one epoch's metrics (a line of metrics.jsonl, a row of a record's curve) cannot be as measured: a
    value of a metric with a domain outside it; None is allowed (a perplexity that overflowed a float)."""
    return [p for p in (metric_problem(k, v) for k, v in row.items() if v is not None and _has_domain(k)) if p]


def curve_problems(curve: Sequence[Mapping[str, Any]]) -> List[str]:
    """Why a curve cannot be drawn as measured: a value of a metric with a domain outside it. None is allowed
    there (a language model's perplexity that overflowed a float in one epoch)."""
    problems = [f"curve epoch {row.get('epoch', i)}: {p}" for i, row in enumerate(curve) for p in row_problems(row)]
    if len(problems) > CURVE_PROBLEMS_SHOWN:
        problems = problems[:CURVE_PROBLEMS_SHOWN] + [f"and {len(problems) - CURVE_PROBLEMS_SHOWN} more in its curve"]
    return problems


def metric_problems(record: Mapping[str, Any], required: Iterable[str] = ()) -> List[str]:
    """Why a (structurally valid, finished) record cannot enter the statistics; empty when it can.

    Every measured final metric must lie in its domain, every ``required`` metric must be there,
    and the curve's values must lie in their domains too.
    """
    final = record.get("final") or {}
    problems = [f"it has no {name}" for name in required if name not in final]
    problems += [p for p in (metric_problem(k, final[k]) for k in measured(final)) if p]
    return problems + curve_problems(record.get("curve") or ())


class Record(dict):
    """A record.json as read back: the record's fields (a dict, as written), checked by :func:`check_record`,
    with where it was read from (``path``, its run directory ``dir``) and ``problems``: why it cannot enter
    the statistics (empty when it can). A *rejected* record (``rejected`` true) is a file that is not a
    record at all: it holds no fields, only its path and the reason."""

    def __init__(self, fields: Mapping[str, Any] = (), path=None, problems: Sequence[str] = (),
                 rejected: bool = False):
        super().__init__(fields)
        self.path = Path(path) if path is not None else None
        self.problems = list(problems)
        self.rejected = rejected

    @property
    def dir(self) -> Optional[Path]:
        return self.path.parent if self.path is not None else None

    @property
    def seed(self) -> Any:
        return self.get("seed")

    @property
    def finished(self) -> bool:
        return self.get("status") == FINISHED

    @property
    def usable(self) -> bool:
        """Finished and every number in its domain: it enters the statistics."""
        return self.finished and not self.problems and not self.rejected

    def value(self, metric: str) -> Optional[float]:
        """The final ``metric`` as a finite float, or None."""
        return number((self.get("final") or {}).get(metric))


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
        for key, json_type in (("final", dict), ("curve", list), ("config", dict)):
            if key in record and not isinstance(record[key], json_type):  # one that lacks them is excluded later
                raise refuse(f"is finished but its {key} is {_show(record[key])}, not a JSON "
                             f"{'object' if json_type is dict else 'list'}")
        if not all(isinstance(row, dict) for row in record.get("curve", ())):
            raise refuse("is finished but its curve holds something other than one object per epoch")
    return record


def read_record(path, required: Iterable[str] = ()) -> Optional[Record]:
    """The record in ``path`` (checked by :func:`check_record`; BadRecordError when it is not a record), or
    None when there is none. A finished record's ``problems`` say why it cannot enter the statistics
    (``required``: the metrics it must have)."""
    path = Path(path)
    if not path.exists():
        return None
    return _checked(check_record(read_json(path, expect=None, fix=FIX), path), path, required)


def _checked(fields: Mapping[str, Any], path: Path, required: Iterable[str]) -> Record:
    """A record's checked ``fields`` with the reasons it cannot enter the statistics (``required``: the metrics
    it must have)."""
    problems = metric_problems(fields, required) if fields["status"] == FINISHED else []
    return Record(fields, path, problems)


def is_finished(record: Optional[Mapping[str, Any]]) -> bool:
    return bool(record) and record.get("status") == FINISHED


def load_records(root, required: Iterable[str] = (), known: Mapping[Path, Record] = None
                 ) -> Tuple[List[Record], List[str]]:
    """The finished records of the run directories directly under ``root`` (sorted by seed), and the names
    of the run directories there without a finished record. ``known``: records read already (by the launcher
    that ran them; keyed by their resolved path), taken as they are instead of being read again.

    A finished record whose numbers lie outside their domain, or that lacks one of ``required``, stays in
    the list with its ``problems``: it counts as finished but enters no statistic, and the report lists it.
    A file that is not a record at all is in the list too, ``rejected``: one damaged file is listed, never
    a reason to report nothing.
    """
    root = Path(root)
    finished, unfinished = [], []
    if not root.is_dir():
        return finished, unfinished
    required = tuple(required)
    for run in sorted(p for p in root.iterdir() if p.is_dir()):
        read_already = known.get((run / RECORD).resolve()) if known else None
        if read_already is not None and read_already.finished:  # structure checked when read; metrics here
            finished.append(_checked(read_already, run / RECORD, required))
            continue
        try:
            record = read_record(run / RECORD, required)
        except BadFileError as e:
            finished.append(Record({}, run / RECORD, [str(e)], rejected=True))
            continue
        if record is not None and record.finished:
            finished.append(record)
        else:
            unfinished.append(run.name)
    finished.sort(key=lambda r: (not isinstance(r.seed, int), r.seed if isinstance(r.seed, int) else 0, str(r.path)))
    return finished, unfinished
