"""Figures of the report (matplotlib, Agg backend): learning curves with the mean band, the
distribution of final values against the published ones, the --search selection, and the cell
diagrams of the genotypes evaluated (``genotypes.plot``).

Every function writes one PNG atomically and returns its path, or None when there is nothing to
draw (no curve, no value).
"""
from __future__ import annotations

import io
import logging
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

import genotypes  # noqa: E402
from zoo.fileio import atomic_write_bytes  # noqa: E402

log = logging.getLogger(__name__)

LABELS = {
    "test_error": "test error (%)",
    "valid_error": "validation error (%)",
    "top1_error": "top-1 error (%)",
    "top5_error": "top-5 error (%)",
    "test_ppl": "test perplexity",
    "valid_ppl": "validation perplexity",
    "train_loss": "training loss",
    "valid_loss": "validation loss",
    "train_acc": "training accuracy (%)",
    "valid_acc": "validation accuracy (%)",
}


def label(metric: str) -> str:
    return LABELS.get(metric, metric.replace("_", " "))


def _save(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def curve_metrics(records: Sequence[dict]) -> List[str]:
    """Metrics that appear in the per-epoch curves of the records (epoch and lr excluded)."""
    skip = {"epoch", "lr", "learning_rate", "drop_path_prob", "time", "time_s", "epoch_time_s", "wall_time_s", "step"}
    found: List[str] = []
    for r in records:
        for row in r.get("curve") or []:
            for k, v in row.items():
                if k not in skip and k not in found and _number(v):
                    found.append(k)
    return found


def integer_epochs(ax, epochs: Sequence[int] = ()) -> None:
    """Epoch axes tick whole epochs only (a few epochs would otherwise get ticks like 0.5, 1.5): every epoch
    when there are few (one epoch alone too), else whole numbers chosen by matplotlib."""
    shown = sorted(set(int(e) for e in epochs))
    if shown and len(shown) <= 12:
        ax.set_xticks(shown)
        if len(shown) == 1:
            ax.set_xlim(shown[0] - 1, shown[0] + 1)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def learning_curves(records: Sequence[dict], metric: str, path: Path, title: str = "",
                    paper: Optional[float] = None, reference: Optional[dict] = None,
                    series_label: str = "seed") -> Optional[Path]:
    """Every seed's curve of ``metric`` by epoch, the mean over seeds and a +/- 1 std band.

    ``paper``: a published mean drawn as a line labelled "paper"; ``reference``: ``{"label", "mean"}`` of a
    figure that is not a published one (e.g. the demo's bound exp(H)), drawn with its own label.
    ``series_label`` names what each curve is (``"seed"``, ``"search seed"``)."""
    series: Dict[str, Dict[int, float]] = {}
    for r in records:
        points = {int(row["epoch"]): float(row[metric]) for row in r.get("curve") or []
                  if "epoch" in row and _number(row.get(metric))}
        if points:
            series[f"{series_label} {r.get('seed')}"] = points
    if not series:
        return None
    epochs = sorted(set().union(*[set(p) for p in series.values()]))
    mean, low, high = [], [], []
    for e in epochs:
        vals = np.array([p[e] for p in series.values() if e in p])
        m = float(vals.mean())
        s = float(vals.std(ddof=1)) if vals.size > 1 else 0.0
        mean.append(m)
        low.append(m - s)
        high.append(m + s)
    # the whole run, and the last quarter of it where the seeds' spread is visible
    zoom = len(epochs) >= 8
    fig, axes = plt.subplots(1, 2 if zoom else 1, figsize=(10.5 if zoom else 6.4, 4.0), squeeze=False)
    for k, ax in enumerate(axes[0]):
        start = epochs[int(len(epochs) * 0.75)] if k == 1 else epochs[0]
        for name, points in series.items():
            xs = [x for x in sorted(points) if x >= start]
            ax.plot(xs, [points[x] for x in xs], lw=0.8, alpha=0.55,
                    label=name if len(series) <= 10 and k == 0 else None)
        sel = [i for i, e in enumerate(epochs) if e >= start]
        ax.plot([epochs[i] for i in sel], [mean[i] for i in sel], color="black", lw=2,
                marker="o" if len(sel) <= 12 else None, ms=4,
                label=f"mean of {len(series)} seed(s)" if k == 0 else None)
        if len(series) > 1:
            ax.fill_between([epochs[i] for i in sel], [low[i] for i in sel], [high[i] for i in sel], color="gray",
                            alpha=0.3, label="mean +/- 1 std" if k == 0 else None)
        if paper is not None:
            ax.axhline(paper, color="tab:red", ls="--", lw=1.2, label=f"paper {paper:g}" if k == 0 else None)
        if reference is not None:
            ax.axhline(reference["mean"], color="tab:purple", ls=":", lw=1.2,
                       label=f"{reference['label']} {reference['mean']:.4g}" if k == 0 else None)
        ax.set_xlabel("epoch")
        integer_epochs(ax, [e for e in epochs if e >= start])
        ax.set_ylabel(label(metric))
        if k == 0 and (metric.endswith("_ppl") or metric.endswith("_loss")):
            vals = [v for p in series.values() for v in p.values()]
            if vals and min(vals) > 0 and max(vals) / min(vals) > 20:
                ax.set_yscale("log")
        ax.set_title((title or label(metric)) if k == 0 else "last quarter of training", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, ncol=2)
    return _save(fig, path)


def distribution(values: Sequence[float], metric: str, path: Path, references: Sequence[dict] = (),
                 summary: Optional[dict] = None, title: str = "") -> Optional[Path]:
    """Our final values (one dot per seed, mean and 95 % CI) beside each reference's mean +/- std.

    ``references``: dicts with ``label``, ``mean``, optionally ``std``, and ``published``: True (the default: a
    published figure) or False (a bound or other figure that nobody published).
    """
    if not values:
        return None
    fig, ax = plt.subplots(figsize=(1.8 + 1.3 * (1 + len(references)), 4.0))
    rng = np.random.default_rng(0)
    xs = rng.uniform(-0.12, 0.12, size=len(values))
    ax.scatter(xs, values, s=22, color="tab:blue", alpha=0.8, zorder=3, label="ours, one dot per seed")
    if summary and summary.get("ci95_low") is not None:
        m = summary["mean"]
        ax.errorbar([0.28], [m], yerr=[[m - summary["ci95_low"]], [summary["ci95_high"] - m]], fmt="s",
                    color="tab:blue", capsize=5, label="ours: mean, 95 % CI")
    elif summary:
        ax.plot([0.28], [summary["mean"]], "s", color="tab:blue", label="ours: mean")
    names = ["ours"]
    for i, ref in enumerate(references, start=1):
        std = ref.get("std")
        color = "tab:red" if i == 1 else f"C{i + 2}"
        if std is not None:
            ax.errorbar([i], [ref["mean"]], yerr=[[std], [std]], fmt="o", color=color, capsize=5,
                        label=f"{ref['label']}: mean +/- std")
            if i == 1:  # the band of the first reference (the paper) only, so bands do not pile up
                ax.axhspan(ref["mean"] - std, ref["mean"] + std, color=color, alpha=0.08)
        elif not ref.get("published", True):
            ax.plot([i], [ref["mean"]], "D", color=color, label=f"{ref['label']} (not a published figure)")
        else:
            ax.plot([i], [ref["mean"]], "D", color=color, label=f"{ref['label']}: single published figure")
        ax.axhline(ref["mean"], color=color, ls=":", lw=0.8)
        names.append(ref["label"] if len(ref["label"]) <= 18 else ref["label"][:17] + "...")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, fontsize=8, rotation=15)
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.set_ylabel(label(metric))
    ax.set_title(title or f"final {label(metric)}", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return _save(fig, path)


def selection(candidates: Sequence[dict], metric: str, chosen, path: Path) -> Optional[Path]:
    """The short-training validation figure of each searched cell, the chosen one highlighted."""
    points = [(c.get("search_seed"), c.get("valid_metric")) for c in candidates if _number(c.get("valid_metric"))]
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(1.5 + 1.1 * len(points), 3.6))
    for i, (seed, v) in enumerate(points):
        ax.plot([i], [v], "o", ms=9, color="tab:green" if seed == chosen else "tab:gray")
        ax.annotate(f"{v:.4g}", (i, v), xytext=(8, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_xticks(range(len(points)))
    ax.set_xticklabels([f"search seed {s}" + (" (chosen)" if s == chosen else "") for s, _ in points],
                       fontsize=8, rotation=15)
    ax.set_ylabel(label(metric))
    ax.set_title("selection: short training of each searched cell", fontsize=10)
    vals = [v for _, v in points]
    lo, hi = min(vals), max(vals)
    pad = (hi - lo) * 0.3 or abs(hi) * 0.05 or 1.0
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlim(-0.5, len(points) - 0.5)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def cells(genotype_text: str, stem: Path, title: str = "") -> List[Path]:
    """PNG cell diagrams of a genotype (``<stem>_normal.png`` and ``_reduce.png``, or ``_recurrent.png``).

    Returns [] (with a warning) when graphviz's ``dot`` is missing or the text is not a genotype,
    so a report can still be written.
    """
    try:
        genotype = genotypes.parse(genotype_text)
    except (ValueError, TypeError) as e:
        log.warning("cannot draw genotype %r: %s", genotype_text[:80], e)
        return []
    stem.parent.mkdir(parents=True, exist_ok=True)
    try:
        return [Path(p) for p in genotypes.plot(genotype, stem, format="png", title=title)]
    except Exception as e:  # graphviz missing or failing must not stop the report
        log.warning("cannot draw cell diagrams (%s); the report lists the genotype text only", e)
        return []
