"""Saved models: a directory of ``config.json`` + ``model.safetensors`` + ``README.md`` (the model card).

The same layout locally and on the Hugging Face Hub. Weights are only read from safetensors (which
refuses truncated and corrupt files itself), after their size and sha256 are checked against the
config and the registry where known; a model is built and checked completely before it is returned.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import torch

import genotypes as _genotypes
from genotypes.quoting import quote

from .card import write_card
from .counting import count_parameters
from .errors import ModelLoadError
from .fileio import DuplicateKeyError, atomic_write_bytes, atomic_write_json, loads_json_unique
from .image_folder import image_preprocessing
from .limits import MAX_CHECKPOINT_BYTES
from .registry import ARCHS, CITATION, DATASET_OF_ARCH, LICENSE, PREPROCESSING, build, get_entry
from .state import StateDictMismatchError, check_finite, check_state_dict

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
FORMAT = "darts-zoo"
FORMAT_VERSION = 1
MAX_CONFIG_BYTES = 1 << 20  # a config.json is a few kB; a larger one is read no further


# --------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------

def model_config(model, name: Optional[str] = None, metrics: Optional[Dict[str, float]] = None,
                 metrics_source: str = "", source: Optional[Dict[str, Any]] = None,
                 description: Optional[str] = None, dataset: Optional[str] = None,
                 data: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Everything needed to rebuild ``model`` and describe the weights it holds (without their digest).

    ``data`` describes the images the weights were trained on when they are not the registry dataset's
    (their ``source``, ``classes``, ``in_chans``, ``image_size``, ``mean``, ``std``): it is kept as the
    config's ``data``, its classes as ``class_names`` and its preprocessing as ``preprocessing``.

    ``metrics`` are figures of *these* weights (measured, or reported by whoever published them, as
    ``metrics_source`` says); nothing else is ever recorded as their metrics. ``name`` ties the model to
    a registry entry for its dataset, preprocessing, license and *reference* figures (the entry's published
    ones, e.g. the paper's or the authors' release's, shown as such and never as these weights' metrics).
    ``source`` is the weights' provenance (a dict; ``provenance`` is its sentence).
    """
    arch = type(model).__name__
    if arch not in ARCHS or not isinstance(getattr(model, "config", None), dict):
        raise TypeError(f"save_pretrained saves the zoo's networks ({', '.join(ARCHS)}), not {arch}")
    if getattr(model, "out_indices", None) is not None:
        raise ValueError("a features_only network is saved as the whole network: save the model before "
                         "features_only(), and load it with features_only=True")
    args = {k: v for k, v in model.config.items() if k != "genotype"}
    genotype = _genotypes.format(model.genotype)
    entry = get_entry(name) if name else None
    if entry is not None and entry.arch != arch:
        raise ValueError(f"{name} is a {entry.arch}, the model is a {arch}")
    dataset = dataset or (entry.dataset if entry else DATASET_OF_ARCH[arch])
    if description is None:
        description = f"{arch} {args} with the cell {genotype}" + (
            f" (the architecture of the registry entry {entry.name})" if entry else "")
    preprocessing = dict(entry.preprocessing if entry else PREPROCESSING[DATASET_OF_ARCH[arch]])
    own = {}
    if data:
        preprocessing = image_preprocessing(data) if "image_size" in data else dict(data.get("preprocessing") or {})
        own = {"data": dict(data), **({"class_names": [str(c) for c in data["classes"]]} if data.get("classes")
                                      else {})}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": entry.name if entry else name,
        "kind": arch,
        "arch": arch,
        "args": args,
        "genotype": genotype,
        "dataset": dataset,
        "preprocessing": preprocessing,
        "metrics": dict(metrics or {}),
        "metrics_source": metrics_source if metrics else "",
        "reference_metrics": dict(entry.metrics) if entry else {},
        "reference_source": entry.metrics_source if entry else "",
        "params": count_parameters(model),
        "description": description,
        "license": entry.license if entry else LICENSE,
        "citation": entry.citation if entry else CITATION,
        "source": dict(source or {}),
        **own,
    }


# Evaluation reads these from config.json: bounded so that no file can ask for gigapixel images or endless sequences.
_MAX_SIDE = 4096
_PREPROCESSING_INTS = {"resize": _MAX_SIDE, "crop": _MAX_SIDE, "bptt": 10_000, "eval_batch_size": 4096}


