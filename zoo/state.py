"""Strict, explained state-dict loading shared by the zoo's networks."""
from __future__ import annotations

from collections import OrderedDict
from typing import Mapping, Optional

import torch

from genotypes.quoting import quote


class StateDictMismatchError(ValueError):
    """A state dict that does not fit the network; the message lists every difference."""


def _is_optional(key: str) -> bool:
    # PyTorch 0.3 (the original's checkpoints) had no num_batches_tracked buffers.
    return key.endswith("num_batches_tracked")


def _key(k) -> str:
    """A state-dict key for a message: as it is when it is a short name, else quoted briefly (it comes from a file)."""
    return k if isinstance(k, str) and len(k) <= 80 else quote(k, 80)


def _type_problem(v, own: torch.Tensor) -> Optional[str]:
    """Why a file's value cannot fill the model's tensor ``own`` beyond its shape, or None."""
    if not isinstance(v, torch.Tensor):
        return f"file {type(v).__name__} is not a tensor"
    if v.layout != torch.strided or v.is_meta or v.is_quantized:
        return f"file {v.layout} {'meta ' if v.is_meta else ''}tensor is not a plain one with values"
    # weights cast between float precisions; a bool, integer or complex tensor would be cast silently into nonsense
    if v.dtype == torch.bool or v.is_complex() or v.is_floating_point() != own.is_floating_point():
        return f"file dtype {v.dtype} cannot stand for the model's {own.dtype}"
    return None


def check_state_dict(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], limit: int = 20) -> None:
    """Raise StateDictMismatchError listing missing, unexpected, mis-typed and mis-shaped keys."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict and not _is_optional(k)]
    unexpected = [_key(k) for k in state_dict if k not in own]
    mistyped = [f"{_key(k)}: {_type_problem(v, own[k])}" for k, v in state_dict.items()
                if k in own and _type_problem(v, own[k])]
    misshaped = [f"{_key(k)}: file {quote(tuple(v.shape))} vs model {tuple(own[k].shape)}"
                 for k, v in state_dict.items()
                 if k in own and not _type_problem(v, own[k]) and tuple(v.shape) != tuple(own[k].shape)]
    if not (missing or unexpected or mistyped or misshaped):
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
        + block("type mismatches", mistyped)
        + block("shape mismatches", misshaped)
        + hint
        + "\n  check that the architecture arguments (C, layers, genotype, classes, auxiliary) match the checkpoint"
    )


def check_finite(state_dict: Mapping[str, torch.Tensor], where="the weights") -> None:
    """Every floating-point weight must be finite (NaN/inf means damaged weights): ValueError naming them."""
    # float8 has no isfinite of its own: checked as float32
    bad = [_key(k) for k, t in state_dict.items() if isinstance(t, torch.Tensor) and t.is_floating_point()
           and not t.is_meta and not torch.isfinite(t if t.element_size() > 1 else t.float()).all()]
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
