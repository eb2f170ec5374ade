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
t-test (the statistic and p of ``scipy.stats.ttest_ind(..., equal_var=False)``, computed from the two
summaries so that no variance of huge values overflows). The verdict at p < 0.05: "better" or
"worse" (the searched cell's mean lower or higher), else "not distinguishable"; "untested" when
either side has fewer than two values or neither has any spread. Parameter counts of both are kept.

A random cell's record is excluded from the statistics as the searched cell's are: a number outside its
domain, or a value that would overflow its cell's statistics (1.5e308 beside 60), or a cell mean that would
overflow the random cells' (:meth:`Baseline.exclude_overflowing`). The report lists each with its run
directory; the cell's mean is that of its other seeds, and a cell left with none is named and left out.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from scipy import stats as _st

from . import stats
from .jsonfile import read_json
from .layout import BASELINE_DIR, BASELINE_FILE
from .records import Record, exclude_overflowing, load_records, measured

log = logging.getLogger(__name__)

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
    where = ((meta or {}).get("baseline") or {}).get("dir") or BASELINE_DIR
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
    df, p, verdict, reason}``; ``reason`` says why no test was made (verdict "untested"), or that t itself is
    beyond the range of a float (then p is 0 and the verdict stands).
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
    if not math.isfinite(out["difference"]):  # means of opposite signs near the largest float
        out.update(difference=None, reason="the difference of the means exceeds the range of a float")
        return out
    # Welch's t from the summaries, whose figures are exact even for huge values: hypot neither overflows nor
    # underflows, where the variances of values scaled by one factor did (58 and 59 scaled by 2**-664 beside
    # 1e200 have a variance of 0, and t was -inf)
    se = math.hypot(s["std"] / math.sqrt(s["n"]), r["std"] / math.sqrt(r["n"]))
    t = out["difference"] / se
    df = stats.welch_df(s["std"], s["n"], r["std"], r["n"])
    p = float(2 * _st.t.sf(abs(t), df))
    out.update(t=t, df=df, p=p, verdict=_verdict(out["difference"], p, alpha))
    if not math.isfinite(t):  # a difference near 1e308 over a spread below 1: p is 0 all the same
        out.update(t=None, reason="|t| exceeds the range of a float")
    return out


# --------------------------------------------------------------------------------------------------
# reading a finished baseline

@dataclasses.dataclass
class RandomCell:
    index: int
    genotype: str
    records: List[Record]  # finished training records, one per seed; the excluded ones among them have problems

    @property
    def usable(self) -> List[Record]:
        """The records that enter the statistics (all but the excluded ones)."""
        return [r for r in self.records if r.usable]

    @property
    def parameters(self) -> Optional[int]:
        counts = {r.get("parameters") for r in self.usable if r.get("parameters") is not None}
        return counts.pop() if len(counts) == 1 else None

    def mean(self, metric: str) -> Optional[float]:
        """The mean of ``metric`` over the usable seeds (None without one)."""
        values = [v for v in (r.value(metric) for r in self.usable) if v is not None]
        if not values:
            return None
        scale = stats.scale_of(values)  # exact, and no sum of two values near 1e308 overflows
        return math.fsum(v / scale for v in values) / len(values) * scale


