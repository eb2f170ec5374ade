"""Optional dependencies: one place that says which extra brings a package, and one error when it is missing.

``pip install darts-zoo`` gives the zoo alone; the harness and the other features come as extras
(pyproject.toml): a feature imports its package through :func:`require`, so that a missing one is one
line naming the install command instead of a traceback.
"""
from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType
from typing import Iterable, List

# import name -> the extra that installs it (the pyproject.toml extras)
EXTRA_OF = {
    "scipy": "harness",
    "tabulate": "harness",
    "matplotlib": "harness",
    "graphviz": "harness",
    "filelock": "harness",
    "yaml": "harness",
    "submitit": "slurm",
    "sklearn": "demo",
    "tensorboard": "tensorboard",
    "wandb": "wandb",
    "onnx": "onnx",
    "onnxscript": "onnx",
    "onnxruntime": "onnx",
}

# what `python -m reproduce` needs beyond the zoo
HARNESS = ("scipy", "tabulate", "matplotlib", "filelock", "yaml")


class MissingExtraError(ModuleNotFoundError):
    """An optional package is not installed; the message names the pip command that installs it."""


def install_hint(modules: Iterable[str]) -> str:
    extras = sorted({EXTRA_OF.get(m.split(".")[0], m) for m in modules})
    return f"pip install 'darts-zoo[{','.join(extras)}]'"


def missing(modules: Iterable[str]) -> List[str]:
    """The import names among ``modules`` that cannot be found (nothing is imported)."""
    return [m for m in modules if importlib.util.find_spec(m) is None]


def require(module: str, feature: str) -> ModuleType:
    """Import ``module`` for ``feature`` (e.g. "--launcher slurm"), or raise :class:`MissingExtraError`."""
    top = module.split(".")[0]
    if importlib.util.find_spec(top) is None:
        raise MissingExtraError(f"{feature} needs the package {top!r}: {install_hint([top])}", name=top)
    return importlib.import_module(module)


__all__ = ["EXTRA_OF", "HARNESS", "MissingExtraError", "install_hint", "missing", "require"]
