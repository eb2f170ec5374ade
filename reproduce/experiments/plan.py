"""Planning an experiment: ``plan_experiment(options)`` resolves what it runs (seeds, cell, output directory,
paper target, comparability, and the jobs of every stage), checks every config and compares it with the
runs already on disk, before anything runs. The :class:`Plan` it returns is frozen: ``plan.describe()``
is ``--dry-run``, and :func:`reproduce.experiments.pipeline.execute` runs it.

The stages: with ``--search``, the searches, then a short training of each searched cell (the selection),
then the final trainings of the chosen cell; without, the final trainings of the given cell. Beside them
(``--baseline``), the random cells. The searched cell is not known before the searches, so a plan with
``--search`` makes the selection's and the final trainings' jobs when it has the cells
(:meth:`Plan.selection_jobs`, :meth:`Plan.final_jobs`), from the fields it checked at planning time.
"""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import genotypes

from .. import comparable, random_baseline, targets
from .. import config as run_config
from ..layout import BASELINE_DIR, RUNS, SEARCH, SELECTION, run_dir
from ..report import check_ours, report_path
from ..scheduler import Job, gpu_slots, plan_gpu_queue, read_result
from ..slurm import SlurmOptions
from ..tasks import config_class, make_config
from ..train.recipes import recipe_name, resolve_genotype
from . import baseline, estimate
from .spec import (
    DEFAULT_SEARCH_SEEDS,
    PROFILES,
    ExperimentOptions,
    ExperimentSpec,
    check_existing_run,
    check_experiment_file,
    check_other_seeds,
    get_spec,
)
from .stage_checks import check_recipes_of_runs, searches_hold_out

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


def canonical_genotype(text: str, cell: str, option: str = "--genotype") -> str:
    """A genotype (its text or a name) resolved, checked to be a ``cell`` ("cnn" or "rnn") cell, and formatted
    canonically."""
    return genotypes.format(resolve_genotype("", text, cell, option))


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



# The search order of the named cells (DARTS is DARTS_V2): the order of the paper's target they are compared with.
ORDER_OF_ARCH = {"DARTS_V2": 2, "DARTS": 2, "DARTS_V1": 1}
# experiment.json's fields, in the order they are written
EXPERIMENT_FIELDS = ("experiment", "dataset", "arch", "genotype", "profile", "order", "method", "target", "seeds",
                     "search", "comparable", "recipe_differences", "note", "baseline", "references")


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


def _config(kind: str, dataset: str, overrides: dict) -> dict:
    """A full, validated config of the ``kind`` task of ``dataset`` as a dict (a stand-in for configs not known yet)."""
    return run_config.to_dict(make_config(kind, dataset, overrides))


def _job(kind: str, dataset: str, overrides: dict, where: Path, name: str) -> Job:
    """The job of one run in ``where``: its config built and validated (once: the job carries the instance to its
    run, which does not validate it again) and checked against the run already in that directory."""
    job = Job(kind, dataset, make_config(kind, dataset, overrides), str(where), name=name)
    check_existing_run(where, job.config)
    return job


def _final_jobs(spec: ExperimentSpec, base: dict, arch: Optional[str], genotype: str, seeds: Sequence[int],
                out: Path) -> List[Job]:
    """The final trainings, one per seed, each config checked against the run already in its directory and
    against the other seeds' runs there."""
    jobs = []
    for seed in seeds:
        overrides = dict(base, seed=seed) if arch else dict(base, seed=seed, genotype=genotype)
        jobs.append(_job("train", spec.dataset, overrides, run_dir(out, RUNS, seed), f"{spec.name} seed {seed}"))
    if jobs:
        check_other_seeds(out, jobs[0].config, seeds)
    return jobs


