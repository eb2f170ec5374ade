"""``pretrained_cfg``: timm's description of a model's weights and of the inputs they expect.

Every network has ``model.pretrained_cfg`` (a fresh dict each time, from its config and, for a loaded
model, its saved config): ``mean``, ``std``, ``input_size``, ``crop_pct``, ``interpolation``,
``num_classes``, ``first_conv``, ``classifier`` (the head's module name), ``architecture``,
``source`` (where the weights came from; None for weights nobody trained) and ``verified`` /
``verification`` (whether they were checked against a published digest, from the source record).
:func:`eval_transforms_of` turns it into the torchvision eval transforms, so ``zoo.transforms`` and
``python -m zoo eval`` use the same preprocessing.

The preprocessing of each dataset lives here (the registry and saved configs refer to it), so the
networks can describe themselves without importing the registry.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from .backbone import adapt_mean_std
from .datasets import CIFAR_MEAN, CIFAR_STD, IMAGENET_MEAN, IMAGENET_STD, eval_transforms
from .image_folder import as_channels

DATASET_OF_ARCH = {"NetworkCIFAR": "cifar10", "NetworkImageNet": "imagenet", "RNNModel": "ptb"}

CIFAR_PREPROCESSING = {"mean": list(CIFAR_MEAN), "std": list(CIFAR_STD), "input_size": [3, 32, 32],
                       "resize": None, "crop": 32, "interpolation": None}
IMAGENET_PREPROCESSING = {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "input_size": [3, 224, 224],
                          "resize": 256, "crop": 224, "interpolation": "bilinear"}
PTB_PREPROCESSING = {"tokenizer": "whitespace + <eos> per line (awd-lstm-lm rnn/data.py)",
                     "vocabulary": "built over train, valid, test in that order", "eval_batch_size": 1, "bptt": 35}
PREPROCESSING = {"cifar10": CIFAR_PREPROCESSING, "imagenet": IMAGENET_PREPROCESSING, "ptb": PTB_PREPROCESSING}

FIRST_CONV = {"NetworkCIFAR": "stem.0", "NetworkImageNet": "stem0.0", "RNNModel": None}
CLASSIFIER = {"NetworkCIFAR": "classifier", "NetworkImageNet": "classifier", "RNNModel": "decoder"}


def make_pretrained_cfg(arch: str, args: Mapping[str, Any], saved: Optional[Mapping[str, Any]] = None,
                        architecture: Optional[str] = None,
                        preprocessing: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """timm's ``pretrained_cfg`` of a network ``arch`` built with ``args``.

    ``saved``: the config.json the weights came with (its preprocessing, name and source);
    ``architecture`` / ``preprocessing``: a registry entry's, for a network built by name.
    """
    saved = saved or {}
    pre = dict(saved.get("preprocessing") or preprocessing or PREPROCESSING[DATASET_OF_ARCH[arch]])
    source = saved.get("source") or None
    cfg: Dict[str, Any] = {
        "architecture": saved.get("name") or architecture or arch,
        "dataset": saved.get("dataset") or DATASET_OF_ARCH[arch],
        "source": dict(source) if source else None,
        "url": (source or {}).get("url", ""),
        # whether the weights were checked against a published digest, as the loader records it in the source
        "verified": (source or {}).get("verified"),
        "verification": (source or {}).get("verification", ""),
        "license": saved.get("license"),
        "first_conv": FIRST_CONV[arch],
        "classifier": CLASSIFIER[arch],
    }
    if "mean" not in pre:  # a language model: no image statistics
        cfg.update(num_classes=int(args.get("ntoken", 0)), preprocessing=pre)
        return cfg
    in_chans = int(args.get("in_chans", 3))
    crop = int(pre["crop"])
    cfg.update(
        num_classes=int(args["num_classes"]),
        input_size=[in_chans, crop, crop],
        mean=adapt_mean_std(pre["mean"], in_chans),
        std=adapt_mean_std(pre["std"], in_chans),
        # no resize (CIFAR-10): the image is taken whole, at the input size
        crop_pct=crop / int(pre["resize"]) if pre.get("resize") else 1.0,
        crop_mode="center",
        interpolation=pre.get("interpolation") or "bilinear",
    )
    return cfg


class PretrainedCfgMixin:
    """``model.pretrained_cfg`` from the network's config and, when loaded, its saved config (``zoo_config``);
    a network built by registry name carries that name as ``zoo_entry``."""

    @property
    def pretrained_cfg(self) -> Dict[str, Any]:
        return make_pretrained_cfg(type(self).__name__, self.config, getattr(self, "zoo_config", None),
                                   architecture=getattr(self, "zoo_entry", None))


def eval_transforms_of(pretrained_cfg: Mapping[str, Any]):
    """The torchvision eval transforms a ``pretrained_cfg`` describes: resize to ``crop / crop_pct``, centre
    crop, (grey for one input channel), tensor, normalise."""
    if "mean" not in pretrained_cfg:
        raise ValueError("this model reads text, not images: it has no image transforms (see its 'preprocessing')")
    in_chans, crop, _ = pretrained_cfg["input_size"]
    if in_chans not in (1, 3):
        raise ValueError(f"images have 1 or 3 channels; a model that reads {in_chans} needs transforms of your own "
                         f"(normalise with its pretrained_cfg mean and std)")
    steps = eval_transforms({"resize": round(crop / pretrained_cfg["crop_pct"]), "crop": crop,
                             "mean": pretrained_cfg["mean"], "std": pretrained_cfg["std"],
                             "interpolation": pretrained_cfg["interpolation"]})
    if in_chans == 1:
        from torchvision import transforms

        steps.transforms.insert(0, transforms.Grayscale(1))
    else:  # RGBA, palette, grayscale, CMYK files: converted as training converted them (PIL's Image.convert)
        steps.transforms.insert(0, ConvertRGB())
    return steps


class ConvertRGB:
    """A transform: a PIL image in any mode to RGB as training converted it (:func:`zoo.image_folder.as_channels`);
    tensors pass unchanged."""

    def __call__(self, image):
        return as_channels(image, 3) if hasattr(image, "convert") else image

    def __repr__(self) -> str:
        return "ConvertRGB()"


__all__ = ["make_pretrained_cfg", "PretrainedCfgMixin", "eval_transforms_of", "PREPROCESSING", "DATASET_OF_ARCH"]