def _check_input_size(value: Any, in_chans: Any, where: str) -> None:
    """``input_size`` is [channels, height, width]: evaluation and the transforms make images of that size."""
    channels = {1, 3} | ({in_chans} if type(in_chans) is int else set())
    if not (isinstance(value, list) and len(value) == 3 and all(type(v) is int for v in value)
            and value[0] in channels and all(1 <= v <= _MAX_SIDE for v in value[1:])):
        raise ModelLoadError(f"{where}: preprocessing input_size={quote(value)} must be [channels, height, width] "
                             f"with channels {' or '.join(map(str, sorted(channels)))} and sides from 1 to "
                             f"{_MAX_SIDE}")


def _check_preprocessing(pre: Any, where: str, in_chans: Any = 3) -> None:
    if not isinstance(pre, dict):
        raise ModelLoadError(f"{where}: 'preprocessing' must be an object, not {quote(pre)}")
    if pre.get("input_size") is not None:
        _check_input_size(pre["input_size"], in_chans, where)
    for key, limit in _PREPROCESSING_INTS.items():
        value = pre.get(key)
        if value is not None and (type(value) is not int or not 1 <= value <= limit):
            raise ModelLoadError(f"{where}: preprocessing {key}={quote(value)} must be an integer from 1 to {limit}")
    for key in ("mean", "std"):
        value = pre.get(key)
        if value is not None and not (isinstance(value, list) and 1 <= len(value) <= 1024 and all(
                type(v) in (int, float) and math.isfinite(v) and (key == "mean" or v > 0) for v in value)):
            raise ModelLoadError(f"{where}: preprocessing {key}={quote(value)} must be a list of at most 1024 finite "
                                 f"numbers{' above 0' if key == 'std' else ''}")


def validate_config(config: Any, where: str = "config.json") -> Dict[str, Any]:
    """Check that a config can rebuild a network; raise ModelLoadError naming the problem."""
    if not isinstance(config, dict):
        raise ModelLoadError(f"{where}: expected a JSON object")
    if config.get("format") != FORMAT:
        raise ModelLoadError(f"{where}: not a {FORMAT} config (format={quote(config.get('format'))})")
    if not isinstance(config.get("format_version"), int) or config["format_version"] > FORMAT_VERSION:
        raise ModelLoadError(f"{where}: format_version {quote(config.get('format_version'))} is newer than this zoo "
                             f"understands ({FORMAT_VERSION}); upgrade the package")
    arch = config.get("arch", config.get("kind"))
    if arch not in ARCHS:
        raise ModelLoadError(f"{where}: unknown arch {quote(arch)} (expected one of {', '.join(ARCHS)})")
    if not isinstance(config.get("args"), dict):
        raise ModelLoadError(f"{where}: 'args' must be an object of constructor arguments")
    try:
        g = _genotypes.parse(config.get("genotype", ""))
        _genotypes.validate(g)
    except (TypeError, ValueError, SyntaxError) as e:
        raise ModelLoadError(f"{where}: bad genotype: {e}") from None
    tied = config.get("tied", {})
    if not isinstance(tied, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tied.items()):
        raise ModelLoadError(f"{where}: 'tied' must map parameter names to parameter names")
    _check_preprocessing(config.get("preprocessing", {}), where, config["args"].get("in_chans", 3))
    if not isinstance(config.get("dataset", ""), str) or len(config.get("dataset", "")) > 64:
        raise ModelLoadError(f"{where}: 'dataset' must be a dataset's name, not {quote(config.get('dataset'))}")
    files = config.get("files", {})
    known = files.get(WEIGHTS_NAME, {}) if isinstance(files, dict) else None
    if not (isinstance(known, dict) and type(known.get("size", 0)) is int
            and isinstance(known.get("sha256", ""), (str, type(None)))):
        raise ModelLoadError(f"{where}: 'files' must map {WEIGHTS_NAME} to {{\"size\": BYTES, \"sha256\": HEX}}, "
                             f"not {quote(files)}")
    return config


# --------------------------------------------------------------------------------------------
# safetensors with checks
# --------------------------------------------------------------------------------------------

def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tied_groups(state: Dict[str, torch.Tensor]) -> Dict[str, str]:
    """Keys whose tensor is the same as an earlier key's (tied weights): later -> first."""
    seen: Dict[Tuple, str] = {}
    tied = {}
    for k, t in state.items():
        ident = (t.data_ptr(), t.dtype, tuple(t.shape), tuple(t.stride()), t.device)
        if t.numel() and ident in seen:
            tied[k] = seen[ident]
        else:
            seen.setdefault(ident, k)
    return tied