@dataclasses.dataclass(frozen=True)
class Plan:
    """What an experiment runs, resolved and checked: made by :func:`plan_experiment`, never changed after."""

    spec: ExperimentSpec
    options: ExperimentOptions
    out: Path
    seeds: Tuple[int, ...]
    arch: Optional[str]
    genotype: Optional[str]  # the cell's text; None with --search (the selection chooses it)
    meta: Dict[str, Any]  # experiment.json, less "seeds" (every seed the directory holds, known when it runs)
    saved_seeds: Tuple[int, ...]  # the seeds of the experiment.json already in ``out``
    differences: Dict[str, Tuple[Any, Any]]  # where the configs differ from the paper's recipe
    train_base: Dict[str, Any]  # the final trainings' fields, less the seed and the cell
    finals: Tuple[Job, ...]  # the final trainings; empty with --search until the cell is chosen
    search_seeds: Tuple[int, ...] = ()
    searches: Tuple[Job, ...] = ()
    selection_epochs: Optional[int] = None
    selection_base: Dict[str, Any] = dataclasses.field(default_factory=dict)
    baseline: Optional[random_baseline.BaselineSpec] = None
    baseline_root: Optional[Path] = None
    baseline_jobs: Tuple[Job, ...] = ()
    report_dir: Optional[Path] = None  # the report goes there, over the experiments found under it
    # (count, kind, config) of the runs still to do, one stand-in config each, for the time estimate
    work: Tuple[Tuple[int, str, Dict[str, Any]], ...] = ()

    @property
    def target(self) -> Optional[str]:
        return self.meta["target"]

    @property
    def comparable(self) -> bool:
        return self.meta["comparable"]

    def selection_jobs(self, candidates: Sequence[Dict[str, Any]]) -> List[Job]:
        """The short training of each searched cell (``candidates``: search seed and genotype text)."""
        jobs = []
        for cand in candidates:
            jobs.append(_job("train", self.spec.dataset,
                             dict(self.selection_base, seed=cand["search_seed"], genotype=cand["genotype"]),
                             run_dir(self.out, SELECTION, cand["search_seed"]),
                             f"{self.spec.name} selection training of search seed {cand['search_seed']}"))
        return jobs

    def final_jobs(self, genotype: Optional[str] = None) -> List[Job]:
        """The final trainings: the planned ones, or (with --search) those of the chosen ``genotype``."""
        if genotype is None or genotype == self.genotype:
            return list(self.finals)
        return _final_jobs(self.spec, self.train_base, None, genotype, self.seeds, self.out)

    def describe(self) -> List[str]:
        """What :func:`execute` would run, as lines of text (``--dry-run``); runs nothing, writes nothing. It
        checks the data and measures a short probe of each recipe for the time estimate (a log line says so)."""
        spec, options, out, seeds = self.spec, self.options, self.out, list(self.seeds)
        lines = [f"experiment {spec.name} (profile {options.profile}) -> {out}"]
        slots = gpu_slots(options.gpus, options.gpus_per_job) if options.gpus else []
        per = options.gpus_per_job
        each = ("one run per GPU at a time" if per == 1 else
                f"one run per {per} GPUs at a time ({', '.join(slots)}), {per} processes each under torchrun")
        where = (f"Slurm ({(options.slurm or SlurmOptions()).cluster})" if options.launcher == "slurm" else
                 f"GPUs {','.join(options.gpus)}, {each}" if slots else "this process, one run after another")
        lines.append(f"runs on: {where}")
        if self.searches:
            lines.append(f"1. {len(self.searches)} {options.method} searches on {spec.search_dataset} (order "
                         f"{options.order}), seeds {list(self.search_seeds)} -> {out / SEARCH}")
            lines.append(f"2. a {self.selection_epochs}-epoch training of each searched cell -> "
                         f"{out / SELECTION}; the best {spec.selection_metric} is chosen")
            lines.append(f"3. {len(seeds)} trainings of the chosen cell, seeds {seeds} -> {out / RUNS}")
        else:
            done = [s for s, job in zip(seeds, self.finals) if read_result(job) is not None]
            todo = [s for s in seeds if s not in done]
            lines.append(f"cell: {self.arch or 'custom genotype'}; {len(seeds)} trainings, seeds {seeds} "
                         f"({len(done)} finished, skipped: {done or '-'})")
            if slots and options.launcher == "local" and todo:
                for slot, idx in zip(slots, plan_gpu_queue(len(todo), slots)):
                    if idx:
                        lines.append(f"  GPU {slot}: seeds {[todo[i] for i in idx]} if all runs take as long (the "
                                     "queue gives each next seed to the first GPUs that are free)")
        if self.baseline is not None:
            b = self.baseline
            lines.append(f"baseline: {b.n} random cells of the DARTS space (draw seed {b.seed}), each trained with "
                         f"the same recipe and seeds {seeds} -> {self.baseline_root}")
        recipe = recipe_name(self.work[-1][2] if self.work else self.finals[0].config if self.finals else {})
        lines += [f"training recipe: {recipe}"] if recipe else []
        target = self.target or "no published figure"
        if spec.dataset in comparable.OWN_DATA:
            lines.append(f"compared with: the random cells when --baseline is given ({comparable.OWN_DATA_REASON})")
        elif self.differences:
            lines.append(f"compared with: {target}, but NOT tested against it: not the paper's recipe "
                         f"({comparable.describe(self.differences)})")
        else:
            lines.append(f"compared with: {target}")
        return lines + estimate.data_and_time(spec, options, list(self.work))


