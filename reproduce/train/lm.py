"""Penn Treebank / WikiText-2 training (original rnn/train.py, awd-lstm-lm style).

Per step (as the original): a sequence length is drawn, ``bptt`` with probability 0.95 else
``bptt / 2``, then ``seq_len = max(5, int(normal(that, 5)))``, capped at ``bptt + 20``; the
learning rate is scaled by ``seq_len / bptt`` for that step only; the hidden state is carried
over (detached) between steps; the loss is the NLL plus temporal activation regularisation
``beta * mean((h[t+1] - h[t])^2)`` on the cell's outputs (and AR ``alpha``, 0 by default);
gradients are clipped to norm 0.25; SGD with lr 20 and weight decay 8e-7.

Per epoch: validation with batch size 10; while on SGD, the run switches to averaged SGD
(``ASGD(t0=0, lambd=0)``, the same lr) when the validation loss is worse than the best of all
epochs but the last ``nonmono`` (>= 1: with 0 that set is empty, and the original fails on it, so 0 is
refused); on ASGD, validation uses the averaged weights. Whenever the
validation loss improves, the weights (the averaged ones on ASGD, as the original saved them)
and the optimizer are kept as the best checkpoint (``best.pt``). At the end the best weights
are evaluated on validation (batch 10) and test (batch 1).

Quirks of the original kept because they move the numbers:

- evaluation divides the summed loss by the number of *rows* of the batchified data, one more
  than the number of predicted rows, so perplexities are very slightly optimistic;
- ASGD takes its step with the learning rate of the *previous* step (its ``eta`` is refreshed
  after the update), so the per-step lr rescaling lags one step on ASGD;
- the list of past validation losses that decides the switch is not restored on a rollback.

A non-finite training loss rolls back to the best checkpoint (weights and optimizer) and
continues from the epoch after it, as the original did; ``nan_rollbacks`` bounds how often.
"""
from __future__ import annotations

import logging
import math
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

import zoo
from zoo.datasets import batchify, get_batch
from zoo.evaluate import lm_loss

from .. import config as run_config
from .. import distributed
from ..config import ConfigError
from ..data.split import data_identity
from ..data.text import corpus_for
from ..device import autocast, progress_bar
from ..layout import BEST
from ..optim import make_sgd
from ..rundir import NonFiniteError, RunDir
from ..runner import Rollback, config_digest
from .common import RecipeTask, maybe_compile, seed_epoch

log = logging.getLogger(__name__)

NAN_CHECK_EVERY = 50  # steps between checks for a non-finite loss (each check waits for the device)


def lm_train_step(model, optimizer, params, x, targets, hidden, *, seq_len: int, bptt: int, clip: float,
                  alpha: float, beta: float, device: torch.device, amp: str = "none", stats: Optional[dict] = None,
                  dist: Optional[distributed.Dist] = None):
    """One weight step of the original rnn/train.py (and of rnn/train_search.py, whose supernet ``model`` is
    called with its architecture weights bound); returns (raw NLL as a device tensor, new hidden state);
    ``stats`` (a dict, for the live logs) gets the step's learning rate and gradients' norm before clipping.

    ``model(x, hidden, return_h=True)`` gives (log_prob, hidden, outputs, dropped outputs). The learning rate
    is scaled by seq_len / bptt for this step only; the hidden state is detached from the previous step; the
    loss adds AR (alpha) and TAR (beta) on the cell outputs. ``dist``: the search's processes, whose gradients
    are summed here (a training's are summed by DDP).
    """
    lr2 = optimizer.param_groups[0]["lr"]
    optimizer.param_groups[0]["lr"] = lr2 * seq_len / bptt
    hidden = [h.detach() for h in hidden]
    with autocast(device, amp):
        log_prob, hidden, rnn_hs, dropped_rnn_hs = model(x, hidden, return_h=True)
        raw_loss = F.nll_loss(log_prob.view(-1, log_prob.size(2)).float(), targets)
        loss = raw_loss
        if alpha > 0:
            loss = loss + sum(alpha * h.float().pow(2).mean() for h in dropped_rnn_hs[-1:])
        loss = loss + sum(beta * (h[1:] - h[:-1]).float().pow(2).mean() for h in rnn_hs[-1:])
    optimizer.zero_grad(set_to_none=True)
    if dist is not None and dist.enabled:  # the search (no DDP): local sum / global count, summed before the clip
        (loss / dist.world).backward()
        dist.all_reduce_grads_(params)
    else:
        loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(params, clip, foreach=True)
    optimizer.step()
    if stats is not None:
        stats.update(lr=optimizer.param_groups[0]["lr"], grad_norm=grad_norm.detach())
    optimizer.param_groups[0]["lr"] = lr2
    return raw_loss.detach(), hidden


