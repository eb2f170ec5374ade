"""Format readers: the tensors of a checkpoint file, keyed as the zoo's (and the original code's) networks.

Two layouts exist in the wild:

- ``original``: the original code's state dicts (``cifar10_model.pt``; ``{"state_dict": ...}`` with
  ``module.`` prefixes in ``imagenet_model.pt`` and darmo's copies) and its whole pickled PTB model;
- ``nni``: NNI's copy of the released CIFAR-10 model (``darts-v2-5465b0d2.pth``), keyed by NNI's
  DARTS space. NNI made it by walking its own keys in order and giving each the first not-yet-used
  tensor of the released file (in the original's key order) of the same shape; the scalar
  ``num_batches_tracked`` buffers got none. :func:`nni_to_original` walks the same way back, so the
  released tensors come back bit for bit.

Nothing here imports the registry or the loader.
"""
from __future__ import annotations

import os
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import torch

import genotypes as _genotypes
from genotypes.quoting import quote

from .cnn import NetworkCIFAR
from .fileio import loads_json_unique, sha256_file
from .legacy import CheckpointError, StandinModule, StandinParameter, load_original

PathLike = Union[str, os.PathLike]

KINDS = ("cifar10", "imagenet", "ptb")
NNI_KEYS_FILE = Path(__file__).with_name("data") / "nni_darts_v2_keys.json"


def nni_keys() -> List[Tuple[str, Tuple[int, ...]]]:
    """NNI's DARTS-space CIFAR-10 network (width 36, 20 cells, no auxiliary head): its keys and shapes, in order."""
    return [(k, tuple(shape)) for k, shape in loads_json_unique(NNI_KEYS_FILE.read_text(), str(NNI_KEYS_FILE))]


def is_nni_layout(sd: Dict[str, torch.Tensor]) -> bool:
    return any(isinstance(k, str) and k.startswith("stages.") for k in sd)


def _original_keys_of_nni_network() -> List[Tuple[str, Tuple[int, ...]]]:
    """The original's keys and shapes (its order) of the network NNI's copy holds, built without allocating."""
    with torch.device("meta"):
        net = NetworkCIFAR(36, 10, 20, False, "DARTS_V2")
    return [(k, tuple(t.shape)) for k, t in net.state_dict().items() if not k.endswith("num_batches_tracked")]


def nni_to_original(sd: Dict[str, torch.Tensor], path: Any = "state dict") -> "OrderedDict[str, torch.Tensor]":
    """Re-key NNI's copy of the released CIFAR-10 weights to the original's layout by inverting NNI's walk.

    The file may hold NNI's scalar ``num_batches_tracked`` buffers or none of them (the released tensors
    have none; whether NNI's blob does depends on how it was written): the walk never matches a scalar,
    so both forms give the same tensors. Every other key, shape and the order are checked alike.
    """
    expected = nni_keys()
    got = [(k, tuple(v.shape)) for k, v in sd.items()]
    without_counters = [(k, s) for k, s in expected if not k.endswith("num_batches_tracked")]
    if got not in (expected, without_counters):
        counters = any(k.endswith("num_batches_tracked") for k, _ in got)
        want_list = expected if counters else without_counters
        have, want = dict(got), dict(want_list)
        missing = [k for k in want if k not in have]
        extra = [k for k in have if k not in want]
        shape = [k for k in want if k in have and have[k] != want[k]]
        what = (f"missing {missing[:3]}" if missing else f"unexpected {quote(extra[:3])}" if extra
                else f"shapes differ at {shape[:3]}" if shape else "keys in another order than NNI's")
        raise CheckpointError(f"{path}: not NNI's DARTS_V2 CIFAR-10 state dict ({what}); the re-keying is only "
                              f"defined for that file, in NNI's key order, with all or none of its "
                              f"num_batches_tracked buffers")
    targets = _original_keys_of_nni_network()
    used = [False] * len(targets)
    out: Dict[str, torch.Tensor] = {}
    for key, shape in got:
        if not shape:  # num_batches_tracked: NNI's default, not the released file's
            continue
        for i, (orig_key, orig_shape) in enumerate(targets):
            if not used[i] and orig_shape == shape:
                used[i] = True
                out[orig_key] = sd[key]
                break
        else:
            raise CheckpointError(f"{path}: NNI tensor {key} {list(shape)} has no counterpart in the original layout")
    if not all(used):
        raise CheckpointError(f"{path}: {used.count(False)} tensors of the original layout found no NNI tensor")
    return OrderedDict((k, out[k]) for k, _ in targets)


MAX_MODULE_DEPTH = 16  # RNNModel > ModuleList > DARTSCell > ParameterList: a few levels


