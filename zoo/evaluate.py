"""Evaluate a pretrained model as the original test scripts did.

- CIFAR-10 (cnn/test.py): the 10,000 test images, normalised with the CIFAR mean/std, top-1 and
  top-5 error in percent.
- ImageNet (cnn/test_imagenet.py): ImageFolder ``val/``, resize 256, center crop 224, normalise,
  top-1 and top-5 error in percent.
- PTB (rnn/test.py): ``test.txt`` with the vocabulary built over train, valid and test, batch size
  1, bptt 35, the hidden state carried across chunks; the loss is the sum of the per-chunk mean
  losses weighted by the chunk length divided by ``len(test_data)`` (the original divides by the
  number of tokens, one more than the number of predictions), perplexity ``exp(loss)``.

- A user's image folder (``DIR/<class>/<image>``, :mod:`zoo.folder_eval`): the model's own
  preprocessing (its ``pretrained_cfg``), top-1 / top-5 error and the error per class.

``evaluate(model_or_source, data_dir)`` returns a JSON-able report with the measured metrics, the
expected ones (from the model's config / the registry) and the parameter count.
"""
from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

import torch
import torch.nn.functional as F

from genotypes.quoting import quote

from .counting import count_parameters
from .datasets import (
    CIFAR_MEAN,
    CIFAR_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    Corpus,
    batchify,
    get_batch,
    imagenet_eval_transform,
    imagenet_folder,
    load_cifar10,
)
from .device import autocast, pick_device, progress_bar
from .folder_eval import evaluate_folder, is_image_folder
from .loader import load
from .registry import DATASET_OF_ARCH, get_entry, is_registered
from .topk import TopK

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]


def _logits(out):
    return out[0] if isinstance(out, (tuple, list)) else out


def _top_k_errors(model, batches, total: int, desc: str, dev, amp, progress) -> Dict[str, float]:
    """Top-1/top-5 error and loss of ``model`` (eval mode) over ``batches`` of (images, labels) on ``dev``."""
    model.eval()
    acc = TopK()
    bar = progress_bar(None, total, desc, progress is not False, unit="img")
    for x, y in batches:
        with autocast(dev, amp):
            logits = _logits(model(x))
        acc.update(logits, y)
        if bar is not None:
            bar.update(len(y))
    if bar is not None:
        bar.close()
    return {**acc.metrics(), "n": acc.n}


@torch.no_grad()
def evaluate_cifar10(model, data_dir: PathLike, batch_size: int = 96, device="cpu", amp: Optional[str] = None,
                     progress: Optional[bool] = None, download: bool = True,
                     mean: Sequence[float] = CIFAR_MEAN, std: Sequence[float] = CIFAR_STD) -> Dict[str, float]:
    """Top-1/top-5 error (%) on the CIFAR-10 test set (as cnn/test.py: ToTensor + Normalize)."""
    dev = pick_device(device)
    images, labels = load_cifar10(data_dir, train=False, download=download)
    m = torch.tensor(mean, device=dev).view(1, 3, 1, 1)
    s = torch.tensor(std, device=dev).view(1, 3, 1, 1)
    batches = (((images[i:i + batch_size].to(dev).float().div_(255) - m) / s, labels[i:i + batch_size].to(dev))
               for i in range(0, len(labels), batch_size))
    return _top_k_errors(model, batches, len(labels), "cifar10 test", dev, amp, progress)


@torch.no_grad()
def evaluate_imagenet(model, data_dir: PathLike, batch_size: int = 128, device="cpu", amp: Optional[str] = None,
                      progress: Optional[bool] = None, workers: int = 4, split: str = "val",
                      resize: int = 256, crop: int = 224, mean: Sequence[float] = IMAGENET_MEAN,
                      std: Sequence[float] = IMAGENET_STD) -> Dict[str, float]:
    """Top-1/top-5 error (%) on ImageFolder ``data_dir/val`` (resize 256, center crop 224)."""
    from torch.utils.data import DataLoader

    dev = pick_device(device)
    ds = imagenet_folder(data_dir, split=split, transform=imagenet_eval_transform(resize, crop, mean, std))
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=workers,
                        pin_memory=dev.type == "cuda")
    batches = ((x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)) for x, y in loader)
    return _top_k_errors(model, batches, len(ds), f"imagenet {split}", dev, amp, progress)


