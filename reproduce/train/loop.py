"""Training from scratch as a task of the one runner (:mod:`reproduce.runner`).

``train(dataset, config, out)`` resolves the recipe's config and genotype, and hands the recipe's
task (:class:`~reproduce.train.cifar.CIFARTask`, :class:`~reproduce.train.imagenet.ImageNetTask`
or :class:`~reproduce.train.lm.LMTask`) to the runner, which owns the run directory, the lock,
resume, the per-epoch metrics and checkpoint, and the record. Under ``torchrun`` every process
runs it (DDP, :mod:`reproduce.distributed`); only rank 0 writes files.
"""
from __future__ import annotations

import logging
from typing import Optional

import genotypes

from .. import config as run_config
from .. import distributed, runner
from ..rundir import RunDir
from .recipes import RECIPES, genotype_of

log = logging.getLogger(__name__)


def _task_class(dataset: str):
    if dataset in ("cifar10", "images"):
        from .cifar import CIFARTask
        return CIFARTask
    if dataset == "imagenet":
        from .imagenet import ImageNetTask
        return ImageNetTask
    from .lm import LMTask
    return LMTask


def as_config(dataset: str, config):
    """``config`` (None, a dict of overrides, or the recipe's dataclass) as the recipe's validated dataclass."""
    if dataset not in RECIPES:
        raise run_config.ConfigError(f"unknown dataset {dataset!r}; known: {', '.join(RECIPES)}")
    cls = RECIPES[dataset]
    if config is None:
        config = cls()
    elif isinstance(config, dict):
        config = run_config.build(cls, config)
    elif type(config) is not cls:
        raise run_config.ConfigError(f"the {dataset} recipe takes a {cls.__name__}, got {type(config).__name__}")
    run_config.validate(config)
    return config


class TrainingTask:
    """What the runner needs from a recipe: its task, plus the record fields of a training."""

    kind = "train"

    def __init__(self, dataset: str, config, genotype, d: distributed.Dist, rundir: RunDir, progress: bool,
                 data=None):
        self.dataset, self.config, self.genotype, self.d = dataset, config, genotype, d
        given = {} if data is None else {"data": data}  # images given from Python (train("images", ..., data=))
        self.recipe = _task_class(dataset)(config, genotype, d, progress, **given)
        self.recipe.rundir = rundir
        self.parameters = self.recipe.parameters

    @property
    def on_step(self):
        return self.recipe.on_step

    @on_step.setter
    def on_step(self, hook) -> None:  # the runner's step hook goes to the recipe, which takes the steps
        self.recipe.on_step = hook

    def run_epoch(self, epoch: int) -> dict:
        return self.recipe.run_epoch(epoch)

    def state_dict(self) -> dict:
        return self.recipe.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.recipe.load_state_dict(state)

    def final(self, curve: list) -> dict:
        return self.recipe.final(curve)

    def record_fields(self, curve: list) -> dict:
        fields = {"experiment": self.config.experiment or f"train-{self.dataset}",
                  "genotype": genotypes.format(self.genotype), "world_size": self.d.world, "epochs": self.config.epochs}
        if getattr(self.recipe, "data_record", None):  # one's own data: classes, channels, size, mean/std, splits
            fields["data"] = self.recipe.data_record
        return fields


def train(dataset: str, config=None, out=None, progress: bool = True, data=None) -> dict:
    """Train ``dataset``'s recipe (``config``: its config dataclass, a dict of overrides, or None
    for the paper's defaults) in run directory ``out``; return the finished record. For ``images``,
    ``data`` may give the images from Python (a Dataset, (images, labels) tensors or an ImageData).

    A finished directory is not run again: its record is returned. An interrupted one resumes.
    """
    if out is None:
        raise ValueError("train() needs an output run directory (out=...)")
    if data is not None and dataset != "images":
        raise ValueError(f"data= gives images from Python to the 'images' recipe, not to {dataset!r}")
    config = as_config(dataset, config)
    genotype = genotype_of(config, dataset)
    return runner.run(out, config,
                      lambda d, rundir, show: TrainingTask(dataset, config, genotype, d, rundir, show, data),
                      dist=lambda: distributed.setup(config.device), progress=progress)


def load_record(out) -> Optional[dict]:
    return RunDir(out).read_record()


__all__ = ["train", "load_record", "as_config"]
