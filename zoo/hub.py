"""Saved models (config.json + model.safetensors + README.md), the Hugging Face Hub, and ``zoo.load``.

``zoo.load(source)`` accepts

- a registry name (``"darts-cifar10"``): its weight sources are tried in order, the configured
  hub repo, a converted copy in the zoo cache, an original file in the zoo cache, the original
  Google Drive file; the error lists what was tried and how to proceed;
- a saved-model directory;
- ``"hf-hub:ORG/REPO[@REVISION]"``: downloaded through huggingface_hub's cache (``HF_HOME``,
  ``HF_HUB_OFFLINE`` and the revision are honoured);
- an original checkpoint file (``cifar10_model.pt`` ...), or a name with ``checkpoint=FILE``.

The zoo cache is ``$DARTS_ZOO_HOME`` (default ``~/.cache/darts-zoo``): ``original/<file>`` for
original checkpoints, ``models/<name>/`` for their converted copies. ``HF_HUB_OFFLINE=1`` or
``DARTS_ZOO_OFFLINE=1`` skips the Google Drive attempt.

Weights are only read from safetensors (header and size checked, sha256 checked against the
directory's config and the registry where known) or, for original files, by the allow-list
reader of :mod:`zoo.convert`. A model is built and checked completely before it is returned:
nothing is ever half-loaded.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import struct
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import torch

import genotypes as _genotypes

from .fileio import atomic_write_bytes, atomic_write_json
from .registry import ARCHS, CITATION, LICENSE, build, get_entry, is_registered

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
FORMAT = "darts-zoo"
FORMAT_VERSION = 1
HF_PREFIX = "hf-hub:"
_DATASET_OF_ARCH = {"NetworkCIFAR": "cifar10", "NetworkImageNet": "imagenet", "RNNModel": "ptb"}
_KIND_OF_DATASET = {"cifar10": "cifar10", "imagenet": "imagenet", "ptb": "ptb"}


class ModelLoadError(ValueError):
    """A saved model that cannot be loaded (bad config, corrupt or mismatched weights)."""


class WeightsNotFoundError(FileNotFoundError):
    """No weight source of a model worked; the message lists what was tried and how to proceed."""


# --------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------

def _arch_args(model) -> Tuple[str, Dict[str, Any]]:
    arch = type(model).__name__
    if arch in ("NetworkCIFAR", "NetworkImageNet"):
        return arch, {"C": int(model._C), "num_classes": int(model._num_classes), "layers": int(model._layers),
                      "auxiliary": bool(model._auxiliary)}
    if arch == "RNNModel":
        return arch, {k: (int(getattr(model, k)) if k in ("ntoken", "ninp", "nhid", "nhidlast")
                          else float(getattr(model, k)))
                      for k in ("ntoken", "ninp", "nhid", "nhidlast", "dropout", "dropouth", "dropoutx", "dropouti",
                                "dropoute")}
    raise TypeError(f"save_pretrained saves the zoo's networks ({', '.join(ARCHS)}), not {arch}")


def model_config(model, name: Optional[str] = None, metrics: Optional[Dict[str, float]] = None,
                 source: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Everything needed to rebuild ``model`` and describe it (without the weights' digest)."""
    from .counting import count_parameters

    arch, args = _arch_args(model)
    genotype = _genotypes.format(model.genotype)
    entry = get_entry(name) if name else None
    if entry is not None and entry.arch != arch:
        raise ValueError(f"{name} is a {entry.arch}, the model is a {arch}")
    dataset = entry.dataset if entry else _DATASET_OF_ARCH[arch]
    if entry is not None:
        preprocessing = dict(entry.preprocessing)
    else:
        from .registry import CIFAR_PREPROCESSING, IMAGENET_PREPROCESSING, PTB_PREPROCESSING

        preprocessing = {"cifar10": CIFAR_PREPROCESSING, "imagenet": IMAGENET_PREPROCESSING,
                         "ptb": PTB_PREPROCESSING}[dataset]
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": entry.name if entry else name,
        "kind": arch,
        "arch": arch,
        "args": args,
        "genotype": genotype,
        "dataset": dataset,
        "preprocessing": dict(preprocessing),
        "metrics": dict(metrics if metrics is not None else (entry.metrics if entry else {})),
        "metrics_source": entry.metrics_source if entry and metrics is None else "",
        "params": count_parameters(model),
        "description": entry.description if entry else f"{arch} with genotype {genotype}",
        "license": entry.license if entry else LICENSE,
        "citation": entry.citation if entry else CITATION,
        "source": dict(source or {}),
    }


