"""``zoo.load``: a ready model from a registry name, a saved-model directory, ``hf-hub:ORG/REPO`` or a checkpoint file.

For a registry name the entry's sources (data in :mod:`zoo.registry`) are tried in this order:

1. its Hugging Face Hub repo, if one is set;
2. the converted copy in the zoo cache (``$DARTS_ZOO_HOME/models/<name>``);
3. its files: first a copy already in the cache (``$DARTS_ZOO_HOME/original/<file>``), then a
   site's own mirror (``$DARTS_ZOO_URL_PREFIX/<file>``), then the public mirrors, then the
   authors' Google Drive files. A downloaded file is checked against the registry's checksum
   before any use, converted by the format readers, and kept, converted, in the zoo cache.

Steps 2 and 3 go first through the files with a published checksum (on the site mirror and the public
copies), then through those without one: a file nobody can verify is used only when no verifiable
one can be had, and the model it gives says so (``zoo_config["source"]["verification"]``, the card):
it is "not verified against a published digest", and the publisher's figures are shown as theirs for
their file, not as the metrics of these weights.

When every source fails, :class:`WeightsNotFoundError` lists each one with the reason and what
the user can do. ``DARTS_ZOO_OFFLINE=1`` / ``HF_HUB_OFFLINE=1`` mean no network.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import torch

from . import download as _download
from .convert import HEAD_ONLY_ARGS, model_from_original
from .errors import ModelLoadError, WeightsNotFoundError
from .hub import HF_PREFIX, hub_download, parse_hub_source
from .hub_mixin import load_saved
from .layouts import is_nni_layout
from .legacy import StandinModule, load_original
from .pretrained_cfg import eval_transforms_of, make_pretrained_cfg
from .registry import ModelEntry, Source, build_entry, class_names, get_entry, is_registered
from .registry import info as registry_info
from .saved import CONFIG_NAME, adapt_loaded, as_backbone, load_pretrained, read_config, save_pretrained

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

UNVERIFIED = "not verified against a published digest"


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"


class _Attempts:
    """What was tried for one name, and why each failed: the error message when nothing works."""

    def __init__(self, entry: ModelEntry):
        self.entry = entry
        self.lines: List[str] = []

    def failed(self, where: str, why: str) -> None:
        log.info("%s: %s: %s", self.entry.name, where, why)
        self.lines.append(f"{where}: {why}")

    def error(self) -> WeightsNotFoundError:
        files = [s.filename for s in self.entry.sources if s.filename]
        kind = self.entry.dataset
        advice = [
            "check your network connection and run it again (a download that failed is not kept)",
            f"on a machine without internet, run `python -m zoo download {self.entry.name}` where there is "
            f"internet and copy {_download.zoo_home()} (DARTS_ZOO_HOME) across",
        ]
        if files:
            advice += [
                f"if you have one of the files ({', '.join(files)}), put it in {_download.zoo_home() / 'original'}, "
                f"or load it with zoo.load({self.entry.name!r}, checkpoint=PATH) or "
                f"`python -m zoo convert {kind} PATH --out DIR`",
                "or point DARTS_ZOO_URL_PREFIX at a mirror of your site that serves those file names",
            ]
        return WeightsNotFoundError(
            f"no weights for {self.entry.name} could be had; tried:\n  - " + "\n  - ".join(self.lines)
            + "\nWhat you can do:\n  - " + "\n  - ".join(advice))


def _cached_dir(entry: ModelEntry) -> Path:
    return _download.zoo_home() / "models" / entry.name


def _cached_file(source: Source) -> Path:
    return _download.zoo_home() / "original" / source.filename


def _description(entry: ModelEntry, model, verified: bool = True) -> str:
    text = entry.description
    if entry.args.get("auxiliary") and not model.config.get("auxiliary"):
        text += " This copy has no auxiliary head: the model is the eval network without it."
    if not verified:
        text += (f" These weights were {UNVERIFIED}: nothing shows that they are the release described here, and "
                 f"the published figures are the publisher's for their file, not a measurement of these.")
    return text


def _verified(source: Source) -> bool:
    """Whether the registry holds a digest the source's file is checked against (a published one)."""
    return bool(source.sha256 or source.sha256_prefix)


