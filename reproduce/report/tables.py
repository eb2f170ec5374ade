"""The tables of the report that the terminal summary shows too: the comparison with the paper and the final
metrics, from :mod:`reproduce.aggregate`'s numbers, written by :mod:`.formatters`."""
from __future__ import annotations

from pathlib import Path
from typing import Any, List, Mapping, Optional, Sequence

from tabulate import tabulate

from ..aggregate import Comparison, Experiment, compare_experiment
from .formatters import fmt_ci, fmt_num, fmt_ours, fmt_p, fmt_paper, fmt_published, fmt_signed, fmt_verdict


def slug(exp: Experiment, results_dir: Path) -> str:
    try:
        rel = exp.path.resolve().relative_to(results_dir.resolve()).as_posix()
    except ValueError:
        rel = exp.path.name
    return "root" if rel in ("", ".") else rel.replace("/", "--")


def display_name(exp: Experiment, results_dir: Path) -> str:
    try:
        rel = exp.path.resolve().relative_to(results_dir.resolve()).as_posix()
    except ValueError:
        rel = str(exp.path)
    return exp.path.name if rel in ("", ".") else rel


def profile_note(exp: Experiment) -> Optional[str]:
    if exp.comparable:
        return None
    if exp.profile == "paper":  # the paper's profile, with fields overridden
        return (f"**Not comparable with the paper**: {exp.not_comparable_reason()}. Their numbers are shown for "
                "what they are, and no test against the paper is made.")
    return (f"**Profile `{exp.profile}`: not comparable with the paper.** These runs use shorter recipes (or other "
            "data) than the paper's; their numbers are shown for what they are, and no test against the paper "
            "is made.")


def comparison_rows(rows: Sequence[Comparison], targets: Mapping[str, Any]) -> List[list]:
    """The cells of :data:`COMPARISON_HEADERS` for each comparison (``targets``: paper.json's table)."""
    out = []
    for c in rows:
        entry = targets.get(c.target, {})
        n_stated = entry.get("n_stated") if c.role in ("paper", "related") else None
        source = c.source + ("" if c.verified is not False else " (unverified)")
        published = fmt_paper(c.paper, n_stated) if c.role != "reference" else fmt_published(c.paper["mean"])
        out.append([c.title, source or "—", c.metric, published, fmt_ours(c.ours), fmt_ci(c.ours),
                    fmt_signed(c.result.get("difference")), c.result.get("test") or "—", fmt_p(c.result.get("p")),
                    fmt_verdict(c.result)])
    return out


COMPARISON_HEADERS = ["compared with", "source", "metric", "published (or reference)", "ours: mean ± std (n)",
                      "95 % CI", "difference", "test", "p", "verdict"]


def metric_rows(exp: Experiment) -> List[list]:
    """One row per final metric of the usable records: metric, n, mean, std, min, max, 95 % CI."""
    rows = []
    for m in exp.metrics():
        s = exp.summary(m)
        rows.append([m, s["n"], fmt_num(s["mean"]), fmt_num(s["std"]), fmt_num(s["min"]), fmt_num(s["max"]),
                     fmt_ci(s)])
    return rows


METRIC_HEADERS = ["metric", "n", "mean", "std", "min", "max", "95 % CI"]


def summary_text(exp: Experiment, targets: Mapping[str, Any]) -> str:
    """The terminal summary of one experiment: the report's comparison table and its table of final metrics, as
    plain text (the same rows as REPORT.md, from the same records)."""
    head = f"{exp.name} (profile {exp.profile}" + ("" if exp.comparable else ": not comparable with the paper") + ")"
    parts = [head]
    comparisons = compare_experiment(exp, targets)
    if comparisons:
        parts.append(tabulate(comparison_rows(comparisons, targets["targets"]), headers=COMPARISON_HEADERS,
                              tablefmt="simple", disable_numparse=True))
    else:
        parts.append("no published figure to compare with")
    if exp.usable:
        parts.append(tabulate(metric_rows(exp), headers=METRIC_HEADERS, tablefmt="simple", disable_numparse=True))
    for seed, where, reasons in exp.excluded():
        parts.append(f"excluded from the statistics: {where} (seed {seed}): {'; '.join(reasons)}")
    return "\n".join(parts)


def notes(comparisons: Sequence[Comparison], targets: Mapping[str, Any]) -> List[str]:
    """The notes paper.json attaches to the figures in a table (how many runs, what was compared)."""
    table = targets.get("targets", {})
    notes, seen = [], set()
    for c in comparisons:
        if c.target in seen:
            continue
        seen.add(c.target)
        if c.role == "reproduction":
            key, _, index = c.target.partition("/reproduction-")
            entry = table.get(key, {}).get("reproductions", [])[int(index)]
        elif c.role == "reference":
            continue
        else:
            entry = table.get(c.target, {})
        if entry.get("note"):
            notes.append(f"{c.title}: {entry['note']}" + ("" if entry.get("verified", True) else " (unverified)"))
    return notes


def short_label(c: Comparison) -> str:
    if c.role == "paper":
        return "paper"
    if c.role == "related":
        return "released model" if "released" in c.target else c.target
    if c.role == "reproduction":
        return c.source or "reproduction"
    return c.title


