"""The evaluated recurrent network of DARTS (RNNModel with a DARTSCell), as in the original rnn/model.py.

Regularisation follows awd-lstm-lm as the original uses it: embedding dropout (whole words),
locked (variational) dropout on the input and output of the cell, and per-sequence dropout
masks on x and h inside the cell, shared over time.
"""
from __future__ import annotations

from typing import List, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

import genotypes as _genotypes
from genotypes import RNNGenotype

from .hub_mixin import HubMixin
from .limits import check_parameters, check_sizes
from .pretrained_cfg import PretrainedCfgMixin
from .registry import register_arch
from .state import StrictLoadMixin

INITRANGE = 0.04


def _identity(x):
    return x


ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid, "identity": _identity}


def dropout_mask(rows: int, cols: int, keep_prob: float, like: torch.Tensor) -> torch.Tensor:
    """A {0, 1/keep_prob} mask, as the original's mask2d (floor(U + p) / p)."""
    return torch.floor(torch.rand(rows, cols, device=like.device, dtype=like.dtype) + keep_prob) / keep_prob


def _keep_share(mask: torch.Tensor, share: Optional[Tuple[int, int, int]], dim: int) -> torch.Tensor:
    return mask if share is None else mask.narrow(dim, share[0], share[1] - share[0])


class LockedDropout(nn.Module):
    """Dropout with one mask per sequence, shared across time steps."""

    # (lo, hi, total): the batch holds columns lo:hi of a global batch of `total`; masks are drawn for
    # the global batch and sliced, so N processes draw what one process draws (see RNNModel.share_batch)
    batch_share: Optional[Tuple[int, int, int]] = None

    def forward(self, x: torch.Tensor, dropout: float = 0.5) -> torch.Tensor:
        if not self.training or not dropout:
            return x
        share = self.batch_share
        rows = share[2] if share is not None else x.size(1)
        mask = x.new_empty(1, rows, x.size(2)).bernoulli_(1 - dropout).div_(1 - dropout)
        return x * _keep_share(mask, share, 1)


def embedded_dropout(embed: nn.Embedding, words: torch.Tensor, dropout: float) -> torch.Tensor:
    """Drop whole rows of the embedding matrix (the same words everywhere in the batch)."""
    weight = embed.weight
    if dropout:
        mask = weight.new_empty(weight.size(0), 1).bernoulli_(1 - dropout) / (1 - dropout)
        weight = weight * mask
    return F.embedding(words, weight, embed.padding_idx, embed.max_norm, embed.norm_type,
                       embed.scale_grad_by_freq, embed.sparse)


class DARTSCell(nn.Module):
    """A recurrent cell given by a genotype: highway-style steps ``s = s_prev + c * (f(h) - s_prev)``."""

    def __init__(self, ninp: int, nhid: int, dropouth: float, dropoutx: float, genotype: Optional[RNNGenotype],
                 steps: Optional[int] = None):
        super().__init__()
        self.nhid = nhid
        self.dropouth = dropouth
        self.dropoutx = dropoutx
        self.genotype = genotype
        if genotype is not None:
            steps = len(genotype.recurrent)
        elif steps is None:  # a search cell: the original's STEPS
            steps = _genotypes.rnn.STEPS
        self._W0 = nn.Parameter(torch.empty(ninp + nhid, 2 * nhid).uniform_(-INITRANGE, INITRANGE))
        self._Ws = nn.ParameterList(
            [nn.Parameter(torch.empty(nhid, 2 * nhid).uniform_(-INITRANGE, INITRANGE)) for _ in range(steps)]
        )

    batch_share: Optional[Tuple[int, int, int]] = None  # as LockedDropout.batch_share

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor):
        T, B, ninp = inputs.shape
        if self.training:
            share = self.batch_share
            rows = share[2] if share is not None else B
            x_mask = _keep_share(dropout_mask(rows, ninp, 1.0 - self.dropoutx, inputs), share, 0)
            h_mask = _keep_share(dropout_mask(rows, hidden.size(2), 1.0 - self.dropouth, inputs), share, 0)
        else:
            x_mask = h_mask = None
        # The input's share of the first projection does not depend on the state: compute it for
        # all time steps in one matrix product instead of T small ones.
        x = inputs * x_mask if x_mask is not None else inputs
        x_proj = (x.reshape(T * B, ninp) @ self._W0[:ninp]).view(T, B, 2 * self.nhid)
        h = hidden[0]
        outputs = []
        for t in range(T):
            h = self.cell(x_proj[t], h, h_mask)
            outputs.append(h)
        hiddens = torch.stack(outputs)
        return hiddens, hiddens[-1].unsqueeze(0)

    def _init_state(self, x_proj: torch.Tensor, h_prev: torch.Tensor, h_mask: Optional[torch.Tensor]) -> torch.Tensor:
        h_in = h_prev * h_mask if h_mask is not None else h_prev
        c0, h0 = torch.split(x_proj + h_in @ self._W0[-self.nhid:], self.nhid, dim=-1)
        c0 = c0.sigmoid()
        return h_prev + c0 * (h0.tanh() - h_prev)

    def cell(self, x_proj: torch.Tensor, h_prev: torch.Tensor, h_mask: Optional[torch.Tensor]) -> torch.Tensor:
        states = [self._init_state(x_proj, h_prev, h_mask)]
        for i, (name, pred) in enumerate(self.genotype.recurrent):
            s_prev = states[pred]
            s_in = s_prev * h_mask if h_mask is not None else s_prev
            c, h = torch.split(s_in @ self._Ws[i], self.nhid, dim=-1)
            c = c.sigmoid()
            states.append(s_prev + c * (ACTIVATIONS[name](h) - s_prev))
        return torch.stack([states[i] for i in self.genotype.concat], -1).mean(-1)


