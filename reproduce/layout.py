"""Where each file lives: the names of the files and parts of an experiment directory and of a run directory,
defined here once and imported by the modules that write and read them (docs/design.md).

The experiment directory::

    experiment.json            what the experiment is (written atomically)
    runs/seed-<S>/             final training runs (run directories)
    search/seed-<S>/           with --search: the search runs
    selection/seed-<S>/        with --search: the short training of the cell of search seed S
    selection.json             with --search: the candidates, their validation figures, the choice
    baseline/                  with --baseline: the random cells (reproduce.random_baseline): baseline.json and
                               cell-<i>/seed-<S>/

A run directory (reproduce.rundir)::

    config.json, metrics.jsonl, checkpoint.pt, record.json, .lock
    best.pt                    a language model's best epoch
    genotypes.jsonl, alphas.jsonl, subsets.json   a search's genotypes and architecture by epoch; the ImageNet
                                                  search's draw of subsets
    log.txt, slurm_job.json    what the launchers write there (the GPU queue's output, the Slurm job)
"""
from __future__ import annotations

from pathlib import Path

# the experiment directory
EXPERIMENT_FILE, SELECTION_FILE = "experiment.json", "selection.json"
RUNS, SEARCH, SELECTION = "runs", "search", "selection"
BASELINE_DIR, BASELINE_FILE = "baseline", "baseline.json"

# a run directory
CONFIG, METRICS_FILE, CHECKPOINT, RECORD = "config.json", "metrics.jsonl", "checkpoint.pt", "record.json"
BEST = "best.pt"  # the language model's best epoch (reproduce.train.lm)
LOCK = ".lock"
GENOTYPES, ALPHAS = "genotypes.jsonl", "alphas.jsonl"  # a search's, one line per epoch (reproduce.search.loop)
SUBSETS = "subsets.json"  # the ImageNet search's draw of images (reproduce.search.imagenet)
QUEUE_LOG = "log.txt"  # a run's output when the GPU queue starts it in its own process
SLURM_JOB = "slurm_job.json"  # the Slurm job a run was submitted as (reproduce.slurm)


def run_dir(out, part: str, seed: int) -> Path:
    """The run directory of ``seed`` in ``part`` (:data:`RUNS`, :data:`SEARCH`, :data:`SELECTION`) of ``out``."""
    return Path(out) / part / f"seed-{seed}"
