"""``python -m reproduce bench train``: full CIFAR-10 training steps of NetworkCIFAR on random data.

One step = forward (with the auxiliary head and drop-path), loss + 0.4 x auxiliary loss,
backward, gradient clipping at 5, SGD with momentum and weight decay, and top-1 counting: the
step of the CIFAR-10 recipe (``reproduce.train.common.cnn_train_step``).

``--impl original --original-src DIR`` times the ORIGINAL code's network and training step
(cnn/model.py and the body of cnn/train.py's train loop, with top-1/top-5 and ``.item()`` as
there) from a checkout of quark0/darts, with the minimal shims of ``reproduce.benchmarks.original``;
``--impl both`` times ours and the original in alternating blocks in one process, so both see
the same machine load, and reports the ratio.
"""
from __future__ import annotations

import statistics
import time
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

import genotypes
import zoo

from ..optim import make_sgd
from ..train.common import GraphedCNNStep, cnn_train_step, maybe_compile, set_drop_path
from .common import add_common_arguments, peak_memory_mb, report, setup, sync
from .original import load_cnn, quiet


def register(sub) -> None:
    p = sub.add_parser("train", help="CIFAR-10 training steps of NetworkCIFAR (ours and/or the original code)",
                       description=__doc__.split("\n\n")[0])
    add_common_arguments(p, steps=20)
    p.add_argument("--C", type=int, default=36, help="initial channels (paper: 36)")
    p.add_argument("--layers", type=int, default=20, help="cells (paper: 20)")
    p.add_argument("--batch", type=int, default=96, help="batch size (paper: 96)")
    p.add_argument("--arch", default="DARTS_V2", help="named genotype")
    p.add_argument("--drop-path-prob", type=float, default=0.1,
                   help="drop-path probability (the recipe ramps 0 -> 0.2; default: the mid-run 0.1)")
    p.add_argument("--cuda-graphs", action="store_true", help="replay our step from a CUDA graph (GPU only)")
    add_impl_arguments(p)
    p.set_defaults(func=run)


def add_impl_arguments(p) -> None:
    p.add_argument("--impl", choices=["ours", "original", "both"], default="ours",
                   help="whose code to time (default: ours); original/both need --original-src")
    p.add_argument("--original-src", default=None, metavar="DIR",
                   help="checkout of github.com/quark0/darts (for --impl original/both)")
    p.add_argument("--rounds", type=int, default=5, help="alternating blocks per implementation with --impl both")


