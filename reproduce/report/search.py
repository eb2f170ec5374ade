"""The report's sections on how the cell was found: the supernets, the selection of the searched cells, and the
searched cell against random cells (the random-architecture baseline)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, List, Mapping, Optional

import genotypes
from genotypes import derive

from .. import figures, random_baseline
from ..aggregate import Experiment
from ..records import number
from .document import Doc
from .formatters import fmt_duration, fmt_num


def supernet_curves(doc: Doc, exp: Experiment, fig_dir: Path, draw: bool, reference_lines: Mapping[str, Any]):
    """What each search's supernet reached (its last epoch) and, drawn, its curves over the search."""
    shown = [m for m in ("valid_acc", "valid_ppl", "train_loss", "valid_loss")
             if any(m in (r.get("final") or {}) for r in exp.search_records)]
    if not shown:
        return
    where = ("the validation split (which also trains the architecture)" if "valid_ppl" in shown else
             "the half of the training data that trains the architecture")
    doc.p("The supernets (the weights shared by every candidate op, mixed by the architecture weights) at the end "
          f"of each search; the validation figures are measured on {where}:")
    bn = sorted({str((r.get("config") or {}).get("valid_bn")) for r in exp.search_records}
                if "valid_ppl" in shown else set())
    if bn == ["batch"]:
        doc.p("Their validation perplexity is measured with each state of the cell normalised over the evaluation "
              "batch, as in training (`valid_bn=batch`), not as the original's code measures it (eval mode, where "
              "the cell's one BatchNorm normalises all nine states with shared running statistics, `valid_bn="
              "running`). The batch's columns are other stretches of the same text, so this figure is not strictly "
              "a per-sequence likelihood; the trained cells' perplexities below are.")
    elif len(bn) > 1:
        doc.p(f"Their validation perplexities are measured in different ways (`valid_bn` {', '.join(bn)}): not "
              "comparable with each other.")
    doc.table(["search seed", *shown, "epochs"],
              [[r.get("seed"), *[fmt_num((r.get("final") or {}).get(m)) for m in shown], len(r.get("curve") or [])]
               for r in exp.search_records])
    if not draw:
        return
    for m in figures.curve_metrics(exp.search_records):
        if m not in ("valid_acc", "valid_ppl", "train_loss"):
            continue
        path = figures.learning_curves(exp.search_records, m, fig_dir / f"supernet_{m}.png",
                                       title=f"supernet during the search: {m}", series_label="search seed",
                                       reference=reference_lines.get(m))
        if path:
            doc.img(path, f"the supernet's {m} by search epoch, every search seed")
    skip_connections(doc, exp.search_records)


def skip_counts(curve) -> List[Optional[int]]:
    """The skip connections of each epoch's derived normal cell (None where an epoch has no conv genotype)."""
    counts: List[Optional[int]] = []
    for row in curve or []:
        try:
            g = genotypes.parse(row.get("genotype") or "")
        except ValueError:
            g = None
        counts.append(derive.normal_skips(g) if isinstance(g, genotypes.Genotype) else None)
    return counts


def _runs(counts: List[Optional[int]]) -> str:
    """``[0, 0, 1, 2, 2]`` as ``"0 (epochs 0-1), 1 (2), 2 (3-4)"``."""
    parts, start = [], 0
    for i in range(1, len(counts) + 1):
        if i == len(counts) or counts[i] != counts[start]:
            span = f"{start}-{i - 1}" if i - 1 > start else f"{start}"
            parts.append(f"{'?' if counts[start] is None else counts[start]} ({'epochs ' if not parts else ''}{span})")
            start = i
    return ", ".join(parts)


def skip_connections(doc: Doc, records) -> None:
    """Skip connections in each search's derived normal cell, epoch by epoch: DARTS's collapse shows there
    first. Searches stopped early (DARTS+) or capped (P-DARTS's max_skip) say so."""
    rows = []
    for r in records:
        counts = skip_counts(r.get("curve"))
        if not counts or all(c is None for c in counts):
            continue
        config, stop = r.get("config") or {}, r.get("early_stop") or {}
        guards = [f"max_skip {config['max_skip']}" if config.get("max_skip") is not None else "",
                  f"stopped after epoch {stop.get('epoch')} ({config.get('early_stop')})" if stop else ""]
        rows.append([r.get("seed"), _runs(counts), "; ".join(g for g in guards if g) or "none"])
    if rows:
        doc.p("Skip connections in the normal cell derived after each search epoch (many of them are the sign of "
              "DARTS's collapse), and the guards against it that a search used:")
        doc.table(["search seed", "skip connections (epochs)", "guards"], rows)


