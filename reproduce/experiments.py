"""The experiment driver: one call reruns a DARTS experiment over many seeds and reports on it.

``run_experiment(ExperimentOptions(experiment="cifar10", runs=10))`` trains the cell from scratch
with the paper's recipe once per seed (finished runs are skipped, interrupted ones resume), then
aggregates the records and writes the report. With ``search=True`` it runs the paper's whole
pipeline first (section 3.2): four searches with different seeds, a short training from scratch
of each derived cell (100 epochs on CIFAR-10 with held-out validation images, 300 on PTB), the
best by validation chosen, then the final trainings of that cell.

An experiment directory (``results/<experiment>-<arch>``, e.g. ``results/cifar10-darts_v2``)::

    experiment.json            what the experiment is (written atomically)
    runs/seed-<S>/             final training runs (config.json, metrics.jsonl, record.json, ...)
    search/seed-<S>/           with search: the search runs
    selection/seed-<S>/        with search: the short training of the cell of search seed S
    selection.json             with search: the candidates, their validation figures, the choice

Profiles: ``paper`` (the recipes as published), ``quick`` (the same recipes with fewer epochs) and
``demo`` (tiny sizes for the demo); everything but ``paper`` is labelled as not comparable with the
paper in experiment.json and so in the report. Directories never mix profiles or configs.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import genotypes
from zoo.fileio import atomic_write_json

from . import config as _config
from .rundir import RUNTIME_FIELDS, RunConfigMismatchError, RunDir
from .scheduler import Job, SlurmOptions, run_jobs

log = logging.getLogger(__name__)

PROFILES = ("paper", "quick", "demo")
EXPERIMENT_FILE, SELECTION_FILE = "experiment.json", "selection.json"
DEFAULT_SEARCH_SEEDS = (0, 1, 2, 3)


class ExperimentMismatchError(ValueError):
    """The output directory holds another experiment (other profile, genotype, order or config)."""


@dataclasses.dataclass(frozen=True)
class ExperimentSpec:
    """What is fixed about one of the paper's experiments."""

    name: str
    dataset: str  # key of reproduce.train.RECIPES
    kind: str  # "cnn" or "rnn"
    default_runs: int
    metrics: tuple  # final metrics compared with the paper, lower is better
    targets: dict  # arch name or search order -> key of results/paper.json "targets"
    search_dataset: Optional[str] = None  # key of reproduce.search.SEARCH_CONFIGS, None: no search
    selection_epochs: int = 0
    selection_metric: str = ""
    selection_overrides: dict = dataclasses.field(default_factory=dict)
    quick: dict = dataclasses.field(default_factory=dict)  # training overrides of the quick profile
    quick_search: dict = dataclasses.field(default_factory=dict)
    quick_selection_epochs: int = 0
    note: str = ""


EXPERIMENTS: Dict[str, ExperimentSpec] = {
    "cifar10": ExperimentSpec(
        name="cifar10", dataset="cifar10", kind="cnn", default_runs=10, metrics=("test_error",),
        targets={"DARTS_V2": "cifar10", "DARTS": "cifar10", "DARTS_V1": "cifar10-first-order",
                 2: "cifar10", 1: "cifar10-first-order"},
        search_dataset="cifar10", selection_epochs=100, selection_metric="valid_error",
        selection_overrides={"valid_split": 5000},
        quick={"epochs": 30}, quick_search={"epochs": 10}, quick_selection_epochs=10,
        note="CIFAR-10 test error (%) of the cell trained from scratch, paper recipe (600 epochs, cutout, auxiliary)"),
    "ptb": ExperimentSpec(
        name="ptb", dataset="ptb", kind="rnn", default_runs=3, metrics=("valid_ppl", "test_ppl"),
        targets={"DARTS_V2": "ptb", "DARTS": "ptb", "DARTS_V1": "ptb-first-order", 2: "ptb", 1: "ptb-first-order"},
        search_dataset="ptb", selection_epochs=300, selection_metric="valid_ppl",
        quick={"epochs": 50}, quick_search={"epochs": 10}, quick_selection_epochs=20,
        note="Penn Treebank perplexity of the recurrent cell trained from scratch"),
    "imagenet": ExperimentSpec(
        name="imagenet", dataset="imagenet", kind="cnn", default_runs=1, metrics=("top1_error", "top5_error"),
        targets={"DARTS_V2": "imagenet", "DARTS": "imagenet"}, quick={"epochs": 10},
        note="ImageNet (mobile setting) error of the cell searched on CIFAR-10"),
    "wt2": ExperimentSpec(
        name="wt2", dataset="wt2", kind="rnn", default_runs=3, metrics=("valid_ppl", "test_ppl"),
        targets={"DARTS_V2": "wt2", "DARTS": "wt2"}, quick={"epochs": 50},
        note="WikiText-2 perplexity of the recurrent cell searched on PTB"),
}


