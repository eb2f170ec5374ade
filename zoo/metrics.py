"""Top-k accuracy: the one count that the harness's training recipes and ``zoo eval`` share."""
from __future__ import annotations

from typing import List, Sequence

import torch


def topk_correct(logits: torch.Tensor, y: torch.Tensor, ks: Sequence[int] = (1, 5)) -> List[torch.Tensor]:
    """Number of examples whose label is within the top-k logits, for each k (k capped at #classes)."""
    maxk = min(max(ks), logits.size(1))
    top = logits.topk(maxk, dim=1).indices
    hit = top == y.view(-1, 1)
    return [hit[:, :min(k, maxk)].any(1).sum() for k in ks]


__all__ = ["topk_correct"]
