"""Running an experiment: the search pipeline of section 3.2 (searches, short trainings of the
searched cells, the choice), the final multi-seed trainings, the summary and the report."""
from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path

from zoo.fileio import atomic_write_json

from .. import comparable, random_baseline
from ..aggregate import read_records
from ..records import metric_problem
from ..report import check_ours, report_path, write_report
from ..scheduler import Job
from . import baseline
from .plan import (
    build_config,
    build_final_configs,
    canonical_genotype,
    check_existing_run,
    check_experiment_file,
    plan_experiment,
    profile_overrides,
    recipe_differences,
    resolve_search_seeds,
    resolve_selection_epochs,
    runtime_overrides,
    target_for,
)
from .spec import EXPERIMENT_FILE, SELECTION_FILE, ExperimentOptions, ExperimentResult, ExperimentSpec
from .summary import summarize_records

log = logging.getLogger(__name__)


def _metric(record: dict, name: str) -> float:
    final = record.get("final", {})
    for key in (name, f"best_{name}"):
        if key in final and final[key] is not None:
            problem = metric_problem(key, final[key])
            if problem:
                raise ValueError(f"run record {record.get('seed')}: {problem}; delete that run directory and rerun")
            return float(final[key])
    raise ValueError(f"run record {record.get('seed')} has no final {name!r} (has {sorted(final)}); "
                     "was it trained with the right settings (valid_split for selection trainings)?")


def _search_and_select(spec: ExperimentSpec, options: ExperimentOptions, out: Path, runtime: dict) -> dict:
    from ..search import SEARCH_CONFIGS
    from ..train import RECIPES

    search_seeds = resolve_search_seeds(options)
    profile_search = dict(spec.quick_search) if options.profile == "quick" else {}

    search_jobs = []
    for seed in search_seeds:
        overrides = {**profile_search, **options.search_overrides, **runtime, "seed": seed, "order": options.order}
        cfg = build_config(SEARCH_CONFIGS, spec.search_dataset, overrides, "search config")
        run_dir = out / "search" / f"seed-{seed}"
        check_existing_run(run_dir, cfg)
        search_jobs.append(Job("search", spec.search_dataset, cfg, str(run_dir),
                               name=f"{spec.name} {options.method} search (order {options.order}) seed {seed}"))

    short = resolve_selection_epochs(spec, options)
    selection_base = {**profile_overrides(spec, options.profile), **options.train_overrides,
                      **spec.selection_overrides, **options.selection_overrides, **runtime, "epochs": int(short),
                      "experiment": f"{spec.name}-selection", "profile": options.profile}
    # check the selection configs before any search runs (a bad override fails now, not hours later)
    build_config(RECIPES, spec.dataset, {**selection_base, "seed": search_seeds[0]}, "training recipe")

    log.info("%s: %d searches (order %d), seeds %s", spec.name, len(search_jobs), options.order, search_seeds)
    records = options.launch(search_jobs, "searches")
    candidates = [{"search_seed": seed, "genotype": canonical_genotype(rec["genotype"], spec.kind)}
                  for seed, rec in zip(search_seeds, records)]

    selection_jobs = []
    for cand in candidates:
        cfg = build_config(RECIPES, spec.dataset, {**selection_base, "seed": cand["search_seed"],
                                             "genotype": cand["genotype"]}, "training recipe")
        run_dir = out / "selection" / f"seed-{cand['search_seed']}"
        check_existing_run(run_dir, cfg)
        selection_jobs.append(Job("train", spec.dataset, cfg, str(run_dir),
                                  name=f"{spec.name} selection training of search seed {cand['search_seed']}"))
    log.info("%s: short trainings (%d epochs) of the %d searched cells", spec.name, short, len(candidates))
    sel_records = options.launch(selection_jobs, "selection trainings")
    for cand, rec in zip(candidates, sel_records):
        cand["valid_metric"] = _metric(rec, spec.selection_metric)
    finite = [c for c in candidates if math.isfinite(c["valid_metric"])]
    if not finite:
        raise ValueError("no searched cell has a finite validation figure after its short training")
    chosen = min(finite, key=lambda c: (c["valid_metric"], c["search_seed"]))
    selection = {"metric": spec.selection_metric, "lower_is_better": True, "selection_epochs": int(short),
                 "candidates": candidates, "chosen": chosen["search_seed"], "genotype": chosen["genotype"]}
    atomic_write_json(out / SELECTION_FILE, selection)
    log.info("%s: chose the cell of search seed %d (%s %.4g)", spec.name, chosen["search_seed"],
             spec.selection_metric, chosen["valid_metric"])
    return selection


def _run_jobs(spec, options, out, runtime, meta, saved, base, arch, genotype_text, seeds, final_configs):
    """Searches and selection (with --search), experiment.json, then the final trainings: (selection, records)."""
    from ..train import RECIPES

    out.mkdir(parents=True, exist_ok=True)

    selection = None
    if options.search:
        selection = _search_and_select(spec, options, out, runtime)
        genotype_text = selection["genotype"]
        meta["genotype"] = genotype_text
        check_experiment_file(out, meta)
        final_configs = build_final_configs(spec, RECIPES, base, arch, genotype_text, seeds, out)

    known = sorted(set(seeds) | set((saved or {}).get("seeds", [])))
    meta["seeds"] = known
    atomic_write_json(out / EXPERIMENT_FILE, {k: meta[k] for k in ("experiment", "dataset", "arch", "genotype",
                                                                    "profile", "order", "method", "target", "seeds",
                                                                    "search",
                                                                    "comparable", "recipe_differences", "note",
                                                                    "baseline", "references")
                                              if k in meta})
    jobs = [Job("train", spec.dataset, cfg, str(out / "runs" / f"seed-{seed}"), name=f"{spec.name} seed {seed}")
            for seed, cfg in zip(seeds, final_configs)]
    log.info("%s: %d training runs (seeds %s) -> %s", spec.name, len(jobs), seeds, out)
    records = options.launch(jobs, "trainings")
    return selection, records


