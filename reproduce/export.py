"""Turn a finished training run into a saved model (``python -m reproduce export RUN_DIR --out DIR``).

The weights are the ones the run's final metrics were measured on: the last epoch's for the image
recipes (``checkpoint.pt``), the best validation epoch's for the language models (``best.pt``, which
their test perplexity evaluates). Both files are read through the run directory's checksummed
loader. The model card is built from the run's record: the measured metrics, the config, the seed
and the commit; nothing else is claimed for the weights.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import zoo
from zoo.card import DATASET_NAMES
from zoo.layouts import infer_cnn_args, strip_module_prefix
from zoo.registry import build

from .data.trained_on import TrainedOn, trained_on
from .rundir import RunDir, first_line

log = logging.getLogger(__name__)

_LM = ("ptb", "wt2", "text")


def _weights(rundir: RunDir, dataset: str) -> Dict[str, Any]:
    name = "best.pt" if dataset in _LM else "checkpoint.pt"
    state = rundir.load_checkpoint(map_location="cpu", name=name)
    if state is None:
        raise FileNotFoundError(f"{rundir.path / name} is missing: it holds the weights of the finished run "
                                f"(it may have been deleted to save space; the run cannot be exported without it)")
    weights = state.get("model") if dataset in _LM else (state.get("task") or {}).get("model")
    if not isinstance(weights, dict) or not weights:
        raise ValueError(f"{rundir.path / name} holds no model weights")
    return strip_module_prefix(weights)


def _build(record: Dict[str, Any], weights: Dict[str, Any]):
    config, dataset = record.get("config") or {}, record["dataset"]
    if dataset in _LM:
        ntoken, ninp = weights["encoder.weight"].shape
        args = {"ntoken": int(ntoken), "ninp": int(ninp), "nhid": int(ninp), "nhidlast": int(ninp),
                **{k: float(config[k]) for k in ("dropout", "dropouth", "dropoutx", "dropouti", "dropoute")
                   if k in config}}
        return build("RNNModel", args, record["genotype"])
    cifar = dataset == "cifar10" or (dataset == "images" and (record.get("data") or {}).get("stem") == "cifar")
    args = infer_cnn_args(weights, "cifar10" if cifar else "imagenet")
    in_chans = int(weights["stem.0.weight" if cifar else "stem0.0.weight"].shape[1])
    if in_chans != 3:
        args["in_chans"] = in_chans
    return build("NetworkCIFAR" if cifar else "NetworkImageNet", args, record["genotype"])


def _metrics(record: Dict[str, Any], data: TrainedOn) -> Tuple[Dict[str, float], str]:
    final, dataset = record.get("final") or {}, record["dataset"]
    if dataset == "images":
        metrics = {"top1_error": final["test_error"]} if "test_error" in final else {}
        split = f"{record['data']['split']['test']['rule']} of {record['data']['source']}"
    elif dataset == "cifar10":
        metrics = {"top1_error": final["test_error"]} if "test_error" in final else {}
        split = "CIFAR-10 test set" if data.data is None else f"test set of {data.name}"
    elif dataset == "imagenet":
        metrics = {k: final[k] for k in ("top1_error", "top5_error") if k in final}
        split = "ImageNet validation set" if data.data is None else f"val/ of {data.name}"
    else:
        metrics = {k: final[k] for k in ("test_ppl", "valid_ppl") if k in final}
        split = f"{data.name}: validation and test sets, best validation epoch"
    source = f"measured by python -m reproduce at the end of the run ({split}; {_run_words(record, data)})"
    return {k: float(v) for k, v in metrics.items()}, source


def _run_words(record: Dict[str, Any], data: TrainedOn) -> str:
    """The recipe, seed and epochs of a run, and whether its figures are comparable with the paper's."""
    cfg = record.get("config") or {}
    verdict = ("the paper's recipe, comparable with the paper" if data.comparable else
               f"NOT comparable with the paper: {data.why_not}")
    return (f"{record.get('experiment')} recipe, seed {record.get('seed')}, {cfg.get('epochs', '?')} epochs; "
            f"{verdict}")


def export_run(run_dir, out, push: Optional[str] = None, token: Optional[str] = None) -> Path:
    """Write the finished run in ``run_dir`` as a saved model in ``out``; with ``push``, also publish it."""
    rundir = RunDir(run_dir)
    if not rundir.path.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such run directory")
    record = rundir.read_record()
    if not isinstance(record, dict):
        raise ValueError(f"{run_dir} holds no finished run (no record.json): export a training run once it finished")
    if record.get("kind") != "train":
        raise ValueError(f"{run_dir} is a {record.get('kind')} run; export the training run of its genotype")
    if record.get("dataset") not in DATASET_NAMES and record.get("dataset") not in ("images", "text"):
        raise ValueError(f"{run_dir}: unknown dataset {record.get('dataset')!r} in record.json")
    out = Path(out)
    if (out / "config.json").exists():
        raise FileExistsError(f"{out} already holds a saved model; choose another --out")
    weights = _weights(rundir, record["dataset"])
    model = _build(record, weights)
    model.load_state_dict(weights)
    data = trained_on(record)
    metrics, metrics_source = _metrics(record, data)
    cfg = record.get("config") or {}
    provenance = (f"trained from scratch on {data.name} by `python -m reproduce` ({_run_words(record, data)}; "
                  f"{record.get('device', '?')}, torch {record.get('torch', '?')})")
    source = {"provenance": provenance, "run": str(run_dir), "seed": record.get("seed"),
              "commit": record.get("git_commit"), "experiment": record.get("experiment"), "config": cfg,
              "comparable": data.comparable}
    description = (f"{type(model).__name__} with the cell {record['genotype']}, trained from scratch on "
                   f"{data.name} by python -m reproduce.")
    card_data = None if data.data is None else {**data.data, "name": data.name}
    saved = zoo.save_pretrained(model, out, metrics=metrics, metrics_source=metrics_source, source=source,
                                description=description, dataset=record["dataset"], data=card_data)
    if push:
        try:
            url = zoo.push_to_hub(saved, push, token=token)
        except Exception as e:  # network, login, permissions: the saved model stays, publish it again by hand
            raise ValueError(f"wrote {saved}, but pushing it to {push} failed ({first_line(e)}); publish it with "
                             f"`python -m zoo push {saved} {push}`") from None
        log.info("pushed %s to %s (%s)", saved, push, url)
    return saved


__all__ = ["export_run"]
