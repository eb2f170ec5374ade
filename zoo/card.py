"""Model cards: the README.md of a saved model (on disk and on the Hugging Face Hub).

Built with huggingface_hub's ``ModelCard`` / ``ModelCardData``, so the Hub reads the metadata and
shows the metrics (``model-index`` from ``eval_results``). A card describes the weights actually
saved: their provenance, the figures measured or reported for *these* weights, and, apart and
labelled as such, the paper's figures for the architecture. Weights saved with neither provenance
nor figures are described as unknown, never as the authors' model.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Dict, List, Sequence, Union

import genotypes as _genotypes

from .fileio import atomic_write_text

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

METRIC_LABELS = {
    "top1_error": "top-1 error (%)", "top5_error": "top-5 error (%)", "top1_error_std": "top-1 error std (%)",
    "test_ppl": "test perplexity", "valid_ppl": "validation perplexity", "top1_acc": "top-1 accuracy (%)",
}
DATASET_NAMES = {"cifar10": "CIFAR-10", "imagenet": "ImageNet (ILSVRC2012)", "ptb": "Penn Treebank",
                  "wt2": "WikiText-2"}
_HF_DATASETS = {"cifar10": "cifar10", "imagenet": "imagenet-1k", "ptb": "ptb_text_only", "wt2": "wikitext"}
_SPLITS = {"cifar10": "test", "imagenet": "validation", "ptb": "test", "wt2": "test"}


def draw_cells(genotype_text: str, directory: PathLike, fmt: str = "png") -> List[Path]:
    """Cell diagrams next to the card (``cell_normal.png`` ...); [] when graphviz cannot draw."""
    try:
        g = _genotypes.parse(genotype_text)
        return [Path(p) for p in _genotypes.plot(g, Path(directory) / "cell", format=fmt)]
    except Exception as e:  # graphviz missing or failing must not stop saving a model
        log.warning("no cell diagram for the model card (%s: %s)", type(e).__name__, e)
        return []


def _metric_rows(metrics: Dict[str, float]) -> List[str]:
    return [f"| {METRIC_LABELS.get(k, k)} | {v} |" for k, v in metrics.items()]


def card_data(config: Dict[str, Any]):
    """The Hub metadata: license, tags, dataset and, for figures of these weights, ``eval_results``."""
    from huggingface_hub import EvalResult, ModelCardData

    dataset = config.get("dataset", "")
    name = config.get("name") or config.get("arch", "model")
    task = "text-generation" if dataset in ("ptb", "wt2") else "image-classification"
    own = bool(config.get("data"))  # not the registry dataset: no Hub dataset id is claimed
    results = [
        EvalResult(task_type=task, dataset_type="own" if own else _HF_DATASETS.get(dataset, dataset),
                   dataset_name=data_name(config), dataset_split="test" if own else _SPLITS.get(dataset),
                   metric_type=key, metric_name=METRIC_LABELS.get(key, key), metric_value=value)
        for key, value in (config.get("metrics") or {}).items()
    ]
    tags = ["darts", "neural-architecture-search", "pytorch", task]
    return ModelCardData(license=config.get("license", "apache-2.0"), library_name="darts-zoo", tags=tags,
                         datasets=[_HF_DATASETS[dataset]] if dataset in _HF_DATASETS and not own else None,
                         model_name=str(name) if results else None, eval_results=results or None)


def data_name(config: Dict[str, Any]) -> str:
    """The data the weights were trained on: a registry dataset's name, or the ``data`` the config describes."""
    data = config.get("data") or {}
    dataset = config.get("dataset", "")
    return str(data.get("name") or data.get("source") or DATASET_NAMES.get(dataset, dataset))


