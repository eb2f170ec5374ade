"""Model cards: the README.md of a saved model (on disk and on the Hugging Face Hub).

The card says what the model is, its metrics against the paper's, the genotype with a cell
diagram (drawn with graphviz through :func:`genotypes.plot` when ``dot`` is available), how to
load it, its license and citation. It starts with the Hub's YAML metadata block.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Dict, List, Union

import genotypes as _genotypes

from .fileio import atomic_write_text

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

_METRIC_LABELS = {
    "top1_error": "top-1 error (%)", "top5_error": "top-5 error (%)", "top1_error_std": "top-1 error std (%)",
    "test_ppl": "test perplexity", "valid_ppl": "validation perplexity",
}
_DATASET_NAMES = {"cifar10": "CIFAR-10", "imagenet": "ImageNet (ILSVRC2012)", "ptb": "Penn Treebank"}
_HF_DATASETS = {"cifar10": "cifar10", "imagenet": "imagenet-1k", "ptb": "ptb_text_only"}


def draw_cells(genotype_text: str, directory: PathLike, fmt: str = "png") -> List[Path]:
    """Cell diagrams next to the card (``cell_normal.png`` ...); [] when graphviz cannot draw."""
    try:
        g = _genotypes.parse(genotype_text)
        return [Path(p) for p in _genotypes.plot(g, Path(directory) / "cell", format=fmt)]
    except Exception as e:  # graphviz missing or failing must not stop saving a model
        log.warning("no cell diagram for the model card (%s: %s)", type(e).__name__, e)
        return []


def render_card(config: Dict[str, Any], images: List[str] = ()) -> str:
    name = config.get("name") or config.get("arch", "model")
    dataset = config.get("dataset", "")
    metrics = config.get("metrics") or {}
    tags = ["darts", "neural-architecture-search", "pytorch", "image-classification" if dataset != "ptb"
            else "language-modeling"]
    lines = ["---", f"license: {config.get('license', 'apache-2.0')}", "library_name: darts-zoo", "tags:"]
    lines += [f"- {t}" for t in tags]
    if dataset in _HF_DATASETS:
        lines += ["datasets:", f"- {_HF_DATASETS[dataset]}"]
    lines += ["---", "", f"# {name}", "", config.get("description", ""), ""]
    lines += [
        f"- architecture: `{config.get('arch')}` with arguments `{config.get('args')}`",
        f"- dataset: {_DATASET_NAMES.get(dataset, dataset)}",
        f"- parameters: {config.get('params', 0):,} (auxiliary head excluded, tied weights counted once)",
    ]
    src = config.get("source") or {}
    if src.get("original_file"):
        lines.append(f"- weights: converted from the original `{src['original_file']}` "
                     f"(sha256 `{src.get('original_sha256', '?')}`) with `python -m zoo convert`")
    lines += ["", "## Metrics", ""]
    if metrics:
        lines += ["| metric | expected (paper / original release) |", "| --- | --- |"]
        lines += [f"| {_METRIC_LABELS.get(k, k)} | {v} |" for k, v in metrics.items()]
        if config.get("metrics_source"):
            lines += ["", f"Source: {config['metrics_source']}."]
        lines += ["", f"Reproduce with `python -m zoo eval {name} --data DIR` (see the zoo's README)."]
    else:
        lines.append("No published figures for this configuration.")
    lines += ["", "## Genotype", "", "```", config.get("genotype", ""), "```", ""]
    for img in images:
        lines += [f"![{Path(img).stem}]({Path(img).name})", ""]
    repo = name if "/" in str(name) else "ORG/REPO"
    lines += [
        "## Usage", "", "```python", "import zoo", "",
        f"model = zoo.load(\"{name}\")          # registry name" if config.get("name") else None,
        f"model = zoo.load(\"hf-hub:{repo}\")  # from the Hugging Face Hub",
        "model = zoo.load(\"path/to/this/directory\")", "```", "",
        "Preprocessing: `" + str(config.get("preprocessing", {})) + "`", "",
        "## Citation", "", "```bibtex", config.get("citation", ""), "```", "",
    ]
    return "\n".join(x for x in lines if x is not None) + "\n"


def write_card(directory: PathLike, config: Dict[str, Any], diagram_format: str = "png") -> Path:
    """Write ``README.md`` (and the cell diagrams) into a saved-model directory."""
    d = Path(directory)
    images = [p.name for p in draw_cells(config.get("genotype", ""), d, diagram_format)] if diagram_format else []
    return atomic_write_text(d / "README.md", render_card(config, images))


__all__ = ["render_card", "write_card", "draw_cells"]
