"""``python -m reproduce bench ptb``: training steps of the DARTS recurrent model on random tokens.

One step = the PTB recipe's step (``reproduce.train.lm.lm_train_step``): forward with the
paper's dropouts, NLL + TAR (beta 1e-3), backward, clipping at 0.25, SGD (lr 20 scaled by
seq_len / bptt), hidden state carried over. The sequence length is fixed at ``--bptt`` so both
implementations see the same work; throughput is in tokens per second (batch x bptt per step).

``--impl original|both --original-src DIR`` also times the ORIGINAL rnn/model.py and the body of
rnn/train.py's train loop (including its per-step ``gc.collect()`` and NaN check), with the shims
of ``reproduce.benchmarks.original`` and ``repackage_hidden`` written as ``detach`` (the original's
``type(h) == Variable`` test no longer recognises tensors).
"""
from __future__ import annotations

import gc
import warnings

import numpy as np
import torch
import torch.nn as nn

import genotypes
import zoo

from ..optim import make_sgd
from ..train.common import maybe_compile
from ..train.lm import lm_train_step
from .common import add_common_arguments, report, setup
from .original import load_rnn, quiet
from .train import add_impl_arguments, check_impl, combine, time_impls

DROPOUTS = dict(dropout=0.75, dropouth=0.25, dropoutx=0.75, dropouti=0.2, dropoute=0.1)


def register(sub) -> None:
    p = sub.add_parser("ptb", help="PTB training steps of the DARTS recurrent model (ours and/or the original)",
                       description=__doc__.split("\n\n")[0])
    add_common_arguments(p, steps=10)
    p.add_argument("--ntokens", type=int, default=10000, help="vocabulary size (PTB: 10000)")
    p.add_argument("--emsize", type=int, default=850, help="emsize = nhid = nhidlast (PTB: 850, WT2: 700)")
    p.add_argument("--batch", type=int, default=64, help="batch size (paper: 64)")
    p.add_argument("--bptt", type=int, default=35, help="sequence length (paper: 35)")
    p.add_argument("--arch", default="DARTS_V2", help="named recurrent genotype")
    add_impl_arguments(p)
    p.set_defaults(func=run)


def run(args) -> int:
    check_impl(args)
    if min(args.ntokens, args.emsize, args.batch, args.bptt) < 1:
        raise ValueError("--ntokens, --emsize, --batch and --bptt must be >= 1")
    device = setup(args)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    n = args.emsize
    data = torch.randint(0, args.ntokens, (args.bptt + 1, args.batch), device=device)
    x, targets = data[:-1], data[1:].reshape(-1)
    steps = {}
    if args.impl in ("ours", "both"):
        model = zoo.RNNModel(args.ntokens, n, n, n, genotype=genotypes.get(args.arch, "rnn"), **DROPOUTS).to(device)
        model.train()
        params = list(model.parameters())
        opt = make_sgd(params, 20.0, weight_decay=8e-7)
        train_model = maybe_compile(model, args.compile, 1)
        state = {"hidden": model.init_hidden(args.batch)}

        def ours():
            _, state["hidden"] = lm_train_step(train_model, opt, params, x, targets, state["hidden"], seq_len=args.bptt,
                                               bptt=args.bptt, clip=0.25, alpha=0.0, beta=1e-3, device=device,
                                               amp=args.amp)

        steps["ours"] = ours
    if args.impl in ("original", "both"):
        orig = load_rnn(args.original_src, device)
        genotype = orig.genotypes.DARTS if args.arch == "DARTS_V2" else getattr(orig.genotypes, args.arch)
        with quiet():
            omodel = orig.model.RNNModel(args.ntokens, n, n, n, DROPOUTS["dropout"], DROPOUTS["dropouth"],
                                         DROPOUTS["dropoutx"], DROPOUTS["dropouti"], DROPOUTS["dropoute"],
                                         cell_cls=orig.model.DARTSCell, genotype=genotype).to(device)
        omodel.train()
        oopt = torch.optim.SGD(omodel.parameters(), lr=20.0, weight_decay=8e-7)
        ostate = {"hidden": omodel.init_hidden(args.batch)}
        ostate["hidden"] = [h.to(device) for h in ostate["hidden"]]

        def original():  # the body of the original rnn/train.py train() loop, small_batch_size = batch_size
            seq_len = args.bptt
            lr2 = oopt.param_groups[0]["lr"]
            oopt.param_groups[0]["lr"] = lr2 * seq_len / args.bptt
            omodel.train()
            oopt.zero_grad()
            hidden = [h.detach() for h in ostate["hidden"]]  # repackage_hidden
            log_prob, hidden, rnn_hs, dropped_rnn_hs = omodel(x, hidden, return_h=True)
            raw_loss = nn.functional.nll_loss(log_prob.view(-1, log_prob.size(2)), targets)
            loss = raw_loss
            loss = loss + sum(1e-3 * (rnn_h[1:] - rnn_h[:-1]).pow(2).mean() for rnn_h in rnn_hs[-1:])
            loss *= 1.0
            total_loss = raw_loss.data * 1.0
            loss.backward()
            gc.collect()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.nn.utils.clip_grad_norm(omodel.parameters(), 0.25)
            oopt.step()
            oopt.param_groups[0]["lr"] = lr2
            ostate["hidden"] = hidden
            if np.isnan(total_loss.item()):
                raise FloatingPointError("NaN loss in the original step")

        steps["original"] = original
    stats = time_impls(steps, args.steps, args.warmup, args.rounds, device)
    extra = {"bench": "ptb", "ntokens": args.ntokens, "emsize": n, "batch": args.batch, "bptt": args.bptt,
             "arch": args.arch}
    return report(combine(stats, args.batch * args.bptt, "tokens", args, device, **extra), args.json)