def _provenance_of(entry: ModelEntry, source: Source, url: str, digest: str) -> Dict:
    """The ``source`` record of weights taken from a file of ``source``: where they come from, whether they were
    verified, and (unverified) the publisher's figures as theirs, for their file."""
    out = {"entry": entry.name, "provenance": source.provenance, "url": url, "file": source.filename,
           "sha256": digest, "layout": source.layout, "verified": _verified(source)}
    if not out["verified"]:
        out["verification"] = UNVERIFIED
        if source.metrics:
            out["publisher_metrics"] = dict(source.metrics)
            out["publisher_metrics_source"] = source.metrics_source
    return out


def _convert_into_cache(entry: ModelEntry, source: Source, path: Path, digest: str, url: str):
    """Read a checked file of ``source``, check it holds the entry's network, keep it converted in the cache."""
    provenance = _provenance_of(entry, source, url, digest)
    model, finfo = model_from_original(path, entry.dataset, entry=entry.name, layout=source.layout,
                                       source=provenance, sha256=digest)
    if not finfo["matches_entry"]:
        raise ModelLoadError(f"{path.name} does not hold the network of {entry.name} (its sizes or genotype differ)")
    # Figures are these weights' only when the file is verified to be the one they were published for.
    metrics = source.metrics if provenance["verified"] else None
    out = save_pretrained(model, _cached_dir(entry), name=entry.name, metrics=metrics,
                          metrics_source=source.metrics_source if metrics else "", source=provenance,
                          description=_description(entry, model, provenance["verified"]))
    return load_pretrained(out)


# Any failure of one source (HTTP, timeout, checksum, quota, a file that does not read or convert) is that
# source failing: the next one is tried, and the message lists them all.
_SOURCE_FAILURES = (Exception,)


def _try_hub(entry: ModelEntry, revision: Optional[str], tried: _Attempts, verified: bool):
    """The entry's hub repos whose model.safetensors has (``verified``) or has not a digest in the registry."""
    hub_sources = [s for s in entry.sources if s.kind == "hub" and bool(s.sha256) == verified]
    if verified and not any(s.kind == "hub" for s in entry.sources):
        tried.failed("Hugging Face Hub", "no repository is published for this entry")
    for s in hub_sources:
        try:
            model = load_pretrained(hub_download(s.location, revision or s.revision), expected_sha256=s.sha256)
        except _SOURCE_FAILURES as e:
            tried.failed(f"hub repo {s.location}", _first_line(e))
            continue
        if not verified:
            model.zoo_config["source"] = {**(model.zoo_config.get("source") or {}), "verified": False,
                                          "verification": UNVERIFIED}
        return model
    return None


def _is_entrys_conversion(entry: ModelEntry, cfg: Dict) -> bool:
    """A converted copy counts only if it is this entry's network made by the loader from one of its sources."""
    src = cfg.get("source") or {}
    return (cfg.get("name") == entry.name and cfg.get("genotype") == entry.genotype
            and src.get("entry") == entry.name and bool(src.get("sha256"))
            and any(src.get("file") == s.filename for s in entry.sources)
            and all(cfg.get("args", {}).get(k) == v for k, v in entry.args.items() if k not in HEAD_ONLY_ARGS))


def _try_cache(entry: ModelEntry, tried: _Attempts):
    cached = _cached_dir(entry)
    if not (cached / CONFIG_NAME).is_file():
        tried.failed(f"converted copy {cached}", "absent")
        return None
    try:
        model = load_pretrained(cached)
    except _SOURCE_FAILURES as e:
        tried.failed(f"converted copy {cached}", _first_line(e))
        return None
    if not _is_entrys_conversion(entry, model.zoo_config):
        tried.failed(f"converted copy {cached}", "not a conversion of this entry's sources (replaced if one works)")
        return None
    return model


