"""Training from scratch with the paper's recipes: CIFAR-10, ImageNet, PTB, WikiText-2, and one's own images
and text (``images``: the CIFAR-10 recipe, or ImageNet's above 64 px; ``text``: the PTB recipe).

>>> from reproduce.train import train, RECIPES
>>> cfg = RECIPES["cifar10"](epochs=2, C=8, layers=5, limit=512)   # doctest: +SKIP
>>> record = train("cifar10", cfg, out="runs/c10-demo")              # doctest: +SKIP
>>> record["final"]["test_error"]                                    # doctest: +SKIP

``train`` returns the finished record (``kind`` "train", ``final`` metrics, per-epoch ``curve``);
a finished run directory is skipped, an interrupted one resumes from its last checkpoint.
``train`` and ``RECIPES`` (dataset -> config class) come from the table of tasks, :mod:`reproduce.tasks`.
"""
from ..runner import Rollback
from .recipes import (
    CIFAR10Config,
    ImageNetConfig,
    ImagesConfig,
    PTBConfig,
    TextConfig,
    WT2Config,
    resolve_genotype,
)

__all__ = ["train", "RECIPES", "CIFAR10Config", "ImageNetConfig", "ImagesConfig", "PTBConfig", "TextConfig",
           "WT2Config", "resolve_genotype",
           "Rollback"]


def __getattr__(name: str):
    if name in ("train", "RECIPES"):
        # reproduce.tasks (the table of tasks) imports this package's modules: imported at the top it would be a cycle
        from .. import tasks

        return tasks.train if name == "train" else tasks.datasets("train")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
