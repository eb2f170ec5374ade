"""``python -m reproduce bench search``: seconds per search step (architecture step + weight step).

Random CIFAR-sized data (32x32, 10 classes) already on the device, so only the step is timed.
``--impl original --original-src DIR`` times the original code (quark0/darts ``cnn/model_search.py``
and ``cnn/architect.py``, imported from a checkout the user provides; nothing of it is part of
this project) with the smallest runtime shims: ``.cuda()`` becomes a move to ``--device``.
``--impl both`` times ours and the original in one process, alternating step by step, so both see
the same machine load, and reports the ratio.

By default only the step is timed, on fixed random batches; the original's fresh validation
``DataLoader`` iterator per step (``next(iter(valid_queue))``, worker start-up included) is then not
counted, so the ratio is conservative. ``--with-data`` times each implementation's own data path
too, on 50000 random uint8 images: ours augments on the device and keeps one validation iterator;
the original's loaders are rebuilt as cnn/train_search.py has them (torchvision transforms, 2
workers, a new validation iterator every step).
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import torch.nn as nn

from zoo.datasets import CIFAR_MEAN, CIFAR_STD

from ..config import build
from ..device import search_channels_last
from ..search.config import CIFAR10SearchConfig
from ..search.data import CifarHalves
from ..search.loop import CNNSearch
from .common import add_common_arguments, peak_memory_mb, report, setup, sync
from .original import load_cnn_search


def register(sub) -> None:
    p = sub.add_parser(
        "search", help="time DARTS search steps (ours or the original's)",
        description="Time search steps (architecture step + weight step) of the conv-cell search on random data. "
                    "Example: python -m reproduce bench search --order 2 --C 8 --layers 5 --batch 16 --steps 10 "
                    "--device cpu --threads 2 --json")
    add_common_arguments(p, steps=10)
    p.add_argument("--order", type=int, choices=[1, 2], default=None,
                   help="1: first order, 2: second order (default: the method's recipe: 2 for darts, 1 for pcdarts)")
    p.add_argument("--method", choices=["darts", "pcdarts"], default="darts",
                   help="the supernet of ours: darts, or pcdarts (partial channels K=4 and edge normalisation, the "
                        "PC-DARTS recipe's); compare the peak memory of the two in two runs (default: darts)")
    p.add_argument("--C", type=int, default=16, help="initial channels (default: 16, the paper's)")
    p.add_argument("--layers", type=int, default=8, help="cells (default: 8, the paper's)")
    p.add_argument("--batch", type=int, default=64, help="batch size of both halves (default: 64, the paper's)")
    p.add_argument("--impl", choices=["ours", "original", "both"], default="ours",
                   help="whose code to time; 'both' alternates steps of ours and the original (default: ours)")
    p.add_argument("--with-data", action="store_true",
                   help="also time each implementation's own data path on random CIFAR-sized uint8 images (50000): "
                        "ours: on-device crop+flip and the persistent validation iterator; the original: its "
                        "torchvision transforms and DataLoaders (2 workers), with a fresh validation iterator per "
                        "step as cnn/train_search.py does")
    p.add_argument("--stack-edges", action=argparse.BooleanOptionalAction, default=None,
                   help="ours: run the conv ops of the edges leaving a state as one stacked op, or one by one "
                        "(default: the supernet's: stacked on CPUs only)")
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
    # time only what the search would run (it refuses bf16 with order 2); the method's recipe under these fields
    config = build(CIFAR10SearchConfig, dict(method=args.method, order=args.order, C=args.C, layers=args.layers,
                                             batch_size=args.batch, device=str(device), amp=args.amp,
                                             channels_last=args.channels_last))
    searcher = CNNSearch(config, device, load_data=False)
    for cell in searcher.model.cells:
        cell.stack_edges = args.stack_edges
    if args.compile:
        searcher.forward_model = torch.compile(searcher.model)
    searcher.model.train()
    x, y, xv, yv = _batches(args, device)
    lr = config.learning_rate
    if args.with_data:
        images, labels = _random_cifar(args)
        data = CifarHalves(images, labels, 0.5, args.batch, device, args.seed)
        state = {"it": data.train_batches()}

        def next_train():
            try:
                return next(state["it"])
            except StopIteration:
                state["it"] = data.train_batches()
                return next(state["it"])

        def step():
            x, y = next_train()
            xv, yv = data.next_valid()
            searcher.arch_step(x, y, xv, yv, lr)
            searcher.weight_step(x, y)

        return step

    def step():
        searcher.arch_step(x, y, xv, yv, lr)
        searcher.weight_step(x, y)

    return step


def _random_cifar(args, n: int = 50000):
    g = torch.Generator().manual_seed(args.seed)
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g), torch.randint(0, 10, (n,),
                                                                                                  generator=g)


class _OriginalCIFAR(torch.utils.data.Dataset):
    """In-memory CIFAR-sized images served as torchvision's CIFAR10 does (PIL image -> transform)."""

    def __init__(self, images, labels, transform):
        self.images = images.permute(0, 2, 3, 1).contiguous().numpy()
        self.labels = labels.tolist()
        self.transform = transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), self.labels[i]