def validate_config(config: Any, where: str = "config.json") -> Dict[str, Any]:
    """Check that a config can rebuild a network; raise ModelLoadError naming the problem."""
    if not isinstance(config, dict):
        raise ModelLoadError(f"{where}: expected a JSON object")
    if config.get("format") != FORMAT:
        raise ModelLoadError(f"{where}: not a {FORMAT} config (format={config.get('format')!r})")
    if not isinstance(config.get("format_version"), int) or config["format_version"] > FORMAT_VERSION:
        raise ModelLoadError(f"{where}: format_version {config.get('format_version')!r} is newer than this zoo "
                             f"understands ({FORMAT_VERSION}); upgrade the package")
    arch = config.get("arch", config.get("kind"))
    if arch not in ARCHS:
        raise ModelLoadError(f"{where}: unknown arch {arch!r} (expected one of {', '.join(ARCHS)})")
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
    return config


# --------------------------------------------------------------------------------------------
# safetensors with checks
# --------------------------------------------------------------------------------------------

_ST_DTYPES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def check_safetensors_bytes(data: bytes, where: str) -> Dict[str, Any]:
    """Validate a safetensors blob's header against its size; returns the header."""
    fix = "the file is truncated or corrupt: download or convert it again"
    if len(data) < 8:
        raise ModelLoadError(f"{where}: {len(data)} bytes, too short for a safetensors file; {fix}")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ModelLoadError(f"{where}: header of {n} bytes but the file has {len(data)}; {fix}")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelLoadError(f"{where}: unreadable safetensors header; {fix}") from None
    if not isinstance(header, dict):
        raise ModelLoadError(f"{where}: safetensors header is not an object; {fix}")
    body = len(data) - 8 - n
    end = 0
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, stop) = meta["dtype"], meta["shape"], meta["data_offsets"]
            expected = math.prod(shape) * _ST_DTYPES[dtype]
        except (KeyError, TypeError, ValueError):
            raise ModelLoadError(f"{where}: bad header entry for tensor {name!r}; {fix}") from None
        if stop - begin != expected or begin < 0 or stop > body:
            raise ModelLoadError(f"{where}: tensor {name!r} lies outside the data ({begin}..{stop} of {body}); {fix}")
        end = max(end, stop)
    if end != body:
        raise ModelLoadError(f"{where}: {body} data bytes but the tensors account for {end}; {fix}")
    return header


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


# --------------------------------------------------------------------------------------------
# Save / load a directory
# --------------------------------------------------------------------------------------------

def save_pretrained(model, save_directory: PathLike, name: Optional[str] = None,
                    metrics: Optional[Dict[str, float]] = None, source: Optional[Dict[str, Any]] = None,
                    card: bool = True) -> Path:
    """Write ``config.json``, ``model.safetensors`` (tied weights once) and a ``README.md`` model card.

    ``name`` ties the directory to a registry entry (its dataset, preprocessing, metrics, license);
    ``metrics`` replaces the expected metrics (e.g. your own evaluation).
    """
    from safetensors.torch import save as st_save

    out = Path(save_directory).expanduser()
    config = model_config(model, name=name, metrics=metrics, source=source)
    state = model.state_dict()
    tied = _tied_groups(state)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items() if k not in tied}
    blob = st_save(tensors, metadata={"format": "pt", "arch": config["arch"]})
    config["tied"] = tied
    config["files"] = {WEIGHTS_NAME: {"sha256": _sha256(blob), "size": len(blob)}}
    atomic_write_bytes(out / WEIGHTS_NAME, blob)
    atomic_write_json(out / CONFIG_NAME, config)
    if card:
        from .card import write_card

        write_card(out, config)
    log.info("saved %s to %s", config["name"] or config["arch"], out)
    return out


