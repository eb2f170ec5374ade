"""The recurrent-cell search on PTB (original rnn/train_search.py): the searcher the search task runs."""
from __future__ import annotations

import math
from typing import List, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import genotypes
from zoo import datasets as zds

from .. import distributed
from ..device import progress_bar
from ..distributed import Dist
from ..optim import make_sgd
from . import architect
from .config import PTBSearchConfig
from .data import PTBData
from .rnn_supernet import RNNModelSearch
from .searcher import Searcher, StepHook, keeping_loss


def _detach_hidden(hidden):
    return [h.detach() for h in hidden]


class RNNSearch(Searcher):
    """Recurrent-cell search on PTB (original rnn/train_search.py)."""

    alpha_names = ("weights",)

    def __init__(self, config: PTBSearchConfig, device: torch.device, dist: Optional[Dist] = None):
        self.config, self.device = config, device
        share = (dist.rank, dist.world) if dist is not None else (0, 1)
        self.data = PTBData(config.data, config.batch_size, config.eval_batch_size, device, share)
        c = config
        self.model = RNNModelSearch(self.data.ntokens, c.emsize, c.nhid, c.nhidlast, c.dropout, c.dropouth,
                                    c.dropoutx, c.dropouti, c.dropoute).to(device)
        self.model.share_batch(*distributed.shard_range(0, c.batch_size, *share), c.batch_size)
        for cell in self.model.rnns:
            cell.batch_stats_in_eval = c.valid_bn == "batch"
        self.use_processes(dist)
        self.local_batch = self.data.train.size(1)
        self.alphas = self.model.new_alphas(device)
        self.w_opt = make_sgd(self.model.parameters(), lr=c.learning_rate, weight_decay=c.weight_decay)
        self.a_opt = torch.optim.Adam(self.alphas, lr=c.arch_learning_rate, weight_decay=c.arch_weight_decay)

    def held_in_virtual_step(self) -> List[torch.Tensor]:
        """The weights the second-order virtual step leaves at w: the tied embedding/decoder weight with
        ``virtual_step_tied_weight='held'`` (the original's code), none with 'stepped' (the paper's formula)."""
        return [self.model.encoder.weight] if self.config.virtual_step_tied_weight == "held" else []

    def loss_fn(self, hidden, data, targets):
        def loss():
            log_prob, hidden_next = self.model(data, hidden, self.alphas[0])
            # local mean / processes = local sum / global count (equal slices)
            return (F.nll_loss(log_prob.view(-1, log_prob.size(2)), targets) / self.d.world,
                    _detach_hidden(hidden_next))
        return loss

    def train_epoch(self, epoch: int, progress: bool, hook: Optional[StepHook]) -> dict:
        c, train, search = self.config, self.data.train, self.data.search
        hidden = self.model.init_hidden(self.local_batch)
        hidden_valid = self.model.init_hidden(self.local_batch)
        reduce = self.d.all_reduce_sum_
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        batches, i, step = 0, 0, 0
        total = max(1, (train.size(0) - 2) // c.bptt + 1)
        bar = progress_bar(None, total, f"search epoch {epoch}", progress)
        params = list(self.model.parameters())
        while i < train.size(0) - 1 - 1:
            bptt = c.bptt if np.random.random() < 0.95 else c.bptt / 2.0
            seq_len = int(bptt)
            lr2 = self.w_opt.param_groups[0]["lr"]
            self.w_opt.param_groups[0]["lr"] = lr2 * seq_len / c.bptt
            self.model.train()
            data_valid, targets_valid = zds.get_batch(search, i % (search.size(0) - 1), c.bptt)
            data, targets = zds.get_batch(train, i, seq_len)
            hidden, hidden_valid = _detach_hidden(hidden), _detach_hidden(hidden_valid)
            valid_loss, seen = keeping_loss(self.loss_fn(hidden_valid, data_valid, targets_valid))
            if c.order == 1:
                grads, hidden_valid = architect.first_order(self.alphas, valid_loss, all_reduce=reduce)
            else:
                eta = self.w_opt.param_groups[0]["lr"]
                grads, hidden_valid = architect.second_order(
                    self.model, self.alphas, self.loss_fn(hidden, data, targets), valid_loss, eta,
                    weight_decay=c.weight_decay, clip=c.grad_clip, r=c.unrolled_eps, hold=self.held_in_virtual_step(),
                    all_reduce=reduce)
            self.arch_update(grads)

            self.w_opt.zero_grad(set_to_none=True)
            log_prob, hidden, rnn_hs, dropped_rnn_hs = self.model(data, hidden, self.alphas[0].detach(), return_h=True)
            raw_loss = F.nll_loss(log_prob.view(-1, log_prob.size(2)), targets)
            loss = raw_loss
            if c.alpha > 0:
                loss = loss + c.alpha * dropped_rnn_hs[-1].pow(2).mean()
            loss = loss + c.beta * (rnn_hs[-1][1:] - rnn_hs[-1][:-1]).pow(2).mean()
            (loss / self.d.world).backward()  # every term a mean over equal slices: local sum / global count
            self.d.all_reduce_grads_(params)  # before the clip: the global norm
            grad_norm = nn.utils.clip_grad_norm_(params, c.grad_clip)
            self.w_opt.step()
            lr_step = self.w_opt.param_groups[0]["lr"]
            self.w_opt.param_groups[0]["lr"] = lr2
            loss_sum += raw_loss.detach().double()
            batches += 1
            i += seq_len
            if bar is not None:
                bar.update(1)
            if hook is not None:
                hook(epoch, step, {"train_loss": raw_loss.detach(), "arch_loss": seen["loss"], "lr": lr_step,
                                   "arch_lr": self.a_opt.param_groups[0]["lr"], "grad_norm": grad_norm.detach()})
            step += 1
        if bar is not None:
            bar.close()
        self.end_epoch_statistics()
        train_loss = float(self.d.all_reduce_sum(loss_sum).item()) / self.d.world / max(batches, 1)
        return {"lr": self.w_opt.param_groups[0]["lr"], "train_loss": train_loss,
                "train_ppl": math.exp(min(train_loss, 700))}

    @torch.no_grad()
    def evaluate(self) -> dict:
        c, source = self.config, self.data.valid
        self.model.eval()
        total = 0.0
        hidden = self.model.init_hidden(c.eval_batch_size)
        for i in range(0, source.size(0) - 1, c.bptt):
            data, targets = zds.get_batch(source, i, c.bptt)
            log_prob, hidden = self.model(data, hidden, self.alphas[0])
            total += F.nll_loss(log_prob.view(-1, log_prob.size(2)), targets).item() * len(data)
        loss = total / len(source)
        return {"valid_loss": loss, "valid_ppl": math.exp(min(loss, 700))}

    def genotype(self):
        return genotypes.derive.rnn(self.alphas[0])

    def final_metrics(self, row: dict) -> dict:
        return {k: row[k] for k in ("train_loss", "train_ppl", "valid_loss", "valid_ppl")}
