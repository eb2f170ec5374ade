"""What ``--dry-run`` checks before anything runs: that the data is there, about how long the plan takes on
this device and how much memory each run needs at its peak, from a short measured epoch (two steps) of each
recipe on the real data, in a fresh process (:mod:`.probe`); a run that would not fit in the device's memory
is refused with the batch size that would (:mod:`.memory`).

The time estimate counts the training steps only (the per-epoch evaluations come on top), so it is a
lower bound; it is printed to make plain, e.g., that the paper's CIFAR-10 recipe on a CPU is weeks.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from zoo import image_folder
from zoo.datasets import DatasetNotFoundError, load_cifar10

from .. import config as run_config
from ..corpora import load_corpus
from ..data.images import plan as image_plan
from ..data.text import TextCorpus, corpus_for
from ..device import pick_device
from ..scheduler import gpu_slots
from ..tasks import make_config
from . import memory
from .probe import PROBE_STEPS, RECURRENT_SEARCHES, run_probe
from .spec import ExperimentOptions, ExperimentSpec

log = logging.getLogger(__name__)


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


def image_count(data: str, test_portion: float = 0.0) -> int:
    """The training images of an image source (a folder's train/ counted without decoding), less the test
    hold-out (about ``test_portion`` of them) when the folder has neither val/ nor test/."""
    if str(data).startswith("torchvision:") or (Path(data).expanduser() / "cifar-10-batches-py").is_dir():
        return 50000
    splits = image_folder.scan(data).splits
    n = len(splits["train"])
    return n if "val" in splits or "test" in splits else n - round(test_portion * n)


# Fields that change how many steps a run takes or what it records, not what one training step costs: runs that
# differ only in them share one probe (e.g. the selection's short trainings and the final ones).
NOT_PER_STEP = ("seed", "epochs", "experiment", "profile", "valid_split", "limit", "limit_eval", "download")


@dataclasses.dataclass(frozen=True)
class RunEstimate:
    seconds: Optional[float]     # one run, training steps only (None: the probe ran out of memory)
    peak_bytes: Optional[int]    # its measured peak memory on the device (None: the platform cannot tell, or OOM)
    batch_size: int
    out_of_memory: bool = False  # the probe itself ran out of memory at this batch size


def _probe_config(kind: str, dataset: str, config: dict) -> Optional[Tuple[dict, Optional[int], Any]]:
    """(the probe's config, the steps of one epoch of the run or None when the probe counts them, the run's
    config), or None where the run is not estimated."""
    cfg = make_config(kind, dataset, config)
    if kind == "search":
        if dataset in RECURRENT_SEARCHES:  # the probe cuts the epoch to its steps (it has no limit field)
            return run_config.to_dict(dataclasses.replace(cfg, epochs=2)), None, cfg
        if dataset not in ("cifar10", "images"):
            return None
        n = cfg.train_examples or (image_count(cfg.data, cfg.test_portion) if dataset == "images" else
                                   len(load_cifar10(cfg.data, train=True, download=False)[1]))
        steps = math.ceil(math.floor(cfg.train_portion * n) / cfg.batch_size)
        probe = dataclasses.replace(cfg, epochs=2,
                                    train_examples=math.ceil(PROBE_STEPS * cfg.batch_size / cfg.train_portion) + 1)
        return run_config.to_dict(probe), steps, cfg
    if dataset == "cifar10":
        n = len(load_cifar10(cfg.data, train=True, download=False)[1]) - cfg.valid_split
        n = min(n, cfg.limit) if cfg.limit else n
        steps = math.ceil(n / cfg.batch_size)
        # one image to evaluate: the estimate counts training steps, so the probe spends no time elsewhere
        probe = dict(limit=PROBE_STEPS * cfg.batch_size, limit_eval=1, valid_split=0, download=False)
    elif dataset == "images":
        n = cfg.limit or round(image_count(cfg.data, cfg.test_portion) * (1 - cfg.valid_portion))
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
    return run_config.to_dict(dataclasses.replace(cfg, epochs=2, compile=False, **probe)), steps, cfg


def estimate_run(kind: str, dataset: str, config: dict, probes: Optional[Dict[str, dict]] = None,
                 gpu: Optional[str] = None) -> Optional[RunEstimate]:
    """About how long one run of ``config`` takes here, (probe epoch / its steps) x all steps, and its peak
    memory, both from a probe in a fresh process (:mod:`.probe`); None where the run is not estimated.
    ``probes`` keeps what was measured so far, so a recipe is probed once; ``gpu``: the GPU the runs take."""
    planned = _probe_config(kind, dataset, config)
    if planned is None:
        return None
    probe, steps, cfg = planned
    probes = {} if probes is None else probes
    key = json.dumps([kind, dataset, {k: v for k, v in config.items() if k not in NOT_PER_STEP}], sort_keys=True,
                     default=str)
    if key not in probes:
        probes[key] = run_probe(kind, dataset, probe, gpu=gpu)
    answer = probes[key]
    if answer.get("oom"):
        return RunEstimate(seconds=None, peak_bytes=None, batch_size=cfg.batch_size, out_of_memory=True)
    steps = steps or answer["steps_per_epoch"]
    return RunEstimate(seconds=answer["seconds_per_step"] * steps * int(config.get("epochs") or cfg.epochs),
                       peak_bytes=answer["peak_bytes"], batch_size=cfg.batch_size)


def _check_fits(label: str, kind: str, dataset: str, config: dict, run: RunEstimate, device, probes,
                gpu: Optional[str] = None) -> None:
    """DoesNotFitError (one line, with the batch size that fits) when ``run``'s probe ran out of memory or its peak
    exceeds the device's memory."""
    available, what = memory.available_memory(device, gpu)
    if not run.out_of_memory and (run.peak_bytes is None or available is None or run.peak_bytes <= available):
        return

    def peak_at(batch: int) -> memory.Probed:
        smaller = estimate_run(kind, dataset, dict(config, batch_size=batch), probes, gpu)
        return memory.Probed(smaller.out_of_memory, smaller.peak_bytes)

    option = "--search-batch-size" if kind == "search" else "--batch-size"
    raise memory.refusal(label, run.batch_size, run.peak_bytes, available, f"{what} on {device}", option, peak_at)


def data_and_time(spec: ExperimentSpec, options: ExperimentOptions, work) -> List[str]:
    """The data check (an error when missing), the time and peak-memory estimates of ``work``: (count, kind,
    config); DoesNotFitError when a run would not fit in the device's memory."""
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
        return lines + ["time and memory: not measured here (the runs go to Slurm nodes)"]
    try:
        device = pick_device(work[0][2].get("device", "auto"))
    except ValueError as e:
        return lines + [f"time and memory: not measured ({e})"]
    log.info("dry run: measuring a %d-step probe of each recipe on %s for the time and memory estimates (a few "
             "seconds to a few minutes: it builds each network and trains it on the real data)", PROBE_STEPS, device)
    total, parts, peaks, probes = 0.0, [], [], {}
    gpu = options.gpus[0] if options.gpus and device.type == "cuda" else None  # probe on a GPU the runs take
    for count, kind, cfg in work:
        dataset = spec.search_dataset if kind == "search" else spec.dataset
        run = estimate_run(kind, dataset, cfg, probes, gpu)
        if run is None:
            parts.append(f"{count} x {kind} {dataset}: not estimated")
            continue
        label = f"the {kind} of {dataset}" + (f" (order {cfg.get('order', 2)})" if kind == "search" else "")
        _check_fits(label, kind, dataset, cfg, run, device, probes, gpu)
        total += count * run.seconds
        peak = "" if run.peak_bytes is None else f", peak {memory.format_bytes(run.peak_bytes)}"
        parts.append(f"{count} x {kind} {dataset} ({cfg['epochs']} epochs): {format_duration(run.seconds)} each{peak}")
        if run.peak_bytes is not None:
            peaks.append(run.peak_bytes)
    per_job = options.gpus_per_job if options.gpus else 1
    parallel = len(gpu_slots(options.gpus, per_job)) if options.gpus else 1
    lines.append(f"time on {device}: about {format_duration(total / parallel)} in all"
                 + (f" over {parallel} GPUs" if parallel > 1 and per_job == 1 else
                    f" over {parallel} runs at a time" if parallel > 1 else "") + "; " + "; ".join(parts))
    if per_job > 1:
        lines.append(f"  (each run measured in one process; split over {per_job} GPUs it takes less, but not "
                     f"{per_job} times less: the processes exchange gradients every step)")
    lines.append(f"  (from a measured {PROBE_STEPS}-step epoch of each recipe; training steps only, the evaluations "
                 "add to it)")
    available, what = memory.available_memory(device, gpu)
    if peaks:
        how = ("torch.cuda.max_memory_allocated over the probe's steps" if device.type == "cuda" else
               "the peak resident memory (VmHWM) of the probe's own fresh process: torch, data, network and steps")
        lines.append(f"memory on {device}: the largest run peaks at about {memory.format_bytes(max(peaks))}"
                     + (f" of the {memory.format_bytes(available)} of {what}" if available else "")
                     + f" (measured: {how}; runs share a device one at a time)")
    else:
        lines.append(f"memory on {device}: not measured (no probe, or the platform cannot tell a process's peak)")
    return lines


def format_duration(seconds: float) -> str:
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"