def load_pretrained(directory: PathLike, device: Union[str, torch.device] = "cpu",
                    expected_sha256: Optional[str] = None):
    """Rebuild a model from a saved-model directory, verify its weights, return it in eval mode.

    The returned model carries the directory's config as ``model.zoo_config``.
    """
    from safetensors.torch import load as st_load

    d = Path(directory).expanduser()
    cfg_path, w_path = d / CONFIG_NAME, d / WEIGHTS_NAME
    for p in (cfg_path, w_path):
        if not p.is_file():
            raise ModelLoadError(f"{d} is not a saved model: {p.name} is missing (a saved model holds "
                                 f"{CONFIG_NAME} and {WEIGHTS_NAME}; write one with zoo.save_pretrained)")
    try:
        config = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelLoadError(f"{cfg_path}: not valid JSON ({e})") from None
    validate_config(config, str(cfg_path))
    data = w_path.read_bytes()
    known = (config.get("files") or {}).get(WEIGHTS_NAME, {})
    if isinstance(known.get("size"), int) and known["size"] != len(data):
        raise ModelLoadError(f"{w_path}: {len(data)} bytes, config.json says {known['size']}: the file is truncated "
                             f"or was replaced; download or convert it again")
    check_safetensors_bytes(data, str(w_path))
    digest = None
    for want, whose in ((known.get("sha256"), "config.json"), (expected_sha256, "the registry")):
        if want:
            digest = digest or _sha256(data)
            if digest != want:
                raise ModelLoadError(f"{w_path}: sha256 {digest} differs from {want} recorded by {whose}: the file "
                                     f"is corrupt or not the published one; download it again")
    try:
        tensors = st_load(data)
    except Exception as e:  # safetensors raises its own error type
        raise ModelLoadError(f"{w_path}: safetensors could not read it ({e})") from None
    for k, src in config.get("tied", {}).items():
        if src not in tensors:
            raise ModelLoadError(f"{cfg_path}: tied weight {k} refers to missing {src}")
        tensors[k] = tensors[src]
    try:
        model = build(config.get("arch", config.get("kind")), dict(config["args"]), config["genotype"])
    except (TypeError, ValueError) as e:
        raise ModelLoadError(f"{cfg_path}: cannot build the network: {e}") from None
    model.load_state_dict(tensors, strict=True)  # StateDictMismatchError (a ValueError) before any copy
    model.zoo_config = config
    return model.to(device).eval()


# --------------------------------------------------------------------------------------------
# Hugging Face Hub
# --------------------------------------------------------------------------------------------

_REPO_RE = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


def parse_hub_source(source: str) -> Tuple[str, Optional[str]]:
    """``hf-hub:ORG/REPO[@REV]`` -> (repo_id, revision)."""
    spec = source[len(HF_PREFIX):] if source.startswith(HF_PREFIX) else source
    repo, _, rev = spec.partition("@")
    if not _REPO_RE.match(repo):
        raise ValueError(f"bad hub id {source!r}: expected hf-hub:ORG/REPO or hf-hub:ORG/REPO@REVISION")
    return repo, (rev or None)


def hub_download(repo_id: str, revision: Optional[str] = None, cache_dir: Optional[PathLike] = None) -> Path:
    """Fetch config.json and model.safetensors (and the card when present) through huggingface_hub's cache.

    Online, files are checked against the hub (ETag) and cached under ``HF_HOME``; with
    ``HF_HUB_OFFLINE=1`` the cached snapshot of the revision is used. Returns the snapshot folder.
    """
    from huggingface_hub import hf_hub_download

    kw = dict(repo_id=repo_id, revision=revision, cache_dir=cache_dir, repo_type="model")
    try:
        cfg = hf_hub_download(filename=CONFIG_NAME, **kw)
        hf_hub_download(filename=WEIGHTS_NAME, **kw)
    except Exception as e:
        raise WeightsNotFoundError(
            f"could not get {repo_id}{'@' + revision if revision else ''} from the Hugging Face Hub "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); check the repo id, the revision, "
            f"your network (or HF_HUB_OFFLINE=1 with a populated cache) and HF_TOKEN for private repos") from None
    try:
        hf_hub_download(filename=CARD_NAME, **kw)
    except Exception:  # the card is optional
        pass
    return Path(cfg).parent


