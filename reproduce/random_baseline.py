"""The random-architecture baseline: cells drawn uniformly from the DARTS space, set beside the searched cell.

Li & Talwalkar (2019, "Random Search and Reproducibility for Neural Architecture Search") and Yang
et al. (2020, "NAS evaluation is frustratingly hard") ask of every NAS result whether the searched
cell beats cells drawn at random from the same space and trained the same way. ``--baseline
random:N`` (``random:N:SEED`` to pick the draw's seed, default 0) draws N cells with
:func:`genotypes.sample.draw` and trains each with the same recipe and the same seeds as the
searched cell. The experiment directory keeps them under ``baseline/`` (or the directory named by
experiment.json's ``baseline.dir``, relative to it: experiments with the same recipe, seeds and draw
can share one)::

    baseline/baseline.json          the draw: N, its seed, the cells' genotypes, the training seeds
    baseline/cell-<i>/seed-<S>/     the training of random cell i with seed S (a normal run directory)

The comparison, per final metric (lower is better): the searched cell's runs (one value per seed)
against the random cells (one value per cell: the mean of its runs over the same seeds, so a cell
counts once however many seeds it has), each as mean +/- std with its t-based 95 % CI, and Welch's
t-test (``scipy.stats.ttest_ind(..., equal_var=False)``). The verdict at p < 0.05: "better" or
"worse" (the searched cell's mean lower or higher), else "not distinguishable"; "untested" when
either side has fewer than two values or neither has any spread. Parameter counts of both are kept.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from scipy import stats as _st

from . import stats
from .jsonfile import read_json
from .layout import BASELINE_DIR, BASELINE_FILE
from .records import load_records

DIR, FILE = BASELINE_DIR, BASELINE_FILE  # (reproduce.layout) the names this module's callers know
KINDS = ("random",)
VERDICTS = ("better", "worse", "not distinguishable", "untested")


@dataclasses.dataclass(frozen=True)
class BaselineSpec:
    """What ``--baseline`` asks for: ``n`` cells drawn with ``seed``."""

    kind: str
    n: int
    seed: int = 0

    @property
    def text(self) -> str:
        return f"{self.kind}:{self.n}:{self.seed}"


def parse(text: Optional[str]) -> Optional[BaselineSpec]:
    """``"random:N"`` or ``"random:N:SEED"`` -> :class:`BaselineSpec`; None or "" -> None."""
    if not text:
        return None
    parts = str(text).strip().split(":")
    usage = "give --baseline random:N (N random cells, drawn with seed 0) or random:N:SEED, e.g. random:5"
    if parts[0] not in KINDS or len(parts) not in (2, 3):
        raise ValueError(f"unknown --baseline {text!r}: {usage}")
    try:
        n, seed = int(parts[1]), int(parts[2]) if len(parts) == 3 else 0
    except ValueError:
        raise ValueError(f"--baseline {text!r}: N and SEED must be integers; {usage}") from None
    if n < 1 or seed < 0:
        raise ValueError(f"--baseline {text!r}: N must be >= 1 and SEED >= 0; {usage}")
    return BaselineSpec(parts[0], n, seed)


def root_of(exp_dir, meta: Optional[Mapping[str, Any]]) -> Path:
    """The baseline directory of the experiment in ``exp_dir`` whose experiment.json holds ``meta``."""
    where = ((meta or {}).get("baseline") or {}).get("dir") or DIR
    return Path(exp_dir) / str(where)


def cell_dir(root: Path, index: int) -> Path:
    """The run directories of random cell ``index`` in the baseline directory ``root``."""
    return Path(root) / f"cell-{index}"


# --------------------------------------------------------------------------------------------------
# the comparison

def _verdict(difference: float, p: float, alpha: float) -> str:
    if p >= alpha or difference == 0:
        return "not distinguishable"
    return "better" if difference < 0 else "worse"


def compare(searched: Sequence[float], random_cells: Sequence[float], alpha: float = stats.ALPHA) -> Dict[str, Any]:
    """The searched cell's values (one per seed) against the random cells' (one per cell); lower is better.

    Returns ``{searched, random (stats.summarize of each), difference (searched - random mean), t,
    df, p, verdict, reason}``; ``reason`` says why no test was made (verdict "untested").
    """
    s = stats.summarize(searched)
    r = stats.summarize(random_cells)
    out: Dict[str, Any] = {"searched": s, "random": r, "difference": s["mean"] - r["mean"], "t": None, "df": None,
                           "p": None, "verdict": "untested", "reason": None}
    if s["n"] < 2 or r["n"] < 2:
        out["reason"] = ("one searched run" if s["n"] < 2 else "one random cell") + \
            ": a t-test needs two values on each side (more seeds or more cells)"
        return out
    if s["std"] == 0 and r["std"] == 0:
        out["reason"] = "neither side has any spread"
        return out
    # t and p do not change when both samples are divided by one factor: scaled, no variance overflows (1e200)
    scale = stats.scale_of([float(v) for v in (*searched, *random_cells)])
    res = _st.ttest_ind([float(v) / scale for v in searched], [float(v) / scale for v in random_cells],
                        equal_var=False)
    p = float(res.pvalue)
    out.update(t=float(res.statistic), df=stats.welch_df(s["std"], s["n"], r["std"], r["n"]), p=p,
               verdict=_verdict(out["difference"], p, alpha))
    return out


# --------------------------------------------------------------------------------------------------
# reading a finished baseline

@dataclasses.dataclass
class RandomCell:
    index: int
    genotype: str
    records: List[dict]  # finished training records, one per seed

    @property
    def parameters(self) -> Optional[int]:
        counts = {r.get("parameters") for r in self.records if r.get("parameters") is not None}
        return counts.pop() if len(counts) == 1 else None

    def mean(self, metric: str) -> Optional[float]:
        values = [float(r["final"][metric]) for r in self.records
                  if isinstance((r.get("final") or {}).get(metric), (int, float))]
        return sum(values) / len(values) if values else None


@dataclasses.dataclass
class Baseline:
    spec: BaselineSpec
    seeds: List[int]
    cells: List[RandomCell]

    def complete_cells(self) -> List[RandomCell]:
        """The cells with a finished run for every seed (a cell counts only with all its seeds)."""
        want = set(self.seeds)
        return [c for c in self.cells if {r.get("seed") for r in c.records} >= want]

    def cell_means(self, metric: str) -> List[float]:
        return [m for m in (c.mean(metric) for c in self.complete_cells()) if m is not None and math.isfinite(m)]


def read_meta(root) -> Optional[dict]:
    """``baseline.json`` of the baseline directory ``root`` (None without one); a damaged file is refused in one
    line (:func:`reproduce.jsonfile.read_json`)."""
    path = Path(root) / FILE
    if not path.exists():
        return None
    return read_json(path, fix="delete the baseline directory to draw and train its cells afresh")


def load(root, known: Mapping[Path, Any] = None) -> Optional[Baseline]:
    """The baseline in the directory ``root`` (:func:`root_of`), or None without one. Its cells' records are
    read as every record is (:func:`reproduce.records.load_records`, ``known``: those read already); those
    excluded from the statistics count for no cell."""
    meta = read_meta(root)
    if meta is None:
        return None
    spec = BaselineSpec(meta["kind"], int(meta["n"]), int(meta["draw_seed"]))
    cells = []
    for cell in meta["cells"]:
        records, _ = load_records(cell_dir(root, cell["index"]), known=known)
        records = [r for r in records if r.usable and r.get("genotype") == cell["genotype"]]
        cells.append(RandomCell(int(cell["index"]), cell["genotype"], records))
    return Baseline(spec, [int(s) for s in meta["seeds"]], cells)


def comparison_rows(searched_records: Sequence[Mapping[str, Any]], baseline: Baseline,
                    metrics: Sequence[str]) -> List[Dict[str, Any]]:
    """One :func:`compare` per metric that both sides have, with the metric's name and the parameter counts."""
    rows = []
    searched_params = sorted({r.get("parameters") for r in searched_records if r.get("parameters") is not None})
    random_params = [c.parameters for c in baseline.complete_cells() if c.parameters is not None]
    for metric in metrics:
        searched = [float(r["final"][metric]) for r in searched_records
                    if isinstance((r.get("final") or {}).get(metric), (int, float))]
        cells = baseline.cell_means(metric)
        if not searched or not cells:
            continue
        row = compare(searched, cells)
        row.update(metric=metric, searched_parameters=searched_params, random_parameters=random_params)
        rows.append(row)
    return rows