def report_dir(options: ExperimentOptions, out: Path) -> Path:
    """Where the report goes, over the experiments found under it: ``results_dir`` when given, else the default
    results/ tree for a default --out (results/<experiment>-...), else the directory the user named, never its
    parent (with --out ~/x that would be all of $HOME, scanned, and a REPORT.md of the user's written over)."""
    if options.results_dir:
        return Path(options.results_dir)
    return out.parent if options.out is None else out


def _check_options(spec: ExperimentSpec, options: ExperimentOptions) -> None:
    if options.profile not in PROFILES:
        raise ValueError(f"unknown profile {options.profile!r}; expected one of {', '.join(PROFILES)}")
    given = [name for name, value in (("--arch", options.arch), ("--genotype", options.genotype),
                                      ("--search", options.search)) if value]
    if len(given) > 1:
        raise ValueError(f"give at most one of --arch, --genotype and --search (got {', '.join(given)})")
    if options.gpus and options.launcher == "slurm":
        raise ValueError("--gpus picks GPUs of this machine; with --launcher slurm each job gets its GPUs from "
                         "Slurm: drop --gpus (use --gpus-per-job for GPUs per run)")
    if options.launcher == "local" and (options.gpus or options.gpus_per_job != 1):
        gpu_slots(options.gpus, options.gpus_per_job)  # locally, runs of N GPUs take them from --gpus
    if options.search and spec.search_dataset is None:
        raise ValueError(f"--search is not available for {spec.name}: the paper searched on CIFAR-10 and PTB and "
                         f"transferred the cells. Run `python -m reproduce {'cifar10' if spec.cell == 'cnn' else 'ptb'}"
                         " --search`, then pass the chosen genotype (from its selection.json) with --genotype")
    if options.search and options.order not in (1, 2):
        raise ValueError(f"--order must be 1 or 2, got {options.order}")


def _selection_epochs(spec: ExperimentSpec, options: ExperimentOptions) -> int:
    if options.selection_epochs is not None:
        short = int(options.selection_epochs)
    else:
        short = spec.quick_selection_epochs if options.profile == "quick" else spec.selection_epochs
    if short < 1:
        raise ValueError(f"--selection-epochs must be >= 1, got {short}")
    return short


def _note(spec: ExperimentSpec, options: ExperimentOptions, reason: Optional[str]) -> str:
    if options.note:
        return options.note
    if reason is None:
        return spec.note
    if spec.dataset in comparable.OWN_DATA:
        return f"{spec.note}; {reason}"
    if options.profile != comparable.PAPER_PROFILE:
        return f"{spec.note}; profile {options.profile!r}: shortened recipes, NOT comparable with the paper's figures"
    return f"{spec.note}; NOT comparable with the paper's figures: {reason}"


def plan_experiment(options: ExperimentOptions) -> Plan:
    """Check the options, resolve what the experiment runs and build (and check) every config it can know now."""
    spec = get_spec(options.experiment)
    _check_options(spec, options)
    seeds = resolve_seeds(options.runs, options.seeds, spec.default_runs)
    baseline_spec = resolve_baseline(options.baseline, seeds)
    arch, genotype = None, None
    if options.genotype:
        genotype = canonical_genotype(options.genotype, spec.cell)
    elif not options.search:
        arch = options.arch or "DARTS_V2"
        genotype = canonical_genotype(arch, spec.cell, "--arch")
    out = Path(options.out) if options.out else default_out(spec, arch, genotype, options.search, options.order,
                                                            options.profile, method=options.method)
    runtime = runtime_overrides(options)
    quick = options.profile == "quick"
    train_base = {**(spec.quick if quick else {}), **options.train_overrides, **runtime, "experiment": spec.name,
                  "profile": options.profile}
    if arch:
        train_base.update(arch=arch, genotype="")
    # every final config is checked (and compared with runs already there) before anything runs; with --search
    # the cell comes later, and DARTS_V2 stands in for it in the checks and the time estimate
    finals = _final_jobs(spec, train_base, arch, genotype, seeds, out) if genotype is not None else []
    final_config = finals[0].config if finals else _config("train", spec.dataset, dict(train_base, seed=seeds[0]))
    differences = dict(comparable.recipe_differences("train", spec.dataset, final_config))
    stages: Dict[str, Any] = {}
    if options.search:
        stages = _search_stages(spec, options, out, train_base, runtime)
        differences.update(stages.pop("differences"))
        # the cells are not known yet, but the recipes of the selection's and the final runs already there are:
        # a changed recipe is refused now, not after days of searches
        check_recipes_of_runs(out / SELECTION, stages["selection_config"])
        check_recipes_of_runs(out / RUNS, final_config)
    reason = comparable.not_comparable_reason(options.profile, differences, spec.dataset)
    order = options.order if options.search else ORDER_OF_ARCH.get(arch)
    meta = {"experiment": spec.name, "dataset": spec.dataset, "arch": arch, "profile": options.profile,
            "order": order, "search": None, "comparable": reason is None,
            "recipe_differences": comparable.describe(differences) if differences else None,
            "note": _note(spec, options, reason)}
    if options.search:
        meta["search"] = {"order": options.order, "seeds": list(stages["search_seeds"]),
                          "short_epochs": stages["selection_epochs"]}
        if options.method != "darts":  # DARTS's experiment.json stays as it was
            meta["method"] = meta["search"]["method"] = options.method
    if genotype is not None:
        meta["genotype"] = genotype
    meta["target"] = (targets.target_key(meta, targets.load_targets(targets.project_paper_path()))
                      if options.target == "auto" else options.target)
    baseline_root = Path(options.baseline_dir) if options.baseline_dir else out / BASELINE_DIR
    baseline_jobs: List[Job] = []
    if baseline_spec is not None:
        meta["baseline"] = baseline.describe(baseline_spec, baseline_root, out)
        baseline_jobs = baseline.plan_jobs(spec, baseline_spec, train_base, seeds, baseline_root)
    if options.references:
        meta["references"] = list(options.references)
    saved = check_experiment_file(out, meta)
    where = report_dir(options, out)
    if options.report:  # a report of the user's in the way is refused now, not after the training
        check_ours(report_path(where, options.report_format), where / "figures")
    work = _work(finals, final_config, len(seeds), stages.pop("selection_config", None), stages, baseline_jobs)
    return Plan(spec=spec, options=options, out=out, seeds=tuple(seeds), arch=arch, genotype=genotype, meta=meta,
                saved_seeds=tuple((saved or {}).get("seeds") or ()), differences=differences, train_base=train_base,
                finals=tuple(finals), baseline=baseline_spec, baseline_root=baseline_root,
                baseline_jobs=tuple(baseline_jobs), report_dir=where, work=tuple(work), **stages)


