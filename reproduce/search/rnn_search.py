"""The recurrent-cell search on PTB (original rnn/train_search.py): the searcher the search task runs.

Under N processes each holds its columns of the global batch (and its slice of every dropout mask,
drawn for the global batch: ``RNNModel.share_batch``); the validation perplexity is computed whole on
every process (eval mode: it does not depend on the others).
"""
from __future__ import annotations

import functools
import math
from typing import List, Optional

import numpy as np
import torch
import torch.nn.functional as F

import genotypes
from zoo import datasets as zds
from zoo.evaluate import lm_loss

from .. import distributed
from ..data.text import TextCorpus, corpus_for
from ..device import progress_bar
from ..distributed import Dist
from ..optim import make_sgd
from ..train.lm import lm_train_step
from . import architect
from .config import PTBSearchConfig, TextSearchConfig
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
        corpus = corpus_for(config, "text" if isinstance(config, TextSearchConfig) else "ptb")
        self.data = PTBData(config.data, config.batch_size, config.eval_batch_size, device, share, corpus)
        self.data_record = corpus.describe() if isinstance(corpus, TextCorpus) else None  # one's own text
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
            valid_loss, seen = keeping_loss(self.loss_fn(hidden_valid, data_valid, targets_valid), self.d.world)
            if c.order == 1:
                grads, hidden_valid = architect.first_order(self.alphas, valid_loss, all_reduce=reduce)
            else:
                eta = self.w_opt.param_groups[0]["lr"]
                grads, hidden_valid = architect.second_order(
                    self.model, self.alphas, self.loss_fn(hidden, data, targets), valid_loss, eta,
                    weight_decay=c.weight_decay, clip=c.grad_clip, r=c.unrolled_eps, hold=self.held_in_virtual_step(),
                    all_reduce=reduce)
            self.arch_update(grads)

            self.w_opt.param_groups[0]["lr"] = lr2  # the weight step scales it itself
            stats: dict = {}
            raw_loss, hidden = lm_train_step(
                functools.partial(self.model, weights=self.alphas[0].detach()), self.w_opt, params, data, targets,
                hidden, seq_len=seq_len, bptt=c.bptt, clip=c.grad_clip, alpha=c.alpha, beta=c.beta, device=self.device,
                stats=stats, dist=self.d)
            lr_step, grad_norm = stats["lr"], stats["grad_norm"]
            loss_sum += raw_loss.double()
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

    def evaluate(self) -> dict:
        c, source = self.config, self.data.valid
        self.model.eval()
        weights = self.alphas[0]
        loss = lm_loss(lambda x, hidden: self.model(x, hidden, weights), source,
                       self.model.init_hidden(c.eval_batch_size), c.bptt)
        return {"valid_loss": loss, "valid_ppl": math.exp(min(loss, 700))}

    def genotype(self):
        return genotypes.derive.rnn(self.alphas[0])

    def final_metrics(self, row: dict) -> dict:
        return {k: row[k] for k in ("train_loss", "train_ppl", "valid_loss", "valid_ppl")}