def weights_fingerprint(model) -> str:
    """A digest of ``model``'s weights (names, dtypes, shapes, values): equal exactly when the weights are.
    (Not the weights file's sha256: safetensors writes the same tensors with its header in varying order.)"""
    h = hashlib.sha256()
    for k, t in sorted(model.state_dict().items()):
        t = t.detach().to("cpu").contiguous()
        h.update(f"{k} {t.dtype} {tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# Save / load a directory
# --------------------------------------------------------------------------------------------

def save_pretrained(model, save_directory: PathLike, name: Optional[str] = None,
                    metrics: Optional[Dict[str, float]] = None, metrics_source: str = "",
                    source: Optional[Dict[str, Any]] = None, description: Optional[str] = None,
                    dataset: Optional[str] = None, card: bool = True, data: Optional[Dict[str, Any]] = None) -> Path:
    """Write ``config.json``, ``model.safetensors`` (tied weights once) and a ``README.md`` model card.

    The card describes the weights actually saved: ``metrics`` (with ``metrics_source``) are figures
    of these weights, ``source`` their provenance; without them the card says that nothing is known
    of the weights. ``name`` ties the directory to a registry entry (dataset, preprocessing, license,
    and the paper's figures, shown as a reference for the architecture only).
    """
    from safetensors.torch import save as st_save

    out = Path(save_directory).expanduser()
    config = model_config(model, name=name, metrics=metrics, metrics_source=metrics_source, source=source,
                          description=description, dataset=dataset, data=data)
    state = model.state_dict()
    tied = _tied_groups(state)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items() if k not in tied}
    # one metadata key: safetensors writes a map of several in varying order, so the same weights would get another
    # sha256 at each save (config.json names the arch)
    blob = st_save(tensors, metadata={"format": "pt"})
    config["tied"] = tied
    config["files"] = {WEIGHTS_NAME: {"sha256": _sha256(blob), "size": len(blob)}}
    atomic_write_bytes(out / WEIGHTS_NAME, blob)
    atomic_write_json(out / CONFIG_NAME, config)
    if card:
        write_card(out, config)
    log.info("saved %s to %s", config["name"] or config["arch"], out)
    return out


def read_config(directory: PathLike) -> Dict[str, Any]:
    """The validated config.json of a saved-model directory (which must hold its weights file too)."""
    d = Path(directory).expanduser()
    cfg_path, w_path = d / CONFIG_NAME, d / WEIGHTS_NAME
    for p in (cfg_path, w_path):
        if not p.is_file():
            raise ModelLoadError(f"{d} is not a saved model: {p.name} is missing (a saved model holds "
                                 f"{CONFIG_NAME} and {WEIGHTS_NAME}; write one with zoo.save_pretrained)")
    if cfg_path.stat().st_size > MAX_CONFIG_BYTES:
        raise ModelLoadError(f"{cfg_path}: {cfg_path.stat().st_size} bytes, not a config (ours are a few kB)")
    try:
        config = loads_json_unique(cfg_path.read_text(encoding="utf-8"), str(cfg_path))
    except DuplicateKeyError as e:
        raise ModelLoadError(str(e)) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelLoadError(f"{cfg_path}: not valid JSON ({e})") from None
    except RecursionError:
        raise ModelLoadError(f"{cfg_path}: nested too deeply to be a config") from None
    return validate_config(config, str(cfg_path))