def _search_stages(spec: ExperimentSpec, options: ExperimentOptions, out: Path, train_base: dict,
                   runtime: dict) -> Dict[str, Any]:
    """The searches' jobs and the selection's fields (checked now: a bad override fails before any search)."""
    seeds = list(options.search_seeds) if options.search_seeds is not None else list(DEFAULT_SEARCH_SEEDS)
    seeds = resolve_seeds(None, seeds, len(seeds))
    search_profile = dict(spec.quick_search) if options.profile == "quick" else {}
    # the recipe's defaults, not validated (one's own data has no default --data)
    paper_train = run_config.to_dict(config_class("train", spec.dataset)())
    held_out = searches_hold_out(spec, options, train_base, paper_train)
    searches = []
    for seed in seeds:
        overrides = {**search_profile, **options.search_overrides, **held_out, **runtime, "seed": seed,
                     "order": options.order}
        searches.append(_job("search", spec.search_dataset, overrides, run_dir(out, SEARCH, seed),
                             f"{spec.name} {options.method} search (order {options.order}) seed {seed}"))
    short = _selection_epochs(spec, options)
    selection_base = {**{k: v for k, v in train_base.items() if k not in ("arch", "genotype")},
                      **spec.selection_overrides, **options.selection_overrides, "epochs": short,
                      "experiment": f"{spec.name}-selection"}
    selection_config = _config("train", spec.dataset, dict(selection_base, seed=seeds[0]))
    differences = {f"search.{k}": v for k, v in
                   comparable.recipe_differences("search", spec.search_dataset, searches[0].config).items()}
    if short != spec.selection_epochs:
        differences["selection.epochs"] = (spec.selection_epochs, short)
    for k, v in options.selection_overrides.items():
        paper = spec.selection_overrides.get(k, paper_train.get(k))
        if v != paper:
            differences[f"selection.{k}"] = (paper, v)
    return {"search_seeds": tuple(seeds), "searches": tuple(searches), "selection_epochs": short,
            "selection_base": selection_base, "differences": differences, "selection_config": selection_config}


def _work(finals, final_config, n_seeds, selection_config, stages, baseline_jobs):
    """(count, kind, stand-in config) of the runs still to do, for the time estimate."""
    if stages:
        work = [(len(stages["searches"]), "search", stages["searches"][0].config),
                (len(stages["searches"]), "train", selection_config), (n_seeds, "train", final_config)]
    else:
        todo = [job for job in finals if read_result(job) is None]
        work = [(len(todo), "train", final_config)] if todo else []
    pending = [job for job in baseline_jobs if read_result(job) is None]
    if pending:  # the random cells train with the final runs' recipe: its config stands in for theirs
        work.append((len(pending), "train", final_config))
    return work
