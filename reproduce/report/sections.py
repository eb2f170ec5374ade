"""The sections of the report: one function per section, each filling the :class:`~.document.Doc`."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Sequence

from .. import figures
from ..aggregate import Comparison, Experiment, compare_experiment, coverage
from ..records import BOOKKEEPING, number
from .document import Doc
from .formatters import fmt_duration, fmt_num, fmt_ours, fmt_p, fmt_paper, fmt_signed, fmt_verdict
from .search import baseline_section, search_section
from .tables import (
    COMPARISON_HEADERS,
    METRIC_HEADERS,
    comparison_rows,
    display_name,
    metric_rows,
    notes,
    profile_note,
    short_label,
    slug,
)


def pending_line(exp: Experiment, results_dir: Path) -> str:
    seeds = exp.meta.get("seeds") or []
    started = f"seeds {', '.join(str(s) for s in seeds)} not finished" if seeds else "nothing finished"
    return f"`{display_name(exp, results_dir)}` ({exp.profile}; {started})"


def summary_section(doc: Doc, experiments: List[Experiment], targets: Dict[str, Any], results_dir: Path):
    table = targets["targets"]
    covered = coverage(experiments, targets)
    rows = []
    for key, target in table.items():
        for metric, paper in (target.get("metrics") or {}).items():
            exps = covered.get(key, [])
            if not exps:
                rows.append([key, target.get("title", key), metric, fmt_paper(paper, target.get("n_stated")), "not run",
                             "—", "—", "not run", "—"])
                continue
            for exp in exps:
                comps = [c for c in compare_experiment(exp, targets)
                         if c.target == key and c.metric == metric]
                if not comps:
                    continue
                c = comps[0]
                rows.append([key, target.get("title", key), metric, fmt_paper(paper, target.get("n_stated")),
                             fmt_ours(c.ours), fmt_signed(c.result.get("difference")), fmt_p(c.result.get("p")),
                             fmt_verdict(c.result), f"`{display_name(exp, results_dir)}` ({exp.profile})"])
    doc.h(2, "Summary: every paper target")
    if not table:
        doc.p("No published figure applies to these experiments (their `paper.json` lists no target): there is "
              "nothing to test against the paper. Reference figures that are not published ones (e.g. the demo's "
              "bound exp(H)) are shown under each experiment, without a test.")
        return
    doc.p("One row per published figure in `paper.json`. \"not run\" means no finished record measured it; "
          "verdicts come from Welch's t-test (paper mean, std and n) or a one-sample t-test (single figure) "
          "at p < 0.05. Lower is better for every metric.")
    doc.table(["target", "what", "metric", "published", "ours: mean ± std (n)", "difference", "p", "verdict",
               "experiment (profile)"], rows)


def experiment_section(doc: Doc, exp: Experiment, targets: Dict[str, Any], results_dir: Path, fig_root: Path,
                        draw: bool):
    name = display_name(exp, results_dir)
    fig_dir = fig_root / slug(exp, results_dir)
    meta = exp.meta
    doc.h(2, f"Experiment `{name}`")
    note = profile_note(exp)
    if note:
        doc.p(note)
    key = exp.target_key(targets)
    asked = meta.get("seeds") or []
    done = [s for s in exp.seeds]
    missing = [s for s in asked if s not in done]
    facts = [f"experiment: `{exp.experiment}`, dataset: `{exp.dataset}`",
             f"profile: `{exp.profile}`" + ("" if exp.comparable else " (not comparable with the paper)"),
             f"architecture: `{meta.get('arch') or 'searched cell'}`"
             + (f", search order {meta['order']}" if meta.get("order") else "")
             + (f", search method {meta['method']}" if meta.get("method") not in (None, "darts") else ""),
             f"paper target: `{key}`" if key else "paper target: none (no published figure applies)",
             *([f"note: {meta['note']}"] if meta.get("note") else []),
             f"finished seeds: {', '.join(str(s) for s in done) or 'none'}"]
    for seed, where, reasons in exp.excluded():
        rel = Path(os.path.relpath(where, results_dir)).as_posix()
        facts.append(f"**excluded from the statistics** (finished, but not counted in n): `{rel}` (seed {seed}): "
                     + "; ".join(reasons))
    if missing:
        facts.append(f"seeds not finished: {', '.join(str(s) for s in missing)}")
    elif exp.unfinished:
        facts.append(f"run directories without a finished record: {', '.join(exp.unfinished)}")
    doc.items(facts)

    comparisons = compare_experiment(exp, targets)
    only_references = bool(comparisons) and all(c.role == "reference" for c in comparisons)
    doc.h(3, "Results against reference figures (not published ones)" if only_references else
          "Results against the paper")
    if not exp.records:
        doc.p("No finished training run yet (the search below is all that is measured).")
    if comparisons:
        headers = list(COMPARISON_HEADERS)
        if only_references:
            headers[headers.index("published (or reference)")] = "reference (not a published figure)"
        doc.table(headers, comparison_rows(comparisons, targets["targets"]))
        attached = notes(comparisons, targets)
        if attached:
            doc.items(attached)
    else:
        doc.p("No published figure to compare with.")

    if exp.records:
        doc.h(3, "All final metrics")
        doc.table(METRIC_HEADERS, metric_rows(exp))

    if draw:  # its figures replace all of an earlier report's (e.g. of seeds since removed), even when there are none
        fig_dir.mkdir(parents=True, exist_ok=True)
    if draw and exp.records:
        figures_section(doc, exp, comparisons, name, fig_dir)

    genotype = exp.genotype
    if genotype:
        doc.h(3, "Cell evaluated")
        doc.code(genotype)
        if draw:
            for path in figures.cells(genotype, fig_dir / "cell", title=name):
                doc.img(path, f"{path.stem.rsplit('_', 1)[-1]} cell of `{name}`")

    baseline_section(doc, exp, fig_dir, draw)

    if exp.selection or exp.search_records:
        search_section(doc, exp, fig_dir / "search", draw,
                        {c.metric: {"label": c.title, "mean": c.paper["mean"]}
                         for c in comparisons if c.role == "reference"})

    provenance_section(doc, exp, results_dir)


def figures_section(doc: Doc, exp: Experiment, comparisons: Sequence[Comparison], name: str, fig_dir: Path):
    """Learning curves of the primary metrics and the final values beside the published ones."""
    paper_means = {c.metric: c.paper["mean"] for c in comparisons if c.role == "paper"}
    reference_lines = {c.metric: {"label": c.title, "mean": c.paper["mean"]}
                       for c in comparisons if c.role == "reference"}
    doc.h(3, "Figures")
    primary = exp.primary_metrics()
    for m in figures.curve_metrics(exp.usable):
        if m not in primary and m != "train_loss" and not m.endswith(("_error", "_ppl")):
            continue
        path = figures.learning_curves(exp.usable, m, fig_dir / f"curves_{m}.png", title=f"{name}: {m}",
                                       paper=paper_means.get(m) if exp.comparable else None,
                                       reference=reference_lines.get(m))
        if path:
            doc.img(path, f"{m} by epoch: every seed, their mean and +/- 1 std")
    for m in exp.metrics():
        refs = [dict(label=short_label(c), mean=c.paper["mean"], std=c.paper.get("std"))
                for c in comparisons if c.metric == m and c.role != "reference"]
        refs += [dict(label=c.title, mean=c.paper["mean"], std=c.paper.get("std"), published=False)
                 for c in comparisons if c.metric == m and c.role == "reference"]
        if not refs and m not in primary:
            continue
        values = [v for _, v in exp.values(m)]
        path = figures.distribution(values, m, fig_dir / f"final_{m}.png", refs, exp.summary(m),
                                    title=f"{name}: final {m}")
        if path:
            beside = [("published mean +/- std" if r.get("kind") != "reference" else r["label"]) for r in refs]
            doc.img(path, f"final {m}: one dot per seed, our mean and 95 % CI"
                    + (f"; beside it: {', '.join(dict.fromkeys(beside))}" if beside else ""))


def provenance_section(doc: Doc, exp: Experiment, results_dir: Path):
    runs = [("train", r) for r in exp.records] + [("search", r) for r in exp.search_records] \
        + [("selection", r) for r in exp.selection_records]
    if not runs:
        return
    doc.h(3, "Provenance of every run")
    rows = []
    shown = set(exp.primary_metrics())  # the final trainings: the paper's metrics; other parts: all
    for part, r in runs:
        final = ", ".join(f"{k}={fmt_num(number(v))}" for k, v in (r.get("final") or {}).items()
                          if number(v) is not None
                          and k not in BOOKKEEPING and (part != "train" or k in shown))
        if r.problems:
            final = f"excluded: {'; '.join(r.problems)}"
        commit = str(r.get("git_commit", "—"))
        short = commit[:12] + ("-dirty" if commit.endswith("-dirty") else "")
        try:
            where = Path(os.path.relpath(r.dir, results_dir)).as_posix()
        except (TypeError, ValueError):
            where = "—"
        params = r.get("parameters")
        rows.append([part, r.seed, final, f"{params:,}" if isinstance(params, int) else "—",
                     fmt_duration(r.get("wall_time_s")), short, r.get("device", "—"), r.get("torch", "—"),
                     r.get("python", "—"), r.get("platform", "—"), cpu_kernels(r.get("cpu")), f"`{where}`"])
    doc.table(["part", "seed", "final", "parameters", "wall time", "commit", "device", "torch", "python",
               "platform", "CPU kernels", "record"], rows)


def cpu_kernels(cpu: Any) -> str:
    """A record's CPU kernels in a few words: the instruction set torch dispatches to, oneDNN's version, and the
    variables set that steer oneDNN's and MKL's instruction set."""
    if not isinstance(cpu, dict):
        return "—"
    parts = [str(cpu.get("capability") or "?")]
    parts.append(f"oneDNN {cpu.get('onednn_version') or '?'}" if cpu.get("mkldnn") else "no oneDNN")
    env = cpu.get("env")
    parts += [f"{name}={value}" for name, value in env.items()] if isinstance(env, dict) else []
    return ", ".join(parts)


def targets_section(doc: Doc, targets: Dict[str, Any]):
    if not targets["targets"]:
        return
    doc.h(2, "Paper targets and their sources")
    rows = []
    for key, target in targets["targets"].items():
        metrics = "; ".join(f"{m} {fmt_paper(v, target.get('n_stated'))}" for m, v in target.get("metrics", {}).items())
        rows.append([key, target.get("title", ""), metrics, target.get("source", ""), target.get("where", ""),
                     "yes" if target.get("verified") else "NO", target.get("note", "")])
        for rep in target.get("reproductions", []):
            metrics = "; ".join(f"{m} {fmt_paper(v)}" for m, v in rep.get("metrics", {}).items())
            rows.append([f"{key} (reproduction)", rep.get("title", ""), metrics, rep.get("source", ""),
                         rep.get("where", ""), "yes" if rep.get("verified") else "NO", rep.get("note", "")])
    doc.table(["target", "what", "published", "source", "where", "verified", "note"], rows)
    sources = targets.get("sources", {})
    if sources:
        doc.items([f"`{k}`: {v.get('citation', '')} {v.get('url', '')}".strip() for k, v in sources.items()])