@torch.no_grad()
def lm_loss(forward, data: torch.Tensor, hidden, bptt: int, amp: Optional[str] = None, progress: bool = False,
            desc: str = "") -> float:
    """The mean loss of a language model over ``data`` (batchified: one column per sequence) as the original's
    evaluations compute it (rnn/test.py, rnn/train.py, rnn/train_search.py): chunks of ``bptt`` rows, the hidden
    state carried over, each chunk's mean NLL weighted by its length and the sum divided by ``len(data)``, all
    the rows, one more than the rows predicted (so perplexities are very slightly optimistic).

    ``forward(x, hidden) -> (log_prob, hidden)`` is the model (the search passes its architecture weights too);
    the sum is kept in float64 on the device, so nothing waits for it before the end.
    """
    total = torch.zeros((), device=data.device, dtype=torch.float64)
    starts = range(0, data.size(0) - 1, bptt)
    for i in progress_bar(starts, len(starts), desc, progress, unit="chunk"):
        x, targets = get_batch(data, i, bptt)
        with autocast(data.device, amp):
            log_prob, hidden = forward(x, hidden)
        total += F.nll_loss(log_prob.float().reshape(-1, log_prob.size(2)), targets).double() * len(x)
    return float(total.item()) / len(data)


@torch.no_grad()
def evaluate_ptb(model, data_dir: PathLike, batch_size: int = 1, bptt: int = 35, device="cpu",
                 amp: Optional[str] = None, progress: Optional[bool] = None, split: str = "test") -> Dict[str, float]:
    """Test perplexity as rnn/test.py computes it (batch size 1, bptt 35, hidden carried over)."""
    dev = pick_device(device)
    corpus = Corpus(data_dir)
    ntokens = len(corpus.dictionary)
    if getattr(model, "ntoken", ntokens) != ntokens:
        raise ValueError(
            f"the model's vocabulary has {model.ntoken} words but {data_dir} gives {ntokens} (built over train, valid "
            f"and test as the original does): evaluate on the corpus the model was trained on")
    data = batchify(getattr(corpus, split), batch_size, dev)
    model.eval()
    n_pred = (data.size(0) - 1) * data.size(1)
    if not n_pred:
        raise ValueError(f"{split}.txt of {data_dir} is too short to evaluate")
    loss = lm_loss(model, data, model.init_hidden(batch_size), bptt, amp=amp, progress=progress is not False,
                   desc=f"ptb {split}")
    return {"test_ppl" if split == "test" else f"{split}_ppl": math.exp(loss), "loss": loss, "n": int(data.numel()),
            "predictions": n_pred}


def dataset_of(model) -> str:
    cfg = getattr(model, "zoo_config", None) or {}
    if "image_size" in (cfg.get("data") or {}):  # trained on one's own images: evaluated on an image folder
        return "folder"
    ds = cfg.get("dataset") or DATASET_OF_ARCH.get(type(model).__name__)
    if ds not in ("cifar10", "imagenet", "ptb"):
        raise ValueError(f"cannot tell which dataset evaluates a {type(model).__name__}; pass dataset=")
    return ds


