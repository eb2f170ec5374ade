"""Named models of the zoo: what each one is, how to build it and where its weights come from.

``list_models``, ``info`` and ``create_model`` live here; ``load`` (which also accepts
directories, ``hf-hub:`` ids and original checkpoint files) is in :mod:`zoo.hub`.

Three entries carry the released DARTS weights (``darts-cifar10``, ``darts-imagenet``,
``darts-ptb``); every other named genotype has architecture-only entries (``<genotype>-cifar10``,
``<genotype>-imagenet`` for conv cells, ``<genotype>-ptb`` for recurrent cells).
"""
from __future__ import annotations

import copy
import difflib
import fnmatch
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

import genotypes as _genotypes

from .datasets import CIFAR_MEAN, CIFAR_STD, IMAGENET_MEAN, IMAGENET_STD

PAPER = "Liu, Simonyan & Yang, DARTS: Differentiable Architecture Search, ICLR 2019 (arXiv:1806.09055)"
ORIGINAL_README = "quark0/darts README.md (commit f276dd3), 'Pretrained models'"
CITATION = """@inproceedings{liu2019darts,
  title={{DARTS}: Differentiable Architecture Search},
  author={Liu, Hanxiao and Simonyan, Karen and Yang, Yiming},
  booktitle={International Conference on Learning Representations},
  year={2019},
  url={https://arxiv.org/abs/1806.09055}
}"""
# The original code and its released weights are published under the Apache License 2.0.
LICENSE = "apache-2.0"

ARCHS = ("NetworkCIFAR", "NetworkImageNet", "RNNModel")

CIFAR_PREPROCESSING = {"mean": list(CIFAR_MEAN), "std": list(CIFAR_STD), "input_size": [3, 32, 32],
                       "resize": None, "crop": 32, "interpolation": None}
IMAGENET_PREPROCESSING = {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "input_size": [3, 224, 224],
                          "resize": 256, "crop": 224, "interpolation": "bilinear"}
PTB_PREPROCESSING = {"tokenizer": "whitespace + <eos> per line (awd-lstm-lm rnn/data.py)",
                     "vocabulary": "built over train, valid, test in that order", "eval_batch_size": 1, "bptt": 35}

# The original evaluation settings (cnn/train.py, cnn/train_imagenet.py, rnn/train.py defaults).
CIFAR_ARGS = {"C": 36, "num_classes": 10, "layers": 20, "auxiliary": True}
IMAGENET_ARGS = {"C": 48, "num_classes": 1000, "layers": 14, "auxiliary": True}
PTB_ARGS = {"ntoken": 10000, "ninp": 850, "nhid": 850, "nhidlast": 850, "dropout": 0.75, "dropouth": 0.25,
            "dropoutx": 0.75, "dropouti": 0.2, "dropoute": 0.1}


class UnknownModelError(KeyError, ValueError):
    """An unknown model name; the message suggests the closest names."""

    def __str__(self) -> str:
        return self.args[0]


@dataclass(frozen=True)
class WeightSources:
    """Where the weights of a named model can come from, tried in this order by :func:`zoo.load`."""

    hub_repo: Optional[str] = None          # "org/name" on the Hugging Face Hub (safetensors + config.json)
    hub_revision: Optional[str] = None      # a commit sha or tag pinning the hub weights
    sha256: Optional[str] = None            # digest of the hub's model.safetensors, when known
    original_file: Optional[str] = None     # file name the original code released
    gdrive_id: Optional[str] = None         # Google Drive id from the original README
    original_sha256: Optional[str] = None   # digest of the original file, when known
    note: str = ""

    @property
    def any(self) -> bool:
        return bool(self.hub_repo or self.original_file)

    @property
    def gdrive_url(self) -> Optional[str]:
        return f"https://drive.google.com/file/d/{self.gdrive_id}/view" if self.gdrive_id else None


