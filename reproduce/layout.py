"""The experiment directory: the names of its files and parts, written by the plan and read by the report.

::

    experiment.json            what the experiment is (written atomically)
    runs/seed-<S>/             final training runs (config.json, metrics.jsonl, record.json, ...)
    search/seed-<S>/           with --search: the search runs
    selection/seed-<S>/        with --search: the short training of the cell of search seed S
    selection.json             with --search: the candidates, their validation figures, the choice
    baseline/                  with --baseline: the random cells (reproduce.random_baseline)
"""
from __future__ import annotations

from pathlib import Path

EXPERIMENT_FILE, SELECTION_FILE = "experiment.json", "selection.json"
QUEUE_LOG = "log.txt"  # a run's output when the GPU queue starts it in its own process
SLURM_JOB = "slurm_job.json"  # the Slurm job a run was submitted as (reproduce.slurm)
RUNS, SEARCH, SELECTION = "runs", "search", "selection"


def run_dir(out, part: str, seed: int) -> Path:
    """The run directory of ``seed`` in ``part`` (:data:`RUNS`, :data:`SEARCH`, :data:`SELECTION`) of ``out``."""
    return Path(out) / part / f"seed-{seed}"
