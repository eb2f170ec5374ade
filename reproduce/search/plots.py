"""Pictures of a search run: architecture weights per edge over epochs, skip connections per epoch,
the learning curves, the cell of every epoch (graphviz) and animated GIFs of the cells over time.

Reads only the run directory's ``alphas.jsonl``, ``genotypes.jsonl`` and ``metrics.jsonl``, so it
works on a finished run and on one still going.
"""
from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Dict, List

import numpy as np

import genotypes
from genotypes import RNNGenotype, derive
from zoo.fileio import atomic_write_bytes

from ..figures import integer_epochs, plt  # matplotlib set up once, for files (Agg)
from ..jsonfile import read_json_lines
from ..layout import ALPHAS, GENOTYPES, METRICS_FILE

log = logging.getLogger(__name__)

_PRIMITIVES = {"alphas_normal": genotypes.cnn.PRIMITIVES, "alphas_reduce": genotypes.cnn.PRIMITIVES,
               "weights": genotypes.rnn.PRIMITIVES}


def _savefig(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format=path.suffix.lstrip("."), dpi=90, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _edge_labels(name: str, n_edges: int) -> List[str]:
    labels = []
    if name == "weights":  # recurrent: node i+1 takes one of nodes 0..i
        for i in range(1, 100):
            labels += [f"{j}->{i}" for j in range(i)]
            if len(labels) >= n_edges:
                break
    else:  # conv: node i (0-based intermediate) takes c_{k-2}, c_{k-1}, 0..i-1
        names = ["k-2", "k-1"] + [str(i) for i in range(100)]
        for i in range(100):
            labels += [f"{names[j]}->{i}" for j in range(i + 2)]
            if len(labels) >= n_edges:
                break
    return labels[:n_edges]


def plot_alphas(rows: List[dict], out: Path, fmt: str = "png") -> List[Path]:
    """One figure per logits tensor: a panel per edge, the softmax weight of each op over epochs."""
    epochs = [r["epoch"] for r in rows]
    paths = []
    for name in rows[0]["softmax"]:
        probs = np.array([r["softmax"][name] for r in rows])  # [E, edges, ops]
        if probs.ndim == 2:  # PC-DARTS's betas: one weight per edge (softmax over the node's incoming edges)
            probs = probs[:, :, None]
        n_edges, n_ops = probs.shape[1:]
        cols = 6 if n_edges > 16 else 4
        nrows = -(-n_edges // cols)
        fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.3 * nrows), sharex=True, squeeze=False)
        labels = _edge_labels(name, n_edges)
        primitives = ["edge weight"] if name.startswith("betas") else _PRIMITIVES.get(
            name, [f"op{k}" for k in range(n_ops)])
        for e in range(nrows * cols):
            ax = axes[e // cols][e % cols]
            if e >= n_edges:
                ax.axis("off")
                continue
            for k in range(n_ops):
                ax.plot(epochs, probs[:, e, k], label=primitives[k], linewidth=1.2)
            ax.set_title(f"edge {labels[e]}", fontsize=9)
            integer_epochs(ax)
            ax.tick_params(labelsize=7)
        handles, names = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, names, loc="upper center", ncol=len(names), fontsize=8, bbox_to_anchor=(0.5, 1.02))
        fig.suptitle(f"softmax({name}) over epochs (epoch -1: initialisation)", y=1.05)
        stem = name if name.startswith(("alphas", "betas")) else f"alphas_{name}"
        paths.append(_savefig(fig, out / f"{stem}.{fmt}"))
    return paths


def skip_counts(genotype) -> Dict[str, int]:
    if isinstance(genotype, RNNGenotype):
        return {"recurrent identity": sum(op == "identity" for op, _ in genotype.recurrent)}
    return {"normal skip_connect": derive.count_skips(genotype.normal),
            "reduce skip_connect": derive.count_skips(genotype.reduce)}


def plot_skips(geno_rows: List[dict], out: Path, fmt: str = "png") -> Path:
    epochs = [r["epoch"] for r in geno_rows]
    counts = [skip_counts(genotypes.parse(r["genotype"])) for r in geno_rows]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for key in counts[0]:
        ax.plot(epochs, [c[key] for c in counts], marker="o", label=key)
    ax.set_xlabel("epoch")
    integer_epochs(ax)
    ax.set_ylabel("count in the derived cell")
    ax.set_title("parameter-free skips per epoch (DARTS drifts toward skip-heavy cells)")
    ax.legend()
    return _savefig(fig, out / f"skip_connections.{fmt}")


def plot_curves(metrics: List[dict], out: Path, fmt: str = "png") -> Path:
    epochs = [m["epoch"] for m in metrics]
    second = "acc" if "train_acc" in metrics[0] else "ppl"
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for ax, what in zip(axes, ("loss", second)):
        for split in ("train", "valid"):
            key = f"{split}_{what}"
            if key in metrics[0]:
                ax.plot(epochs, [m[key] for m in metrics], marker="o", label=split)
        ax.set_xlabel("epoch")
        integer_epochs(ax)
        ax.set_ylabel(what + (" (%)" if what == "acc" else ""))
        ax.legend()
    return _savefig(fig, out / f"curves.{fmt}")


def make_gif(frames: List[Path], path: Path, duration_ms: int = 600) -> Path:
    """An animated GIF of PNG frames of different sizes, each centred on a white canvas."""
    from PIL import Image

    images = [Image.open(f).convert("RGB") for f in frames]
    width = max(im.width for im in images)
    height = max(im.height for im in images)
    canvas = []
    for im in images:
        c = Image.new("RGB", (width, height), "white")
        c.paste(im, ((width - im.width) // 2, (height - im.height) // 2))
        canvas.append(c)
    buf = io.BytesIO()
    canvas[0].save(buf, format="GIF", save_all=True, append_images=canvas[1:], duration=duration_ms, loop=0)
    atomic_write_bytes(path, buf.getvalue())
    return path


def plot_run(run_dir, out=None, fmt: str = "png", cells: bool = True) -> List[Path]:
    """All pictures of a search run into ``out`` (default ``RUN_DIR/plots``); returns the files written."""
    run_dir = Path(run_dir)
    alpha_rows, geno_rows = read_json_lines(run_dir / ALPHAS), read_json_lines(run_dir / GENOTYPES)
    if not alpha_rows or not geno_rows:
        raise FileNotFoundError(f"{run_dir} holds no {ALPHAS} / {GENOTYPES}: is it a search run directory "
                                "(python -m reproduce search ... --out DIR)?")
    out = Path(out) if out is not None else run_dir / "plots"
    out.mkdir(parents=True, exist_ok=True)
    paths = plot_alphas(alpha_rows, out, fmt) + [plot_skips(geno_rows, out, fmt)]
    metrics = read_json_lines(run_dir / METRICS_FILE)
    if metrics:
        paths.append(plot_curves(metrics, out, fmt))
    if cells:
        frames: Dict[str, List[Path]] = {}
        for row in geno_rows:
            g = genotypes.parse(row["genotype"])
            label = "init" if row["epoch"] < 0 else f"epoch {row['epoch']}"
            stem = out / "cells" / f"epoch_{row['epoch'] + 1:03d}"
            for p in genotypes.plot(g, stem, format="png", title=label):
                cell = p.stem.rsplit("_", 1)[-1]  # normal, reduce or recurrent
                frames.setdefault(cell, []).append(p)
                paths.append(p)
        for cell, files in frames.items():
            paths.append(make_gif(files, out / f"{cell}_cell.gif"))
    log.info("wrote %d files to %s", len(paths), out)
    return paths