def _made_from_verified(entry: ModelEntry, model) -> bool:
    """Whether a converted copy was made from a file the registry verifies (asked of the registry, not the copy)."""
    src = model.zoo_config.get("source") or {}
    return any(_verified(s) for s in entry.sources if s.filename == src.get("file"))


def _download_cap(entry: ModelEntry) -> int:
    """The most bytes a checkpoint of the entry's network can take: float32 weights with room for an optimizer's
    state and an auxiliary head (4 copies), plus 64 MiB; the size of a file nothing else tells."""
    return min(_download.MAX_BYTES, (64 << 20) + 16 * entry.params) if entry.params else _download.MAX_BYTES


def _try_files(entry: ModelEntry, tried: _Attempts, verified: bool):
    """The entry's files with (``verified``) or without a published checksum: local copies, then downloads."""
    file_sources = [s for s in entry.sources if s.kind in ("url", "gdrive") and _verified(s) == verified]
    for s in file_sources:  # a copy already downloaded (or put there by hand)
        local = _cached_file(s)
        if not local.is_file():
            tried.failed(f"file {local}", "absent")
            continue
        try:
            digest = _download.verify(local, s.sha256, s.sha256_prefix)
            return _convert_into_cache(entry, s, local, digest, s.url)
        except _SOURCE_FAILURES as e:  # a file put there by hand is the user's: kept (a bad checksum deletes it)
            tried.failed(f"file {local}", _first_line(e))
    prefix = _download.url_prefix()
    candidates = [(s, f"site mirror {prefix}/{s.filename}", f"{prefix}/{s.filename}", None)
                  for s in file_sources if prefix]
    candidates += [(s, f"{'Google Drive' if s.kind == 'gdrive' else 'mirror'} {s.url}",
                    s.location if s.kind == "url" else None, s.location if s.kind == "gdrive" else None)
                   for s in file_sources]
    for s, where, url, drive_id in candidates:
        if _download.offline():
            tried.failed(where, "skipped (offline: DARTS_ZOO_OFFLINE or HF_HUB_OFFLINE is set)")
            continue
        local = _cached_file(s)
        try:
            digest = _download.fetch(local, url=url, gdrive_id=drive_id, sha256=s.sha256,
                                     sha256_prefix=s.sha256_prefix, max_bytes=_download_cap(entry))
        except _SOURCE_FAILURES as e:
            tried.failed(where, _first_line(e))
            continue
        try:
            return _convert_into_cache(entry, s, local, digest, url or s.url)
        except _SOURCE_FAILURES as e:  # a download that cannot be used is not kept
            local.unlink(missing_ok=True)
            tried.failed(where, f"downloaded, but it cannot be used: {_first_line(e)}")
    return None


def _load_registered(name: str, revision: Optional[str]):
    entry = get_entry(name)
    if not entry.sources:
        raise WeightsNotFoundError(
            f"{entry.name} is an architecture-only entry (no published weights): use "
            f"zoo.create_model({entry.name!r}) and train it (python -m reproduce), or load your own saved directory")
    tried = _Attempts(entry)
    model = _try_hub(entry, revision, tried, verified=True)
    if model is not None:
        return model
    cached = _try_cache(entry, tried)
    if cached is not None and _made_from_verified(entry, cached):
        return cached
    if cached is not None:
        tried.failed(f"converted copy {_cached_dir(entry)}", f"{UNVERIFIED}: the files with one are tried first")
    model = _try_files(entry, tried, verified=True)
    if model is None and cached is not None:
        model = cached
        model.zoo_config["source"].update(verified=False, verification=UNVERIFIED)  # copies made before the label
    if model is None:
        model = _try_hub(entry, revision, tried, verified=False)
    if model is None:
        model = _try_files(entry, tried, verified=False)
    if model is None:
        raise tried.error()
    return model