def load_pretrained(directory: PathLike, device: Union[str, torch.device] = "cpu",
                    expected_sha256: Optional[str] = None, num_classes: Optional[int] = None):
    """Rebuild a model from a saved-model directory, verify its weights, return it in eval mode.

    The returned model carries the directory's config as ``model.zoo_config``.
    """
    from safetensors.torch import load as st_load

    d = Path(directory).expanduser()
    cfg_path, w_path = d / CONFIG_NAME, d / WEIGHTS_NAME
    config = read_config(d)
    known = (config.get("files") or {}).get(WEIGHTS_NAME, {})
    size = w_path.stat().st_size  # compared before the file is read: a sparse 10 GB file costs nothing
    if isinstance(known.get("size"), int) and known["size"] != size:
        raise ModelLoadError(f"{w_path}: {size} bytes, config.json says {known['size']}: the file is truncated "
                             f"or was replaced; download or convert it again")
    if size > MAX_CHECKPOINT_BYTES:
        raise ModelLoadError(f"{w_path}: {size} bytes, more than the {MAX_CHECKPOINT_BYTES} the zoo reads as the "
                             f"weights of a DARTS network")
    data = w_path.read_bytes()
    digest = None
    for want, whose in ((known.get("sha256"), "config.json"), (expected_sha256, "the registry")):
        if want:
            digest = digest or _sha256(data)
            if digest != want:
                raise ModelLoadError(f"{w_path}: sha256 {digest} differs from {quote(want, 70)} recorded by {whose}: "
                                     f"the file is corrupt or not the published one; download it again")
    try:  # safetensors checks the header against the file (sizes, offsets, dtypes) before reading anything
        tensors = st_load(data)
    except Exception as e:  # safetensors raises its own error type
        raise ModelLoadError(f"{w_path}: the file is truncated or corrupt ({quote(str(e), 120)[1:-1]}); download or "
                             f"convert it again") from None
    # Always: whoever wrote the folder wrote the digest in config.json too, so it proves nothing about the values.
    try:
        check_finite(tensors, w_path)
    except ValueError as e:
        raise ModelLoadError(f"{e}; save or convert them again") from None
    for k, src in config.get("tied", {}).items():
        if src not in tensors or k in tensors:  # a tie only fills a weight the file leaves out
            raise ModelLoadError(f"{cfg_path}: tied weight {quote(k)} -> {quote(src)} does not fit {WEIGHTS_NAME}")
        tensors[k] = tensors[src]
    arch, args = config.get("arch", config.get("kind")), dict(config["args"])
    try:  # shapes are compared on a network without storage first: a config cannot allocate beyond the file
        with torch.device("meta"):
            check_state_dict(build(arch, args, config["genotype"]), tensors)
        model = build(arch, args, config["genotype"])
    except (TypeError, ValueError) as e:
        if isinstance(e, StateDictMismatchError):
            raise
        raise ModelLoadError(f"{cfg_path}: cannot build the network: {e}") from None
    model.load_state_dict(tensors, strict=True)
    model.zoo_config = config
    model.zoo_weights = weights_fingerprint(model)  # what the config says of the weights holds while this does
    if num_classes is not None:
        with_new_head(model, num_classes)
    return model.to(device).eval()


def with_new_head(model, num_classes: int):
    """Fresh ``num_classes``-way classifier heads (the auxiliary one too), the pretrained features kept."""
    if not hasattr(model, "reset_classifier"):
        raise ValueError(f"num_classes applies to the conv networks; a {type(model).__name__} has a vocabulary")
    if num_classes != model.config["num_classes"]:
        model.reset_classifier(num_classes)
        cfg = getattr(model, "zoo_config", None)
        if cfg is not None:  # the heads are new: no metric of the file describes this model any more
            model.zoo_config = {**cfg, "args": {**cfg["args"], "num_classes": int(num_classes)}, "metrics": {},
                                "metrics_source": "", "classifier": "reset to %d classes" % num_classes}
    return model


def with_in_chans(model, in_chans: int):
    """The stem made to read ``in_chans`` input channels, its pretrained RGB weights adapted as timm does."""
    if not hasattr(model, "set_in_chans"):
        raise ValueError(f"in_chans applies to the conv networks; a {type(model).__name__} reads words")
    if in_chans != model.in_chans:
        before = model.in_chans
        model.set_in_chans(in_chans)
        cfg = getattr(model, "zoo_config", None)
        if cfg is not None:  # the stem now reads other inputs: no metric of the file describes this model any more
            args = {k: v for k, v in cfg["args"].items() if k != "in_chans"}
            if in_chans != 3:
                args["in_chans"] = int(in_chans)
            model.zoo_config = {**cfg, "args": args, "metrics": {}, "metrics_source": "",
                                "stem": f"adapted from {before} to {in_chans} input channels (timm's adapt_input_conv)"}
    return model


def as_backbone(model, out_indices=None):
    """timm's ``features_only=True``: the conv network returning its feature maps (``out_indices``)."""
    if not hasattr(model, "features_only"):
        raise ValueError(f"features_only applies to the conv networks, not a {type(model).__name__}")
    return model.features_only(out_indices)


def adapt_loaded(model, num_classes: Optional[int] = None, in_chans: Optional[int] = None,
                 features_only: bool = False, out_indices=None):
    """What a caller of ``zoo.load`` / ``from_pretrained`` asks of loaded weights: fresh heads, an adapted stem,
    a backbone (timm's ``num_classes``, ``in_chans``, ``features_only`` / ``out_indices``)."""
    if num_classes is not None:
        with_new_head(model, num_classes)
    if in_chans is not None:
        with_in_chans(model, in_chans)
    if features_only or out_indices is not None:
        as_backbone(model, out_indices)
    return model


__all__ = [
    "save_pretrained", "load_pretrained", "weights_fingerprint",
    "read_config", "adapt_loaded", "as_backbone", "model_config",
    "validate_config", "with_new_head", "with_in_chans", "ModelLoadError", "CONFIG_NAME", "WEIGHTS_NAME", "CARD_NAME",
]
