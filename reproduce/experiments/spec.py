"""What the paper's experiments are: their fixed facts (dataset, cell, search and selection settings,
quick-profile overrides), the options of one run of the driver, its result, and the checks of an experiment
directory already on disk against a new plan (another config or experiment there is refused)."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .. import config as run_config
from ..aggregate import Experiment
from ..jsonfile import read_json
from ..layout import EXPERIMENT_FILE, RUNS
from ..records import metrics_of
from ..rundir import RUNTIME_FIELDS, RunConfigMismatchError, RunDir
from ..scheduler import run_jobs
from ..slurm import SlurmOptions
from ..train.recipes import PROFILES  # noqa: F401 (re-exported: the experiments check profiles)

DEFAULT_SEARCH_SEEDS = (0, 1, 2, 3)


class ExperimentMismatchError(ValueError):
    """The output directory holds another experiment (other profile, genotype, order or config)."""


@dataclasses.dataclass(frozen=True)
class ExperimentSpec:
    """What is fixed about one of the paper's experiments."""

    name: str
    dataset: str  # the dataset of its training runs (reproduce.tasks.TASKS["train", dataset])
    cell: str  # the kind of cell it trains: "cnn" or "rnn"
    default_runs: int
    search_dataset: Optional[str] = None  # the dataset of its searches (TASKS["search", ...]); None: no search
    selection_epochs: int = 0
    selection_metric: str = ""
    selection_overrides: dict = dataclasses.field(default_factory=dict)
    quick: dict = dataclasses.field(default_factory=dict)  # training overrides of the quick profile
    quick_search: dict = dataclasses.field(default_factory=dict)
    quick_selection_epochs: int = 0
    note: str = ""

    @property
    def metrics(self) -> tuple:
        """The final metrics compared with the paper, lower is better (:data:`reproduce.records.METRICS`)."""
        return metrics_of(self.dataset)


EXPERIMENTS: Dict[str, ExperimentSpec] = {
    "cifar10": ExperimentSpec(
        name="cifar10", dataset="cifar10", cell="cnn", default_runs=10,
        search_dataset="cifar10", selection_epochs=100, selection_metric="valid_error",
        selection_overrides={"valid_split": 5000},
        quick={"epochs": 30}, quick_search={"epochs": 10}, quick_selection_epochs=10,
        note="CIFAR-10 test error (%) of the cell trained from scratch, paper recipe (600 epochs, cutout, auxiliary)"),
    "ptb": ExperimentSpec(
        name="ptb", dataset="ptb", cell="rnn", default_runs=3,
        search_dataset="ptb", selection_epochs=300, selection_metric="valid_ppl",
        quick={"epochs": 50}, quick_search={"epochs": 10}, quick_selection_epochs=20,
        note="Penn Treebank perplexity of the recurrent cell trained from scratch"),
    "imagenet": ExperimentSpec(
        name="imagenet", dataset="imagenet", cell="cnn", default_runs=1,
        quick={"epochs": 10},
        note="ImageNet (mobile setting) error of the cell searched on CIFAR-10"),
    "wt2": ExperimentSpec(
        name="wt2", dataset="wt2", cell="rnn", default_runs=3,
        quick={"epochs": 50},
        note="WikiText-2 perplexity of the recurrent cell searched on PTB"),
    # One's own images (--data DIR): the CIFAR-10 recipe (ImageNet's above 64 px) and search, the selection on a
    # stratified validation share of the training images; no target in reproduce.targets, so never compared with
    # the paper.
    "images": ExperimentSpec(
        name="images", dataset="images", cell="cnn", default_runs=3, search_dataset="images", selection_epochs=100,
        selection_metric="valid_error",
        selection_overrides={"valid_portion": 0.2},
        quick={"epochs": 30}, quick_search={"epochs": 10}, quick_selection_epochs=10,
        note="your own images (--data): test error (%) of the cell trained from scratch"),
}


@dataclasses.dataclass
class ExperimentOptions:
    experiment: str
    runs: Optional[int] = None
    seeds: Optional[Sequence[int]] = None
    arch: Optional[str] = None
    genotype: Optional[str] = None
    out: Optional[str] = None
    results_dir: Optional[str] = None  # where the report goes; default: pipeline.report_dir
    data: Optional[str] = None
    device: Optional[str] = None
    gpus: Sequence[str] = ()
    profile: str = "paper"
    search: bool = False
    order: int = 2
    method: str = "darts"  # the search method (reproduce.search.config): its recipe under search_overrides
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
    references: Optional[list] = None  # experiment.json "references": figures shown beside ours without a test
    baseline: Optional[str] = None  # "random:N[:SEED]": N random cells trained beside it (reproduce.random_baseline)
    # where the random cells' runs live (default <out>/baseline); experiments with the same training recipe,
    # seeds and draw may share one (the demo's two search orders do)
    baseline_dir: Optional[str] = None
    pool: Any = None  # a reproduce.run_pool.RunPool: runs side by side on this machine's cores (runtime only)

    def __post_init__(self):
        # the method selects the search config's recipe (reproduce.config.build applies it under the overrides)
        if self.method != "darts":
            self.search_overrides = {"method": self.method, **self.search_overrides}

    @property
    def gpus_per_job(self) -> int:
        """GPUs (and processes) per run: ``--gpus-per-job``, locally over ``--gpus`` as on Slurm."""
        return int((self.slurm or SlurmOptions()).gpus_per_job)

    def launch(self, jobs, desc: str) -> List[dict]:
        """Run ``jobs`` the way these options say (pool, local GPUs, Slurm or in this process); their records."""
        return run_jobs(jobs, gpus=self.gpus, launcher=self.launcher, slurm=self.slurm, progress=self.progress,
                        desc=desc, pool=self.pool, gpus_per_job=self.gpus_per_job)


@dataclasses.dataclass
class ExperimentResult:
    out: Path
    experiment: dict
    records: List[dict]
    selection: Optional[dict]
    summary: Dict[str, dict]  # metric -> reproduce.stats.summarize(...) of the usable final runs
    report: Optional[Path]
    measured: Optional[Experiment] = None  # the experiment directory as the report reads it (reproduce.aggregate)
    baseline: Optional[dict] = None  # baseline/baseline.json of --baseline: the draw and its cells
    baseline_comparison: List[dict] = dataclasses.field(default_factory=list)  # random_baseline.comparison_rows


def check_existing_run(run_dir: Path, config: dict, ignore: Sequence[str] = ()) -> None:
    """ExperimentMismatchError when ``run_dir`` holds a run (finished or not) with another config (the run-time
    fields and ``ignore`` aside)."""
    try:
        RunDir(run_dir).check_config(config, ignore=tuple(RUNTIME_FIELDS) + tuple(ignore))
    except RunConfigMismatchError as e:
        raise ExperimentMismatchError(str(e)) from None


def get_spec(name: str) -> ExperimentSpec:
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; known: {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name]


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


def check_other_seeds(out: Path, config: dict, seeds) -> None:
    """Refuse new seeds whose config differs (in anything but the seed) from the runs already in ``out``:
    the aggregation would refuse the mixture anyway, but only after all the training."""
    for path in sorted((out / RUNS).glob("seed-*/config.json")):
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
