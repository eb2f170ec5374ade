"""Turn a finished training run into a saved model (``python -m reproduce export RUN_DIR --out DIR``).

The weights are the ones the run's final metrics were measured on: the last epoch's for the image
recipes (``checkpoint.pt``), the best validation epoch's for the language models (``best.pt``, which
their test perplexity evaluates). Both files are read through the run directory's checksummed
loader. The model card is built from the run's record: the measured metrics, the config, the seed
and the commit; nothing else is claimed for the weights.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import zoo
from genotypes.quoting import quote
from zoo.hub import PushError, parse_hub_source, push_token
from zoo.layouts import infer_cnn_args, strip_module_prefix
from zoo.registry import build

from . import records
from .data.trained_on import TrainedOn, trained_on
from .layout import BEST, CHECKPOINT
from .rundir import DamagedCheckpointError, RunConfigMismatchError, RunDir, first_line
from .runner import config_digest, read_run_checkpoint
from .train.recipes import recipe_name

log = logging.getLogger(__name__)

_LM = ("ptb", "wt2", "text")


def _weights(rundir: RunDir, record: Dict[str, Any]) -> Dict[str, Any]:
    """The weights the record's metrics were measured on, read through the resume guard: the checkpoint must be
    this run's (its config's digest), written after its last epoch, and metrics.jsonl must agree with it."""
    dataset, config = record["dataset"], record["config"]
    state = _guarded(rundir, lambda: read_run_checkpoint(rundir, "train", dataset, config))
    if state is None:
        raise FileNotFoundError(_missing(rundir, CHECKPOINT))
    if state["epoch"] != config.get("epochs"):
        raise ValueError(f"cannot export {rundir.path}: {rundir.checkpoint_path} was written after epoch "
                         f"{state['epoch']} of {quote(config.get('epochs'))}, not by the finished run whose record "
                         "is there: restore the run's own checkpoint")
    if dataset in _LM:
        best = _guarded(rundir, lambda: rundir.load_checkpoint(map_location="cpu", name=BEST))
        if best is None:
            raise FileNotFoundError(_missing(rundir, BEST))
        best_epoch = state["task"].get("best_epoch")
        if best.get("config_digest") != config_digest(config) or best.get("epoch") != (
                best_epoch + 1 if isinstance(best_epoch, int) else None):
            raise ValueError(f"cannot export {rundir.path}: {rundir.path / BEST} is not the best epoch this run "
                             "recorded (its config digest or epoch differ): restore the run's own best.pt")
        weights = best.get("model")
    else:
        weights = state["task"].get("model")
    if not isinstance(weights, dict) or not weights:
        raise ValueError(f"{rundir.path / (BEST if dataset in _LM else CHECKPOINT)} holds no model weights")
    return strip_module_prefix(weights)


def _guarded(rundir: RunDir, read):
    try:
        return read()
    except (DamagedCheckpointError, RunConfigMismatchError) as e:
        raise ValueError(f"cannot export {rundir.path}: {e}") from None


def _missing(rundir: RunDir, name: str) -> str:
    demo = (rundir.read_config() or {}).get("profile") == "demo"
    return (f"{rundir.path / name} is missing: it holds the weights of the finished run (it may have been deleted to "
            "save space; the run cannot be exported without it)"
            + ("; the demo deletes its checkpoints: rerun it with `python -m reproduce demo --keep-checkpoints` to "
               "export its runs" if demo else ""))


def _check_record(rundir: RunDir, record: Any) -> Dict[str, Any]:
    """The run's record, if it is a finished training record whose metrics lie in their domains and whose config
    is the run's config.json; one line naming the problem otherwise."""
    where = rundir.record_path
    if not isinstance(record, dict):
        raise ValueError(f"{rundir.path} holds no finished run (no record.json): export a training run once it "
                         "finished")
    if not records.is_finished(record):
        raise ValueError(f"{where} says status {quote(record.get('status'))}: only a finished run is exported")
    if record.get("kind") != "train":
        raise ValueError(f"{rundir.path} is a {quote(record.get('kind'))} run; export the training run of its genotype")
    if not records.metrics_of(record.get("dataset")):
        raise ValueError(f"{rundir.path}: unknown dataset {quote(record.get('dataset'))} in record.json")
    if not isinstance(record.get("config"), dict) or not isinstance(record.get("genotype"), str):
        raise ValueError(f"{where} lacks its config or genotype; {records.FIX}")
    problems = records.metric_problems(record, records.metrics_of(record["dataset"])[:1])
    if problems:
        raise ValueError(f"{where}: {problems[0]}; {records.FIX}")
    if record.get("seed") != record["config"].get("seed"):
        raise ValueError(f"{where} says seed {quote(record.get('seed'))} but its config seed "
                         f"{quote(record['config'].get('seed'))}; {records.FIX}")
    try:
        rundir.check_config(record["config"])
    except RunConfigMismatchError as e:
        raise ValueError(f"cannot export {rundir.path}: its record and config.json disagree ({e})") from None
    return record


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


