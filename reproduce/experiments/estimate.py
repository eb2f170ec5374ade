"""What ``--dry-run`` checks before anything runs: that the data is there, and about how long the plan
takes on this device, from a short measured epoch (two steps) of each recipe on the real data.

The estimate counts the training steps only (the per-epoch evaluations come on top), so it is a
lower bound; it is printed to make plain, e.g., that the paper's CIFAR-10 recipe on a CPU is weeks.
"""
from __future__ import annotations

import dataclasses
import math
import tempfile
import time
from pathlib import Path
from typing import Optional

from zoo import image_folder
from zoo.datasets import DatasetNotFoundError, load_cifar10

from .. import config as run_config
from ..corpora import load_corpus
from ..data.images import plan as image_plan
from ..data.text import TextCorpus, corpus_for
from ..device import pick_device
from ..distributed import Dist
from ..rundir import RunDir

PROBE_STEPS = 2


def check_data(dataset: str, data: str) -> None:
    """DatasetNotFoundError naming what is missing and where to get it; nothing is downloaded."""
    if dataset == "cifar10":
        load_cifar10(data, train=True, download=False)
    elif dataset == "imagenet":
        missing = [d for d in ("train", "val") if not (Path(data).expanduser() / d).is_dir()]
        if missing:
            raise DatasetNotFoundError(f"ImageNet not found: {data} lacks {', '.join(f'{d}/' for d in missing)} "
                                       "(an ImageFolder tree with train/ and val/); point --data at it")
    elif dataset == "images":
        image_plan(data)  # the folder's layout and classes checked, nothing decoded
    elif dataset == "text":
        TextCorpus(data)
    else:
        load_corpus(data, dataset)


def image_count(data: str) -> int:
    """The training images of an image source (a folder's train/ counted without decoding)."""
    if str(data).startswith("torchvision:") or (Path(data).expanduser() / "cifar-10-batches-py").is_dir():
        return 50000
    return len(image_folder.scan(data).splits["train"])


def _time_epochs(task, epochs: int = 2) -> float:
    """Seconds of the last of ``epochs`` probe epochs (the first pays the warm-up)."""
    seconds = 0.0
    for epoch in range(epochs):
        t = time.perf_counter()
        task.run_epoch(epoch)
        seconds = time.perf_counter() - t
    return seconds


def training_seconds(dataset: str, config: dict) -> Optional[float]:
    """About how long one training run of ``config`` takes here: (probe epoch / its steps) x all steps."""
    from ..train.loop import TrainingTask, as_config
    from ..train.recipes import genotype_of

    cfg = as_config(dataset, config)
    if dataset == "cifar10":
        n = len(load_cifar10(cfg.data, train=True, download=False)[1]) - cfg.valid_split
        n = min(n, cfg.limit) if cfg.limit else n
        steps = math.ceil(n / cfg.batch_size)
        probe = dict(limit=PROBE_STEPS * cfg.batch_size, limit_eval=cfg.eval_batch_size, download=False)
    elif dataset == "images":
        n = cfg.limit or image_count(cfg.data)
        steps = math.ceil(n / cfg.batch_size)
        probe = dict(limit=PROBE_STEPS * cfg.batch_size, limit_eval=cfg.eval_batch_size)
    elif dataset in ("ptb", "wt2", "text"):
        tokens = cfg.limit or len(corpus_for(cfg, dataset).train)
        steps = max(1, tokens // (cfg.batch_size * cfg.bptt))
        probe = dict(limit=PROBE_STEPS * cfg.batch_size * cfg.bptt + cfg.batch_size,
                     limit_eval=2 * cfg.eval_batch_size * cfg.bptt)
    else:
        return None  # ImageNet: counting the images of the tree would take longer than the dry run should
    cfg = dataclasses.replace(cfg, epochs=2, compile=False, **probe)
    d = Dist(device=pick_device(cfg.device))
    with tempfile.TemporaryDirectory() as tmp:
        task = TrainingTask(dataset, cfg, genotype_of(cfg, dataset), d, RunDir(tmp), progress=False)
        per_step = _time_epochs(task) / PROBE_STEPS
    return per_step * steps * int(config.get("epochs") or cfg.epochs)


def search_seconds(dataset: str, config: dict) -> Optional[float]:
    """About how long one conv-cell search of ``config`` takes here; None for the recurrent search."""
    if dataset not in ("cifar10", "images"):
        return None
    from ..search.loop import SEARCH_CONFIGS, SearchTask

    cfg = run_config.build(SEARCH_CONFIGS[dataset], config)
    count = image_count if dataset == "images" else lambda data: len(load_cifar10(data, train=True,
                                                                                  download=False)[1])
    n = cfg.train_examples or count(cfg.data)
    steps = math.ceil(math.floor(cfg.train_portion * n) / cfg.batch_size)
    probe = dataclasses.replace(cfg, train_examples=math.ceil(PROBE_STEPS * cfg.batch_size / cfg.train_portion) + 1,
                                epochs=2)
    with tempfile.TemporaryDirectory() as tmp:
        task = SearchTask(dataset, probe, pick_device(cfg.device), RunDir(tmp), progress=False, callback=None)
        per_step = _time_epochs(task) / PROBE_STEPS
    return per_step * steps * cfg.epochs


def format_duration(seconds: float) -> str:
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"