def guess_kind(path: Path) -> str:
    """Which network a checkpoint file holds: ``cifar10``, ``imagenet`` or ``ptb``."""
    obj, _ = load_original(path)
    if isinstance(obj, StandinModule):
        return "ptb"
    if isinstance(obj, dict):
        sd = obj.get("state_dict", obj) if isinstance(obj.get("state_dict", None), dict) else obj
        keys = [k[7:] if isinstance(k, str) and k.startswith("module.") else k for k in sd]
        if any(isinstance(k, str) and k.startswith("stem0.") for k in keys):
            return "imagenet"
        if any(isinstance(k, str) and k.startswith("stem.") for k in keys) or is_nni_layout(sd):
            return "cifar10"
    raise ModelLoadError(f"{path}: cannot tell which DARTS network this checkpoint holds; "
                         f"use `python -m zoo convert {{cifar10,imagenet,ptb}} {path} --out DIR`")


def _is_saved_dir(path: Path, source: str) -> bool:
    # A folder that is not a saved model (no config.json) does not hide a registry name of the same spelling.
    return path.is_dir() and ((path / CONFIG_NAME).exists() or not is_registered(source))


def load(name_or_source: str, checkpoint: Optional[PathLike] = None, device: Union[str, torch.device] = "cpu",
         revision: Optional[str] = None, num_classes: Optional[int] = None, in_chans: Optional[int] = None,
         features_only: bool = False, out_indices: Optional[Sequence[int]] = None, **kw):
    """A ready model (eval mode, on ``device``) from a name, directory, ``hf-hub:`` id or checkpoint file.

    ``num_classes`` keeps the pretrained features and gives fresh classifier heads (the auxiliary
    one too). ``in_chans`` makes the stem read that many input channels, its pretrained RGB weights
    adapted as timm does (summed for one channel, repeated and scaled by 3/N for N). ``checkpoint``
    loads a local original file for a registry name
    (``zoo.load("darts-cifar10", checkpoint="cifar10_model.pt")``); ``kw`` (e.g. ``genotype=``)
    overrides what an original file cannot tell. ``revision`` picks a hub revision.
    ``features_only=True`` (with ``out_indices``) returns the network as a backbone, as timm does:
    its forward gives one feature map per resolution (see ``model.feature_info``).
    """
    source = str(name_or_source)
    path = Path(source).expanduser()
    is_saved_dir = _is_saved_dir(path, source)
    if kw and checkpoint is None and not path.is_file():
        where = f"zoo.create_model({source!r}, **overrides)" if is_registered(source) else "a checkpoint file"
        raise ValueError(f"overrides {sorted(kw)} apply to original files only: a saved model rebuilds itself from "
                         f"its config.json (for an untrained architecture use {where})")
    if checkpoint is not None:
        entry = get_entry(source)
        genotype = kw.pop("genotype", None)
        if genotype is None and entry.dataset != "ptb":  # a ptb file knows its genotype; a state dict does not
            genotype = entry.genotype
        model, _ = model_from_original(checkpoint, entry.dataset, genotype=genotype, entry=entry.name, **kw)
    elif source.startswith(HF_PREFIX):
        model = load_saved(source, revision)
    elif is_saved_dir:
        if is_registered(source):
            log.info("loading the saved model in ./%s (a local folder), not the registry entry of that name", source)
        model = load_pretrained(path)
    elif path.is_file():
        model, _ = model_from_original(path, guess_kind(path), **kw)
    elif is_registered(source):
        model = _load_registered(source, revision)
    elif "/" in source or os.sep in source or source.endswith((".pt", ".pth", ".safetensors")):
        raise FileNotFoundError(f"no such file or directory: {source} (a source is a registry name, a saved-model "
                                f"directory, hf-hub:ORG/REPO[@REV] or an original checkpoint file)")
    else:
        get_entry(source)  # raises UnknownModelError with a suggestion
        raise AssertionError("unreachable")
    adapt_loaded(model, num_classes=num_classes, in_chans=in_chans, features_only=features_only,
                 out_indices=out_indices)
    return model.to(device).eval()