@dataclasses.dataclass
class Baseline:
    spec: BaselineSpec
    seeds: List[int]
    cells: List[RandomCell]
    rejected: List[Record] = dataclasses.field(default_factory=list)  # files in a cell's run directories, no record

    def complete_cells(self) -> List[RandomCell]:
        """The cells with a finished run for every seed (a cell counts only with all its seeds; a seed excluded
        from the statistics has finished, and the cell's mean is that of its other seeds)."""
        want = set(self.seeds)
        return [c for c in self.cells if {r.get("seed") for r in c.records} >= want]

    def cell_means(self, metric: str) -> List[float]:
        return [m for m in (c.mean(metric) for c in self.complete_cells()) if m is not None]

    def left_out(self, metric: str) -> List[int]:
        """The complete cells without a usable value of ``metric``: every seed of theirs was excluded."""
        return [c.index for c in self.complete_cells() if c.mean(metric) is None]

    def excluded(self) -> List[Tuple[Optional[int], Record]]:
        """(cell index, record) of every record left out of the statistics, the files that are not records
        (cell index None) last."""
        return [(c.index, r) for c in self.cells for r in c.records if r.problems] + [(None, r) for r in self.rejected]

    def exclude_overflowing(self) -> None:
        """Exclude, as the searched cell's runs are (:func:`reproduce.records.exclude_overflowing`), each seed
        whose value would overflow its cell's statistics, then the seeds of each cell whose mean would overflow the
        statistics of the cells compared (a cell of 1.5e308 twice beside cells of 61 and 63)."""
        for c in self.cells:
            exclude_overflowing(c.records, beside="its cell's other seeds'")
        complete = self.complete_cells()
        for metric in sorted({k for c in complete for r in c.usable for k in measured(r.get("final") or {})}):
            means = [(c, c.mean(metric)) for c in complete if c.mean(metric) is not None]
            for i in stats.overflowing([m for _, m in means]):
                for r in means[i][0].usable:
                    if r.value(metric) is not None:
                        r.problems.append(f"{metric} {r.value(metric):.6g}: its cell's mean is so far from the other "
                                          "random cells' that their statistics would exceed the range of a float")
                        log.warning("%s is excluded from the statistics: %s", r.path, r.problems[-1])


def read_meta(root) -> Optional[dict]:
    """``baseline.json`` of the baseline directory ``root`` (None without one); a damaged file is refused in one
    line (:func:`reproduce.jsonfile.read_json`)."""
    path = Path(root) / BASELINE_FILE
    if not path.exists():
        return None
    return read_json(path, fix="delete the baseline directory to draw and train its cells afresh")


def load(root, known: Mapping[Path, Any] = None) -> Optional[Baseline]:
    """The baseline in the directory ``root`` (:func:`root_of`), or None without one. Its cells' records are
    read as every record is (:func:`reproduce.records.load_records`, ``known``: those read already); those
    excluded from the statistics (:meth:`Baseline.excluded`) count for no cell's mean, and a file that is not a
    record for no cell."""
    meta = read_meta(root)
    if meta is None:
        return None
    spec = BaselineSpec(meta["kind"], int(meta["n"]), int(meta["draw_seed"]))
    cells, rejected = [], []
    for cell in meta["cells"]:
        records, _ = load_records(cell_dir(root, cell["index"]), known=known)
        for r in records:
            if r.problems:
                log.warning("%s is excluded from the statistics: %s", r.path, "; ".join(r.problems))
        rejected += [r for r in records if r.rejected]
        records = [r for r in records if not r.rejected and r.get("genotype") == cell["genotype"]]
        cells.append(RandomCell(int(cell["index"]), cell["genotype"], records))
    baseline = Baseline(spec, [int(s) for s in meta["seeds"]], cells, rejected)
    baseline.exclude_overflowing()
    return baseline


def comparison_rows(searched_records: Sequence[Mapping[str, Any]], baseline: Baseline,
                    metrics: Sequence[str]) -> List[Dict[str, Any]]:
    """One :func:`compare` per metric that both sides have, with the metric's name, the parameter counts and the
    complete cells ``left_out`` of it (:meth:`Baseline.left_out`)."""
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
        row.update(metric=metric, searched_parameters=searched_params, random_parameters=random_params,
                   left_out=baseline.left_out(metric))
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
                    _ci(r["random"]), f"{r['difference']:+.4g}" if r.get("difference") is not None else "—", test, p,
                    verdict,
                    _params(r.get("searched_parameters", []), r.get("random_parameters", []))])
    return out


def format_table(rows: Sequence[Mapping[str, Any]], tablefmt: str = "simple") -> str:
    from tabulate import tabulate

    return tabulate(table_rows(rows), headers=list(HEADERS), tablefmt=tablefmt, disable_numparse=True)


__all__ = ["HEADERS", "table_rows", "format_table", "BaselineSpec", "Baseline", "RandomCell", "parse", "compare",
           "load", "comparison_rows", "cell_dir", "VERDICTS"]
