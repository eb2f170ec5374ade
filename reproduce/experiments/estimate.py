"""What ``--dry-run`` checks before anything runs: that the data is there, and about how long the plan
takes on this device, from a short measured epoch (two steps) of each recipe on the real data.

The estimate counts the training steps only (the per-epoch evaluations come on top), so it is a
lower bound; it is printed to make plain, e.g., that the paper's CIFAR-10 recipe on a CPU is weeks.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

from zoo import image_folder
from zoo.datasets import DatasetNotFoundError, load_cifar10

from ..corpora import load_corpus
from ..data.images import plan as image_plan
from ..data.text import TextCorpus, corpus_for
from ..device import pick_device
from ..distributed import Dist
from ..rundir import RunDir
from ..tasks import TASKS, make_config
from .spec import ExperimentOptions, ExperimentSpec

log = logging.getLogger(__name__)

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


# Fields that change how many steps a run takes or what it records, not what one training step costs: runs that
# differ only in them share one probe (e.g. the selection's short trainings and the final ones).
NOT_PER_STEP = ("seed", "epochs", "experiment", "profile", "valid_split", "limit", "limit_eval", "download")


def training_seconds(dataset: str, config: dict, probes: Optional[Dict[str, float]] = None) -> Optional[float]:
    """About how long one training run of ``config`` takes here: (probe epoch / its steps) x all steps.
    ``probes`` keeps the seconds per step measured so far, so a recipe is probed once."""
    cfg = make_config("train", dataset, config)
    if dataset == "cifar10":
        n = len(load_cifar10(cfg.data, train=True, download=False)[1]) - cfg.valid_split
        n = min(n, cfg.limit) if cfg.limit else n
        steps = math.ceil(n / cfg.batch_size)
        # one image to evaluate: the estimate counts training steps, so the probe spends no time elsewhere
        probe = dict(limit=PROBE_STEPS * cfg.batch_size, limit_eval=1, valid_split=0, download=False)
    elif dataset == "images":
        n = cfg.limit or image_count(cfg.data)
        steps = math.ceil(n / cfg.batch_size)
        probe = dict(limit=PROBE_STEPS * cfg.batch_size, limit_eval=1, valid_portion=0.0)
    elif dataset in ("ptb", "wt2", "text"):
        tokens = cfg.limit or len(corpus_for(cfg, dataset).train)
        steps = max(1, tokens // (cfg.batch_size * cfg.bptt))
        # the smallest evaluation splits the recipe accepts (two rows of each evaluation batch)
        probe = dict(limit=PROBE_STEPS * cfg.batch_size * cfg.bptt + cfg.batch_size,
                     limit_eval=2 * max(cfg.eval_batch_size, cfg.test_batch_size))
    else:
        return None  # ImageNet: counting the images of the tree would take longer than the dry run should
    probes = {} if probes is None else probes
    key = json.dumps({k: v for k, v in config.items() if k not in NOT_PER_STEP}, sort_keys=True, default=str)
    if key not in probes:
        cfg = dataclasses.replace(cfg, epochs=2, compile=False, **probe)
        d = Dist(device=pick_device(cfg.device))
        with tempfile.TemporaryDirectory() as tmp:
            task = TASKS["train", dataset][1](dataset, cfg, d, RunDir(tmp), progress=False)
            probes[key] = _time_epochs(task) / PROBE_STEPS
    return probes[key] * steps * int(config.get("epochs") or cfg.epochs)


def search_seconds(dataset: str, config: dict) -> Optional[float]:
    """About how long one conv-cell search of ``config`` takes here; None for the recurrent search."""
    if dataset not in ("cifar10", "images"):
        return None
    cfg = make_config("search", dataset, config)
    n = cfg.train_examples or (image_count(cfg.data) if dataset == "images" else
                               len(load_cifar10(cfg.data, train=True, download=False)[1]))
    steps = math.ceil(math.floor(cfg.train_portion * n) / cfg.batch_size)
    probe = dataclasses.replace(cfg, train_examples=math.ceil(PROBE_STEPS * cfg.batch_size / cfg.train_portion) + 1,
                                epochs=2)
    with tempfile.TemporaryDirectory() as tmp:
        task = TASKS["search", dataset][1](dataset, probe, Dist(device=pick_device(cfg.device)), RunDir(tmp),
                                          progress=False)
        per_step = _time_epochs(task) / PROBE_STEPS
    return per_step * steps * cfg.epochs


def data_and_time(spec: ExperimentSpec, options: ExperimentOptions, work) -> List[str]:
    """The data check (an error when missing) and the time estimate of ``work``: (count, kind, config)."""
    lines = []
    for _, kind, cfg in work:
        dataset = spec.search_dataset if kind == "search" else spec.dataset
        try:
            check_data(dataset, cfg["data"])
        except FileNotFoundError:
            if not (kind == "search" and dataset == "cifar10"):
                raise
            lines.append(f"data: CIFAR-10 is not in {cfg['data']}; the search downloads it")
    if work and spec.dataset == "images":
        final = work[-1][2]
        lines.append(image_plan(final["data"], final.get("image_size", 0), final.get("in_memory_mb")))
    elif work:
        lines.append("data: " + ", ".join(sorted({cfg["data"] for _, _, cfg in work})) + " (found)")
    if not work:
        return lines + ["time: nothing left to run"]
    if options.launcher == "slurm":
        return lines + ["time: not measured here (the runs go to Slurm nodes)"]
    try:
        device = pick_device(work[0][2].get("device", "auto"))
    except ValueError as e:
        return lines + [f"time: not measured ({e})"]
    log.info("dry run: measuring a %d-step probe of each recipe on %s for the time estimate (a few seconds to a few "
             "minutes: it builds each network and trains it on the real data)", PROBE_STEPS, device)
    total, parts, probes = 0.0, [], {}
    for count, kind, cfg in work:
        dataset = spec.search_dataset if kind == "search" else spec.dataset
        seconds = search_seconds(dataset, cfg) if kind == "search" else training_seconds(dataset, cfg, probes)
        if seconds is None:
            parts.append(f"{count} x {kind} {dataset}: not estimated")
            continue
        total += count * seconds
        parts.append(f"{count} x {kind} {dataset} ({cfg['epochs']} epochs): {format_duration(seconds)} each")
    parallel = max(1, len(options.gpus))
    lines.append(f"time on {device}: about {format_duration(total / parallel)} in all"
                 + (f" over {parallel} GPUs" if parallel > 1 else "") + "; " + "; ".join(parts))
    lines.append(f"  (from a measured {PROBE_STEPS}-step epoch of each recipe; training steps only, the evaluations "
                 "add to it)")
    return lines


def format_duration(seconds: float) -> str:
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"