@dataclasses.dataclass
class ExperimentOptions:
    experiment: str
    runs: Optional[int] = None
    seeds: Optional[Sequence[int]] = None
    arch: Optional[str] = None
    genotype: Optional[str] = None
    out: Optional[str] = None
    results_dir: Optional[str] = None  # where the report is written; default: the parent of out
    data: Optional[str] = None
    device: Optional[str] = None
    gpus: Sequence[str] = ()
    profile: str = "paper"
    search: bool = False
    order: int = 2
    search_seeds: Optional[Sequence[int]] = None
    selection_epochs: Optional[int] = None
    train_overrides: dict = dataclasses.field(default_factory=dict)
    search_overrides: dict = dataclasses.field(default_factory=dict)
    selection_overrides: dict = dataclasses.field(default_factory=dict)
    launcher: str = "local"
    slurm: Optional[SlurmOptions] = None
    progress: bool = True
    report: bool = True
    report_format: str = "markdown"
    target: Optional[str] = "auto"  # key of paper.json to compare with; "auto": the paper's for this experiment
    note: Optional[str] = None  # replaces the experiment's description in experiment.json (e.g. the demo's data)


@dataclasses.dataclass
class ExperimentResult:
    out: Path
    experiment: dict
    records: List[dict]
    selection: Optional[dict]
    summary: Dict[str, dict]  # metric -> reproduce.stats.summarize(...) of the final runs
    report: Optional[Path]


# ---------------------------------------------------------------------------------------------
# Resolving what to run
# ---------------------------------------------------------------------------------------------

def get_spec(name: str) -> ExperimentSpec:
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; known: {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name]


def resolve_seeds(runs: Optional[int], seeds: Optional[Sequence[int]], default_runs: int) -> List[int]:
    """``--seeds`` when given (``--runs`` must then agree), else ``0 .. runs-1``."""
    if seeds is not None:
        seeds = [int(s) for s in seeds]
        if not seeds:
            raise ValueError("--seeds is empty; give e.g. --seeds 0,1,2")
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"--seeds lists a seed twice: {seeds}")
        if any(s < 0 for s in seeds):
            raise ValueError(f"seeds must be >= 0, got {seeds}")
        if runs is not None and runs != len(seeds):
            raise ValueError(f"--runs {runs} but --seeds gives {len(seeds)} seeds; give one or make them agree")
        return seeds
    runs = default_runs if runs is None else int(runs)
    if runs < 1:
        raise ValueError(f"--runs must be >= 1, got {runs}")
    return list(range(runs))


