"""Import checkpoint files (the original releases and their public copies) as the zoo's networks.

:func:`model_from_original` reads a file with the safe readers of :mod:`zoo.legacy`, re-keys it with
:mod:`zoo.layouts` (the original's layout or NNI's), builds the network and loads the weights
strictly; :func:`convert` also writes it as a saved-model directory (config.json,
model.safetensors, README.md).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Dict, Optional, Union

import genotypes as _genotypes

from .layouts import KINDS, original_state_dict
from .legacy import CheckpointError
from .registry import build, get_entry
from .saved import model_config, save_pretrained, weights_fingerprint
from .state import check_finite

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

KIND_ENTRY = {"cifar10": "darts-cifar10", "imagenet": "darts-imagenet", "ptb": "darts-ptb"}
# Arguments that only add or shape the auxiliary head: a copy without the head holds the same eval network.
HEAD_ONLY_ARGS = ("auxiliary", "auxiliary_bn")
# Arguments that change no weight: the head-only ones, and drop-path's rate (training only).
_WEIGHTLESS_ARGS = (*HEAD_ONLY_ARGS, "drop_path_rate")


def holds_entrys_network(args: Dict[str, Any], genotype: str, entry) -> bool:
    """Whether a network of constructor ``args`` and ``genotype`` (text) holds the weights of registry ``entry``'s
    network: every argument that shapes a weight equal, none added (``in_chans``: a grey stem is another network)."""
    body = {k: v for k, v in args.items() if k not in _WEIGHTLESS_ARGS and k != "genotype"}
    return body == {k: v for k, v in entry.args.items() if k not in _WEIGHTLESS_ARGS} and genotype == entry.genotype


def model_from_original(path: PathLike, kind: str, genotype=None, entry: Optional[str] = None,
                        layout: str = "auto", source: Optional[Dict[str, Any]] = None, sha256: Optional[str] = None,
                        **overrides):
    """Build the zoo network of a checkpoint file and load its weights (strict; eval mode).

    Sizes come from the file; the genotype from the file (ptb), ``genotype``, or the registry
    entry (``entry``, default the released model of ``kind``); ``overrides`` win over both.
    ``layout`` is ``auto``, ``original`` or ``nni`` (see :mod:`zoo.layouts`); ``source`` is the
    provenance recorded in the model's config (default: the file's name and digest); ``sha256`` the file's digest
    when the caller already has it.
    """
    sd, finfo = original_state_dict(path, kind, layout, sha256=sha256)
    entry = get_entry(entry or KIND_ENTRY[kind])
    if entry.dataset != kind:
        raise ValueError(f"{entry.name} is a {entry.dataset} model, the checkpoint was read as {kind}")
    args = {k: v for k, v in entry.args.items() if k not in HEAD_ONLY_ARGS}
    args.update(finfo.get("args") or {})
    args.update(overrides)
    if genotype is None:
        genotype = finfo.get("genotype") or entry.genotype
    model = build(entry.arch, args, genotype)
    for k in list(finfo.get("tied", {})):  # the zoo's RNNModel ties these itself; same tensor either way
        if k not in model.state_dict():
            sd.pop(k)
    try:
        check_finite(sd, path)
    except ValueError as e:
        raise CheckpointError(str(e)) from None
    model.load_state_dict(sd, strict=True)
    model.eval()
    finfo["entry"] = entry.name
    finfo["matches_entry"] = holds_entrys_network(model.config, _genotypes.format(model.genotype), entry)
    if source is None:
        source = {"file": finfo["file"], "sha256": finfo["sha256"], "layout": finfo["layout"]}
    model.zoo_config = model_config(model, name=entry.name if finfo["matches_entry"] else None, source=source)
    model.zoo_weights = weights_fingerprint(model)  # a copy saved from the model keeps its source while unchanged
    return model, finfo


def convert(path: PathLike, kind: str, out_dir: PathLike, genotype=None, name: Optional[str] = None,
            layout: str = "auto", source: Optional[Dict[str, Any]] = None, **overrides) -> Path:
    """Import a checkpoint file and write a saved-model directory (config.json, model.safetensors, README.md).

    The directory is tagged with the registry name (``darts-cifar10`` ...) when the file's
    architecture matches that entry. ``source`` describes where the file came from (the card shows it).
    """
    model, finfo = model_from_original(path, kind, genotype=genotype, layout=layout, **overrides)
    if name is None:
        name = finfo["entry"] if finfo["matches_entry"] else None
    provenance = {"file": finfo["file"], "sha256": finfo["sha256"], "format": finfo["format"],
                  "layout": finfo["layout"], "converted_by": "zoo.convert", **(source or {})}
    out = save_pretrained(model, out_dir, name=name, source=provenance)
    log.info("converted %s (%s) -> %s", path, kind, out)
    return out


__all__ = ["convert", "model_from_original", "holds_entrys_network", "original_state_dict", "KINDS", "KIND_ENTRY",
           "CheckpointError"]
