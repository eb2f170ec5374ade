"""Training from scratch with the paper's recipes: CIFAR-10, ImageNet, PTB, WikiText-2, and one's own images
and text (``images``: the CIFAR-10 recipe; ``text``: the PTB recipe).

>>> from reproduce.train import train, RECIPES
>>> cfg = RECIPES["cifar10"](epochs=2, C=8, layers=5, limit=512)   # doctest: +SKIP
>>> record = train("cifar10", cfg, out="runs/c10-demo")              # doctest: +SKIP
>>> record["final"]["test_error"]                                    # doctest: +SKIP

``train`` returns the finished record (``kind`` "train", ``final`` metrics, per-epoch ``curve``);
a finished run directory is skipped, an interrupted one resumes from its last checkpoint.
"""
from ..runner import Rollback
from .loop import train
from .recipes import (
    RECIPES,
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
