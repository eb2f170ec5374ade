"""timm's backbone conventions for the conv networks: input channels other than RGB, and feature maps.

:func:`adapt_input_conv` turns a pretrained RGB stem convolution into one for ``in_chans`` inputs the
way timm does (``timm.models.adapt_input_conv``): for one channel the three RGB filters are summed
(a grey image then gives what the RGB network gives for that image in all three channels); for more
channels the RGB filters are repeated over the channels and scaled by ``3 / in_chans``, so that the
stem's output keeps its scale for inputs of the same statistics.

:class:`FeatureInfo` describes the feature maps a network returns with ``features_only=True``: one
per resolution, the output of the last module at each stride, as timm's ``feature_info`` does
(``channels()``, ``reduction()``, ``module_name()``).
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch

# in_chans a file or config may ask for: far above any imaging modality's band count, far below what
# would exhaust memory in the stem.
MAX_IN_CHANS = 1024


def check_in_chans(arch: str, in_chans) -> int:
    if isinstance(in_chans, bool) or not isinstance(in_chans, int) or not 1 <= in_chans <= MAX_IN_CHANS:
        raise ValueError(f"{arch} argument in_chans={in_chans!r} is out of range: it must be an integer from 1 "
                         f"to {MAX_IN_CHANS}")
    return in_chans


def adapt_input_conv(in_chans: int, weight: torch.Tensor) -> torch.Tensor:
    """An ``[out, 3, k, k]`` RGB convolution weight adapted to ``in_chans`` input channels (timm's rule)."""
    if weight.dim() != 4:
        raise ValueError(f"expected a conv weight [out, in, k, k], got shape {tuple(weight.shape)}")
    if in_chans == weight.shape[1]:
        return weight.clone()
    if weight.shape[1] != 3:
        raise ValueError(f"only an RGB (3-channel) stem is adapted to other input channels; this one reads "
                         f"{weight.shape[1]}")
    dtype = weight.dtype
    w = weight.float()  # sums in float32 even for half-precision weights
    if in_chans == 1:
        w = w.sum(dim=1, keepdim=True)
    else:
        w = w.repeat(1, math.ceil(in_chans / 3), 1, 1)[:, :in_chans] * (3.0 / in_chans)
    return w.to(dtype)


def adapt_mean_std(values: Sequence[float], in_chans: int) -> List[float]:
    """Per-channel normalisation for ``in_chans`` inputs from RGB figures, as the stem is adapted: their
    average for one channel, the RGB figures repeated over the channels for more."""
    values = [float(v) for v in values]
    if in_chans == len(values):
        return values
    if in_chans == 1:
        return [sum(values) / len(values)]
    return [values[i % len(values)] for i in range(in_chans)]


class FeatureInfo:
    """The feature maps of a backbone: per map its module's name, channels and reduction (stride)."""

    def __init__(self, info: Sequence[Dict], out_indices: Sequence[int]):
        self.info = [dict(i) for i in info]
        self.out_indices = tuple(out_indices)

    def _get(self, key: str, idx: Optional[Union[int, Sequence[int]]]):
        picked = [self.info[i][key] for i in self.out_indices]
        if idx is None:
            return picked
        if isinstance(idx, int):
            return picked[idx]
        return [picked[i] for i in idx]

    def channels(self, idx=None):
        return self._get("num_chs", idx)

    def reduction(self, idx=None):
        return self._get("reduction", idx)

    def module_name(self, idx=None):
        return self._get("module", idx)

    def get_dicts(self) -> List[Dict]:
        return [dict(self.info[i]) for i in self.out_indices]

    def __getitem__(self, i: int) -> Dict:
        return self.get_dicts()[i]

    def __len__(self) -> int:
        return len(self.out_indices)

    def __repr__(self) -> str:
        return f"FeatureInfo({self.get_dicts()})"


def last_module_per_stride(modules: Sequence[Tuple[str, int, int]]) -> List[Dict]:
    """From ``(name, stride, channels)`` in forward order, the last module at each stride (strides grow)."""
    out: List[Dict] = []
    for name, stride, chs in modules:
        item = {"module": name, "num_chs": int(chs), "reduction": int(stride)}
        if out and out[-1]["reduction"] == stride:
            out[-1] = item
        else:
            out.append(item)
    return out


def resolve_out_indices(out_indices: Optional[Sequence[int]], count: int) -> Tuple[int, ...]:
    """timm's ``out_indices``: indices into the feature maps, negative ones from the end; None is all of them."""
    if out_indices is None:
        return tuple(range(count))
    if isinstance(out_indices, int):
        raise ValueError(f"out_indices must be a sequence of indices (e.g. (1, 2, 3)), not {out_indices!r}")
    resolved = []
    for i in out_indices:
        if isinstance(i, bool) or not isinstance(i, int) or not -count <= i < count:
            raise ValueError(f"out_indices {tuple(out_indices)}: {i!r} is not an index of the {count} feature maps")
        resolved.append(i % count)
    if not resolved or sorted(set(resolved)) != resolved:
        raise ValueError(f"out_indices {tuple(out_indices)} must name distinct feature maps in increasing order")
    return tuple(resolved)


__all__ = ["adapt_input_conv", "adapt_mean_std", "check_in_chans", "FeatureInfo", "last_module_per_stride",
           "resolve_out_indices", "MAX_IN_CHANS"]
