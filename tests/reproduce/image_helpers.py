"""Small image folders in the real on-disk layout (PNG files through PIL), so the real readers run.

Each class is easy to tell apart: class k of K is an image of brightness about 30 + 200 k / (K - 1)
(in its own colour for RGB) with mild seeded noise, so a tiny network learns it in a few steps, crops
and flips notwithstanding.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional

import numpy as np
from PIL import Image

COLOURS = [(1.0, 0.2, 0.2), (0.2, 1.0, 0.2), (0.2, 0.2, 1.0), (1.0, 1.0, 0.2), (0.2, 1.0, 1.0)]


def class_image(k: int, classes: int, size: int, mode: str, rng: np.random.Generator) -> Image.Image:
    level = 30 + 200 * k / max(1, classes - 1)
    noise = rng.normal(0, 8, (size, size))
    gray = np.clip(level + noise, 0, 255)
    if mode == "L":
        return Image.fromarray(gray.astype(np.uint8), "L")
    colour = np.array(COLOURS[k % len(COLOURS)])
    rgb = np.clip(gray[..., None] * colour, 0, 255).astype(np.uint8)
    return Image.fromarray(rgb, "RGB")


def write_image_folder(root, counts: Dict[str, int], size: int = 12, mode: str = "L",
                       splits: Optional[Dict[str, Dict[str, int]]] = None, seed: int = 0,
                       sizes: Optional[Dict[str, int]] = None) -> Path:
    """``root/train/<class>/<i>.png`` with ``counts[class]`` images (and ``splits`` {split: counts});
    ``sizes`` gives some classes another image size."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    names = sorted(counts)
    for split, per_class in {"train": counts, **(splits or {})}.items():
        for name, n in per_class.items():
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            side = (sizes or {}).get(name, size)
            for i in range(n):
                class_image(names.index(name) if name in names else 0, len(names), side, mode, rng).save(
                    d / f"{i:03d}.png")
    return root
