"""Top-1 / top-5 error and loss accumulated over batches (the image evaluations share it)."""
from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F


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
        k = min(5, logits.size(1))
        self.has_top5 = self.has_top5 and logits.size(1) >= 5
        top = logits.topk(k, dim=1).indices
        hit = top.eq(target.view(-1, 1))
        self.correct1 += int(hit[:, 0].sum())
        self.correct5 += int(hit.any(dim=1).sum())
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


__all__ = ["TopK"]
