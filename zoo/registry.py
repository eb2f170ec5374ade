"""Named models of the zoo: what each one is, how to build it and where its weights come from.

This module is data and look-ups only: ``list_models``, ``info``, ``get_entry``, ``build``. Each
entry lists its weight :class:`Source` objects (hub repos, public mirrors, the original files) with
their provenance and checksums; :mod:`zoo.loader` tries them in order.

Four entries have weights (``darts-cifar10``, ``darts-imagenet``, ``darts-ptb``, ``pdarts-imagenet``);
every other named genotype has architecture-only entries (``<genotype>-cifar10``,
``<genotype>-imagenet`` for conv cells, ``<genotype>-ptb`` for recurrent cells).
"""
from __future__ import annotations

import copy
import difflib
import fnmatch
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import genotypes as _genotypes
from genotypes.quoting import quote

from .pretrained_cfg import (
    CIFAR_PREPROCESSING,
    DATASET_OF_ARCH,
    IMAGENET_PREPROCESSING,
    PREPROCESSING,
    PTB_PREPROCESSING,
)

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

# The original evaluation settings (cnn/train.py, cnn/train_imagenet.py, rnn/train.py defaults).
CIFAR_ARGS = {"C": 36, "num_classes": 10, "layers": 20, "auxiliary": True}
IMAGENET_ARGS = {"C": 48, "num_classes": 1000, "layers": 14, "auxiliary": True}
PTB_ARGS = {"ntoken": 10000, "ninp": 850, "nhid": 850, "nhidlast": 850, "dropout": 0.75, "dropouth": 0.25,
            "dropoutx": 0.75, "dropouti": 0.2, "dropoute": 0.1}


WEIGHTS_AVAILABLE = "available"
WEIGHTS_GONE = "no working public source known"
WEIGHTS_NONE = "architecture only"


class UnknownModelError(KeyError, ValueError):
    """An unknown model name; the message suggests the closest names."""

    def __str__(self) -> str:
        return self.args[0]


@dataclass(frozen=True)
class Source:
    """One place the weights of a named model can come from, as data (tried in order by :func:`zoo.load`).

    ``kind`` is ``hub`` (a Hugging Face Hub repo holding a saved model: ``location`` is ``ORG/NAME``),
    ``url`` (a file at ``location``) or ``gdrive`` (a Google Drive file id). ``filename`` names the
    downloaded file in the zoo cache and on a site mirror (``DARTS_ZOO_URL_PREFIX``). ``layout`` says
    how the file's tensors are keyed: ``saved`` (our config.json + model.safetensors), ``original``
    (the original code's state dict or pickled model) or ``nni`` (NNI's DARTS-space keys).
    """

    kind: str
    location: str
    filename: str = ""
    layout: str = "original"
    revision: Optional[str] = None          # hub: a commit sha or tag pinning the files
    sha256: Optional[str] = None            # the file's full digest, when known (hub: model.safetensors)
    sha256_prefix: Optional[str] = None     # a digest prefix the publisher states (torch.hub names files so)
    auxiliary: Optional[bool] = None        # whether the copy holds the auxiliary head (None: not stated)
    provenance: str = ""                    # who published it, made from what
    metrics: Dict[str, float] = field(default_factory=dict)   # the publisher's own figures for this copy
    metrics_source: str = ""
    gone: str = ""                          # why this source is known not to work (still tried, last), if it is

    @property
    def url(self) -> str:
        if self.kind == "gdrive":
            return f"https://drive.google.com/file/d/{self.location}/view"
        if self.kind == "hub":
            return f"hf-hub:{self.location}" + (f"@{self.revision}" if self.revision else "")
        return self.location

    def to_dict(self) -> Dict[str, Any]:
        # verified: the registry holds a digest its file is checked against (weights from it are the published ones)
        return {**asdict(self), "url": self.url, "verified": bool(self.sha256 or self.sha256_prefix)}


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
    sources: Tuple[Source, ...] = ()  # where its weights come from, in the order they are tried
    license: str = LICENSE
    citation: str = CITATION

    @property
    def pretrained(self) -> bool:
        return bool(self.sources)

    @property
    def weights(self) -> str:
        """The state of its weights, from its sources' data: what ``zoo list`` shows."""
        if not self.sources:
            return WEIGHTS_NONE
        return WEIGHTS_AVAILABLE if any(not s.gone for s in self.sources) else WEIGHTS_GONE

    @property
    def kind(self) -> str:
        return self.arch

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["pretrained"] = self.pretrained
        d["weights"] = self.weights
        d["sources"] = [s.to_dict() for s in self.sources]
        d["class_names"] = class_names(self.dataset)
        return d


_CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def class_names(dataset: str) -> Optional[List[str]]:
    """Names of the classes in output order (CIFAR-10; ImageNet's as torchvision ships them); None for PTB."""
    if dataset == "cifar10":
        return list(_CIFAR10_CLASSES)
    if dataset == "imagenet":
        from torchvision.models import ResNet18_Weights

        return list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])
    return None


