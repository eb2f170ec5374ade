"""Whether a run used the paper's recipe: the one test that decides if its numbers are set against the paper's.

A run is the paper's recipe when every field of its config has the paper's value (the default of
its config dataclass), except the fields that say what is run (seed, genotype, search order,
experiment name, profile) and those that say where or how fast it runs without changing what it
computes (device, data path, threads, workers, deterministic kernels, channels_last, torch.compile,
CUDA graphs, the evaluation batch of the CNNs). Anything else, ``--epochs 1`` or ``--C 4`` as much
as ``--amp bf16``, makes the run "not comparable": it is reported, never tested against the paper.
Fields a config has that the recipe lacks (an older field name) cannot be judged and are skipped.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Tuple

from .config import ConfigError, build, canonical, to_dict
from .rundir import RUNTIME_FIELDS
from .tasks import TASKS

# The one profile whose runs are the paper's recipes; the others (quick, demo) shorten them.
PAPER_PROFILE = "paper"
# subset_seed: which images the ImageNet search draws (the authors' draw is not known; any seed is their recipe)
WHAT_IS_RUN = ("seed", "experiment", "profile", "arch", "genotype", "order", "subset_seed")
SPEED_FIELDS = ("deterministic", "channels_last", "compile", "cuda_graphs", "sync_bn")
# One's own data (``images``, ``text``): the paper has no figure for it, so no run on it is ever comparable, and its
# recipe's defaults (the CIFAR-10 and PTB recipes') are not "the paper's recipe" for it.
OWN_DATA = ("images", "text")
OWN_DATA_REASON = "own data: no paper target"
# The evaluation batch changes nothing for the CNNs; for the language models it changes how the text is cut.
SPEED_FIELDS_OF = {"cifar10": ("eval_batch_size",), "imagenet": ("eval_batch_size",)}


def _paper_config(kind: Optional[str], dataset: Optional[str], method: Optional[str]) -> Optional[Dict[str, Any]]:
    """The paper's config of a (kind, dataset), of the search ``method``'s recipe when the config names one."""
    if dataset in OWN_DATA:
        return None
    entry = TASKS.get((kind, dataset))
    if entry is None:
        return None
    cls = entry[0]
    recipes = getattr(cls, "method_recipes", {})
    return to_dict(build(cls, {"method": method}) if method in recipes else cls())


def recipe_differences(kind: Optional[str], dataset: Optional[str],
                       config: Optional[Mapping[str, Any]]) -> Dict[str, Tuple[Any, Any]]:
    """``{field: (paper's value, this run's value)}`` for every recipe field of a ``kind`` ("train" or
    "search") run on ``dataset`` whose config differs from the paper's; empty when it is the paper's
    recipe, or when there is no recipe to compare with (an unknown kind or dataset). A search that names its
    method (``method: pcdarts``) is compared with that method's recipe."""
    if not isinstance(config, Mapping):
        return {}
    paper = _paper_config(kind, dataset, config.get("method"))
    if paper is None:
        return {}
    try:
        config = canonical(dict(config))  # a record saved with the original's field names (lr, wdecay, ...)
    except ConfigError:  # the same field under both names: compare what is there
        pass
    skip = set(WHAT_IS_RUN) | set(RUNTIME_FIELDS) | set(SPEED_FIELDS) | set(SPEED_FIELDS_OF.get(dataset, ()))
    return {k: (paper[k], v) for k, v in sorted(config.items()) if k in paper and k not in skip and v != paper[k]}


def not_comparable_reason(profile: Optional[str], differences: Mapping[str, Tuple[Any, Any]],
                          dataset: Optional[str] = None) -> Optional[str]:
    """Why runs are not tested against the paper's figures, or None when they are: the one decision, made
    for the plan (experiment.json), the terminal summary and the report alike. ``differences``: the
    :func:`recipe_differences` of the runs' configs; ``dataset``: theirs (one's own data is never compared)."""
    if dataset in OWN_DATA:
        return OWN_DATA_REASON
    if (profile or PAPER_PROFILE) != PAPER_PROFILE:
        return f"profile {profile!r} is not the paper's recipe"
    if differences:
        return f"not the paper's recipe: {describe(differences)}"
    return None


def describe(differences: Mapping[str, Tuple[Any, Any]]) -> str:
    """``"C (paper 36, this run 4), epochs (paper 600, this run 1)"``."""
    return ", ".join(f"{k} (paper {a!r}, this run {b!r})" for k, (a, b) in differences.items())