def time_impls(steps_by_impl: dict, steps: int, warmup: int, rounds: int, device) -> dict:
    """Warm every step function up, then time them in alternating blocks; per-impl statistics."""
    for step in steps_by_impl.values():
        for _ in range(warmup):
            step()
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = {name: [] for name in steps_by_impl}
    rounds = max(1, min(rounds, steps)) if len(steps_by_impl) > 1 else 1
    per_block = [steps // rounds + (1 if r < steps % rounds else 0) for r in range(rounds)]
    for n in per_block:
        for name, step in steps_by_impl.items():
            for _ in range(n):
                t = time.perf_counter()
                step()
                sync(device)
                times[name].append(time.perf_counter() - t)
    return {name: {"sec_per_step": statistics.mean(ts), "median_sec_per_step": statistics.median(ts),
                   "min_sec_per_step": min(ts), "steps": len(ts)} for name, ts in times.items()}


def combine(stats: dict, per_step_items: int, unit: str, args, device, **extra) -> dict:
    main = "ours" if "ours" in stats else "original"
    result = {"impl": args.impl, **extra, "device": str(device), "threads": torch.get_num_threads(),
              "amp": args.amp, "channels_last": args.channels_last, "compile": args.compile}
    result.update(stats[main])
    result[f"{unit}_per_sec"] = per_step_items / stats[main]["median_sec_per_step"]
    if "ours" in stats and "original" in stats:
        o = stats["original"]
        result.update({f"original_{k}": v for k, v in o.items()})
        result[f"original_{unit}_per_sec"] = per_step_items / o["median_sec_per_step"]
        result["speedup_vs_original"] = o["median_sec_per_step"] / stats["ours"]["median_sec_per_step"]
    result["peak_memory_mb"] = peak_memory_mb(device)  # whole process (CPU: peak RSS, both impls together)
    return result


def check_impl(args) -> None:
    if args.impl != "ours" and not args.original_src:
        raise ValueError(f"--impl {args.impl} needs --original-src DIR (a checkout of github.com/quark0/darts)")
    if args.rounds < 1:
        raise ValueError("--rounds must be >= 1")


def run(args) -> int:
    check_impl(args)
    if args.C < 1 or args.layers < 3 or args.batch < 1:
        raise ValueError("need --C >= 1, --layers >= 3, --batch >= 1")
    device = setup(args)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    genotype = genotypes.get(args.arch)
    x = torch.randn(args.batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    steps = {}
    if args.impl in ("ours", "both"):
        mf = torch.channels_last if args.channels_last else torch.contiguous_format
        model = zoo.NetworkCIFAR(args.C, 10, args.layers, True, genotype).to(device, memory_format=mf)
        set_drop_path(model, args.drop_path_prob, args.compile and args.drop_path_prob > 0)  # as the recipe does
        model.train()
        params = list(model.parameters())
        opt = make_sgd(params, 0.025, momentum=0.9, weight_decay=3e-4)
        train_model = maybe_compile(model, args.compile, 1)
        xo = x.contiguous(memory_format=mf)

        def ours():
            cnn_train_step(train_model, opt, xo, y, auxiliary_weight=0.4, grad_clip=5.0, params=params,
                           device=device, amp=args.amp)

        if args.cuda_graphs:
            if device.type != "cuda" or args.compile:
                raise ValueError("--cuda-graphs needs a CUDA device and no --compile")
            graphed = GraphedCNNStep(model, opt, params, device, auxiliary_weight=0.4, grad_clip=5.0, amp=args.amp)
            for _ in range(graphed.warmup + 1):  # eager warm-up steps, then the capture
                graphed(xo, y)

            def ours():  # noqa: F811
                graphed(xo, y)

        steps["ours"] = ours
    if args.impl in ("original", "both"):
        orig = load_cnn(args.original_src, device)
        with quiet():
            omodel = orig.model.NetworkCIFAR(args.C, 10, args.layers, True, getattr(orig.genotypes, args.arch))
        omodel = omodel.to(device)
        omodel.drop_path_prob = args.drop_path_prob
        omodel.train()
        oopt = torch.optim.SGD(omodel.parameters(), 0.025, momentum=0.9, weight_decay=3e-4)
        criterion = nn.CrossEntropyLoss().to(device)

        def original():  # the body of the original cnn/train.py train() loop
            oopt.zero_grad()
            logits, logits_aux = omodel(x)
            loss = criterion(logits, y)
            loss_aux = criterion(logits_aux, y)
            loss += 0.4 * loss_aux
            loss.backward()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                nn.utils.clip_grad_norm(omodel.parameters(), 5.0)
            oopt.step()
            prec1, prec5 = orig.utils.accuracy(logits, y, topk=(1, 5))
            loss.item(), prec1.item(), prec5.item()  # loss.data[0] etc. in the original

        steps["original"] = original
    stats = time_impls(steps, args.steps, args.warmup, args.rounds, device)
    result = {"bench": "train", "cuda_graphs": args.cuda_graphs,
              "C": args.C, "layers": args.layers, "batch": args.batch, "arch": args.arch,
              "drop_path_prob": args.drop_path_prob}
    return report(combine(stats, args.batch, "images", args, device, **result), args.json)


__all__ = ["register", "run", "time_impls", "combine", "add_impl_arguments", "F"]