def create_model(name: str, pretrained: bool = False, **overrides):
    """Build a named model; ``overrides`` replace constructor arguments (e.g. ``num_classes=100``,
    ``genotype="DARTS_V1"``). With ``pretrained=True`` the weights are loaded as :func:`load` does;
    ``num_classes`` then gives fresh classifier heads over the pretrained features, ``in_chans``
    adapts the pretrained stem (as timm does), ``drop_path_rate`` sets the drop-path probability for
    fine-tuning, and other overrides are refused (the weights fix the architecture)."""
    features_only = overrides.pop("features_only", False)
    out_indices = overrides.pop("out_indices", None)
    if not pretrained:
        model = build_entry(name, **overrides)
        return as_backbone(model, out_indices) if features_only or out_indices is not None else model
    num_classes = overrides.pop("num_classes", None)
    in_chans = overrides.pop("in_chans", None)
    drop_path_rate = overrides.pop("drop_path_rate", None)
    if overrides:
        raise ValueError(
            f"pretrained weights fix the architecture of {get_entry(name).name}; drop the overrides "
            f"{sorted(overrides)} or build with pretrained=False and load your own weights")
    model = load(get_entry(name).name, num_classes=num_classes, in_chans=in_chans, features_only=features_only,
                 out_indices=out_indices)
    if drop_path_rate is not None:
        model.set_drop_path_rate(drop_path_rate)
    return model


def download(name: str) -> Dict[str, str]:
    """Fetch and convert a named model's weights ahead of time (for compute nodes without internet)."""
    model = _load_registered(get_entry(name).name, None)
    cfg = model.zoo_config
    return {"name": cfg["name"], "where": str(_cached_dir(get_entry(name))),
            "source": (cfg.get("source") or {}).get("url", "")}


def pretrained_cfg(source) -> Dict:
    """timm's ``pretrained_cfg`` of a model, a registry name, a saved-model directory or ``hf-hub:ORG/REPO[@REV]``
    (from its config.json, without building the network)."""
    if isinstance(source, torch.nn.Module):
        cfg = getattr(source, "pretrained_cfg", None)
        if cfg is None:
            raise ValueError(f"a {type(source).__name__} is not one of the zoo's networks: it has no pretrained_cfg")
        return cfg
    path = Path(str(source)).expanduser()
    if str(source).startswith(HF_PREFIX):
        path = hub_download(*parse_hub_source(str(source)))
    if str(source).startswith(HF_PREFIX) or _is_saved_dir(path, str(source)):
        config = read_config(path)
        return make_pretrained_cfg(config.get("arch", config.get("kind")), config["args"], config)
    entry = get_entry(str(source))
    return make_pretrained_cfg(entry.arch, entry.args, architecture=entry.name, preprocessing=entry.preprocessing)


def transforms(source):
    """The torchvision eval transforms of what :func:`pretrained_cfg` takes (a model, name, directory, hub id)."""
    return eval_transforms_of(pretrained_cfg(source))


def info(name_or_dir: str) -> Dict[str, Any]:
    """What is known about a model: a registry name's entry, or a saved-model directory's config (with its
    ``class_names``: the folder names of one's own data, CIFAR-10's or ImageNet's for those)."""
    path = Path(str(name_or_dir)).expanduser()
    if not _is_saved_dir(path, str(name_or_dir)):
        return registry_info(name_or_dir)
    config = read_config(path)
    if "class_names" not in config and config.get("dataset") in ("cifar10", "imagenet"):
        config["class_names"] = class_names(config["dataset"])
    return config


__all__ = ["load", "create_model", "download", "transforms", "pretrained_cfg", "info", "guess_kind",
           "WeightsNotFoundError"]