@dataclass(frozen=True)
class ModelEntry:
    name: str
    arch: str                       # NetworkCIFAR | NetworkImageNet | RNNModel
    genotype_name: str
    genotype: str                   # genotype text (genotypes.format)
    args: Dict[str, Any]            # constructor arguments except the genotype
    dataset: str                    # cifar10 | imagenet | ptb
    preprocessing: Dict[str, Any]
    description: str
    metrics: Dict[str, float] = field(default_factory=dict)   # expected figures of these weights / this setting
    metrics_source: str = ""
    params: Optional[int] = None    # parameter count (auxiliary head excluded, tied weights once)
    weights: WeightSources = field(default_factory=WeightSources)
    license: str = LICENSE
    citation: str = CITATION

    @property
    def pretrained(self) -> bool:
        return self.weights.any

    @property
    def kind(self) -> str:
        return self.arch

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["pretrained"] = self.pretrained
        d["weights"]["gdrive_url"] = self.weights.gdrive_url
        return d


_NO_HUB = ("no hub repository is published yet: import the original file with `python -m zoo convert` and "
           "publish it with `python -m zoo push`, then set hub_repo here")

# Parameter counts of the original's evaluation networks (shared/reference/param_counts.json).
_CNN_PARAMS = {
    ("cifar10", "DARTS_V1"): 3169414, ("imagenet", "DARTS_V1"): 4510432,
    ("cifar10", "DARTS_V2"): 3349342, ("imagenet", "DARTS_V2"): 4718752,
    ("cifar10", "NASNet"): 3830950, ("imagenet", "NASNet"): 5564320,
    ("cifar10", "AmoebaNet"): 3145078, ("imagenet", "AmoebaNet"): 4627360,
}
_PTB_DARTS_PARAMS = 22960000

# Published figures for cells trained in the DARTS paper's own setting (not for released weights).
_PAPER_SETTING_METRICS = {
    ("cifar10", "DARTS_V1"): ({"top1_error": 3.00, "top1_error_std": 0.14},
                              "paper Table 1: DARTS (first order) + cutout, mean +/- std of 10 trainings"),
    ("ptb", "DARTS_V1"): ({"valid_ppl": 60.2, "test_ppl": 57.6}, "paper Table 2: DARTS (first order)"),
}


def _slug(genotype_name: str) -> str:
    return genotype_name.lower().replace("_", "-")


def _cnn_text(name: str) -> str:
    return _genotypes.format(_genotypes.get(name, "cnn"))


def _rnn_text(name: str) -> str:
    return _genotypes.format(_genotypes.get(name, "rnn"))


def _released_entries() -> List[ModelEntry]:
    return [
        ModelEntry(
            name="darts-cifar10", arch="NetworkCIFAR", genotype_name="DARTS_V2", genotype=_cnn_text("DARTS_V2"),
            args=dict(CIFAR_ARGS), dataset="cifar10", preprocessing=dict(CIFAR_PREPROCESSING),
            description="DARTS (second order) convolutional cell, 20 cells of 36 initial channels with the "
                        "auxiliary head, trained on CIFAR-10 by the authors (the released cifar10_model.pt).",
            metrics={"top1_error": 2.63}, metrics_source=ORIGINAL_README + ": 2.63% test error, 3.3M params",
            params=_CNN_PARAMS[("cifar10", "DARTS_V2")],
            weights=WeightSources(original_file="cifar10_model.pt", gdrive_id="1Y13i4zKGKgjtWBdC0HWLavjO7wvEiGOc",
                                  note=_NO_HUB),
        ),
        ModelEntry(
            name="darts-imagenet", arch="NetworkImageNet", genotype_name="DARTS_V2", genotype=_cnn_text("DARTS_V2"),
            args=dict(IMAGENET_ARGS), dataset="imagenet", preprocessing=dict(IMAGENET_PREPROCESSING),
            description="DARTS (second order) convolutional cell transferred to ImageNet (mobile setting), 14 cells "
                        "of 48 initial channels with the auxiliary head (the released imagenet_model.pt).",
            metrics={"top1_error": 26.7, "top5_error": 8.7},
            metrics_source=ORIGINAL_README + ": 26.7% top-1 / 8.7% top-5 error, 4.7M params; paper Table 3",
            params=_CNN_PARAMS[("imagenet", "DARTS_V2")],
            weights=WeightSources(original_file="imagenet_model.pt", gdrive_id="1AKr6Y_PoYj7j0Upggyzc26W0RVdg4CVX",
                                  note=_NO_HUB),
        ),
        ModelEntry(
            name="darts-ptb", arch="RNNModel", genotype_name="DARTS_V2", genotype=_rnn_text("DARTS_V2"),
            args=dict(PTB_ARGS), dataset="ptb", preprocessing=dict(PTB_PREPROCESSING),
            description="DARTS (second order) recurrent cell, 850 units, tied embedding/decoder, trained on Penn "
                        "Treebank by the authors (the released ptb_model.pt).",
            metrics={"test_ppl": 55.68}, metrics_source=ORIGINAL_README + ": 55.68 test perplexity, 23M params",
            params=_PTB_DARTS_PARAMS,
            weights=WeightSources(original_file="ptb_model.pt", gdrive_id="1Mt_o6fZOlG-VDF3Q5ModgnAJ9W6f_av2",
                                  note=_NO_HUB),
        ),
    ]