def _provenance_lines(config: Dict[str, Any]) -> List[str]:
    src = config.get("source") or {}
    if not src:
        return ["Nothing is recorded about where these weights come from or how they were trained: they are what "
                "the network held when it was saved (for example an untrained network)."]
    lines = []
    if src.get("provenance"):
        lines.append(str(src["provenance"]) + ".")
    if src.get("file"):
        lines.append(f"Converted by the zoo from `{src['file']}` (sha256 `{src.get('sha256', '?')}`, "
                     f"{src.get('layout', 'original')} layout).")
    if src.get("url"):
        lines.append(f"Downloaded from <{src['url']}>.")
    if src.get("verification"):
        lines.append(f"**These weights were {src['verification']}**: nothing shows that they are the file the "
                     f"provenance above names.")
    if src.get("publisher_metrics"):
        figures = ", ".join(f"{METRIC_LABELS.get(k, k)} {v}" for k, v in src["publisher_metrics"].items())
        lines.append(f"The publisher's figures for their file, not a measurement of these weights: {figures} "
                     f"({src.get('publisher_metrics_source') or 'source not stated'}).")
    if src.get("run"):
        lines.append(f"Trained from scratch by `python -m reproduce` (run `{src['run']}`, seed {src.get('seed')}, "
                     f"commit `{src.get('commit')}`).")
    if src.get("classifier"):
        lines.append(f"Classifier: {src['classifier']}.")
    return lines or [f"Source: `{src}`"]


def render_card(config: Dict[str, Any], images: Sequence[str] = ()) -> str:
    from huggingface_hub import ModelCard

    name = config.get("name") or config.get("arch", "model")
    metrics = config.get("metrics") or {}
    reference = config.get("reference_metrics") or {}  # the registry entry's published figures
    lines = [f"# {name}", "", config.get("description", ""), ""]
    lines += [
        f"- architecture: `{config.get('arch')}` with arguments `{config.get('args')}`",
        f"- dataset: {data_name(config)}",
        *([f"- classes (output order): {', '.join(map(str, config['class_names']))}"] if config.get("class_names")
          else []),
        f"- parameters: {config.get('params', 0):,} (auxiliary head excluded, tied weights counted once)",
        "", "## The weights", "",
    ]
    lines += _provenance_lines(config)
    lines += ["", "## Metrics of these weights", ""]
    if metrics:
        lines += ["| metric | value |", "| --- | --- |", *_metric_rows(metrics), ""]
        lines.append(f"Source: {config.get('metrics_source') or 'not stated'}.")
    else:
        lines.append("None recorded: these weights have not been evaluated.")
    if reference:
        lines += ["", "## Reference (published figures for this architecture, not a measurement of these weights)",
                  "", "| metric | value |", "| --- | --- |", *_metric_rows(reference), ""]
        if config.get("reference_source"):
            lines.append(f"Source: {config['reference_source']}.")
    lines += ["", "Evaluate with `python -m zoo eval DIR --data DATA` (see the zoo's README).", ""]
    lines += ["## Genotype", "", "```", config.get("genotype", ""), "```", ""]
    for img in images:
        lines += [f"![{Path(img).stem}]({Path(img).name})", ""]
    repo = name if "/" in str(name) else "ORG/REPO"
    lines += ["## Usage", "", "```python", "import zoo", ""]
    if config.get("name"):
        lines.append(f"model = zoo.load(\"{name}\")          # registry name")
    lines += [f"model = zoo.load(\"hf-hub:{repo}\")  # from the Hugging Face Hub",
              "model = zoo.load(\"path/to/this/directory\")", "```", "",
              "Preprocessing: `" + str(config.get("preprocessing", {})) + "`", "",
              "## Citation", "", "```bibtex", config.get("citation", ""), "```", ""]
    body = "\n".join(lines)
    return str(ModelCard("---\n" + card_data(config).to_yaml() + "\n---\n\n" + body))


def write_card(directory: PathLike, config: Dict[str, Any], diagram_format: str = "png") -> Path:
    """Write ``README.md`` (and the cell diagrams) into a saved-model directory."""
    d = Path(directory)
    images = [p.name for p in draw_cells(config.get("genotype", ""), d, diagram_format)] if diagram_format else []
    return atomic_write_text(d / "README.md", render_card(config, images))


__all__ = ["render_card", "write_card", "draw_cells", "card_data", "METRIC_LABELS", "DATASET_NAMES"]