class LMTask(RecipeTask):
    def __init__(self, dataset: str, config, d: distributed.Dist, rundir: RunDir, progress: bool):
        super().__init__(dataset, config, d, rundir, progress)
        dev = self.device
        self.local_batch = d.local_batch(config.batch_size)
        corpus = corpus_for(config, dataset)
        if dataset == "text":  # one's own text: its vocabulary and unknown words go to the record
            self.data_record = corpus.describe()
        self.ntokens = len(corpus.dictionary)
        train, valid, test = corpus.train, corpus.valid, corpus.test
        if config.limit:
            train = train[:config.limit]
        if config.limit_eval:
            valid, test = valid[:config.limit_eval], test[:config.limit_eval]
        train_data = batchify(train, config.batch_size)
        if train_data.size(0) < 3:
            raise ConfigError(f"{config.data}: {len(train)} training tokens are too few for batch size "
                              f"{config.batch_size} (need at least 3 tokens per column)")
        lo = d.rank * self.local_batch
        self.train_data = train_data[:, lo:lo + self.local_batch].contiguous().to(dev)
        self.val_data = batchify(valid, config.eval_batch_size).to(dev)
        self.test_data = batchify(test, config.test_batch_size).to(dev)
        for name, data, bs in (("valid", self.val_data, config.eval_batch_size),
                               ("test", self.test_data, config.test_batch_size)):
            if data.size(0) < 2:
                raise ConfigError(f"{config.data}: the {name} split is too small for batch size {bs}")
        self.model = zoo.RNNModel(self.ntokens, config.emsize, config.nhid, config.nhidlast, config.dropout,
                                  config.dropouth, config.dropoutx, config.dropouti, config.dropoute,
                                  genotype=self.genotype).to(dev)
        self.parameters = zoo.count_parameters(self.model, exclude_auxiliary=False)
        self.params = list(self.model.parameters())
        self.train_model = maybe_compile(distributed.wrap(self.model, d), config.compile, config.epochs)
        self.asgd = False
        self.optimizer = self._optimizer(False)
        self.val_history = []   # the original's best_val_loss: validation losses of the SGD epochs
        self.stored_loss = 1e8  # best validation loss so far
        self.best_epoch = -1
        self.rollbacks = 0

    def _optimizer(self, asgd: bool) -> torch.optim.Optimizer:
        cfg = self.config
        if asgd:
            return torch.optim.ASGD(self.params, lr=cfg.learning_rate, t0=0, lambd=0.0, weight_decay=cfg.weight_decay)
        return make_sgd(self.params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "asgd": self.asgd,
                 "val_history": list(self.val_history), "stored_loss": float(self.stored_loss),
                 "best_epoch": self.best_epoch, "rollbacks": self.rollbacks}
        if self.data_record is not None:  # one's own text: the resumed run must read the same corpus
            state["data"] = data_identity(self.data_record)
        return state

    def load_state_dict(self, state: dict) -> None:
        if self.data_record is not None and "data" in state and state["data"] != data_identity(self.data_record):
            raise ValueError(f"the run trained on another corpus than {self.config.data} holds now (its vocabulary "
                             "or its text differs): restore it, or start afresh in another --out directory")
        self.model.load_state_dict(state["model"])
        self.asgd = bool(state["asgd"])
        self.optimizer = self._optimizer(self.asgd)
        self.optimizer.load_state_dict(state["optimizer"])
        self.val_history = [float(v) for v in state["val_history"]]
        self.stored_loss = float(state["stored_loss"])
        self.best_epoch = int(state["best_epoch"])
        self.rollbacks = int(state["rollbacks"])

    def _save_best(self, epoch: int) -> None:
        self.best_epoch = epoch
        if self.d.is_main:
            # tied to the config as the run's checkpoint is, so that export can tell it is this run's
            state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "asgd": self.asgd,
                     "epoch": epoch + 1, "config_digest": config_digest(run_config.to_dict(self.config))}
            self.rundir.save_checkpoint(state, name=BEST)  # checksummed, as the run's checkpoint

    def _load_best(self) -> Optional[dict]:
        """This run's best checkpoint (checksum verified), or None: none yet, or a best.pt of another run (another
        config, or an epoch this run's state does not name: left behind after its checkpoint.pt was deleted)."""
        best = self.rundir.load_checkpoint(map_location="cpu", name=BEST)
        if best is None or best.get("config_digest") != config_digest(run_config.to_dict(self.config)) \
                or int(best.get("epoch", 0)) - 1 != self.best_epoch:
            return None
        return best

    # -- one epoch -----------------------------------------------------------------------------
    def _train(self, epoch: int):
        cfg, d, dev = self.config, self.d, self.device
        model, data = self.train_model, self.train_data
        model.train()
        hidden = self.model.init_hidden(self.local_batch)
        total = torch.zeros((), device=dev, dtype=torch.float64)
        steps, i = 0, 0
        bar = progress_bar(None, data.size(0) // cfg.bptt, f"epoch {epoch}", self.progress)  # steps are random
        while i < data.size(0) - 1 - 1:
            bptt = cfg.bptt if np.random.random() < 0.95 else cfg.bptt / 2.0
            seq_len = max(5, int(np.random.normal(bptt, 5)))
            seq_len = min(seq_len, cfg.bptt + cfg.max_seq_len_delta)
            x, targets = get_batch(data, i, seq_len)
            stats = {} if self.on_step is not None else None
            raw_loss, hidden = lm_train_step(model, self.optimizer, self.params, x, targets, hidden,
                                             seq_len=seq_len, bptt=cfg.bptt, clip=cfg.grad_clip, alpha=cfg.alpha,
                                             beta=cfg.beta, device=dev, amp=cfg.amp, stats=stats)
            if stats is not None:
                self.on_step(epoch, steps, {"train_loss": raw_loss, **stats})
            total += raw_loss.detach().double()
            steps += 1
            i += seq_len
            if bar is not None:
                bar.update()
            if steps % NAN_CHECK_EVERY == 0 and not self._finite(total):
                break
        if bar is not None:
            bar.close()
        if not self._finite(total):
            return None
        return float(d.all_reduce_sum(total.clone()).item()) / d.world / steps

    def _finite(self, total: torch.Tensor) -> bool:
        flag = torch.tensor([0.0 if torch.isfinite(total) else 1.0], device=self.device)
        return float(self.d.all_reduce_sum(flag).item()) == 0.0

    def _rollback(self, epoch: int):
        best = self._load_best()
        if best is None or self.rollbacks >= self.config.nan_rollbacks:
            why = ("no better checkpoint to roll back to yet" if best is None
                   else f"already rolled back {self.rollbacks} times (nan_rollbacks)")
            raise NonFiniteError(f"the training loss became non-finite at epoch {epoch} ({why}): the run stopped "
                                 "and wrote no result. Lower the learning rate or check the data.")
        self.rollbacks += 1
        self.model.load_state_dict(best["model"])
        self.asgd = bool(best["asgd"])
        self.optimizer = self._optimizer(self.asgd)
        self.optimizer.load_state_dict(best["optimizer"])
        raise Rollback(int(best["epoch"]))

    def run_epoch(self, epoch: int) -> dict:
        cfg = self.config
        seed_epoch(cfg.seed, epoch, self.d.rank, salt=self.rollbacks)
        train_loss = self._train(epoch)
        if train_loss is None:
            self._rollback(epoch)
        switched = False
        if self.asgd:
            saved = [p.detach().clone() for p in self.params]
            with torch.no_grad():
                for p in self.params:
                    p.copy_(self.optimizer.state[p]["ax"])
            val_loss = self.evaluate(self.val_data, cfg.eval_batch_size)
            if val_loss < self.stored_loss:
                self._save_best(epoch)
                self.stored_loss = val_loss
            with torch.no_grad():
                for p, s in zip(self.params, saved):
                    p.copy_(s)
        else:
            val_loss = self.evaluate(self.val_data, cfg.eval_batch_size)
            if val_loss < self.stored_loss:
                self._save_best(epoch)
                self.stored_loss = val_loss
            hist = self.val_history
            if len(hist) > cfg.nonmono and val_loss > min(hist[:-cfg.nonmono]):
                log.info("epoch %d: validation did not improve for %d epochs; switching to ASGD", epoch, cfg.nonmono)
                self.asgd, switched = True, True
                self.optimizer = self._optimizer(True)
            hist.append(val_loss)
        return {"lr": cfg.learning_rate, "optimizer": "asgd" if self.asgd and not switched else "sgd",
                "train_loss": train_loss, "train_ppl": _ppl(train_loss), "valid_loss": val_loss,
                "valid_ppl": _ppl(val_loss), "best_valid_ppl": _ppl(self.stored_loss), "switched_to_asgd": switched}

    def evaluate(self, data_source: torch.Tensor, batch_size: int) -> float:
        self.model.eval()
        hidden = self.model.init_hidden(batch_size)
        return lm_loss(self.model, data_source, hidden, self.config.bptt, amp=self.config.amp)

    def final(self, curve: list) -> dict:
        best = self._load_best()
        if best is None:
            raise RuntimeError("no best checkpoint was written")  # impossible after one finite epoch
        self.model.load_state_dict(best["model"])
        valid_loss = self.evaluate(self.val_data, self.config.eval_batch_size)
        test_loss = self.evaluate(self.test_data, self.config.test_batch_size)
        return {"valid_ppl": _ppl(valid_loss), "test_ppl": _ppl(test_loss), "valid_loss": valid_loss,
                "test_loss": test_loss, "best_epoch": int(best["epoch"]) - 1, "rollbacks": self.rollbacks,
                "switched_to_asgd_at": next((m["epoch"] for m in curve if m.get("switched_to_asgd")), None)}


def _ppl(loss: float):
    """exp(loss), or None where that overflows a float (a diverging but finite loss)."""
    return math.exp(loss) if loss < 700 else None
