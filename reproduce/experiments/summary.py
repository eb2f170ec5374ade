"""Summaries of an experiment's final runs: statistics per metric and a short table beside the paper's figures."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional

from .spec import ExperimentResult, ExperimentSpec


def summarize_records(spec: ExperimentSpec, records: List[dict]) -> Dict[str, dict]:
    from ..stats import summarize

    summary = {}
    for metric in spec.metrics:
        values = [r["final"][metric] for r in records if r.get("final", {}).get(metric) is not None]
        if values:
            summary[metric] = summarize(values)
    return summary


def load_target(key: Optional[str], results_dir) -> Optional[dict]:
    """The paper's target ``key`` from ``<results_dir>/paper.json`` or the project's results/paper.json."""
    if not key:
        return None
    from ..aggregate import project_paper_path

    for path in (Path(results_dir) / "paper.json", project_paper_path()):
        if path.exists():
            targets = json.loads(path.read_text()).get("targets", {})
            if key in targets:
                return targets[key]
    return None


def summary_table(result: ExperimentResult) -> str:
    """A short plain-text table of the final runs beside the paper's figures."""
    from tabulate import tabulate

    from ..stats import compare

    target = load_target(result.experiment.get("target"), result.out.parent)
    rows = []
    for metric, s in result.summary.items():
        ours = f"{s['mean']:.3f}" + (f" +/- {s['std']:.3f}" if s.get("std") is not None else "") + f" (n={s['n']})"
        paper, verdict, p = "-", "-", "-"
        tm = (target or {}).get("metrics", {}).get(metric)
        comparable = result.experiment.get("comparable", True)
        if tm:
            paper = f"{tm['mean']}" + (f" +/- {tm['std']}" if tm.get("std") is not None else "") + \
                    (f" (n={tm['n']})" if tm.get("n") else "")
        if tm and not comparable:
            verdict = f"not comparable (profile {result.experiment['profile']})"
        elif tm:
            cmp = compare(s, tm)
            verdict = cmp.get("verdict") or "-"
            p = f"{cmp['p']:.3g}" if cmp.get("p") is not None else "-"
        rows.append([metric, ours, f"{s['min']:.3f}..{s['max']:.3f}", paper, p, verdict])
    return tabulate(rows, headers=["metric", "ours mean +/- std", "range", "paper", "p", "verdict"],
                    tablefmt="simple")