def _architecture_entries(taken: set) -> List[ModelEntry]:
    out = []
    seen_cnn = {id(_genotypes.get("DARTS_V2", "cnn"))}
    for gname in _genotypes.names("cnn"):
        g = _genotypes.get(gname, "cnn")
        if id(g) in seen_cnn:  # aliases (DARTS -> DARTS_V2) and the released DARTS_V2 entries
            continue
        seen_cnn.add(id(g))
        for dataset, arch, args, pre in (("cifar10", "NetworkCIFAR", CIFAR_ARGS, CIFAR_PREPROCESSING),
                                          ("imagenet", "NetworkImageNet", IMAGENET_ARGS, IMAGENET_PREPROCESSING)):
            metrics, source = _PAPER_SETTING_METRICS.get((dataset, gname), ({}, ""))
            out.append(ModelEntry(
                name=f"{_slug(gname)}-{dataset}", arch=arch, genotype_name=gname, genotype=_cnn_text(gname),
                args=dict(args), dataset=dataset, preprocessing=dict(pre),
                description=f"{gname} cell in the DARTS {dataset} evaluation network (architecture only, no weights).",
                metrics=dict(metrics), metrics_source=source, params=_CNN_PARAMS.get((dataset, gname)),
            ))
    seen_rnn = {id(_genotypes.get("DARTS_V2", "rnn"))}
    for gname in _genotypes.names("rnn"):
        g = _genotypes.get(gname, "rnn")
        if id(g) in seen_rnn:
            continue
        seen_rnn.add(id(g))
        metrics, source = _PAPER_SETTING_METRICS.get(("ptb", gname), ({}, ""))
        out.append(ModelEntry(
            name=f"{_slug(gname)}-ptb", arch="RNNModel", genotype_name=gname, genotype=_rnn_text(gname),
            args=dict(PTB_ARGS), dataset="ptb", preprocessing=dict(PTB_PREPROCESSING),
            description=f"{gname} recurrent cell in the DARTS PTB evaluation network (architecture only, no weights).",
            metrics=dict(metrics), metrics_source=source,
        ))
    return [e for e in out if e.name not in taken]


def _build_registry() -> Dict[str, ModelEntry]:
    released = _released_entries()
    reg = {e.name: e for e in released}
    for e in _architecture_entries(set(reg)):
        reg[e.name] = e
    return reg


_REGISTRY: Dict[str, ModelEntry] = _build_registry()


def register(entry: ModelEntry, overwrite: bool = False) -> None:
    """Add an entry (e.g. a model you published); names are unique unless ``overwrite``."""
    if entry.arch not in ARCHS:
        raise ValueError(f"arch must be one of {ARCHS}, not {entry.arch!r}")
    if entry.name in _REGISTRY and not overwrite:
        raise ValueError(f"a model named {entry.name!r} is already registered (pass overwrite=True)")
    _genotypes.parse(entry.genotype)
    _REGISTRY[entry.name] = entry


