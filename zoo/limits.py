"""Sizes the zoo's networks accept: checked before anything is allocated, so no file, config or
command line can make a network allocate without bound."""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional

import torch

from genotypes.quoting import quote

# Sizes a file or config may ask for: well above what the paper's families use (C 16-48, 8-20 cells,
# 1000 classes, 850 units, 33k-word vocabularies), far below what would exhaust memory.
SIZE_LIMITS = {"C": 256, "layers": 64, "num_classes": 100_000, "ntoken": 1_000_000, "ninp": 4096, "nhid": 4096,
               "nhidlast": 4096}

# Checkpoint files (an original release, a copy of one, a run's checkpoint.pt): the largest DARTS files are about
# 100 MB; these bounds keep a crafted file's cost in time and memory a small multiple of that.
MAX_CHECKPOINT_BYTES = 2 << 30
MAX_PICKLE_OPCODES = 500_000  # a state dict of 1000 tensors pickles in about 30 000
MAX_PICKLE_COPIES = 500_000  # items that constructors called by a pickle (set(list), ...) may copy in all

# Weights a network may have: 1 GB of float32, 50 times the largest DARTS network. Sizes within SIZE_LIMITS can still
# multiply past it (C=256 with 64 cells; a 1M-word vocabulary of 4096-wide embeddings), which would fail to allocate.
MAX_PARAMETERS = 250_000_000


def check_sizes(arch: str, args: Dict[str, Any]) -> None:
    """Refuse sizes no DARTS network has, naming the field and the limit, before anything is allocated."""
    for key, limit in SIZE_LIMITS.items():
        if key not in args:
            continue
        value = args[key]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
            raise ValueError(f"{arch} argument {key}={quote(value)} is out of range: it must be an integer from 1 to "
                             f"{limit} (the zoo's limit, well above the DARTS networks' sizes)")
    for key in ("dropout", "dropouth", "dropoutx", "dropouti", "dropoute"):
        if key in args and not (isinstance(args[key], (int, float)) and 0 <= args[key] <= 1):
            raise ValueError(f"{arch} argument {key}={quote(args[key])} must be a probability in [0, 1]")


def check_parameters(arch: str, bound: int, build_on_meta: Optional[Callable[[], Any]] = None) -> None:
    """Refuse, before anything is allocated, a network whose weights would exceed :data:`MAX_PARAMETERS`.

    ``bound`` is a cheap upper bound of its parameter count (the count itself when ``build_on_meta`` is None);
    only when it is over the limit is the network built on the meta device (no memory) and counted.
    """
    if bound <= MAX_PARAMETERS or torch.empty(0).device.type == "meta":  # the meta build itself passes here
        return
    count = bound
    if build_on_meta is not None:
        with torch.device("meta"):
            count = sum(p.numel() for p in build_on_meta().parameters())
    if count > MAX_PARAMETERS:
        raise ValueError(f"{arch} of these sizes would have {count:,} parameters ({4 * count / 2**30:.1f} GiB of "
                         f"float32 weights, before activations), more than the zoo's limit of {MAX_PARAMETERS:,}: "
                         f"choose a smaller C, layers, vocabulary or width")


__all__ = ["check_sizes", "check_parameters", "MAX_PARAMETERS", "SIZE_LIMITS", "MAX_CHECKPOINT_BYTES",
           "MAX_PICKLE_OPCODES", "MAX_PICKLE_COPIES"]