def parse_seeds(text: Optional[str]) -> Optional[List[int]]:
    """``"0,1,2"`` or ``"0-9"`` -> a list of ints; None stays None."""
    if text is None:
        return None
    seeds: List[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part[1:]:
                lo, hi = part.split("-", 1)
                seeds.extend(range(int(lo), int(hi) + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise ValueError(f"seeds must be comma-separated integers or ranges like 0-9, got {text!r}") from None
    return seeds


def canonical_genotype(text: str, kind: str) -> str:
    """Genotype text parsed, checked to be a ``kind`` cell, and formatted canonically."""
    want = genotypes.Genotype if kind == "cnn" else genotypes.RNNGenotype
    try:
        g = genotypes.parse(text)
    except (ValueError, SyntaxError, TypeError, KeyError) as e:
        raise ValueError(f"malformed --genotype {text[:80]!r}: {e}") from None
    if not isinstance(g, want):
        raise ValueError(f"--genotype is a {type(g).__name__}, but this experiment trains a {want.__name__}")
    genotypes.validate(g)
    return genotypes.format(g)


def _arch_genotype(arch: str, kind: str) -> str:
    try:
        return genotypes.format(genotypes.get(arch, kind))
    except KeyError as e:
        raise ValueError(f"--arch: {e.args[0] if e.args else e}") from None


def default_out(spec: ExperimentSpec, arch: Optional[str], genotype_text: Optional[str], search: bool,
                order: int, profile: str, root: str = "results") -> Path:
    if search:
        stem = f"{spec.name}-search-order{order}"
    elif arch:
        stem = f"{spec.name}-{arch.lower()}"
    else:
        stem = f"{spec.name}-custom-{hashlib.sha1(genotype_text.encode()).hexdigest()[:8]}"
    if profile != "paper":
        stem += f"-{profile}"
    return Path(root) / stem


def target_for(spec: ExperimentSpec, arch: Optional[str], search: bool, order: int) -> Optional[str]:
    if search:
        return spec.targets.get(order)
    return spec.targets.get(arch) if arch else None


def _profile_overrides(spec: ExperimentSpec, profile: str) -> dict:
    return dict(spec.quick) if profile == "quick" else {}


def _runtime(options: ExperimentOptions) -> dict:
    """Fields that say where and how to run, not what: data path and device."""
    out = {}
    if options.data is not None:
        out["data"] = str(options.data)
    if options.device is not None:
        out["device"] = options.device
    elif options.gpus or (options.launcher == "slurm" and (options.slurm or SlurmOptions()).gpus_per_job > 0
                          and (options.slurm or SlurmOptions()).cluster != "local"):
        out["device"] = "cuda"  # each process takes its GPU (CUDA_VISIBLE_DEVICES, or cuda:LOCAL_RANK in a Slurm job)
    return out


def _build(table: dict, dataset: str, overrides: dict, what: str) -> dict:
    """A full config dict of ``table[dataset]`` with ``overrides`` (validated now: errors before any work)."""
    if dataset not in table:
        raise ValueError(f"no {what} for {dataset!r}; known: {', '.join(sorted(table))}")
    return _config.to_dict(_config.build(table[dataset], overrides))


def _check_existing_run(run_dir: Path, config: dict) -> None:
    try:
        RunDir(run_dir).check_config(config)
    except RunConfigMismatchError as e:
        raise ExperimentMismatchError(str(e)) from None


def _check_experiment_file(out: Path, meta: dict) -> Optional[dict]:
    path = out / EXPERIMENT_FILE
    if not path.exists():
        return None
    saved = json.loads(path.read_text())
    differ = {k: (saved.get(k), meta.get(k)) for k in ("experiment", "dataset", "profile", "order", "arch",
                                                       "genotype", "search")
              if meta.get(k, saved.get(k)) != saved.get(k)}
    if differ:
        fields = ", ".join(f"{k} (saved {a!r}, now {b!r})" for k, (a, b) in differ.items())
        raise ExperimentMismatchError(
            f"{out} holds another experiment: {fields}. Profiles and configs are never mixed: "
            "use another --out directory, or rerun with the saved values.")
    return saved


def _metric(record: dict, name: str) -> float:
    final = record.get("final", {})
    for key in (name, f"best_{name}"):
        if key in final and final[key] is not None:
            return float(final[key])
    raise ValueError(f"run record {record.get('seed')} has no final {name!r} (has {sorted(final)}); "
                     "was it trained with the right settings (valid_split for selection trainings)?")


# ---------------------------------------------------------------------------------------------
# The search pipeline (section 3.2 of the paper)
# ---------------------------------------------------------------------------------------------

def _check_search(spec: ExperimentSpec, options: ExperimentOptions) -> None:
    if spec.search_dataset is None:
        raise ValueError(f"--search is not available for {spec.name}: the paper searched on CIFAR-10 and PTB and "
                         f"transferred the cells. Run `python -m reproduce {'cifar10' if spec.kind == 'cnn' else 'ptb'}"
                         " --search`, then pass the chosen genotype (from its selection.json) with --genotype")
    if options.order not in (1, 2):
        raise ValueError(f"--order must be 1 or 2, got {options.order}")


def _search_seeds(options: ExperimentOptions) -> List[int]:
    seeds = list(options.search_seeds) if options.search_seeds is not None else list(DEFAULT_SEARCH_SEEDS)
    return resolve_seeds(None, seeds, len(seeds))


def _selection_epochs(spec: ExperimentSpec, options: ExperimentOptions) -> int:
    if options.selection_epochs is not None:
        short = int(options.selection_epochs)
    else:
        short = spec.quick_selection_epochs if options.profile == "quick" else spec.selection_epochs
    if short < 1:
        raise ValueError(f"--selection-epochs must be >= 1, got {short}")
    return short


def _search_and_select(spec: ExperimentSpec, options: ExperimentOptions, out: Path, runtime: dict) -> dict:
    from .search import SEARCH_CONFIGS
    from .train import RECIPES

    search_seeds = _search_seeds(options)
    profile_search = dict(spec.quick_search) if options.profile == "quick" else {}

    search_jobs = []
    for seed in search_seeds:
        cfg = _build(SEARCH_CONFIGS, spec.search_dataset, {**profile_search, **options.search_overrides, **runtime,
                                                           "seed": seed, "order": options.order}, "search config")
        run_dir = out / "search" / f"seed-{seed}"
        _check_existing_run(run_dir, cfg)
        search_jobs.append(Job("search", spec.search_dataset, cfg, str(run_dir),
                               name=f"{spec.name} search (order {options.order}) seed {seed}"))

    short = _selection_epochs(spec, options)
    selection_base = {**_profile_overrides(spec, options.profile), **options.train_overrides,
                      **spec.selection_overrides, **options.selection_overrides, **runtime, "epochs": int(short),
                      "experiment": f"{spec.name}-selection", "profile": options.profile}
    # check the selection configs before any search runs (a bad override fails now, not hours later)
    _build(RECIPES, spec.dataset, {**selection_base, "seed": search_seeds[0]}, "training recipe")

    log.info("%s: %d searches (order %d), seeds %s", spec.name, len(search_jobs), options.order, search_seeds)
    records = run_jobs(search_jobs, gpus=options.gpus, launcher=options.launcher, slurm=options.slurm,
                       progress=options.progress, desc="searches")
    candidates = [{"search_seed": seed, "genotype": canonical_genotype(rec["genotype"], spec.kind)}
                  for seed, rec in zip(search_seeds, records)]

    selection_jobs = []
    for cand in candidates:
        cfg = _build(RECIPES, spec.dataset, {**selection_base, "seed": cand["search_seed"],
                                             "genotype": cand["genotype"]}, "training recipe")
        run_dir = out / "selection" / f"seed-{cand['search_seed']}"
        _check_existing_run(run_dir, cfg)
        selection_jobs.append(Job("train", spec.dataset, cfg, str(run_dir),
                                  name=f"{spec.name} selection training of search seed {cand['search_seed']}"))
    log.info("%s: short trainings (%d epochs) of the %d searched cells", spec.name, short, len(candidates))
    sel_records = run_jobs(selection_jobs, gpus=options.gpus, launcher=options.launcher, slurm=options.slurm,
                           progress=options.progress, desc="selection trainings")
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


# ---------------------------------------------------------------------------------------------
# The driver
# ---------------------------------------------------------------------------------------------

def plan_experiment(options: ExperimentOptions):
    """Check the options and resolve what will run: (spec, seeds, arch, genotype text or None, out dir)."""
    spec = get_spec(options.experiment)
    if options.profile not in PROFILES:
        raise ValueError(f"unknown profile {options.profile!r}; expected one of {', '.join(PROFILES)}")
    given = [name for name, value in (("--arch", options.arch), ("--genotype", options.genotype),
                                      ("--search", options.search)) if value]
    if len(given) > 1:
        raise ValueError(f"give at most one of --arch, --genotype and --search (got {', '.join(given)})")
    if options.search:
        _check_search(spec, options)
    seeds = resolve_seeds(options.runs, options.seeds, spec.default_runs)
    arch, genotype_text = None, None
    if options.genotype:
        genotype_text = canonical_genotype(options.genotype, spec.kind)
    elif not options.search:
        arch = options.arch or "DARTS_V2"
        genotype_text = _arch_genotype(arch, spec.kind)
    out = Path(options.out) if options.out else default_out(spec, arch, genotype_text, options.search, options.order,
                                                            options.profile)
    return spec, seeds, arch, genotype_text, out


def run_experiment(options: ExperimentOptions) -> ExperimentResult:
    from .train import RECIPES

    spec, seeds, arch, genotype_text, out = plan_experiment(options)
    runtime = _runtime(options)
    order = options.order if options.search else ({"DARTS_V2": 2, "DARTS": 2, "DARTS_V1": 1}.get(arch) if arch
                                                  else None)
    meta = {"experiment": spec.name, "dataset": spec.dataset, "arch": arch, "profile": options.profile,
            "order": order, "target": (target_for(spec, arch, options.search, options.order)
                                       if options.target == "auto" else options.target),
            "search": None, "comparable": options.profile == "paper", "note": options.note or spec.note}
    if options.profile != "paper" and not options.note:
        meta["note"] += (f"; profile {options.profile!r}: shortened recipes, NOT comparable with the paper's figures")
    if options.search:
        meta["search"] = {"order": options.order, "seeds": _search_seeds(options),
                          "short_epochs": _selection_epochs(spec, options)}
    if genotype_text is not None:
        meta["genotype"] = genotype_text
    saved = _check_experiment_file(out, meta)

    base = {**_profile_overrides(spec, options.profile), **options.train_overrides, **runtime,
            "experiment": spec.name, "profile": options.profile}
    if arch:
        base.update(arch=arch, genotype="")
    # every final config is checked (and compared with runs already there) before anything runs
    if genotype_text is not None:
        final_configs = _final_configs(spec, RECIPES, base, arch, genotype_text, seeds, out)
    out.mkdir(parents=True, exist_ok=True)

    selection = None
    if options.search:
        selection = _search_and_select(spec, options, out, runtime)
        genotype_text = selection["genotype"]
        meta["genotype"] = genotype_text
        _check_experiment_file(out, meta)
        final_configs = _final_configs(spec, RECIPES, base, arch, genotype_text, seeds, out)

    known = sorted(set(seeds) | set((saved or {}).get("seeds", [])))
    meta["seeds"] = known
    atomic_write_json(out / EXPERIMENT_FILE, {k: meta[k] for k in ("experiment", "dataset", "arch", "genotype",
                                                                    "profile", "order", "target", "seeds", "search",
                                                                    "comparable", "note")})
    jobs = [Job("train", spec.dataset, cfg, str(out / "runs" / f"seed-{seed}"), name=f"{spec.name} seed {seed}")
            for seed, cfg in zip(seeds, final_configs)]
    log.info("%s: %d training runs (seeds %s) -> %s", spec.name, len(jobs), seeds, out)
    records = run_jobs(jobs, gpus=options.gpus, launcher=options.launcher, slurm=options.slurm,
                       progress=options.progress, desc="trainings")

    summary = summarize_records(spec, records)
    report = None
    if options.report:
        from .report import write_report

        results_dir = Path(options.results_dir) if options.results_dir else out.parent
        report = write_report(results_dir=str(results_dir), fmt=options.report_format)
    return ExperimentResult(out=out, experiment=meta, records=records, selection=selection, summary=summary,
                            report=Path(report) if report else None)


def describe_plan(options: ExperimentOptions) -> List[str]:
    """What ``run_experiment(options)`` would run, as lines of text (``--dry-run``); runs nothing.

    The configs are built and checked (and compared with runs already in the directory), so a
    dry run also catches bad overrides and mismatched directories.
    """
    from .scheduler import plan_gpu_queue, read_result
    from .train import RECIPES

    spec, seeds, arch, genotype_text, out = plan_experiment(options)
    runtime = _runtime(options)
    lines = [f"experiment {spec.name} (profile {options.profile}) -> {out}"]
    gpus = list(options.gpus)
    where = (f"Slurm ({(options.slurm or SlurmOptions()).cluster})" if options.launcher == "slurm" else
             f"GPUs {','.join(gpus)}, one run per GPU at a time" if gpus else "this process, one run after another")
    lines.append(f"runs on: {where}")
    if options.search:
        _check_search(spec, options)
        search_seeds = _search_seeds(options)
        lines.append(f"1. {len(search_seeds)} searches on {spec.search_dataset} (order {options.order}), seeds "
                     f"{search_seeds} -> {out / 'search'}")
        lines.append(f"2. a {_selection_epochs(spec, options)}-epoch training of each searched cell -> "
                     f"{out / 'selection'}; the best {spec.selection_metric} is chosen")
        lines.append(f"3. {len(seeds)} trainings of the chosen cell, seeds {seeds} -> {out / 'runs'}")
    else:
        base = {**_profile_overrides(spec, options.profile), **options.train_overrides, **runtime,
                "experiment": spec.name, "profile": options.profile}
        if arch:
            base.update(arch=arch, genotype="")
        _final_configs(spec, RECIPES, base, arch, genotype_text, seeds, out)
        done = [s for s in seeds if read_result(Job("train", spec.dataset, {"seed": s},
                                                      str(out / "runs" / f"seed-{s}"))) is not None]
        todo = [s for s in seeds if s not in done]
        lines.append(f"cell: {arch or 'custom genotype'}; {len(seeds)} trainings, seeds {seeds} "
                     f"({len(done)} finished, skipped: {done or '-'})")
        if gpus and options.launcher == "local" and todo:
            for gpu, idx in zip(gpus, plan_gpu_queue(len(todo), gpus)):
                if idx:
                    lines.append(f"  GPU {gpu}: seeds {[todo[i] for i in idx]} if all runs take as long (the queue "
                                 "gives each next seed to the first GPU that is free)")
    target = target_for(spec, arch, options.search, options.order) if options.target == "auto" else options.target
    lines.append(f"compared with: {target or 'no published figure'}")
    return lines


def _final_configs(spec, recipes, base, arch, genotype_text, seeds, out) -> List[dict]:
    configs = []
    for seed in seeds:
        overrides = dict(base, seed=seed)
        if not arch:
            overrides["genotype"] = genotype_text
        cfg = _build(recipes, spec.dataset, overrides, "training recipe")
        _check_existing_run(out / "runs" / f"seed-{seed}", cfg)
        configs.append(cfg)
    if configs:
        _check_other_seeds(out, configs[0], seeds)
    return configs


def _check_other_seeds(out: Path, config: dict, seeds) -> None:
    """Refuse new seeds whose config differs (in anything but the seed) from the runs already in ``out``:
    the aggregation would refuse the mixture anyway, but only after all the training."""
    for path in sorted((out / "runs").glob("seed-*/config.json")):
        saved = json.loads(path.read_text())
        if saved.get("seed") in seeds:
            continue  # compared field by field with its own new config above
        differ = _config.diff(saved, config, ignore=RUNTIME_FIELDS + ("seed",))
        if differ:
            fields = ", ".join(f"{k} (seed {saved.get('seed')}: {a!r}, now {b!r})" for k, (a, b) in differ.items())
            raise ExperimentMismatchError(
                f"{out} already holds runs with another config: {fields}. Seeds of one experiment share "
                "their config: use another --out directory, or rerun with the saved values.")
        return  # the runs already there agree with each other (checked when they were added)


def summarize_records(spec: ExperimentSpec, records: List[dict]) -> Dict[str, dict]:
    from .stats import summarize

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
    from .aggregate import project_paper_path

    for path in (Path(results_dir) / "paper.json", project_paper_path()):
        if path.exists():
            targets = json.loads(path.read_text()).get("targets", {})
            if key in targets:
                return targets[key]
    return None


def summary_table(result: ExperimentResult) -> str:
    """A short plain-text table of the final runs beside the paper's figures."""
    from tabulate import tabulate

    from .stats import compare

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
