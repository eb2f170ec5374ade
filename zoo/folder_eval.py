"""Evaluate a model on a user's image folder (``root/<class>/<image>``) with the model's own preprocessing.

The images go through the transforms of the model's ``pretrained_cfg`` (what ``zoo.transforms``
gives). Folder names are matched to the model's outputs by name when they are all class names of
the model's dataset (``airplane``, ``cat`` ... for CIFAR-10), otherwise by position: the i-th folder
in sorted order is output i (torchvision's ImageFolder order, as ImageNet's wnid folders are), which
needs as many folders as the model has outputs. Reports top-1 and top-5 error and the error per class.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import torch

from .datasets import DatasetNotFoundError
from .device import autocast, pick_device, progress_bar
from .pretrained_cfg import eval_transforms_of
from .registry import class_names
from .topk import TopK

PathLike = Union[str, os.PathLike]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def is_image_folder(root: PathLike) -> bool:
    """Whether ``root`` holds class folders of images (``root/<class>/<image>``)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        return False
    return any(sub.is_dir() and any(f.suffix.lower() in IMAGE_SUFFIXES for f in sub.iterdir())
               for sub in root.iterdir())


def _output_index(folders: List[str], model) -> List[int]:
    """The model output each folder's images belong to (by class name when they all are names, else by position)."""
    saved = (getattr(model, "zoo_config", None) or {}).get("class_names")  # a model of one's own data names them
    names = list(saved or class_names(model.pretrained_cfg.get("dataset", "")) or [])
    num_classes = model.pretrained_cfg["num_classes"]
    if names and len(names) == num_classes and all(f in names for f in folders):
        return [names.index(f) for f in folders]
    if len(folders) != num_classes:
        raise ValueError(f"the folder has {len(folders)} class folders and the model {num_classes} outputs, and the "
                         f"folder names are not its class names ({', '.join(names[:3])}, ...): give it one folder "
                         f"per output (sorted names in output order), or fine-tune it with num_classes="
                         f"{len(folders)}")
    return list(range(len(folders)))


@torch.no_grad()
def evaluate_folder(model, data_dir: PathLike, batch_size: int = 64, device="cpu", amp: Optional[str] = None,
                    progress: Optional[bool] = None, workers: int = 4) -> Dict[str, Any]:
    """Top-1/top-5 error (%) over an image folder, and per class ``{folder: {"n", "top1_error"}}``."""
    from torch.utils.data import DataLoader
    from torchvision.datasets import ImageFolder

    dev = pick_device(device)
    root = Path(data_dir).expanduser()
    if not is_image_folder(root):
        raise DatasetNotFoundError(f"{root} is not an image folder: expected {root}/<class>/<image> (one folder of "
                                   f"images per class)")
    ds = ImageFolder(str(root), transform=eval_transforms_of(model.pretrained_cfg), allow_empty=True)
    to_output = torch.tensor(_output_index(ds.classes, model))
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=workers, pin_memory=dev.type == "cuda")
    model.eval()
    acc = TopK()
    seen = torch.zeros(len(ds.classes), dtype=torch.long)
    wrong = torch.zeros(len(ds.classes), dtype=torch.long)
    bar = progress_bar(None, len(ds), f"folder {root.name}", progress is not False, unit="img")
    for x, folder in loader:
        target = to_output[folder]
        with autocast(dev, amp):
            logits = model(x.to(dev))
        acc.update(logits, target.to(dev))
        miss = logits.argmax(1).cpu() != target
        seen += torch.bincount(folder, minlength=len(ds.classes))
        wrong += torch.bincount(folder[miss], minlength=len(ds.classes))
        if bar is not None:
            bar.update(len(folder))
    if bar is not None:
        bar.close()
    per_class = {name: {"n": int(n), "top1_error": 100.0 * int(w) / int(n) if n else None}
                 for name, n, w in zip(ds.classes, seen.tolist(), wrong.tolist())}
    return {**acc.metrics(), "n": acc.n, "per_class": per_class}


__all__ = ["evaluate_folder", "is_image_folder"]
