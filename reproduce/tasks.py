"""What the runner runs: one table from (kind, dataset) to (config class, task class), and how one run starts.

A *kind* is ``"train"`` (a training recipe, from scratch) or ``"search"`` (an architecture search). Each
task class implements the runner's task protocol (:mod:`reproduce.runner`) itself and is built as
``task_class(dataset, config, dist, rundir, progress)``; its config class is a dataclass whose defaults
are the paper's values. To add a dataset: write its config and task classes, add their line to
:data:`TASKS`, and the final metrics its tables report to :data:`reproduce.records.METRICS`.

:func:`run_task` takes the config as a dict of fields or a config instance, sets up the processes and hands the
task to the runner; :func:`train` and :func:`search` are its two kinds.

A run's config is built and validated once. An experiment's plan builds every config (``run_config.build``,
which marks what it validated) and its jobs carry that instance to :func:`run_task` in this process and, pickled
with its mark, to a worker pool's processes: neither validates it again. A job that crosses a process boundary
as JSON (the GPU queue's ``python -m reproduce.scheduler --job JSON``, a Slurm job) carries only the dict, and the
process that runs it builds and validates it once there: the validation depends on that machine (``num_threads``
against its cores, the device, the data path), so the check belongs where the run runs. A config made by hand or
with ``dataclasses.replace`` is validated here.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple, Type

from . import config as run_config
from . import distributed, runner
from .distributed import Dist
from .search.config import (
    CIFAR10SearchConfig,
    ImageNetSearchConfig,
    ImageSearchConfig,
    PTBSearchConfig,
    TextSearchConfig,
)
from .search.loop import SearchTask
from .search.searcher import with_processes
from .train.cifar import CIFARTask
from .train.imagenet import ImageNetTask
from .train.lm import LMTask
from .train.recipes import CIFAR10Config, ImageNetConfig, ImagesConfig, PTBConfig, TextConfig, WT2Config

KINDS = ("train", "search")

TASKS: Dict[Tuple[str, str], Tuple[Type, Type]] = {
    ("train", "cifar10"): (CIFAR10Config, CIFARTask),
    ("train", "imagenet"): (ImageNetConfig, ImageNetTask),
    ("train", "ptb"): (PTBConfig, LMTask),
    ("train", "wt2"): (WT2Config, LMTask),
    ("search", "cifar10"): (CIFAR10SearchConfig, SearchTask),
    ("search", "ptb"): (PTBSearchConfig, SearchTask),
    ("search", "imagenet"): (ImageNetSearchConfig, SearchTask),  # PC-DARTS's search on an ImageFolder tree
    # one's own data (docs/own-data.md): the CIFAR-10 and PTB recipes and searches on any image folder or text
    ("train", "images"): (ImagesConfig, CIFARTask),  # the CIFAR-10 or the ImageNet recipe (ImagesConfig.recipe)
    ("train", "text"): (TextConfig, LMTask),
    ("search", "images"): (ImageSearchConfig, SearchTask),
    ("search", "text"): (TextSearchConfig, SearchTask),
}
# The tasks that also take their images from Python (``data=``: a Dataset, (images, labels), an ImageData).
TAKES_DATA = (("train", "images"), ("search", "images"))



def datasets(kind: str) -> Dict[str, Type]:
    """dataset -> config class of the tasks of ``kind`` (e.g. the training recipes)."""
    return {dataset: cls for (k, dataset), (cls, _) in TASKS.items() if k == kind}


def config_class(kind: str, dataset: str) -> Type:
    if kind not in KINDS:
        raise ValueError(f"unknown kind of run {kind!r}; expected one of {', '.join(KINDS)}")
    if (kind, dataset) not in TASKS:
        what = "dataset" if kind == "train" else "search dataset"
        raise run_config.ConfigError(f"unknown {what} {dataset!r}; known: {', '.join(sorted(datasets(kind)))}")
    return TASKS[kind, dataset][0]


def make_config(kind: str, dataset: str, config=None, data=None):
    """``config`` (None: the paper's defaults; a dict of fields; or the config instance) as the validated config
    of the ``kind`` task of ``dataset``; ConfigError naming the field otherwise. A config class with ``with_recipe``
    (one's own images) gets the recipe its fields name, or the one the images of ``data`` (or of its ``data`` field)
    call for; an instance of it is taken as the fields that differ from the class's defaults."""
    cls = config_class(kind, dataset)
    with_recipe = getattr(cls, "with_recipe", None)
    if with_recipe is not None and type(config) is cls and config.recipe == "auto":
        defaults = run_config.to_dict(cls())
        config = {k: v for k, v in run_config.to_dict(config).items() if v != defaults[k]}
    if config is None or isinstance(config, dict):
        fields = config or {}
        return run_config.build(cls, with_recipe(fields, data) if with_recipe is not None else fields)
    if type(config) is not cls:
        raise run_config.ConfigError(f"the {kind} of {dataset} takes a {cls.__name__}, got {type(config).__name__}")
    return run_config.ensure_valid(config)  # validated unless run_config.build made it (the plan's configs)


def run_task(kind: str, dataset: str, config, out, progress: bool = True,
             callback: Optional[Callable[[int, int], None]] = None, data=None) -> dict:
    """Run (or resume, or return the finished record of) the ``kind`` task of ``dataset`` in run directory ``out``.

    The config is built and validated here, once for the run, unless it is an instance ``run_config.build`` made
    (a planned job's: the plan built and validated it, and it is not validated again). ``callback(epoch, step)``
    is called after every step of a search. Returns the finished record; a finished directory is not run again.
    """
    if out is None:
        raise ValueError(f"a {kind} run needs an output run directory (out=...)")
    config = make_config(kind, dataset, config, data)
    if kind == "search":  # the processes torchrun started, and the BatchNorm groups they imply, go in its config
        config = with_processes(config, distributed.world_size())
    task_class = TASKS[kind, dataset][1]
    extra = {"callback": callback} if callback is not None else {}
    if data is not None:
        if (kind, dataset) not in TAKES_DATA:
            raise ValueError(f"data= gives images from Python to the 'images' {kind}, not to {dataset!r}")
        extra["data"] = data

    def make_task(d: Dist, rundir, show: bool):
        return task_class(dataset, config, d, rundir, show, **extra)

    # a training and a search alike join the processes torchrun started (one process without torchrun)
    return runner.run(out, config, make_task, dist=lambda: distributed.setup(config.device), progress=progress)


def train(dataset: str, config=None, out=None, progress: bool = True, data=None) -> dict:
    """Train ``dataset``'s recipe (``config``: its config dataclass, a dict of fields, or None for the paper's
    defaults) in run directory ``out``; return the finished record. An interrupted run resumes. Under
    ``torchrun`` every process runs it (DDP, :mod:`reproduce.distributed`); only rank 0 writes files.
    ``images``: ``data`` may give the images from Python (a Dataset, (images, labels) tensors, an ImageData)."""
    return run_task("train", dataset, config, out, progress, data=data)


def search(dataset: str, config=None, out="runs/search", progress: bool = True,
           callback: Optional[Callable[[int, int], None]] = None, data=None) -> dict:
    """Run (or resume, or return the finished record of) an architecture search of ``dataset`` ('cifar10', 'ptb',
    'imagenet', or one's own 'images' / 'text'; ``data``: images given from Python, as for :func:`train`).
    Returns the record (``kind`` 'search', ``genotype`` the final genotype text, ``final`` metrics)."""
    return run_task("search", dataset, config, out, progress, callback, data)