def _normalise(name: str) -> str:
    return str(name).strip().lower().replace("_", "-")


def get_entry(name: str) -> ModelEntry:
    """The registry entry of a name (case and '_'/'-' insensitive); unknown names suggest the closest."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    key = _normalise(name)
    for k, e in _REGISTRY.items():
        if _normalise(k) == key:
            return e
    close = difflib.get_close_matches(key, list(_REGISTRY), n=3, cutoff=0.4)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise UnknownModelError(
        f"unknown model {name!r}.{hint} Known models: {', '.join(sorted(_REGISTRY))} (see `python -m zoo list`)"
    )


def is_registered(name: str) -> bool:
    try:
        get_entry(name)
        return True
    except UnknownModelError:
        return False


def list_models(pattern: str = "*", pretrained: bool = False) -> List[str]:
    """Sorted names matching a shell wildcard (case-insensitive); ``pretrained`` keeps those with weights."""
    pat = _normalise(pattern or "*")
    return sorted(n for n, e in _REGISTRY.items()
                  if fnmatch.fnmatchcase(_normalise(n), pat) and (e.pretrained or not pretrained))


def info(name: str) -> Dict[str, Any]:
    """Everything the registry knows about a model, as a plain dict (a copy)."""
    return copy.deepcopy(get_entry(name).to_dict())


_ARCH_ARG_NAMES = {
    "NetworkCIFAR": ("C", "num_classes", "layers", "auxiliary", "genotype"),
    "NetworkImageNet": ("C", "num_classes", "layers", "auxiliary", "genotype"),
    "RNNModel": ("ntoken", "ninp", "nhid", "nhidlast", "dropout", "dropouth", "dropoutx", "dropouti", "dropoute",
                 "genotype"),
}


def build(arch: str, args: Dict[str, Any], genotype):
    """Instantiate one of the zoo's networks from its class name, arguments and genotype (object, name or text)."""
    from .cnn import NetworkCIFAR, NetworkImageNet
    from .rnn import RNNModel

    classes = {"NetworkCIFAR": NetworkCIFAR, "NetworkImageNet": NetworkImageNet, "RNNModel": RNNModel}
    if arch not in classes:
        raise ValueError(f"unknown architecture {arch!r}; expected one of {', '.join(ARCHS)}")
    allowed = _ARCH_ARG_NAMES[arch]
    bad = [k for k in args if k not in allowed]
    if bad:
        raise ValueError(f"{arch} takes no argument(s) {bad}; its arguments are {', '.join(allowed)}")
    if isinstance(genotype, str) and "(" not in genotype:
        genotype = _genotypes.get(genotype, "rnn" if arch == "RNNModel" else "cnn")
    elif isinstance(genotype, str):
        genotype = _genotypes.parse(genotype)
    if arch == "RNNModel":
        if "ninp" in args and "nhid" not in args:
            args = {**args, "nhid": args["ninp"], "nhidlast": args["ninp"]}
        return RNNModel(genotype=genotype, **args)
    return classes[arch](genotype=genotype, **args)


def create_model(name: str, pretrained: bool = False, **overrides):
    """Build a named model; ``overrides`` replace constructor arguments (e.g. ``num_classes=100``,
    ``genotype="DARTS_V1"``). With ``pretrained=True`` the weights are loaded as :func:`zoo.load`
    does (no architecture overrides then, as the weights fix the architecture)."""
    entry = get_entry(name)
    if pretrained:
        if overrides:
            raise ValueError(
                f"pretrained weights fix the architecture of {entry.name}; drop the overrides {sorted(overrides)} "
                f"or build with pretrained=False and load your own weights"
            )
        from .hub import load

        return load(entry.name)
    args = dict(entry.args)
    genotype = overrides.pop("genotype", entry.genotype)
    args.update(overrides)
    return build(entry.arch, args, genotype)


__all__ = [
    "ModelEntry", "WeightSources", "UnknownModelError", "list_models", "info", "create_model", "get_entry",
    "register", "build", "is_registered", "CITATION", "LICENSE",
]