def push_to_hub(directory: PathLike, repo_id: str, token: Optional[str] = None, private: bool = False,
                revision: Optional[str] = None, commit_message: str = "Upload DARTS model (darts-zoo)",
                create: bool = True) -> str:
    """Upload a saved-model directory to the hub (creating the repo); returns the commit url."""
    from huggingface_hub import HfApi

    d = Path(directory).expanduser()
    load_pretrained(d)  # never publish something that does not load
    api = HfApi(token=token)
    if create:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    info = api.upload_folder(folder_path=str(d), repo_id=repo_id, repo_type="model", revision=revision,
                             commit_message=commit_message,
                             allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, CARD_NAME, "*.png", "*.svg"])
    return str(getattr(info, "commit_url", info))


# --------------------------------------------------------------------------------------------
# Zoo cache and the original files
# --------------------------------------------------------------------------------------------

def zoo_home() -> Path:
    """Where converted models and original files are kept: ``$DARTS_ZOO_HOME`` or ``~/.cache/darts-zoo``."""
    return Path(os.environ.get("DARTS_ZOO_HOME", Path.home() / ".cache" / "darts-zoo")).expanduser()


def _offline() -> bool:
    flags = ("HF_HUB_OFFLINE", "DARTS_ZOO_OFFLINE")
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on") for v in flags)