def evaluate(model_or_source, data_dir: PathLike, dataset: Optional[str] = None, batch_size: Optional[int] = None,
             device="cpu", amp: Optional[str] = None, progress: Optional[bool] = None, workers: int = 4,
             download: bool = True, checkpoint: Optional[PathLike] = None) -> Dict[str, Any]:
    """Evaluate a model (or anything ``zoo.load`` accepts) on its dataset; returns a JSON-able report."""
    dev = pick_device(device)
    source = None
    if isinstance(model_or_source, torch.nn.Module):
        model = model_or_source.to(dev)
    else:
        source = str(model_or_source)
        model = load(source, checkpoint=checkpoint, device=dev)
    cfg = getattr(model, "zoo_config", None) or {}
    dataset = dataset or _dataset_of_data(model, data_dir)
    pre = cfg.get("preprocessing") or {}
    t0 = time.time()
    per_class = None
    if dataset == "folder":  # a user's images: the model's own preprocessing, its published figures do not apply
        metrics = evaluate_folder(model, data_dir, batch_size or 64, dev, amp, progress, workers)
        per_class = metrics.pop("per_class")
        cfg = {k: v for k, v in cfg.items() if k not in ("metrics", "reference_metrics", "reference_source")}
    elif dataset == "cifar10":
        metrics = evaluate_cifar10(model, data_dir, batch_size or 96, dev, amp, progress, download,
                                   pre.get("mean", CIFAR_MEAN), pre.get("std", CIFAR_STD))
    elif dataset == "imagenet":
        metrics = evaluate_imagenet(model, data_dir, batch_size or 128, dev, amp, progress, workers,
                                    resize=pre.get("resize") or 256, crop=pre.get("crop") or 224,
                                    mean=pre.get("mean", IMAGENET_MEAN), std=pre.get("std", IMAGENET_STD))
    elif dataset == "ptb":
        metrics = evaluate_ptb(model, data_dir, batch_size or 1, pre.get("bptt", 35), dev, amp, progress)
    else:
        raise ValueError(f"dataset must be cifar10, imagenet, ptb or folder, not {quote(dataset)}")
    n = metrics.pop("n")
    return {
        "model": source or cfg.get("name") or type(model).__name__,
        "name": cfg.get("name"),
        "arch": type(model).__name__,
        "dataset": dataset,
        "split": {"imagenet": "val", "folder": str(data_dir)}.get(dataset, "test"),
        "n": n,
        "metrics": metrics,
        # figures of these weights when known, else the paper's for the architecture (labelled so)
        "expected": dict(cfg.get("metrics") or cfg.get("reference_metrics") or {}),
        "expected_source": cfg.get("metrics_source", "") if cfg.get("metrics") else (
            f"reference, not these weights: {cfg['reference_source']}" if cfg.get("reference_source") else ""),
        "params": count_parameters(model),
        "expected_params": _expected_params(cfg),
        "device": str(dev),
        "amp": amp or "none",
        "batch_size": batch_size or {"cifar10": 96, "imagenet": 128, "ptb": 1, "folder": 64}[dataset],
        "seconds": round(time.time() - t0, 3),
        "torch": torch.__version__,
        **({"per_class": per_class} if per_class is not None else {}),
    }


def _dataset_of_data(model, data_dir: PathLike) -> str:
    """The model's dataset, or ``folder`` when ``data_dir`` is an image folder of the user's (class folders of
    images) rather than the dataset's own layout (a CIFAR-10 root, ImageNet's root with val/)."""
    dataset = dataset_of(model)
    if dataset == "ptb" or (dataset == "imagenet" and (Path(data_dir).expanduser() / "val").is_dir()):
        return dataset
    return "folder" if is_image_folder(data_dir) else dataset


def _expected_params(cfg) -> Optional[int]:
    name = cfg.get("name")
    if name and is_registered(name):
        return get_entry(name).params
    return None


def format_report(report: Dict[str, Any]) -> str:
    """The report as a small table: measured next to expected."""
    rows = [("metric", "measured", "expected")]
    for k, v in report["metrics"].items():
        exp = report["expected"].get(k)
        rows.append((k, f"{v:.4f}" if k == "loss" else f"{v:.2f}", "" if exp is None else f"{exp}"))
    exp_p = report.get("expected_params")
    rows.append(("params", f"{report['params']:,}", f"{exp_p:,}" if exp_p else ""))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"{report['model']} on {report['dataset']} {report['split']} ({report['n']:,} "
             f"{'tokens' if report['dataset'] == 'ptb' else 'images'}, {report['device']}, amp {report['amp']}, "
             f"{report['seconds']:.1f}s)"]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    if report.get("expected_source"):
        lines.append(f"expected: {report['expected_source']}")
    if report.get("per_class"):
        width = max(len(c) for c in report["per_class"])
        lines.append("error per class:")
        lines += [f"  {c.ljust(width)}  {'-' if v['top1_error'] is None else format(v['top1_error'], '.2f')}"
                  f"  ({v['n']} images)" for c, v in report["per_class"].items()]
    return "\n".join(lines)


__all__ = ["evaluate", "evaluate_cifar10", "evaluate_imagenet", "evaluate_ptb", "format_report", "dataset_of"]