def _named(mod: StandinModule, field: str):
    """A pickled module's ``_parameters``/``_buffers``/``_modules``: a dict keyed by names."""
    entries = mod.__dict__.get(field) or {}
    if not isinstance(entries, dict) or not all(isinstance(k, str) for k in entries):
        raise CheckpointError(f"{field} of {mod.original} is not a dict keyed by names: not an original model")
    return entries.items()


def _module_state(mod: StandinModule, prefix: str, out: "OrderedDict[str, torch.Tensor]", ids: Dict[int, str],
                  tied: Dict[str, str], inside: Tuple[int, ...] = ()) -> None:
    if id(mod) in inside or len(inside) > MAX_MODULE_DEPTH:
        where = quote(prefix) if prefix else "the model"
        raise CheckpointError(f"module {where} contains itself or nests more than {MAX_MODULE_DEPTH} levels deep: not "
                              f"an original model")
    inside = (*inside, id(mod))
    for name, p in _named(mod, "_parameters"):
        if p is None:
            continue
        t = p.data if isinstance(p, StandinParameter) else p
        if not isinstance(t, torch.Tensor):
            raise CheckpointError(f"parameter {quote(prefix + name)} of {mod.original} is a {type(t).__name__}")
        key = prefix + name
        if id(t) in ids:
            tied[key] = ids[id(t)]
        else:
            ids[id(t)] = key
        out[key] = t
    for name, b in _named(mod, "_buffers"):
        if isinstance(b, torch.Tensor):
            out[prefix + name] = b
    for name, sub in _named(mod, "_modules"):
        if sub is None:
            continue
        if not isinstance(sub, StandinModule):
            raise CheckpointError(f"submodule {quote(prefix + name)} is a {type(sub).__name__}")
        _module_state(sub, prefix + name + ".", out, ids, tied, inside)


def _find(mod: StandinModule, original: str):
    """The first module of class ``original`` in the tree (run after _module_state, so the tree is finite)."""
    stack = [mod]
    while stack:
        m = stack.pop(0)
        if m.original == original:
            return m
        stack.extend(s for s in (m.__dict__.get("_modules") or {}).values() if isinstance(s, StandinModule))
    return None


def _rnn_genotype(g) -> "_genotypes.RNNGenotype":
    if not isinstance(g, tuple) or len(g) != 2:
        raise CheckpointError(f"the DARTSCell's genotype is not a recurrent Genotype(recurrent, concat): {quote(g)}")
    recurrent, concat = g
    try:  # make_rnn checks the types and sizes of what the file holds (and quotes it briefly)
        out = _genotypes.make_rnn(recurrent, concat)
        _genotypes.validate(out)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"the file's recurrent genotype is not valid: {e}") from None
    return out


def _ptb_from_model(obj) -> Tuple["OrderedDict[str, torch.Tensor]", Dict[str, Any]]:
    if not isinstance(obj, StandinModule) or obj.original != "model.RNNModel":
        raise CheckpointError(
            f"expected a pickled model.RNNModel (the original ptb_model.pt), found {type(obj).__name__}; "
            f"use kind 'cifar10' or 'imagenet' for state-dict files")
    sd: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    tied: Dict[str, str] = {}
    _module_state(obj, "", sd, {}, tied)
    cell = _find(obj, "model.DARTSCell")
    if cell is None:
        raise CheckpointError("the pickled RNNModel has no model.DARTSCell")
    d, cd = obj.__dict__, cell.__dict__
    if "encoder.weight" not in sd:
        raise CheckpointError("the pickled RNNModel has no encoder.weight")
    if sd["encoder.weight"].dim() != 2:
        raise CheckpointError(f"the pickled RNNModel's encoder.weight has shape {list(sd['encoder.weight'].shape)}, "
                              f"not (ntoken, ninp)")
    ntoken, ninp = sd["encoder.weight"].shape
    sizes = {"nhid": d.get("nhid", cd.get("nhid", ninp)), "nhidlast": d.get("nhidlast", ninp)}
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise CheckpointError(f"the pickled RNNModel's {name} is {quote(value)}, not an integer")
    args = {"ntoken": int(ntoken), "ninp": int(ninp), **sizes}
    for name, src in (("dropout", d), ("dropouti", d), ("dropoute", d), ("dropouth", cd), ("dropoutx", cd)):
        if isinstance(src.get(name), (int, float)):
            args[name] = float(src[name])
    genotype = _rnn_genotype(cd.get("genotype"))
    return sd, {"args": args, "genotype": genotype, "tied": tied}


def strip_module_prefix(sd: Dict[str, Any]) -> Dict[str, Any]:
    """A state dict saved from a DataParallel / DistributedDataParallel wrapper (every key ``module.*``) unwrapped."""
    if sd and all(isinstance(k, str) and k.startswith("module.") for k in sd):
        return OrderedDict((k[len("module."):], v) for k, v in sd.items())
    return sd