def baseline_section(doc: Doc, exp: Experiment, fig_dir: Path, draw: bool):
    baseline = exp.baseline
    if baseline is None:
        return
    doc.h(3, "Searched cell against random cells (random-architecture baseline)")
    complete = baseline.complete_cells()
    doc.p(f"{baseline.spec.n} cells drawn uniformly from the DARTS search space (`genotypes.sample.draw`, draw seed "
          f"{baseline.spec.seed}: two different inputs per node, ops without `none`), each trained with the same "
          f"recipe and seeds ({', '.join(map(str, baseline.seeds))}) as the searched cell; {len(complete)} of them "
          "have finished every seed. The searched cell counts one value per seed, a random cell one value (the mean "
          "over its seeds); Welch's t-test at p < 0.05: better / worse (lower is better), else not distinguishable.")
    rows = random_baseline.comparison_rows(exp.usable, baseline, exp.primary_metrics())
    if not rows:
        doc.p("No comparison yet: the searched cell or the random cells have no finished run.")
    else:
        doc.table(list(random_baseline.HEADERS), random_baseline.table_rows(rows))
    cells = []
    for c in baseline.cells:
        means = ", ".join(f"{m} {fmt_num(c.mean(m))}" for m in exp.primary_metrics() if c.mean(m) is not None)
        cells.append([c.index, means or "not run", f"{c.parameters:,}" if c.parameters else "—",
                      f"{len(c.records)}/{len(baseline.seeds)}", f"`{c.genotype}`"])
    doc.table(["random cell", "mean over seeds", "parameters", "seeds finished", "genotype"], cells)
    if draw:
        for row in rows:
            m = row["metric"]
            path = figures.distribution(
                [v for _, v in exp.values(m)], m, fig_dir / f"baseline_{m}.png",
                [dict(label=f"random cells (n={row['random']['n']})", mean=row["random"]["mean"],
                      std=row["random"]["std"], published=False)],
                exp.summary(m), title=f"searched cell vs random cells: {m}")
            if path:
                doc.img(path, f"{m}: the searched cell (one dot per seed, mean and 95 % CI) beside the random cells' "
                              "mean +/- std")


def search_section(doc: Doc, exp: Experiment, fig_dir: Path, draw: bool,
                    reference_lines: Optional[Mapping[str, Any]] = None):
    doc.h(3, "Search and selection (the paper's Sect. 3.2 pipeline)")
    doc.p("The search amplifies float rounding: the cell is an argmax over architecture weights that are nearly "
          "equal, so a difference in the last digits (another CPU or GPU, another torch build, other kernels: "
          "see each record's CPU kernels below) can pick another op or input and so another cell. Another "
          "machine may find other cells than these, and a verdict from two or three seeds is fragile.")
    supernet_curves(doc, exp, fig_dir, draw, reference_lines or {})
    sel = exp.selection or {}
    metric = sel.get("metric", "valid metric")
    candidates = sel.get("candidates") or []
    chosen = sel.get("chosen")
    by_seed = {r.get("seed"): r for r in exp.search_records}
    if candidates:
        rows = []
        for c in candidates:
            search = by_seed.get(c.get("search_seed"), {})
            v = c.get("valid_metric")
            rows.append([c.get("search_seed"), fmt_num(number(v)) if number(v) is not None else "not run",
                         "yes" if c.get("search_seed") == chosen else "", fmt_duration(search.get("wall_time_s"))])
        doc.p(f"Each search seed's derived cell was trained from scratch for a short time; the cell with the best "
              f"`{metric}` was chosen (search seed {chosen}) and trained with every seed above.")
        doc.table(["search seed", f"short training: {metric}", "chosen", "search wall time"], rows)
        if draw:
            path = figures.selection(candidates, metric, chosen, fig_dir / "selection.png")
            if path:
                doc.img(path, "selection: short-training validation figure of each searched cell")
            if exp.selection_records:
                for m in figures.curve_metrics(exp.selection_records):
                    if m == metric or m in ("valid_error", "valid_ppl", "valid_acc"):
                        path = figures.learning_curves(exp.selection_records, m, fig_dir / f"selection_curves_{m}.png",
                                                       title=f"selection trainings: {m}")
                        if path:
                            doc.img(path, f"short trainings of the searched cells: {m} by epoch")
        for c in candidates:
            text = c.get("genotype")
            if not text:
                continue
            seed = c.get("search_seed")
            doc.h(4, f"Search seed {seed}" + (" (chosen)" if seed == chosen else ""))
            doc.code(text)
            if draw:
                for path in figures.cells(text, fig_dir / f"seed-{seed}", title=f"search seed {seed}"):
                    doc.img(path, f"{path.stem.rsplit('_', 1)[-1]} cell found by search seed {seed}")
    elif exp.search_records:
        doc.p("Searches finished; the selection has not run yet.")
        doc.table(["search seed", "genotype"], [[r.get("seed"), r.get("genotype", "")] for r in exp.search_records])


