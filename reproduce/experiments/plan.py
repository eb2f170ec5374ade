"""Resolving what an experiment runs: seeds, genotype, output directory, paper target and every
config, all checked (and compared with runs already on disk) before anything runs; ``--dry-run``'s plan."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import genotypes

from .. import comparable, random_baseline
from .. import config as run_config
from ..data.images import plan as image_plan
from ..jsonfile import read_json
from ..rundir import RUNTIME_FIELDS, RunConfigMismatchError, RunDir
from ..scheduler import Job, SlurmOptions
from ..train.recipes import resolve_genotype
from .spec import (
    DEFAULT_SEARCH_SEEDS,
    EXPERIMENT_FILE,
    PROFILES,
    ExperimentMismatchError,
    ExperimentOptions,
    ExperimentSpec,
    get_spec,
)

# The most runs one experiment command plans: the paper's experiments use 10 at most. Counts and seed
# ranges are checked against it before any list is built, so `--runs 100000000` costs nothing.
MAX_RUNS = 1000


def _check_count(count: int, what: str) -> None:
    if count > MAX_RUNS:
        raise ValueError(f"{what} asks for {count if count < 10 ** 15 else 'more than 10**15'} runs; one command runs "
                         f"at most {MAX_RUNS} (reproduce.experiments.plan.MAX_RUNS): split them over several "
                         "commands with --seeds")


def resolve_seeds(runs: Optional[int], seeds: Optional[Sequence[int]], default_runs: int) -> List[int]:
    """``--seeds`` when given (``--runs`` must then agree), else ``0 .. runs-1``."""
    if seeds is not None:
        _check_count(len(seeds), "--seeds")
        seeds = [int(s) for s in seeds]
        if not seeds:
            raise ValueError("--seeds is empty; give e.g. --seeds 0,1,2")
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"--seeds lists a seed twice: {seeds}")
        bad = [s for s in seeds if not 0 <= s <= run_config.MAX_INT]
        if bad:
            raise ValueError(f"seeds must be in 0..2**63-1, got {bad}")
        if runs is not None and runs != len(seeds):
            raise ValueError(f"--runs {runs} but --seeds gives {len(seeds)} seeds; give one or make them agree")
        return seeds
    runs = default_runs if runs is None else int(runs)
    if runs < 1:
        raise ValueError(f"--runs must be >= 1, got {runs}")
    _check_count(runs, f"--runs {runs}")
    return list(range(runs))


def resolve_baseline(text: Optional[str], seeds: Sequence[int]) -> Optional[random_baseline.BaselineSpec]:
    """``--baseline`` parsed, its runs (cells x seeds) checked against :data:`MAX_RUNS` before a cell is drawn."""
    spec = random_baseline.parse(text)
    if spec is not None:
        _check_count(spec.n * len(seeds), f"--baseline (N cells x {len(seeds)} seed(s))")
    return spec


def parse_seeds(text: Optional[str], option: str = "--seeds") -> Optional[List[int]]:
    """``"0,1,2"`` or ``"0-9"`` -> a list of ints; None stays None. The number of seeds is checked
    against :data:`MAX_RUNS` before a range is expanded; errors name ``option``."""
    if text is None:
        return None
    spans: List[range] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part[1:]:
                lo, hi = part.split("-", 1)
                spans.append(range(int(lo), int(hi) + 1))
            else:
                spans.append(range(int(part), int(part) + 1))
        except ValueError:
            raise ValueError(f"{option}: seeds must be comma-separated integers or ranges like 0-9, got {text!r}"
                             ) from None
    _check_count(sum(max(0, span.stop - span.start) for span in spans), f"{option} {text}")
    return [seed for span in spans for seed in span]


def canonical_genotype(spec: str, kind: str, option: str = "--genotype") -> str:
    """A genotype (its text or a name) resolved, checked to be a ``kind`` cell, and formatted canonically."""
    return genotypes.format(resolve_genotype("", spec, kind, option))


def default_out(spec: ExperimentSpec, arch: Optional[str], genotype_text: Optional[str], search: bool,
                order: int, profile: str, root: str = "results", method: str = "darts") -> Path:
    if search:
        stem = f"{spec.name}-search-order{order}" if method == "darts" else f"{spec.name}-search-{method}-order{order}"
    elif arch:
        stem = f"{spec.name}-{arch.lower()}"
    else:
        stem = f"{spec.name}-custom-{hashlib.sha1(genotype_text.encode()).hexdigest()[:8]}"
    if profile != "paper":
        stem += f"-{profile}"
    return Path(root) / stem


def target_for(spec: ExperimentSpec, arch: Optional[str], search: bool, order: int,
               method: str = "darts") -> Optional[str]:
    if search:
        return spec.targets.get(order) if method == "darts" else spec.targets.get(method)
    return spec.targets.get(arch) if arch else None


def profile_overrides(spec: ExperimentSpec, profile: str) -> dict:
    return dict(spec.quick) if profile == "quick" else {}


def runtime_overrides(options: ExperimentOptions) -> dict:
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


def build_config(table: dict, dataset: str, overrides: dict, what: str) -> dict:
    """A full config dict of ``table[dataset]`` with ``overrides`` (validated now: errors before any work)."""
    if dataset not in table:
        raise ValueError(f"no {what} for {dataset!r}; known: {', '.join(sorted(table))}")
    return run_config.to_dict(run_config.build(table[dataset], overrides))


def check_existing_run(run_dir: Path, config: dict) -> None:
    try:
        RunDir(run_dir).check_config(config)
    except RunConfigMismatchError as e:
        raise ExperimentMismatchError(str(e)) from None


def check_experiment_file(out: Path, meta: dict) -> Optional[dict]:
    path = out / EXPERIMENT_FILE
    if not path.exists():
        return None
    saved = read_json(path, fix="restore it, or use another --out directory")
    differ = {k: (saved.get(k), meta.get(k)) for k in ("experiment", "dataset", "profile", "order", "arch",
                                                       "genotype", "search")
              if meta.get(k, saved.get(k)) != saved.get(k)}
    if differ:
        fields = ", ".join(f"{k} (saved {a!r}, now {b!r})" for k, (a, b) in differ.items())
        raise ExperimentMismatchError(
            f"{out} holds another experiment: {fields}. Profiles and configs are never mixed: "
            "use another --out directory, or rerun with the saved values.")
    return saved


def recipe_differences(spec: ExperimentSpec, options: ExperimentOptions) -> Dict[str, Tuple[Any, Any]]:
    """Where the experiment's configs differ from the paper's recipe (:mod:`reproduce.comparable`):
    the training's fields by name, the search's as ``search.<field>``, the selection's as
    ``selection.<field>``. The quick profile's shorter epochs count too. Empty: the paper's recipe, or one's
    own data (no recipe of the paper to differ from: :data:`reproduce.comparable.OWN_DATA`)."""
    from ..search import SEARCH_CONFIGS
    from ..train import RECIPES

    if spec.dataset in comparable.OWN_DATA:
        return {}

    runtime = runtime_overrides(options)
    train = build_config(RECIPES, spec.dataset, {**profile_overrides(spec, options.profile),
                                                 **options.train_overrides, **runtime}, "training recipe")
    out = dict(comparable.recipe_differences("train", spec.dataset, train))
    if options.search:
        profile_search = dict(spec.quick_search) if options.profile == "quick" else {}
        search = build_config(SEARCH_CONFIGS, spec.search_dataset,
                              {**profile_search, **options.search_overrides, **runtime}, "search config")
        out.update({f"search.{k}": v for k, v in
                    comparable.recipe_differences("search", spec.search_dataset, search).items()})
        epochs = resolve_selection_epochs(spec, options)
        if epochs != spec.selection_epochs:
            out["selection.epochs"] = (spec.selection_epochs, epochs)
        for k, v in options.selection_overrides.items():
            paper = spec.selection_overrides.get(k, train.get(k))
            if v != paper:
                out[f"selection.{k}"] = (paper, v)
    return out


def _check_search(spec: ExperimentSpec, options: ExperimentOptions) -> None:
    if spec.search_dataset is None:
        raise ValueError(f"--search is not available for {spec.name}: the paper searched on CIFAR-10 and PTB and "
                         f"transferred the cells. Run `python -m reproduce {'cifar10' if spec.kind == 'cnn' else 'ptb'}"
                         " --search`, then pass the chosen genotype (from its selection.json) with --genotype")
    if options.order not in (1, 2):
        raise ValueError(f"--order must be 1 or 2, got {options.order}")


def resolve_search_seeds(options: ExperimentOptions) -> List[int]:
    seeds = list(options.search_seeds) if options.search_seeds is not None else list(DEFAULT_SEARCH_SEEDS)
    return resolve_seeds(None, seeds, len(seeds))


def resolve_selection_epochs(spec: ExperimentSpec, options: ExperimentOptions) -> int:
    if options.selection_epochs is not None:
        short = int(options.selection_epochs)
    else:
        short = spec.quick_selection_epochs if options.profile == "quick" else spec.selection_epochs
    if short < 1:
        raise ValueError(f"--selection-epochs must be >= 1, got {short}")
    return short


def plan_experiment(options: ExperimentOptions):
    """Check the options and resolve what will run: (spec, seeds, arch, genotype text or None, out dir)."""
    spec = get_spec(options.experiment)
    if options.profile not in PROFILES:
        raise ValueError(f"unknown profile {options.profile!r}; expected one of {', '.join(PROFILES)}")
    given = [name for name, value in (("--arch", options.arch), ("--genotype", options.genotype),
                                      ("--search", options.search)) if value]
    if len(given) > 1:
        raise ValueError(f"give at most one of --arch, --genotype and --search (got {', '.join(given)})")
    if options.gpus and options.launcher == "slurm":
        raise ValueError("--gpus picks GPUs of this machine; with --launcher slurm each job gets its GPUs from "
                         "Slurm: drop --gpus (use --gpus-per-job for GPUs per run)")
    if options.search:
        _check_search(spec, options)
    seeds = resolve_seeds(options.runs, options.seeds, spec.default_runs)
    resolve_baseline(options.baseline, seeds)
    arch, genotype_text = None, None
    if options.genotype:
        genotype_text = canonical_genotype(options.genotype, spec.kind)
    elif not options.search:
        arch = options.arch or "DARTS_V2"
        genotype_text = canonical_genotype(arch, spec.kind, "--arch")
    out = Path(options.out) if options.out else default_out(spec, arch, genotype_text, options.search, options.order,
                                                            options.profile, method=options.method)
    return spec, seeds, arch, genotype_text, out


def describe_plan(options: ExperimentOptions) -> List[str]:
    """What ``run_experiment(options)`` would run, as lines of text (``--dry-run``); runs nothing.

    The configs are built and checked (and compared with runs already in the directory), so a
    dry run also catches bad overrides and mismatched directories.
    """
    from ..scheduler import plan_gpu_queue, read_result
    from ..train import RECIPES

    spec, seeds, arch, genotype_text, out = plan_experiment(options)
    runtime = runtime_overrides(options)
    lines = [f"experiment {spec.name} (profile {options.profile}) -> {out}"]
    gpus = list(options.gpus)
    where = (f"Slurm ({(options.slurm or SlurmOptions()).cluster})" if options.launcher == "slurm" else
             f"GPUs {','.join(gpus)}, one run per GPU at a time" if gpus else "this process, one run after another")
    lines.append(f"runs on: {where}")
    train_base = {**profile_overrides(spec, options.profile), **options.train_overrides, **runtime,
                  "experiment": spec.name, "profile": options.profile}
    if options.search:
        from ..search import SEARCH_CONFIGS

        _check_search(spec, options)
        search_seeds = resolve_search_seeds(options)
        short = resolve_selection_epochs(spec, options)
        profile_search = dict(spec.quick_search) if options.profile == "quick" else {}
        search_cfg = build_config(SEARCH_CONFIGS, spec.search_dataset,
                                  {**profile_search, **options.search_overrides, **runtime, "seed": search_seeds[0],
                                   "order": options.order}, "search config")
        # the cell is not known before the search: DARTS_V2 stands in for it in the time estimate
        final_cfg = build_config(RECIPES, spec.dataset, {**train_base, "seed": seeds[0]}, "training recipe")
        selection_cfg = build_config(RECIPES, spec.dataset, {**train_base, **spec.selection_overrides,
                                                             **options.selection_overrides, "seed": search_seeds[0],
                                                             "epochs": short}, "training recipe")
        work = [(len(search_seeds), "search", search_cfg), (len(search_seeds), "train", selection_cfg),
                (len(seeds), "train", final_cfg)]
        lines.append(f"1. {len(search_seeds)} {options.method} searches on {spec.search_dataset} "
                     f"(order {options.order}), seeds {search_seeds} -> {out / 'search'}")
        lines.append(f"2. a {short}-epoch training of each searched cell -> "
                     f"{out / 'selection'}; the best {spec.selection_metric} is chosen")
        lines.append(f"3. {len(seeds)} trainings of the chosen cell, seeds {seeds} -> {out / 'runs'}")
    else:
        base = dict(train_base)
        if arch:
            base.update(arch=arch, genotype="")
        configs = build_final_configs(spec, RECIPES, base, arch, genotype_text, seeds, out)
        done = [s for s in seeds if read_result(Job("train", spec.dataset, {"seed": s},
                                                      str(out / "runs" / f"seed-{s}"))) is not None]
        todo = [s for s in seeds if s not in done]
        work = [(len(todo), "train", configs[0])] if todo else []
        lines.append(f"cell: {arch or 'custom genotype'}; {len(seeds)} trainings, seeds {seeds} "
                     f"({len(done)} finished, skipped: {done or '-'})")
        if gpus and options.launcher == "local" and todo:
            for gpu, idx in zip(gpus, plan_gpu_queue(len(todo), gpus)):
                if idx:
                    lines.append(f"  GPU {gpu}: seeds {[todo[i] for i in idx]} if all runs take as long (the queue "
                                 "gives each next seed to the first GPU that is free)")
    b = resolve_baseline(options.baseline, seeds)
    if b is not None:
        # the random cells train with the final runs' recipe: DARTS_V2's config stands in for them in the estimate
        base = {**train_base, "seed": seeds[0], "arch": "DARTS_V2", "genotype": ""}
        work.append((b.n * len(seeds), "train", build_config(RECIPES, spec.dataset, base, "training recipe")))
        lines.append(f"baseline: {b.n} random cells of the DARTS space (draw seed {b.seed}), each trained with the "
                     f"same recipe and seeds {seeds} -> {options.baseline_dir or out / random_baseline.DIR}")
    target = (target_for(spec, arch, options.search, options.order, options.method) if options.target == "auto"
              else options.target)
    differences = recipe_differences(spec, options)
    if spec.dataset in comparable.OWN_DATA:
        lines.append(f"compared with: the random cells when --baseline is given ({comparable.OWN_DATA_REASON})")
    elif differences:
        lines.append(f"compared with: {target or 'no published figure'}, but NOT tested against it: not the paper's "
                     f"recipe ({comparable.describe(differences)})")
    else:
        lines.append(f"compared with: {target or 'no published figure'}")
    lines.extend(_data_and_time(spec, options, work))
    return lines


def _data_and_time(spec: ExperimentSpec, options: ExperimentOptions, work) -> List[str]:
    """The data check (an error when missing) and the time estimate of ``work``: (count, kind, config)."""
    from ..device import pick_device
    from .estimate import PROBE_STEPS, check_data, format_duration, search_seconds, training_seconds

    lines = []
    for _, kind, cfg in work:
        dataset = spec.search_dataset if kind == "search" else spec.dataset
        try:
            check_data(dataset, cfg["data"])
        except FileNotFoundError:
            if not (kind == "search" and dataset == "cifar10"):
                raise
            lines.append(f"data: CIFAR-10 is not in {cfg['data']}; the search downloads it")
    if work and spec.dataset == "images":
        final = work[-1][2]
        lines.append(image_plan(final["data"], final.get("image_size", 0), final.get("in_memory_mb")))
    elif work:
        lines.append("data: " + ", ".join(sorted({cfg["data"] for _, _, cfg in work})) + " (found)")
    if not work:
        return lines + ["time: nothing left to run"]
    if options.launcher == "slurm":
        return lines + ["time: not measured here (the runs go to Slurm nodes)"]
    try:
        device = pick_device(work[0][2].get("device", "auto"))
    except ValueError as e:
        return lines + [f"time: not measured ({e})"]
    total, parts, measured = 0.0, [], {}
    for count, kind, cfg in work:
        dataset = spec.search_dataset if kind == "search" else spec.dataset
        key = (kind, json.dumps(cfg, sort_keys=True, default=str))  # e.g. the baseline's runs: the final recipe's
        if key not in measured:
            measured[key] = search_seconds(dataset, cfg) if kind == "search" else training_seconds(dataset, cfg)
        seconds = measured[key]
        if seconds is None:
            parts.append(f"{count} x {kind} {dataset}: not estimated")
            continue
        total += count * seconds
        parts.append(f"{count} x {kind} {dataset} ({cfg['epochs']} epochs): {format_duration(seconds)} each")
    parallel = max(1, len(options.gpus))
    lines.append(f"time on {device}: about {format_duration(total / parallel)} in all"
                 + (f" over {parallel} GPUs" if parallel > 1 else "") + "; " + "; ".join(parts))
    lines.append(f"  (from a measured {PROBE_STEPS}-step epoch of each recipe; training steps only, the evaluations "
                 "add to it)")
    return lines


def build_final_configs(spec, recipes, base, arch, genotype_text, seeds, out) -> List[dict]:
    configs = []
    for seed in seeds:
        overrides = dict(base, seed=seed)
        if not arch:
            overrides["genotype"] = genotype_text
        cfg = build_config(recipes, spec.dataset, overrides, "training recipe")
        check_existing_run(out / "runs" / f"seed-{seed}", cfg)
        configs.append(cfg)
    if configs:
        _check_other_seeds(out, configs[0], seeds)
    return configs


def _check_other_seeds(out: Path, config: dict, seeds) -> None:
    """Refuse new seeds whose config differs (in anything but the seed) from the runs already in ``out``:
    the aggregation would refuse the mixture anyway, but only after all the training."""
    for path in sorted((out / "runs").glob("seed-*/config.json")):
        saved = read_json(path, fix="restore it, or delete that run directory")
        if saved.get("seed") in seeds:
            continue  # compared field by field with its own new config above
        differ = run_config.diff(saved, config, ignore=RUNTIME_FIELDS + ("seed",))
        if differ:
            fields = ", ".join(f"{k} (seed {saved.get('seed')}: {a!r}, now {b!r})" for k, (a, b) in differ.items())
            raise ExperimentMismatchError(
                f"{out} already holds runs with another config: {fields}. Seeds of one experiment share "
                "their config: use another --out directory, or rerun with the saved values.")
        return  # the runs already there agree with each other (checked when they were added)