# The authors' releases (quark0/darts README, 'Pretrained models'): Google Drive files, reported gone,
# but kept last, for whoever still has access.
_DRIVE_GONE = "reported gone by users of the original code (quark0/darts#174, #175)"


def _drive(file_id: str, filename: str, auxiliary: Optional[bool], metrics: Dict[str, float], source: str) -> Source:
    return Source(kind="gdrive", location=file_id, filename=filename, layout="original", auxiliary=auxiliary,
                  provenance=f"the authors' release {filename} (quark0/darts README), on Google Drive",
                  metrics=metrics, metrics_source=source, gone=_DRIVE_GONE)


_NNI_DARTS_V2 = Source(
    kind="url", location="https://nni.blob.core.windows.net/nashub/darts-v2-5465b0d2.pth",
    filename="darts-v2-5465b0d2.pth", layout="nni", sha256_prefix="5465b0d2", auxiliary=False,
    provenance="NNI's copy of the released cifar10_model.pt (microsoft/nni, DARTS.load_searched_model('darts-v2')): "
               "the same tensors re-keyed to NNI's DARTS-space layout, auxiliary head dropped; the zoo inverts "
               "NNI's re-keying, which gives the released tensors back bit for bit",
    metrics={"top1_error": 2.63},
    metrics_source=ORIGINAL_README + ": 2.63% test error of the released cifar10_model.pt, of which this is a copy",
)
_DARMO_NOTE = ("darmo's copy (jitdee-ai/darts-models release 0.0.1, loaded by the darmo package as {model!r}): a "
               "state dict in the original code's key layout; its publisher does not say where the weights came from "
               "(the authors' release or a retraining)")