def _tensor_dict(obj, path, kind: str) -> "OrderedDict[str, torch.Tensor]":
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError(f"{path}: expected a state dict (or a dict with 'state_dict') for kind {kind!r}, "
                              f"found {type(obj).__name__}")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: state dict entries that are not named tensors: {quote(bad[:5])}")
    return OrderedDict(strip_module_prefix(obj))


def original_state_dict(path: PathLike, kind: str, layout: str = "auto", sha256: Optional[str] = None
                        ) -> Tuple["OrderedDict[str, torch.Tensor]", Dict[str, Any]]:
    """Weights of a checkpoint file as a state dict of the zoo's network (the original's keys), plus what the
    file says.

    ``kind`` is ``cifar10`` (plain state dict), ``imagenet`` (``{"state_dict": ...}``, ``module.``
    prefixes stripped) or ``ptb`` (a whole pickled RNNModel). ``layout`` is ``original``, ``nni``
    (NNI's DARTS-space keys, re-keyed back by :func:`nni_to_original`) or ``auto`` (told by the keys).
    The info dict holds ``format``, ``layout``, ``sha256``, ``file`` and, inferred from the tensors (and
    for ptb the pickled attributes and genotype), ``args`` and ``genotype`` (None where the file cannot tell).
    ``sha256``: the file's digest when the caller has just computed it (a download checked against it), so a
    large file is not hashed twice.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if layout not in ("auto", "original", "nni"):
        raise ValueError(f"layout must be auto, original or nni, not {layout!r}")
    path = Path(path).expanduser()
    obj, fmt = load_original(path)
    info: Dict[str, Any] = {"format": fmt, "file": path.name, "sha256": sha256 or sha256_file(path),
                            "layout": "original"}
    if kind == "ptb":
        if isinstance(obj, dict) and fmt == "zip":
            raise CheckpointError(f"{path}: a state dict; the ptb importer expects the original whole-model pickle "
                                  f"(load state dicts with zoo.load(..., checkpoint=...) of a saved directory instead)")
        sd, extra = _ptb_from_model(obj)
        info.update(extra)
        return sd, info
    sd = _tensor_dict(obj, path, kind)
    if layout == "nni" or (layout == "auto" and is_nni_layout(sd)):
        if kind != "cifar10":
            raise CheckpointError(f"{path}: NNI's layout is known for its CIFAR-10 DARTS_V2 network only, not {kind}")
        sd = nni_to_original(sd, path)
        info["layout"] = "nni"
    info["args"] = infer_cnn_args(sd, kind)
    info["genotype"] = None
    return sd, info


_CELL_RE = re.compile(r"^cells\.(\d{1,6})\.")  # a longer number is no cell index of a network the zoo builds


def infer_cnn_args(sd: Dict[str, torch.Tensor], kind: str) -> Dict[str, Any]:
    """C, layers, num_classes, auxiliary (and in_chans when not 3) read off a conv network's state dict."""
    cells = [int(m.group(1)) for m in map(_CELL_RE.match, sd) if m]
    if not cells:
        heads = quote(sorted({k.split(".")[0] for k in sd})[:4])
        raise CheckpointError(f"the state dict has no cells.N. keys: not a DARTS {kind} network (its keys start "
                              f"{heads}); check the kind ({', '.join(KINDS)})")
    try:
        layers = 1 + max(cells)
        num_classes = int(sd["classifier.weight"].shape[0])
        if kind == "cifar10":
            C = int(sd["stem.0.weight"].shape[0]) // 3
            in_chans = int(sd["stem.0.weight"].shape[1])
        else:
            C = int(sd["stem0.3.weight"].shape[0])
            in_chans = int(sd["stem0.0.weight"].shape[1])
    except (KeyError, ValueError, IndexError) as e:
        raise CheckpointError(
            f"the state dict does not look like a DARTS {kind} network ({type(e).__name__}: {e}); "
            f"check the kind ({', '.join(KINDS)})") from None
    args = {"C": C, "num_classes": num_classes, "layers": layers,
            "auxiliary": any(k.startswith("auxiliary_head.") for k in sd)}
    if in_chans != 3:  # a network trained on other than RGB images (in_chans at creation)
        args["in_chans"] = in_chans
    if kind == "imagenet" and "auxiliary_head.features.6.weight" in sd:
        args["auxiliary_bn"] = True  # P-DARTS's auxiliary head: a BatchNorm after its 768-channel conv
    return args


__all__ = ["original_state_dict", "nni_to_original", "nni_keys", "is_nni_layout", "infer_cnn_args", "KINDS"]
