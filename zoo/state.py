"""Strict, explained state-dict loading shared by the zoo's networks."""
from __future__ import annotations

from collections import OrderedDict
from typing import Mapping

import torch


class StateDictMismatchError(ValueError):
    """A state dict that does not fit the network; the message lists every difference."""


def _is_optional(key: str) -> bool:
    # PyTorch 0.3 (the original's checkpoints) had no num_batches_tracked buffers.
    return key.endswith("num_batches_tracked")


def check_state_dict(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], limit: int = 20) -> None:
    """Raise StateDictMismatchError listing missing, unexpected and mis-shaped keys."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict and not _is_optional(k)]
    unexpected = [k for k in state_dict if k not in own]
    misshaped = [
        f"{k}: file {type(v).__name__} is not a tensor" if not isinstance(v, torch.Tensor)
        else f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state_dict.items()
        if k in own and (not isinstance(v, torch.Tensor) or tuple(v.shape) != tuple(own[k].shape))
    ]
    if not (missing or unexpected or misshaped):
        return

    def block(title, items):
        if not items:
            return ""
        more = f"\n    ... and {len(items) - limit} more" if len(items) > limit else ""
        return f"\n  {title} ({len(items)}):\n    " + "\n    ".join(items[:limit]) + more

    hint = ""
    if unexpected and all(k.startswith("module.") for k in unexpected):
        hint = "\n  hint: keys start with 'module.' (saved from DataParallel); strip that prefix first"
    raise StateDictMismatchError(
        f"state dict does not fit {type(model).__name__}:"
        + block("missing keys", missing)
        + block("unexpected keys", unexpected)
        + block("shape mismatches", misshaped)
        + hint
        + "\n  check that the architecture arguments (C, layers, genotype, classes, auxiliary) match the checkpoint"
    )


def check_finite(state_dict: Mapping[str, torch.Tensor], where="the weights") -> None:
    """Every floating-point weight must be finite (NaN/inf means damaged weights): ValueError naming them."""
    bad = [k for k, t in state_dict.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise ValueError(f"{where}: non-finite values (NaN/inf) in {', '.join(bad[:5])}: the weights are damaged")


class StrictLoadMixin:
    """``load_state_dict`` that explains every mismatch before touching any weight.

    With ``strict=True`` (the default) nothing is loaded unless everything fits, so a bad file
    never leaves a half-loaded model.
    """

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        if strict:
            check_state_dict(self, state_dict)
            state_dict = _fill_optional(self, state_dict)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


def _fill_optional(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor]):
    """A copy of ``state_dict`` with absent ``num_batches_tracked`` buffers set to the model's own.

    PyTorch fills them itself only for dicts without version metadata (as the original's files
    are); a modern dict with the buffers deleted keeps BatchNorm's metadata and would fail.
    """
    own = model.state_dict()
    absent = [k for k in own if _is_optional(k) and k not in state_dict]
    if not absent:
        return state_dict
    filled = OrderedDict(state_dict)
    metadata = getattr(state_dict, "_metadata", None)
    if metadata is not None:
        filled._metadata = metadata
    for k in absent:
        filled[k] = own[k]
    return filled