HEADERS = ("metric", "searched: mean ± std (n)", "searched 95 % CI", "random cells: mean ± std (n)",
           "random 95 % CI", "difference", "Welch t (df)", "p", "verdict", "parameters: searched / random cells")


def _mean_std(s: Mapping[str, Any]) -> str:
    std = f" ± {s['std']:.3g}" if s.get("std") is not None else ""
    return f"{s['mean']:.4g}{std} ({s['n']})"


def _ci(s: Mapping[str, Any]) -> str:
    return f"[{s['ci95_low']:.4g}, {s['ci95_high']:.4g}]" if s.get("ci95_low") is not None else "—"


def _params(searched: Sequence[int], random_cells: Sequence[int]) -> str:
    ours = "/".join(f"{p:,}" for p in searched) or "?"
    if not random_cells:
        return f"{ours} / ?"
    lo, hi = min(random_cells), max(random_cells)
    theirs = f"{lo:,}" if lo == hi else f"{lo:,}..{hi:,} (mean {sum(random_cells) / len(random_cells):,.0f})"
    return f"{ours} / {theirs}"


def table_rows(rows: Sequence[Mapping[str, Any]]) -> List[List[str]]:
    """:data:`HEADERS`' cells of each :func:`comparison_rows` row, as text."""
    out = []
    for r in rows:
        test = f"{r['t']:.3g} ({r['df']:.3g})" if r.get("t") is not None else "—"
        p = f"{r['p']:.3g}" if r.get("p") is not None else "—"
        verdict = r["verdict"] + (f" ({r['reason']})" if r.get("reason") else "")
        out.append([r["metric"], _mean_std(r["searched"]), _ci(r["searched"]), _mean_std(r["random"]),
                    _ci(r["random"]), f"{r['difference']:+.4g}", test, p, verdict,
                    _params(r.get("searched_parameters", []), r.get("random_parameters", []))])
    return out


def format_table(rows: Sequence[Mapping[str, Any]], tablefmt: str = "simple") -> str:
    from tabulate import tabulate

    return tabulate(table_rows(rows), headers=list(HEADERS), tablefmt=tablefmt, disable_numparse=True)


__all__ = ["HEADERS", "table_rows", "format_table", "BaselineSpec", "Baseline", "RandomCell", "parse", "compare",
           "load", "comparison_rows", "cell_dir", "DIR", "FILE", "VERDICTS"]
