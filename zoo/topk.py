"""Top-1 / top-5 error and loss accumulated over batches (the image evaluations and the training recipes share it)."""
from __future__ import annotations

from typing import Dict, List, Sequence

import torch
import torch.nn.functional as F


def topk_correct(logits: torch.Tensor, y: torch.Tensor, ks: Sequence[int] = (1, 5)) -> List[torch.Tensor]:
    """Number of examples whose label is within the top-k logits, for each k (k capped at #classes): the one
    count of the harness's training recipes and of ``zoo eval``."""
    maxk = min(max(ks), logits.size(1))
    top = logits.topk(maxk, dim=1).indices
    hit = top == y.view(-1, 1)
    return [hit[:, :min(k, maxk)].any(1).sum() for k in ks]


class TopK:
    """Top-1 / top-5 hits and the summed cross-entropy over batches of logits."""

    def __init__(self):
        self.n = 0
        self.correct1 = 0
        self.correct5 = 0
        self.loss = 0.0
        self.has_top5 = True

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        logits = logits.float()
        self.has_top5 = self.has_top5 and logits.size(1) >= 5
        correct1, correct5 = topk_correct(logits, target)
        self.correct1 += int(correct1)
        self.correct5 += int(correct5)
        self.loss += float(F.cross_entropy(logits, target, reduction="sum"))
        self.n += target.numel()

    def metrics(self) -> Dict[str, float]:
        if not self.n:
            raise ValueError("the evaluation set is empty")
        out = {"top1_error": 100.0 * (1 - self.correct1 / self.n)}
        if self.has_top5:
            out["top5_error"] = 100.0 * (1 - self.correct5 / self.n)
        out["loss"] = self.loss / self.n
        return out


__all__ = ["TopK", "topk_correct"]
