"""Running a plan (:mod:`.plan`): the search pipeline of section 3.2 (searches, short trainings of the searched
cells, the choice), the final multi-seed trainings and the random cells, then the summary and the report.

``execute(plan, launch)`` runs the plan's stages in order, each through ``launch(jobs, what)`` (by default the
options' launcher: this process, a worker pool, local GPUs or Slurm), writes experiment.json before the final
trainings and selection.json after the selection, and builds the experiment's aggregate once
(:func:`reproduce.aggregate.load_experiment`, from the records the launcher read back: no record is read twice);
the terminal summary and REPORT.md both render that one :class:`reproduce.aggregate.Experiment`.
"""
from __future__ import annotations

import contextlib
import logging
import math
import shutil
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from zoo.fileio import atomic_write_json

from .. import random_baseline
from ..aggregate import load_experiment
from ..layout import EXPERIMENT_FILE, QUEUE_LOG, SELECTION_FILE
from ..records import Record, metric_problem
from ..report import write_report
from ..rundir import missing_dirs, remove_empty_dirs
from ..scheduler import Job
from . import baseline
from .plan import EXPERIMENT_FIELDS, Plan, canonical_genotype, plan_experiment
from .spec import ExperimentOptions, ExperimentResult, check_experiment_file

log = logging.getLogger(__name__)

Launch = Callable[[Sequence[Job], str], List[dict]]


def _selection_value(record: dict, name: str) -> float:
    final = record.get("final", {})
    for key in (name, f"best_{name}"):
        if key in final and final[key] is not None:
            problem = metric_problem(key, final[key])
            if problem:
                raise ValueError(f"run record {record.get('seed')}: {problem}; delete that run directory and rerun")
            return float(final[key])
    raise ValueError(f"run record {record.get('seed')} has no final {name!r} (has {sorted(final)}); "
                     "was it trained with the right settings (valid_split for selection trainings)?")


def _search_and_select(plan: Plan, launch: Launch) -> dict:
    """The searches, the short training of each searched cell, and the choice (written to selection.json)."""
    spec, out = plan.spec, plan.out
    log.info("%s: %d searches (order %d), seeds %s", spec.name, len(plan.searches), plan.options.order,
             list(plan.search_seeds))
    records = launch(plan.searches, "searches")
    candidates = [{"search_seed": seed, "genotype": canonical_genotype(rec["genotype"], spec.cell)}
                  for seed, rec in zip(plan.search_seeds, records)]
    log.info("%s: short trainings (%d epochs) of the %d searched cells", spec.name, plan.selection_epochs,
             len(candidates))
    for cand, rec in zip(candidates, launch(plan.selection_jobs(candidates), "selection trainings")):
        cand["valid_metric"] = _selection_value(rec, spec.selection_metric)
    finite = [c for c in candidates if math.isfinite(c["valid_metric"])]
    if not finite:
        raise ValueError("no searched cell has a finite validation figure after its short training")
    chosen = min(finite, key=lambda c: (c["valid_metric"], c["search_seed"]))
    selection = {"metric": spec.selection_metric, "lower_is_better": True, "selection_epochs": plan.selection_epochs,
                 "candidates": candidates, "chosen": chosen["search_seed"], "genotype": chosen["genotype"]}
    atomic_write_json(out / SELECTION_FILE, selection)
    log.info("%s: chose the cell of search seed %d (%s %.4g)", spec.name, chosen["search_seed"],
             spec.selection_metric, chosen["valid_metric"])
    return selection


def _run_stages(plan: Plan, launch: Launch) -> Optional[dict]:
    """Searches and selection (with --search), experiment.json, then the final trainings; the selection."""
    plan.out.mkdir(parents=True, exist_ok=True)
    meta, selection = dict(plan.meta), None
    finals = plan.final_jobs()
    if plan.searches:
        selection = _search_and_select(plan, launch)
        meta["genotype"] = selection["genotype"]
        check_experiment_file(plan.out, meta)
        finals = plan.final_jobs(selection["genotype"])
    meta["seeds"] = sorted(set(plan.seeds) | set(plan.saved_seeds))
    atomic_write_json(plan.out / EXPERIMENT_FILE, {k: meta[k] for k in EXPERIMENT_FIELDS if k in meta})
    log.info("%s: %d training runs (seeds %s) -> %s", plan.spec.name, len(finals), list(plan.seeds), plan.out)
    launch(finals, "trainings")
    return selection


def remove_if_nothing_ran(out: Path) -> None:
    """Remove an experiment directory this call created when no run wrote anything in it (a run that
    failed before its first epoch: missing data, bad config), so a failed command leaves nothing behind but
    the GPU queue's logs of the runs that failed: their error names each log, which holds the whole traceback."""
    # experiment.json is the plan's; log.txt the GPU queue's, of a run that then wrote nothing
    files = [p for p in out.rglob("*") if p.is_file() or p.is_symlink()]
    if any(p.name not in (EXPERIMENT_FILE, QUEUE_LOG) for p in files):
        return
    if not any(p.name == QUEUE_LOG for p in files):
        shutil.rmtree(out, ignore_errors=True)
        return
    for p in files:
        if p.name == EXPERIMENT_FILE:
            p.unlink()
    for d in sorted((p for p in out.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):  # not empty: it holds a log
            d.rmdir()


def execute(plan: Plan, launch: Optional[Launch] = None) -> ExperimentResult:
    """Run ``plan``'s stages (finished runs are skipped, interrupted ones resume), then read the experiment back,
    summarise it and (unless the options say not to) write the report over the results directory."""
    options = plan.options
    launch_jobs = launch or options.launch
    read: Dict[Path, Record] = {}  # every record the launcher read back, by path: the aggregate reads none again

    def launch(jobs: Sequence[Job], what: str) -> List[dict]:
        records = launch_jobs(jobs, what)
        read.update((r.path.resolve(), r) for r in records if isinstance(r, Record) and r.path is not None)
        return records

    created = missing_dirs(plan.out)
    try:
        selection = _run_stages(plan, launch)
    except BaseException:
        if created:
            remove_if_nothing_ran(plan.out)
            remove_empty_dirs(created[1:])  # and the parents --out named that did not exist
        raise
    baseline_meta = None
    if plan.baseline is not None:
        baseline_meta = baseline.run(plan.spec, plan.baseline, plan.baseline_jobs, plan.seeds, plan.baseline_root,
                                     launch)
    measured = load_experiment(plan.out, known=read)  # the one reading the summary and the report both render
    summary = {m: measured.summary(m) for m in plan.spec.metrics if measured.summary(m)}
    comparison = []
    if measured.baseline is not None:
        comparison = random_baseline.comparison_rows(measured.usable, measured.baseline, plan.spec.metrics)
    report = (write_report(results_dir=str(plan.report_dir), fmt=options.report_format, loaded=[measured])
              if options.report else None)
    return ExperimentResult(out=plan.out, experiment=measured.meta, records=measured.records, selection=selection,
                            summary=summary, report=Path(report) if report else None, measured=measured,
                            baseline=baseline_meta, baseline_comparison=comparison)


def run_experiment(options: ExperimentOptions) -> ExperimentResult:
    """Plan the experiment ``options`` describe and run it: :func:`execute` of :func:`plan_experiment`."""
    return execute(plan_experiment(options))
