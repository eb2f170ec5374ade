"""``python -m reproduce bench search``: seconds per search step (architecture step + weight step).

Random CIFAR-sized data (32x32, 10 classes) already on the device, so only the step is timed.
``--impl original --original-src DIR`` times the original code (quark0/darts ``cnn/model_search.py``
and ``cnn/architect.py``, imported from a checkout the user provides; nothing of it is part of
this project) with the smallest runtime shims: ``.cuda()`` becomes a move to ``--device``.
``--impl both`` times ours and the original in one process, alternating step by step, so both see
the same machine load, and reports the ratio.

Not timed for the original (so the ratio is conservative): its fresh validation ``DataLoader``
iterator per step (``next(iter(valid_queue))``, worker start-up included) and its per-step metrics.
"""
from __future__ import annotations

import contextlib
import importlib
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

from .common import _sync, add_common_arguments, peak_memory_mb, report, setup

_ORIGINAL_MODULES = ("genotypes", "operations", "model_search", "architect", "utils")


def register(sub) -> None:
    p = sub.add_parser(
        "search", help="time DARTS search steps (ours or the original's)",
        description="Time search steps (architecture step + weight step) of the conv-cell search on random data. "
                    "Example: python -m reproduce bench search --order 2 --C 8 --layers 5 --batch 16 --steps 10 "
                    "--device cpu --threads 2 --json")
    add_common_arguments(p, steps=10)
    p.add_argument("--order", type=int, choices=[1, 2], default=2, help="1: first order, 2: second order (default: 2)")
    p.add_argument("--C", type=int, default=16, help="initial channels (default: 16, the paper's)")
    p.add_argument("--layers", type=int, default=8, help="cells (default: 8, the paper's)")
    p.add_argument("--batch", type=int, default=64, help="batch size of both halves (default: 64, the paper's)")
    p.add_argument("--impl", choices=["ours", "original", "both"], default="ours",
                   help="whose code to time; 'both' alternates steps of ours and the original (default: ours)")
    p.add_argument("--original-src", default=None,
                   help="a checkout of quark0/darts (the directory holding cnn/), for --impl original/both")
    p.set_defaults(func=_run)


def _batches(args, device):
    g = torch.Generator().manual_seed(args.seed)
    x = torch.randn(args.batch, 3, 32, 32, generator=g).to(device)
    xv = torch.randn(args.batch, 3, 32, 32, generator=g).to(device)
    y = torch.randint(0, 10, (args.batch,), generator=g).to(device)
    yv = torch.randint(0, 10, (args.batch,), generator=g).to(device)
    return x, y, xv, yv


def ours_step(args, device):
    from ..search.config import CIFAR10SearchConfig
    from ..search.loop import CNNSearch

    config = CIFAR10SearchConfig(order=args.order, C=args.C, layers=args.layers, batch_size=args.batch,
                                 device=str(device), amp=args.amp, channels_last=args.channels_last)
    searcher = CNNSearch(config, device, load_data=False)
    if args.compile:
        searcher.forward_model = torch.compile(searcher.model)
    searcher.model.train()
    x, y, xv, yv = _batches(args, device)
    lr = config.learning_rate

    def step():
        searcher.arch_step(x, y, xv, yv, lr)
        searcher.weight_step(x, y)

    return step


@contextlib.contextmanager
def _original_imports(src: Path):
    """Import the original cnn/ modules by their top-level names without clobbering ours."""
    saved = {name: sys.modules.pop(name) for name in _ORIGINAL_MODULES if name in sys.modules}
    sys.path.insert(0, str(src))
    try:
        yield
    finally:
        sys.path.remove(str(src))
        for name in _ORIGINAL_MODULES:
            sys.modules.pop(name, None)
        sys.modules.update(saved)


def original_step(args, device):
    if not args.original_src:
        raise ValueError("--impl original needs --original-src DIR, a checkout of quark0/darts (e.g. "
                         "git clone https://github.com/quark0/darts DIR)")
    src = Path(args.original_src).expanduser() / "cnn"
    if not (src / "model_search.py").is_file() or not (src / "architect.py").is_file():
        raise FileNotFoundError(f"{src} lacks model_search.py / architect.py: --original-src must be a checkout of "
                                "quark0/darts (the directory holding cnn/)")
    if args.amp != "none" or args.channels_last or args.compile:
        raise ValueError("--amp/--channels-last/--compile apply to --impl ours only")
    # the smallest shims: the original calls .cuda() on tensors and modules; make it a move to --device
    torch.Tensor.cuda = lambda self, *a, **k: self.to(device)
    nn.Module.cuda = lambda self, *a, **k: self.to(device)
    with _original_imports(src):
        model_search = importlib.import_module("model_search")
        architect = importlib.import_module("architect")
    criterion = nn.CrossEntropyLoss()
    model = model_search.Network(args.C, 10, args.layers, criterion).to(device)
    hp = type("Args", (), dict(momentum=0.9, weight_decay=3e-4, arch_learning_rate=3e-4, arch_weight_decay=1e-3))
    optimizer = torch.optim.SGD(model.parameters(), 0.025, momentum=0.9, weight_decay=3e-4)
    arch = architect.Architect(model, hp)
    x, y, xv, yv = _batches(args, device)
    unrolled = args.order == 2

    def step():  # the body of the original train() loop, minus data loading and metrics
        model.train()
        arch.step(x, y, xv, yv, 0.025, optimizer, unrolled=unrolled)
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()

    return step


def _time(steps_by_name, n, warmup, device):
    for _ in range(warmup):
        for step in steps_by_name.values():
            step()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = {name: [] for name in steps_by_name}
    for _ in range(n):
        for name, step in steps_by_name.items():  # alternate, so both see the same load
            start = time.perf_counter()
            step()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def _run(args) -> int:
    import warnings

    device = setup(args)
    cuda_shims = torch.Tensor.cuda, nn.Module.cuda
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning)  # the original's deprecated overloads
            steps = {}
            if args.impl in ("ours", "both"):
                steps["ours"] = ours_step(args, device)
            if args.impl in ("original", "both"):
                steps["original"] = original_step(args, device)
            times = _time(steps, args.steps, args.warmup, device)
    finally:  # undo the original's shims
        torch.Tensor.cuda, nn.Module.cuda = cuda_shims
    result = {"bench": "search", "impl": args.impl, "order": args.order, "C": args.C, "layers": args.layers,
              "batch": args.batch, "device": str(device), "threads": torch.get_num_threads(), "amp": args.amp,
              "channels_last": args.channels_last, "compile": args.compile, "torch": torch.__version__,
              "machine": platform.processor() or platform.machine()}
    main = "ours" if "ours" in times else "original"
    t = times[main]
    result.update(sec_per_step=statistics.mean(t), median_sec_per_step=statistics.median(t),
                  min_sec_per_step=min(t), steps=args.steps)
    if args.impl == "both":
        o = times["original"]
        result.update(original_sec_per_step=statistics.mean(o), original_median_sec_per_step=statistics.median(o),
                      original_min_sec_per_step=min(o),
                      speedup_mean=statistics.mean(o) / statistics.mean(t),
                      speedup_median=statistics.median(o) / statistics.median(t))
    result["peak_memory_mb"] = peak_memory_mb(device)
    return report(result, args.json)


__all__ = ["register", "ours_step", "original_step"]