_DARMO_DARTS_V2 = Source(
    kind="url", location="https://github.com/jitdee-ai/darts-models/releases/download/0.0.1/dartv2.pt",
    filename="dartv2.pt", layout="original", provenance=_DARMO_NOTE.format(model="dartsv2"),
    metrics={"top1_error": 26.41, "top5_error": 8.60},
    metrics_source="darmo README (jitdee-ai/darmo): 73.59% top-1 / 91.40% top-5 accuracy on ImageNet val",
)
_DARMO_PDARTS = Source(
    kind="url", location="https://github.com/jitdee-ai/darts-models/releases/download/0.0.1/pdarts.pt",
    filename="pdarts.pt", layout="original", provenance=_DARMO_NOTE.format(model="pdarts"),
    metrics={"top1_error": 24.06, "top5_error": 7.26},
    metrics_source="darmo README (jitdee-ai/darmo): 75.94% top-1 / 92.74% top-5 accuracy on ImageNet val",
)

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
            description="DARTS (second order) convolutional cell, 20 cells of 36 initial channels, trained on CIFAR-10 "
                        "by the authors (the released cifar10_model.pt).",
            metrics={"top1_error": 2.63}, metrics_source=ORIGINAL_README + ": 2.63% test error, 3.3M params",
            params=_CNN_PARAMS[("cifar10", "DARTS_V2")],
            sources=(_NNI_DARTS_V2, _drive("1Y13i4zKGKgjtWBdC0HWLavjO7wvEiGOc", "cifar10_model.pt", True,
                                                  {"top1_error": 2.63}, ORIGINAL_README)),
        ),
        ModelEntry(
            name="darts-imagenet", arch="NetworkImageNet", genotype_name="DARTS_V2", genotype=_cnn_text("DARTS_V2"),
            args=dict(IMAGENET_ARGS), dataset="imagenet", preprocessing=dict(IMAGENET_PREPROCESSING),
            description="DARTS (second order) convolutional cell transferred to ImageNet (mobile setting), 14 cells "
                        "of 48 initial channels with the auxiliary head. The authors released imagenet_model.pt; the "
                        "public copy found today is darmo's, whose origin its publisher does not state (see sources).",
            metrics={"top1_error": 26.7, "top5_error": 8.7},
            metrics_source=ORIGINAL_README + ": 26.7% top-1 / 8.7% top-5 error, 4.7M params; paper Table 3",
            params=_CNN_PARAMS[("imagenet", "DARTS_V2")],
            sources=(_DARMO_DARTS_V2, _drive("1AKr6Y_PoYj7j0Upggyzc26W0RVdg4CVX", "imagenet_model.pt", True,
                                                     {"top1_error": 26.7, "top5_error": 8.7}, ORIGINAL_README)),
        ),
        ModelEntry(
            name="darts-ptb", arch="RNNModel", genotype_name="DARTS_V2", genotype=_rnn_text("DARTS_V2"),
            args=dict(PTB_ARGS), dataset="ptb", preprocessing=dict(PTB_PREPROCESSING),
            description="DARTS (second order) recurrent cell, 850 units, tied embedding/decoder, trained on Penn "
                        "Treebank by the authors (the released ptb_model.pt).",
            metrics={"test_ppl": 55.68}, metrics_source=ORIGINAL_README + ": 55.68 test perplexity, 23M params",
            params=_PTB_DARTS_PARAMS,
            sources=(_drive("1Mt_o6fZOlG-VDF3Q5ModgnAJ9W6f_av2", "ptb_model.pt", None, {"test_ppl": 55.68},
                            ORIGINAL_README),),
        ),
        ModelEntry(
            name="pdarts-imagenet", arch="NetworkImageNet", genotype_name="PDARTS", genotype=_cnn_text("PDARTS"),
            args={**IMAGENET_ARGS, "auxiliary_bn": True}, dataset="imagenet",
            preprocessing=dict(IMAGENET_PREPROCESSING),
            description="P-DARTS (Chen et al., ICCV 2019) convolutional cell in the DARTS ImageNet network (mobile "
                        "setting), 14 cells of 48 initial channels, with P-DARTS's auxiliary head (a BatchNorm after "
                        "its second convolution).",
            metrics={"top1_error": 24.4, "top5_error": 7.4},
            metrics_source="P-DARTS paper (Chen, Xie, Wu & Tian, arXiv:1904.12760), Table 3: ImageNet, mobile setting",
            params=4944352,  # this network as the zoo builds it (the paper rounds to 4.9M)
            sources=(_DARMO_PDARTS,),
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


def entries() -> List[ModelEntry]:
    """Every registered entry, in registration order."""
    return list(_REGISTRY.values())


def is_registered(name: str) -> bool:
    try:
        get_entry(name)
        return True
    except UnknownModelError:
        return False


def hub_sha256(repo_id: str) -> Optional[str]:
    """The sha256 the registry records for a hub repo's model.safetensors, if an entry publishes there."""
    for e in _REGISTRY.values():
        for s in e.sources:
            if s.kind == "hub" and s.location == repo_id and s.sha256:
                return s.sha256
    return None


def list_models(pattern: str = "*", pretrained: bool = False) -> List[str]:
    """Sorted names matching a shell wildcard (case-insensitive); ``pretrained`` keeps those with weights."""
    pat = _normalise(pattern or "*")
    return sorted(n for n, e in _REGISTRY.items()
                  if fnmatch.fnmatchcase(_normalise(n), pat) and (e.pretrained or not pretrained))


def info(name: str) -> Dict[str, Any]:
    """Everything the registry knows about a model, as a plain dict (a copy)."""
    return copy.deepcopy(get_entry(name).to_dict())


_ARCH_ARG_NAMES = {
    "NetworkCIFAR": ("C", "num_classes", "layers", "auxiliary", "genotype", "in_chans", "drop_path_rate"),
    "NetworkImageNet": ("C", "num_classes", "layers", "auxiliary", "genotype", "auxiliary_bn", "in_chans",
                        "drop_path_rate"),
    "RNNModel": ("ntoken", "ninp", "nhid", "nhidlast", "dropout", "dropouth", "dropoutx", "dropouti", "dropoute",
                 "genotype"),
}


_ARCH_CLASSES: Dict[str, type] = {}


def register_arch(cls: type) -> type:
    """Class decorator of the zoo's network classes (zoo.cnn, zoo.rnn), so that :func:`build` finds them by name
    without importing them (they import the saving code, which builds networks by name)."""
    if cls.__name__ not in ARCHS:
        raise ValueError(f"{cls.__name__} is not one of the zoo's architectures ({', '.join(ARCHS)})")
    _ARCH_CLASSES[cls.__name__] = cls
    return cls


def build(arch: str, args: Dict[str, Any], genotype):
    """Instantiate one of the zoo's networks from its class name, arguments and genotype (object, name or text);
    the networks check their sizes first (:mod:`zoo.limits`), so a file or config cannot make them allocate
    without bound."""
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {quote(arch)}; expected one of {', '.join(ARCHS)}")
    allowed = _ARCH_ARG_NAMES[arch]
    bad = [k for k in args if k not in allowed]
    if bad:
        raise ValueError(f"{arch} takes no argument(s) {quote(bad)}; its arguments are {', '.join(allowed)}")
    genotype = _genotypes.resolve(genotype, "rnn" if arch == "RNNModel" else "cnn")
    if arch == "RNNModel" and "ninp" in args and "nhid" not in args:
        args = {**args, "nhid": args["ninp"], "nhidlast": args["ninp"]}
    return _ARCH_CLASSES[arch](genotype=genotype, **args)


def build_entry(name: str, **overrides):
    """The architecture of a named model, untrained; ``overrides`` replace constructor arguments
    (e.g. ``num_classes=100``, ``genotype="DARTS_V1"``)."""
    entry = get_entry(name)
    args = dict(entry.args)
    genotype = overrides.pop("genotype", entry.genotype)
    args.update(overrides)
    model = build(entry.arch, args, genotype)
    model.zoo_entry = entry.name  # its pretrained_cfg names the architecture
    return model


__all__ = [
    "ModelEntry", "Source", "UnknownModelError", "list_models", "info", "get_entry", "register", "build",
    "build_entry", "register_arch", "hub_sha256", "is_registered", "class_names", "entries", "CITATION", "LICENSE",
    "ARCHS", "DATASET_OF_ARCH", "PREPROCESSING",
]
