"""The paper's figures (``paper.json``) and the one rule that says which of them an experiment is compared with.

paper.json holds ``targets`` (key -> {experiment, order, arch, title, source, metrics: {metric: {mean,
std?, n?}}, related?, reproductions?, ...}) and ``sources``. The project's own is ``results/paper.json``
(in an install, the copy inside the package); a results directory may hold its own (the demo's).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Mapping, Optional

from .jsonfile import read_json

PAPER_FILE = "paper.json"
# Targets whose published figure came from a training recipe the harness does not run: never an experiment's
# target by default. PC_DARTS_image's 24.2 % (imagenet-pcdarts): the authors' own ImageNet recipe (batch 1024,
# lr 0.5 decayed linearly, label smoothing, weight decay 3e-5), not DARTS's.
OTHER_TRAINING_RECIPES = ("imagenet-pcdarts",)


def project_paper_path(checkout_root=None) -> Path:
    """The project's results/paper.json in a checkout; in a regular install, the copy inside the package."""
    root = Path(__file__).resolve().parent.parent if checkout_root is None else Path(checkout_root)
    checkout = root / "results" / PAPER_FILE
    return checkout if checkout.exists() else Path(__file__).resolve().parent / PAPER_FILE


def default_paper_path(results_dir=None) -> Path:
    """results_dir/paper.json when there is one, else the project's (:func:`project_paper_path`)."""
    if results_dir is not None and (Path(results_dir) / PAPER_FILE).exists():
        return Path(results_dir) / PAPER_FILE
    return project_paper_path()


def load_targets(path=None) -> Dict[str, Any]:
    """paper.json as a dict with ``sources`` and ``targets``."""
    path = Path(path) if path is not None else default_paper_path()
    if not path.exists():
        raise FileNotFoundError(f"paper targets {path} not found; pass --paper PATH to a paper.json")
    data = read_json(path, fix="delete it or restore it from the run")
    if not isinstance(data.get("targets"), dict):
        raise ValueError(f"{path} has no 'targets' object; see results/paper.json for the format")
    for key, target in data["targets"].items():
        for metric, spec in (target.get("metrics") or {}).items():
            if not isinstance(spec, Mapping) or "mean" not in spec:
                raise ValueError(f"{path}: target {key!r} metric {metric!r} needs a 'mean'")
    data.setdefault("sources", {})
    return data


def merge_nested_targets(targets: Dict[str, Any], results_dir, skip=None) -> Dict[str, Any]:
    """Add the targets of every paper.json below ``results_dir`` (e.g. the demo's own
    ``results/demo/paper.json``) so a report over the whole tree knows each experiment's target.
    A key defined twice with different contents is refused rather than silently shadowed."""
    merged = {"sources": dict(targets.get("sources", {})), "targets": dict(targets["targets"])}
    skip = Path(skip).resolve() if skip is not None else None
    for path in sorted(Path(results_dir).rglob(PAPER_FILE)):
        if skip is not None and path.resolve() == skip:
            continue
        nested = load_targets(path)
        for section in ("targets", "sources"):
            for key, value in nested.get(section, {}).items():
                if key in merged[section] and merged[section][key] != value:
                    raise ValueError(f"{path}: {section[:-1]} {key!r} differs from the one already loaded; "
                                     "rename it or pass --paper PATH")
                merged[section][key] = value
    return merged


def report_targets(results_dir, paper=None) -> Dict[str, Any]:
    """The targets a report over ``results_dir`` compares with: ``paper`` (default: :func:`default_paper_path`)
    and every paper.json deeper in the tree (an experiment's own, like the demo's)."""
    paper_path = paper if paper is not None else default_paper_path(results_dir)
    return merge_nested_targets(load_targets(paper_path), results_dir, skip=paper_path)


def target_key(meta: Mapping[str, Any], targets: Mapping[str, Any]) -> Optional[str]:
    """The paper target an experiment is compared with (the one rule, for the plan and the report).

    ``meta`` is experiment.json (or what the plan writes there). Its ``"target"`` decides when present
    (null: no published figure applies, e.g. the demo). Otherwise the target of the same experiment (never a
    released model's, nor one trained with another recipe, :data:`OTHER_TRAINING_RECIPES`) of the same search
    method (``"method"``, DARTS when absent) and, for DARTS, the same search order; else the one of the same
    named cell; a cell that is neither (a custom genotype) has none. ``targets``: paper.json, or its table.
    """
    table = targets.get("targets", targets)
    if "target" in meta:
        key = meta["target"]
        if key and key not in table:
            raise ValueError(f"experiment.json names target {key!r}, which paper.json lacks; known: {', '.join(table)}")
        return key or None
    candidates = [k for k, t in table.items() if t.get("experiment") == meta.get("experiment")
                  and "released" not in k and k not in OTHER_TRAINING_RECIPES]
    method = meta.get("method") or "darts"
    if meta.get("order") is not None or method != "darts":  # a searched cell (or a named DARTS cell)
        candidates = [k for k in candidates if table[k].get("method", "darts") == method
                      and (method != "darts" or table[k].get("order") == meta.get("order"))]
    elif meta.get("arch"):
        candidates = [k for k in candidates if str(table[k].get("arch", "")).lower() == str(meta["arch"]).lower()]
    elif meta.get("genotype") and not meta.get("search"):
        return None  # a custom cell: no published figure measured it
    return candidates[0] if candidates else None