# The final metrics the card shows, by dataset (the first is required), under the card's names.
_CARD_NAME = {"test_error": "top1_error"}


def _metrics(record: Dict[str, Any], data: TrainedOn) -> Tuple[Dict[str, float], str]:
    final, dataset = record.get("final") or {}, record["dataset"]
    metrics = {_CARD_NAME.get(k, k): final[k] for k in records.metrics_of(dataset) if k in final}
    if dataset == "images":
        split = f"{record['data']['split']['test']['rule']} of {record['data']['source']}"
    elif dataset == "cifar10":
        split = "CIFAR-10 test set" if data.data is None else f"test set of {data.name}"
    elif dataset == "imagenet":
        split = "ImageNet validation set" if data.data is None else f"val/ of {data.name}"
    else:
        split = f"{data.name}: validation and test sets, best validation epoch"
    source = f"measured by python -m reproduce at the end of the run ({split}; {_run_words(record, data)})"
    return {k: float(v) for k, v in metrics.items()}, source


def _run_words(record: Dict[str, Any], data: TrainedOn) -> str:
    """The recipe, seed and epochs of a run, and whether its figures are comparable with the paper's."""
    cfg = record.get("config") or {}
    verdict = ("the paper's recipe, comparable with the paper" if data.comparable else
               f"NOT comparable with the paper: {data.why_not}")
    recipe = f"{record.get('experiment')} recipe" + (f" ({recipe_name(cfg)})" if recipe_name(cfg) else "")
    return f"{recipe}, seed {record.get('seed')}, {cfg.get('epochs', '?')} epochs; {verdict}"


def _check_target(out: Path) -> None:
    """Export writes a new directory, or fills an empty one: it never writes over files it did not write."""
    if not out.exists():
        return
    if not out.is_dir():
        raise FileExistsError(f"--out {out} is a file; give a new or empty directory")
    if (out / "config.json").exists():
        raise FileExistsError(f"{out} already holds a saved model; choose another --out")
    held = sorted(p.name for p in out.iterdir())
    if held:
        raise FileExistsError(f"{out} holds files export did not write ({', '.join(n[:40] for n in held[:3])}"
                              f"{', ...' if len(held) > 3 else ''}); give a new or empty directory")


def _write_atomically(out: Path, write) -> Path:
    """Call ``write(dir)`` on a new sibling of ``out``, then rename it to ``out``: the whole folder or nothing."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    except OSError as e:  # the temporary sibling's name would mislead: name what the user gave
        raise PermissionError(f"cannot write --out {out} ({e.strerror}); give a directory you can write to") from None
    try:
        write(tmp)
        if out.exists():
            out.rmdir()  # empty (checked): a directory the user made for it
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def export_run(run_dir, out, push: Optional[str] = None, token: Optional[str] = None) -> Path:
    """Write the finished run in ``run_dir`` as a saved model in ``out``; with ``push``, also publish it."""
    rundir = RunDir(run_dir)
    if not rundir.path.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such run directory")
    record = _check_record(rundir, rundir.read_record())
    out = Path(out).expanduser()
    _check_target(out)
    if push:  # offline or without credentials: refused now, in the words of `python -m zoo push`, before writing
        try:
            parse_hub_source(push)
        except ValueError:
            raise ValueError(f"--push {quote(push)}: expected ORG/REPO (a Hugging Face Hub model repository)") from None
        try:
            token = push_token(token)
        except PushError as e:
            raise ValueError(f"--push {quote(push)}: {e}; nothing was written (export without --push to save it "
                             "here only)") from None
    weights = _weights(rundir, record)
    model = _build(record, weights)
    model.load_state_dict(weights)
    data = trained_on(record)
    metrics, metrics_source = _metrics(record, data)
    cfg = record["config"]
    provenance = (f"trained from scratch by `python -m reproduce` on {data.name} ({_run_words(record, data)}; "
                  f"{record.get('device', '?')}, torch {record.get('torch', '?')})")
    source = {"provenance": provenance, "run": str(run_dir), "seed": record.get("seed"),
              "commit": record.get("git_commit"), "experiment": record.get("experiment"), "config": cfg,
              "comparable": data.comparable}
    description = (f"{type(model).__name__} with the cell {record['genotype']}, trained from scratch on "
                   f"{data.name} by python -m reproduce.")
    card_data = None if data.data is None else {**data.data, "name": data.name}
    saved = _write_atomically(out, lambda where: zoo.save_pretrained(
        model, where, metrics=metrics, metrics_source=metrics_source, source=source, description=description,
        dataset=record["dataset"], data=card_data))
    if push:
        try:
            url = zoo.push_to_hub(saved, push, token=token)
        except Exception as e:  # network, login, permissions: the saved model stays, publish it again by hand
            raise ValueError(f"wrote {saved}, but pushing it to {push} failed ({first_line(e)}); publish it with "
                             f"`python -m zoo push {saved} {push}`") from None
        log.info("pushed %s to %s (%s)", saved, push, url)
    return saved


__all__ = ["export_run"]