@register_arch
class RNNModel(HubMixin, PretrainedCfgMixin, StrictLoadMixin, nn.Module):
    """Embedding -> DARTS cell -> tied decoder, returning log-probabilities ``[T, B, ntoken]``."""

    def __init__(self, ntoken: int, ninp: int, nhid: int, nhidlast: int, dropout: float = 0.5, dropouth: float = 0.5,
                 dropoutx: float = 0.5, dropouti: float = 0.5, dropoute: float = 0.1,
                 genotype: Union[RNNGenotype, str] = "DARTS_V2", cell_cls=DARTSCell):
        super().__init__()
        check_sizes("RNNModel", {"ntoken": ntoken, "ninp": ninp, "nhid": nhid, "nhidlast": nhidlast,
                                 "dropout": dropout, "dropouth": dropouth, "dropoutx": dropoutx, "dropouti": dropouti,
                                 "dropoute": dropoute})
        if not ninp == nhid == nhidlast:
            raise ValueError(
                f"the DARTS recurrent model ties its sizes: ninp == nhid == nhidlast, got {ninp}, {nhid}, {nhidlast}"
            )
        if cell_cls is DARTSCell:
            genotype = _genotypes.resolve(genotype, "rnn")
        steps = len(genotype.recurrent) if cell_cls is DARTSCell else _genotypes.rnn.STEPS
        # tied embedding and decoder, the decoder's bias, the cell's input and step matrices
        check_parameters("RNNModel", ntoken * ninp + ntoken + (ninp + nhid + steps * nhid) * 2 * nhid)
        # A search cell brings its own architecture, so the model then has no genotype.
        self.genotype = genotype if cell_cls is DARTSCell else None
        self.lockdrop = LockedDropout()
        # Modules are created in the original's order (encoder, cell, decoder) so that, under the same
        # seed, the random initial weights are the original's.
        self.encoder = nn.Embedding(ntoken, ninp)
        if cell_cls is DARTSCell:
            cell = DARTSCell(ninp, nhid, dropouth, dropoutx, genotype)
        else:
            cell = cell_cls(ninp, nhid, dropouth, dropoutx)
        self.rnns = nn.ModuleList([cell])
        self.decoder = nn.Linear(ninp, ntoken)
        self.decoder.weight = self.encoder.weight  # tied
        self.init_weights()
        self.ntoken, self.ninp, self.nhid, self.nhidlast = ntoken, ninp, nhid, nhidlast
        self.dropout, self.dropouti, self.dropoute = dropout, dropouti, dropoute
        self.dropouth, self.dropoutx = dropouth, dropoutx
        # The constructor arguments, enough to rebuild the model (saving and model cards read them).
        self.config = {"ntoken": int(ntoken), "ninp": int(ninp), "nhid": int(nhid), "nhidlast": int(nhidlast),
                       "dropout": float(dropout), "dropouth": float(dropouth), "dropoutx": float(dropoutx),
                       "dropouti": float(dropouti), "dropoute": float(dropoute),
                       "genotype": _genotypes.format(genotype) if self.genotype is not None else None}

    def init_weights(self) -> None:
        self.encoder.weight.data.uniform_(-INITRANGE, INITRANGE)
        self.decoder.bias.data.fill_(0)
        # The same tensor as the encoder's (tied); drawn a second time as the original does, which keeps
        # the random stream, and so a seeded initialisation, equal to the original's.
        self.decoder.weight.data.uniform_(-INITRANGE, INITRANGE)

    def forward(self, input: torch.Tensor, hidden: List[torch.Tensor], return_h: bool = False):
        batch_size = input.size(1)
        emb = embedded_dropout(self.encoder, input, self.dropoute if self.training else 0)
        raw_output = self.lockdrop(emb, self.dropouti)
        new_hidden, raw_outputs = [], []
        for layer, rnn in enumerate(self.rnns):
            raw_output, new_h = rnn(raw_output, hidden[layer])
            new_hidden.append(new_h)
            raw_outputs.append(raw_output)
        output = self.lockdrop(raw_output, self.dropout)
        logit = self.decoder(output.view(-1, self.ninp))
        log_prob = F.log_softmax(logit, dim=-1).view(-1, batch_size, self.ntoken)
        if return_h:
            return log_prob, new_hidden, raw_outputs, [output]
        return log_prob, new_hidden

    def share_batch(self, lo: int, hi: int, total: int) -> None:
        """This model sees columns lo:hi of a global batch of ``total``: every dropout mask that depends on the
        batch is drawn for the global batch and sliced (one process per slice then draws what one process
        draws for the whole batch, given the same torch generator state)."""
        share = (lo, hi, total) if (lo, hi) != (0, total) else None
        for module in [self.lockdrop, *self.rnns]:
            module.batch_share = share

    def init_hidden(self, batch_size: int) -> List[torch.Tensor]:
        weight = next(self.parameters())
        return [weight.new_zeros(1, batch_size, self.nhid)]

    def extra_repr(self) -> str:
        return f"genotype={_genotypes.format(self.genotype)}" if self.genotype is not None else ""
