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
from .pipeline import run_experiment
from .plan import (
                   canonical_genotype,
                   default_out,
                   describe_plan,
                   parse_seeds,
                   plan_experiment,
                   resolve_seeds,
                   target_for,
)
from .spec import (
                   DEFAULT_SEARCH_SEEDS,
                   EXPERIMENT_FILE,
                   EXPERIMENTS,
                   PROFILES,
                   SELECTION_FILE,
                   ExperimentMismatchError,
                   ExperimentOptions,
                   ExperimentResult,
                   ExperimentSpec,
                   get_spec,
)
from .summary import load_target, summarize_records, summary_table

__all__ = ["DEFAULT_SEARCH_SEEDS", "EXPERIMENTS", "EXPERIMENT_FILE", "PROFILES", "SELECTION_FILE",
           "ExperimentMismatchError", "ExperimentOptions", "ExperimentResult", "ExperimentSpec", "canonical_genotype",
           "default_out", "describe_plan", "get_spec", "load_target", "parse_seeds", "plan_experiment",
           "resolve_seeds", "run_experiment", "summarize_records", "summary_table", "target_for"]