def download_gdrive(file_id: str, dest: PathLike, timeout: float = 30.0) -> Path:
    """Download a public Google Drive file (the original releases); HTML answers count as failure."""
    import urllib.request

    url = f"https://drive.google.com/uc?export=download&id={file_id}&confirm=t"
    dest = Path(dest)
    req = urllib.request.Request(url, headers={"User-Agent": "darts-zoo"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - fixed https url
        ctype = resp.headers.get("Content-Type", "")
        if "text/html" in ctype:
            raise OSError("Google Drive answered with a web page instead of the file (removed, private or quota)")
        atomic_write_bytes(dest, resp.read())
    return dest


def _from_original_file(path: Path, name: str, cache: Optional[Path], expected_sha256: Optional[str] = None):
    from .convert import KIND_ENTRY, convert, model_from_original

    if expected_sha256:
        digest = _sha256(path.read_bytes())
        if digest != expected_sha256.lower():
            raise ModelLoadError(f"sha256 of {path} is {digest}, but the registry expects {expected_sha256}: "
                                 "the file is damaged or another file; delete it and fetch the original again")
    kind = {v: k for k, v in KIND_ENTRY.items()}[name]
    if cache is not None:
        convert(path, kind, cache, name=name)
        return load_pretrained(cache)
    model, _ = model_from_original(path, kind)
    return model


def _load_registered(name: str, device, revision: Optional[str]):
    entry = get_entry(name)
    w = entry.weights
    if not w.any:
        raise WeightsNotFoundError(
            f"{entry.name} is an architecture-only entry (no released weights): use "
            f"zoo.create_model({entry.name!r}) and train it (python -m reproduce), or load your own saved directory")
    tried: List[str] = []
    if w.hub_repo:
        try:
            d = hub_download(w.hub_repo, revision or w.hub_revision)
            return load_pretrained(d, device, expected_sha256=w.sha256)
        except (WeightsNotFoundError, ModelLoadError) as e:
            tried.append(f"hub repo {w.hub_repo}: {e}")
    else:
        tried.append("hub repo: none is configured for this entry (" + (w.note or "not published") + ")")
    cached = zoo_home() / "models" / entry.name
    if (cached / CONFIG_NAME).is_file():
        try:
            return load_pretrained(cached, device, expected_sha256=w.sha256)
        except ModelLoadError as e:
            tried.append(f"converted copy {cached}: {e}")
    else:
        tried.append(f"converted copy {cached}: absent")
    if w.original_file:
        original = zoo_home() / "original" / w.original_file
        if original.is_file():
            try:
                return _from_original_file(original, entry.name, cached, w.original_sha256).to(device)
            except (ValueError, OSError) as e:
                tried.append(f"original file {original}: {e}")
        else:
            tried.append(f"original file {original}: absent")
            if w.gdrive_id and not _offline():
                try:
                    download_gdrive(w.gdrive_id, original)
                    return _from_original_file(original, entry.name, cached, w.original_sha256).to(device)
                except Exception as e:
                    tried.append(f"Google Drive {w.gdrive_url}: {type(e).__name__}: {e}")
            elif w.gdrive_id:
                tried.append(f"Google Drive {w.gdrive_url}: skipped (offline)")
    kind = entry.dataset
    raise WeightsNotFoundError(
        f"no weights for {entry.name}; tried:\n  - " + "\n  - ".join(tried) + "\n"
        f"To proceed: if you have the original {w.original_file}, run zoo.load({entry.name!r}, checkpoint=PATH) or "
        f"`python -m zoo convert {kind} PATH --out DIR` (or copy it to {zoo_home() / 'original'}); "
        f"or load a published copy with zoo.load('hf-hub:ORG/REPO')"
    )


def _registry_digest(repo_id: str) -> Optional[str]:
    """The sha256 the registry records for a hub repo's model.safetensors, if any entry publishes there."""
    from .registry import _REGISTRY

    for e in _REGISTRY.values():
        if e.weights.hub_repo == repo_id and e.weights.sha256:
            return e.weights.sha256
    return None


def _guess_kind(path: Path) -> str:
    from .convert import load_original

    obj, _ = load_original(path)
    from .convert import StandinModule

    if isinstance(obj, StandinModule):
        return "ptb"
    if isinstance(obj, dict):
        sd = obj.get("state_dict", obj) if isinstance(obj.get("state_dict", None), dict) else obj
        keys = [k[7:] if k.startswith("module.") else k for k in sd]
        if any(k.startswith("stem0.") for k in keys):
            return "imagenet"
        if any(k.startswith("stem.") for k in keys):
            return "cifar10"
    raise ModelLoadError(f"{path}: cannot tell which DARTS network this checkpoint holds; "
                         f"use `python -m zoo convert {{cifar10,imagenet,ptb}} {path} --out DIR`")


def load(name_or_source: str, checkpoint: Optional[PathLike] = None, device: Union[str, torch.device] = "cpu",
         revision: Optional[str] = None, **kw):
    """A ready model (eval mode, on ``device``) from a name, directory, ``hf-hub:`` id or original file.

    ``checkpoint`` loads a local original file for a registry name
    (``zoo.load("darts-cifar10", checkpoint="cifar10_model.pt")``); ``kw`` (e.g. ``genotype=``)
    overrides what an original file cannot tell. ``revision`` picks a hub revision.
    """
    from .convert import model_from_original

    source = str(name_or_source)
    if checkpoint is not None:
        entry = get_entry(source)
        genotype = kw.pop("genotype", None)
        if genotype is None and entry.dataset != "ptb":  # a ptb file knows its genotype; a state dict does not
            genotype = entry.genotype
        model, _ = model_from_original(checkpoint, entry.dataset, genotype=genotype, entry=entry.name, **kw)
        return model.to(device).eval()
    path = Path(source).expanduser()
    # A folder that is not a saved model (no config.json) does not hide a registry name of the same spelling.
    is_saved_dir = path.is_dir() and ((path / CONFIG_NAME).exists() or not is_registered(source))
    if kw and (source.startswith(HF_PREFIX) or is_saved_dir):
        raise ValueError(f"overrides {sorted(kw)} apply to original files only: a saved model rebuilds itself "
                         "from its config.json")
    if source.startswith(HF_PREFIX):
        repo, rev = parse_hub_source(source)
        return load_pretrained(hub_download(repo, revision or rev), device, expected_sha256=_registry_digest(repo))
    if is_saved_dir:
        if is_registered(source):
            log.info("loading the saved model in ./%s (a local folder), not the registry entry of that name", source)
        return load_pretrained(path, device)
    if path.is_file():
        model, _ = model_from_original(path, _guess_kind(path), **kw)
        return model.to(device).eval()
    if is_registered(source):
        if kw:
            raise ValueError(f"overrides {sorted(kw)} apply to original files only; for {source} use "
                             f"zoo.create_model({source!r}, **overrides)")
        return _load_registered(source, device, revision)
    if "/" in source or os.sep in source or source.endswith((".pt", ".pth", ".safetensors")):
        raise FileNotFoundError(f"no such file or directory: {source} (a source is a registry name, a saved-model "
                                f"directory, hf-hub:ORG/REPO[@REV] or an original checkpoint file)")
    get_entry(source)  # raises UnknownModelError with a suggestion
    raise AssertionError("unreachable")


__all__ = [
    "save_pretrained", "load_pretrained", "load", "push_to_hub", "hub_download", "parse_hub_source",
    "model_config", "validate_config", "ModelLoadError", "WeightsNotFoundError", "zoo_home", "CONFIG_NAME",
    "WEIGHTS_NAME", "CARD_NAME",
]
