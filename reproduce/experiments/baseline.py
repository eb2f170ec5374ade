"""The experiment pipeline's random-architecture baseline (``--baseline random:N``): draw the cells,
build and check their training configs (the final runs' recipe and seeds), run them, record the draw.
What the baseline is and how it is compared: :mod:`reproduce.random_baseline`."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import List, Sequence

import genotypes
from zoo.fileio import atomic_write_json

from .. import random_baseline
from ..layout import BASELINE_FILE
from ..scheduler import Job
from ..tasks import make_config
from .spec import ExperimentMismatchError, ExperimentSpec, check_existing_run

log = logging.getLogger(__name__)


def describe(spec: random_baseline.BaselineSpec, root: Path, exp_dir: Path) -> dict:
    """experiment.json's "baseline": the draw, and where its runs live (relative to the experiment)."""
    try:
        where = Path(os.path.relpath(Path(root).resolve(), Path(exp_dir).resolve())).as_posix()
    except ValueError:  # Windows: on another drive there is no relative path
        where = str(Path(root).resolve())
    return {"kind": spec.kind, "n": spec.n, "draw_seed": spec.seed, "dir": where}


def plan_jobs(exp: ExperimentSpec, baseline: random_baseline.BaselineSpec, base: dict, seeds: Sequence[int],
              root: Path) -> List[Job]:
    """One training job per (random cell, seed) in the baseline directory ``root``, configs built and checked
    against runs on disk now."""
    _check_saved_draw(root, baseline, seeds)
    jobs = []
    for index, cell in enumerate(genotypes.sample.draw(exp.cell, baseline.n, baseline.seed)):
        text = genotypes.format(cell)
        for seed in seeds:
            overrides = dict(base, seed=seed, genotype=text, experiment=f"{exp.name}-random")
            run_dir = random_baseline.cell_dir(root, index) / f"seed-{seed}"
            # the job carries the built config to its run, which does not validate it again
            job = Job("train", exp.dataset, make_config("train", exp.dataset, overrides), str(run_dir),
                      name=f"{exp.name} random cell {index} seed {seed}")
            check_existing_run(run_dir, job.config)
            jobs.append(job)
    return jobs


def _check_saved_draw(root: Path, baseline: random_baseline.BaselineSpec, seeds: Sequence[int]) -> None:
    saved = random_baseline.read_meta(root)
    if saved is None:
        return
    path = Path(root) / BASELINE_FILE
    if saved.get("draw_seed") != baseline.seed or saved.get("kind") != baseline.kind:
        raise ExperimentMismatchError(
            f"{path.parent} holds random cells drawn with seed {saved.get('draw_seed')}, now asked for "
            f"{baseline.text}: use another --out directory, or the saved seed (--baseline random:N:"
            f"{saved.get('draw_seed')})")


def run(exp: ExperimentSpec, baseline: random_baseline.BaselineSpec, jobs: Sequence[Job], seeds: Sequence[int],
        root: Path, launch) -> dict:
    """Train the random cells and write ``baseline.json`` in the baseline directory ``root``; returns what it
    holds."""
    cells = []
    for index, cell in enumerate(genotypes.sample.draw(exp.cell, baseline.n, baseline.seed)):
        cells.append({"index": index, "genotype": genotypes.format(cell)})
    meta = dict(kind=baseline.kind, n=baseline.n, draw_seed=baseline.seed, seeds=[int(s) for s in seeds], cells=cells,
                about="cells drawn uniformly from the DARTS space by genotypes.sample.draw(kind, n, draw_seed), "
                      "trained with the final runs' recipe and seeds")
    log.info("%s: random baseline, %d cells x %d seeds (draw seed %d)", exp.name, baseline.n, len(seeds),
             baseline.seed)
    atomic_write_json(Path(root) / BASELINE_FILE, meta)
    records = launch(jobs, "random cells")
    per_cell = len(seeds)
    for i, cell in enumerate(cells):
        mine = records[i * per_cell:(i + 1) * per_cell]
        cell["parameters"] = mine[0].get("parameters") if mine else None
    atomic_write_json(Path(root) / BASELINE_FILE, meta)
    return meta