def remove_if_nothing_ran(out: Path) -> None:
    """Remove an experiment directory this call created when no run wrote anything in it (a run that
    failed before its first epoch: missing data, bad config), so a failed command leaves nothing behind."""
    ran = [p for p in out.rglob("*") if p.is_file() and p.name != EXPERIMENT_FILE]
    if not ran:
        shutil.rmtree(out, ignore_errors=True)


def report_dir(options: ExperimentOptions, out: Path) -> Path:
    """Where the report goes, over the experiments found under it: the default results/ tree for a default
    --out (results/<experiment>-...), else the directory the user named, never its parent (with --out ~/x
    that would be all of $HOME, scanned, and a REPORT.md of the user's written over)."""
    return out.parent if options.out is None else out


def run_experiment(options: ExperimentOptions) -> ExperimentResult:
    from ..train import RECIPES

    spec, seeds, arch, genotype_text, out = plan_experiment(options)
    baseline_spec = random_baseline.parse(options.baseline)
    runtime = runtime_overrides(options)
    order = options.order if options.search else ({"DARTS_V2": 2, "DARTS": 2, "DARTS_V1": 1}.get(arch) if arch
                                                  else None)
    meta = {"experiment": spec.name, "dataset": spec.dataset, "arch": arch, "profile": options.profile,
            "order": order, "target": (target_for(spec, arch, options.search, options.order, options.method)
                                       if options.target == "auto" else options.target),
            "search": None, "note": options.note or spec.note}
    differences = recipe_differences(spec, options)
    meta["comparable"] = options.profile == "paper" and not differences and spec.dataset not in comparable.OWN_DATA
    meta["recipe_differences"] = comparable.describe(differences) if differences else None
    if spec.dataset in comparable.OWN_DATA and not options.note:
        meta["note"] += f"; {comparable.OWN_DATA_REASON}"
    elif options.profile != "paper" and not options.note:
        meta["note"] += (f"; profile {options.profile!r}: shortened recipes, NOT comparable with the paper's figures")
    elif differences and not options.note:
        meta["note"] += (f"; NOT comparable with the paper's figures: not the paper's recipe "
                         f"({meta['recipe_differences']})")
    if options.search:
        meta["search"] = {"order": options.order, "seeds": resolve_search_seeds(options),
                          "short_epochs": resolve_selection_epochs(spec, options)}
        if options.method != "darts":  # DARTS's experiment.json stays as it was
            meta["method"] = meta["search"]["method"] = options.method
    if genotype_text is not None:
        meta["genotype"] = genotype_text
    baseline_root = Path(options.baseline_dir) if options.baseline_dir else out / random_baseline.DIR
    if baseline_spec is not None:
        meta["baseline"] = baseline.describe(baseline_spec, baseline_root, out)
    if options.references:
        meta["references"] = list(options.references)
    saved = check_experiment_file(out, meta)

    base = {**profile_overrides(spec, options.profile), **options.train_overrides, **runtime,
            "experiment": spec.name, "profile": options.profile}
    if arch:
        base.update(arch=arch, genotype="")
    # every final config is checked (and compared with runs already there) before anything runs
    final_configs = (build_final_configs(spec, RECIPES, base, arch, genotype_text, seeds, out)
                     if genotype_text is not None else [])  # with --search: after the selection
    baseline_jobs = baseline.plan_jobs(spec, baseline_spec, base, seeds, baseline_root) if baseline_spec else []
    if options.report:  # a report of the user's in the way is refused now, not after the training
        where = Path(options.results_dir) if options.results_dir else report_dir(options, out)
        check_ours(report_path(where, options.report_format), where / "figures")
    created = not out.exists()
    try:
        selection, records = _run_jobs(spec, options, out, runtime, meta, saved, base, arch, genotype_text, seeds,
                                       final_configs)
    except BaseException:
        if created:
            remove_if_nothing_ran(out)
        raise

    summary = summarize_records(spec, records)
    baseline_meta, comparison = None, []
    if baseline_spec is not None:
        baseline_meta = baseline.run(spec, options, baseline_spec, baseline_jobs, seeds, baseline_root)
        comparison = random_baseline.comparison_rows(
            records, random_baseline.load(baseline_root, read_records), spec.metrics)
    report = None
    if options.report:
        results_dir = Path(options.results_dir) if options.results_dir else report_dir(options, out)
        report = write_report(results_dir=str(results_dir), fmt=options.report_format)
    return ExperimentResult(out=out, experiment=meta, records=records, selection=selection, summary=summary,
                            report=Path(report) if report else None, baseline=baseline_meta,
                            baseline_comparison=comparison)
