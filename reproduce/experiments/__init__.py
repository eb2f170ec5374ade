"""The experiment driver: one call reruns a DARTS experiment over many seeds and reports on it.

``run_experiment(ExperimentOptions(experiment="cifar10", runs=10))`` trains the cell from scratch
with the paper's recipe once per seed (finished runs are skipped, interrupted ones resume), then
aggregates the records and writes the report. With ``search=True`` it runs the paper's whole
pipeline first (section 3.2): four searches with different seeds, a short training from scratch
of each derived cell (100 epochs on CIFAR-10 with held-out validation images, 300 on PTB), the
best by validation chosen, then the final trainings of that cell.

The path is straight: options -> :func:`plan_experiment` (a frozen :class:`Plan`, which ``--dry-run``
describes) -> :func:`execute` (the jobs of each stage) -> records -> summary and report. The
experiment directory's layout is :mod:`reproduce.layout`'s.

Profiles: ``paper`` (the recipes as published), ``quick`` (the same recipes with fewer epochs) and
``demo`` (tiny sizes for the demo); everything but ``paper`` is labelled as not comparable with the
paper in experiment.json and so in the report. Directories never mix profiles or configs.
"""
from .pipeline import execute, run_experiment
from .plan import Plan, canonical_genotype, default_out, parse_seeds, plan_experiment, resolve_seeds
from .spec import (
    DEFAULT_SEARCH_SEEDS,
    EXPERIMENTS,
    PROFILES,
    ExperimentMismatchError,
    ExperimentOptions,
    ExperimentResult,
    ExperimentSpec,
    get_spec,
)

__all__ = ["DEFAULT_SEARCH_SEEDS", "EXPERIMENTS", "PROFILES", "ExperimentMismatchError", "ExperimentOptions",
           "ExperimentResult", "ExperimentSpec", "Plan", "canonical_genotype", "default_out", "execute", "get_spec",
           "parse_seeds", "plan_experiment", "resolve_seeds", "run_experiment"]