def _original_queues(args, device):
    """The original's loaders (cnn/train_search.py, utils._data_transforms_cifar10) over random images."""
    import torchvision.transforms as transforms

    transform = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                                    transforms.ToTensor(), transforms.Normalize(CIFAR_MEAN, CIFAR_STD)])
    data = _OriginalCIFAR(*_random_cifar(args), transform)
    split = len(data) // 2
    indices = list(range(len(data)))
    pin = device.type == "cuda"

    def loader(idx):
        return torch.utils.data.DataLoader(data, batch_size=args.batch, num_workers=2, pin_memory=pin,
                                           sampler=torch.utils.data.sampler.SubsetRandomSampler(idx))

    return loader(indices[:split]), loader(indices[split:])


def original_step(args, device):
    original = load_cnn_search(args.original_src)  # refuses a missing or wrong checkout first
    if args.impl == "original" and (args.amp != "none" or args.channels_last or args.compile
                                    or args.stack_edges is not None):
        # with --impl both they apply to ours only: the original is always timed as it was written
        raise ValueError("--amp/--channels-last/--compile/--stack-edges apply to --impl ours (or to ours within "
                         "--impl both) only")
    # the smallest shims: the original calls .cuda() on tensors and modules; make it a move to --device
    torch.Tensor.cuda = lambda self, *a, **k: self.to(device)
    nn.Module.cuda = lambda self, *a, **k: self.to(device)
    model_search, architect = original.model_search, original.architect
    criterion = nn.CrossEntropyLoss()
    model = model_search.Network(args.C, 10, args.layers, criterion).to(device)
    hp = type("Args", (), dict(momentum=0.9, weight_decay=3e-4, arch_learning_rate=3e-4, arch_weight_decay=1e-3))
    optimizer = torch.optim.SGD(model.parameters(), 0.025, momentum=0.9, weight_decay=3e-4)
    arch = architect.Architect(model, hp)
    x, y, xv, yv = _batches(args, device)
    unrolled = args.order == 2
    if args.with_data:
        train_queue, valid_queue = _original_queues(args, device)
        state = {"it": iter(train_queue)}

    def step():  # the body of the original train() loop, minus metrics (and data loading unless --with-data)
        nonlocal x, y, xv, yv
        if args.with_data:
            try:
                x, y = next(state["it"])
            except StopIteration:
                state["it"] = iter(train_queue)
                x, y = next(state["it"])
            xv, yv = next(iter(valid_queue))  # a fresh iterator (and worker processes) per step, as the original
            x, y, xv, yv = x.to(device), y.to(device), xv.to(device), yv.to(device)
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
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = {name: [] for name in steps_by_name}
    for _ in range(n):
        for name, step in steps_by_name.items():  # alternate, so both see the same load
            start = time.perf_counter()
            step()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def _run(args) -> int:
    import warnings

    device = setup(args)
    if args.order is None:
        args.order = 1 if args.method == "pcdarts" else 2
    if args.method != "darts" and args.impl != "ours":
        raise ValueError("--method pcdarts times ours only (--impl ours)")
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
    result = {"bench": "search", "impl": args.impl, "method": args.method, "with_data": args.with_data,
              "order": args.order, "C": args.C,
              "layers": args.layers,
              "batch": args.batch, "device": str(device), "threads": torch.get_num_threads(), "amp": args.amp,
              "channels_last": search_channels_last(device, args.channels_last), "compile": args.compile,
              "stack_edges": args.stack_edges if args.stack_edges is not None else device.type == "cpu",
              "torch": torch.__version__,
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
