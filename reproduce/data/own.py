"""What the search and the training recipes read from one's own images: the stem, the normalisation,
the record of the data (classes, channels, size, mean/std, split and its digest)."""
from __future__ import annotations

import dataclasses
import math
from typing import Optional, Tuple

import torch

from .images import DataSourceError, Split, channel_stats, load_images, parse_normalize
from .split import digest, stratified_split
from .stream import StreamedImages, streamed_folder, streamed_stats

# Up to this side the CIFAR stem (one 3x3 conv, full resolution) and training recipe; above, ImageNet's (three
# stride-2 convs; random resized crops, colour jitter, label smoothing, step decay).
CIFAR_STEM_MAX = 64


def resolve_stem(stem: str, size: int) -> str:
    """``auto`` -> ``cifar`` up to :data:`CIFAR_STEM_MAX` pixels, ``imagenet`` above; else ``stem`` itself. The
    training recipe of one's own images (``--recipe auto``) is chosen by the same rule."""
    if stem == "auto":
        return "cifar" if size <= CIFAR_STEM_MAX else "imagenet"
    return stem


def fits_network(size: int, stem: str) -> bool:
    """Whether ``size`` halves evenly through the stem and the two reduction cells (their factorized reduce
    takes maps of even side): a multiple of 4 with CIFAR's stem; with ImageNet's, the stem's ceil(size / 4)
    output a multiple of 8."""
    if stem == "cifar":
        return size % 4 == 0
    after_stem0 = math.ceil(math.ceil(size / 2) / 2)  # two stride-2 convs with padding 1
    return after_stem0 % 8 == 0


def check_image_size(size: int, stem: str) -> None:
    """DataSourceError naming the nearest sizes that fit when ``size`` does not (:func:`fits_network`)."""
    if fits_network(size, stem):
        return
    below = next((s for s in range(size - 1, 3, -1) if fits_network(s, stem)), None)
    above = next(s for s in range(size + 1, 8 * size + 64) if fits_network(s, stem))
    raise DataSourceError(f"{size}x{size} images do not halve evenly through the {stem} stem and the network's two "
                          f"reductions; give --image-size {above}" + (f" or {below}" if below else ""))


def normalization(normalize: str, images: torch.Tensor) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
    """``--normalize`` when given, else the per-channel mean and std of ``images`` (those that train the weights)."""
    if normalize:
        return parse_normalize(normalize, int(images.shape[1]))
    return channel_stats(images)


def test_hold_out(labels: torch.Tensor, config) -> Tuple[torch.Tensor, torch.Tensor]:
    """(kept, held-out) indices of the test split taken from train/ when the data has neither test/ nor val/: the
    same for the search and the training of the same data (``test_portion``, ``split_seed``), so that the search
    never sees the images its cells are tested on. DataSourceError when the hold-out would be empty."""
    keep, held = stratified_split(labels, 1.0 - config.test_portion, config.split_seed)
    _refuse_empty(held, "test", "test_portion", "give the data a test/ folder")
    return keep, held


def _refuse_empty(held: torch.Tensor, name: str, option: str, hint: str) -> None:
    if len(held) == 0:
        flag = "--" + option.replace("_", "-")
        raise DataSourceError(f"the {name} hold-out of the training images is empty (a class with a single image "
                              f"stays in training, and no class has more): add images, raise {flag}, or {hint}")


def stratified_part(labels: torch.Tensor, count: int, seed: int) -> Optional[torch.Tensor]:
    """Indices of a stratified ``count`` of the examples (None: all of them)."""
    if not count or count >= len(labels):
        return None
    return stratified_split(labels, count / len(labels), seed)[0]


def describe(base: dict, mean, std, stem: str, **split) -> dict:
    """The ``data`` entry of a run's record (``base``: :meth:`ImageData.describe`): what the model card and
    ``zoo.load`` need, and how it was split."""
    return {**base, "mean": list(mean), "std": list(std), "stem": stem, **split}


def take(images, index):
    """``images[index]`` of decoded images, or the streamed images of those files (nothing decoded)."""
    return images.subset(index) if isinstance(images, StreamedImages) else images[index]


def fingerprint(images) -> torch.Tensor:
    """What pins the images in a split's digest: the pixels, or for streamed images their files' sizes."""
    if isinstance(images, StreamedImages):
        return torch.tensor([p.stat().st_size for p in images.files], dtype=torch.long)
    return images


def split_record(rule: str, parts, labels: torch.Tensor, images: torch.Tensor, **fields) -> dict:
    """A split as the record keeps it: its rule, sizes, fields and the digest of its indices, labels and images."""
    return {"rule": rule, "sizes": [len(p) for p in parts], **fields, "digest": digest(*parts, labels, images)}




@dataclasses.dataclass
class TrainingImages:
    """What a training recipe reads: the images that train the weights, the split evaluated every epoch
    (``eval_name``: "test", or "valid" for a validation hold-out), the test split when that is another one,
    the normalisation and the record's description of the data."""

    train: Split
    evaluate: Split
    eval_name: str
    test: Optional[Split]
    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    record: dict


def training_images(config, data=None) -> TrainingImages:
    """One's own images for a training recipe (config fields ``data``, ``image_size``, ``normalize``, ``stem``,
    ``valid_portion``, ``test_portion``, ``split_seed``, ``limit``, ``limit_eval``).

    The test split is the data's ``test/``, else its ``val/``, else a seeded stratified ``test_portion`` of
    ``train/``; with ``valid_portion`` a stratified share of the training images is held out and evaluated
    every epoch instead (the selection protocol), the test split once at the end."""
    streamed = streamed_folder(config) if data is None else None
    if streamed is not None:  # too large to decode into memory: batches decoded from disk as they are needed
        base, (x, y), evals = streamed
    else:
        images = load_images(config.data if data is None else data, config.image_size)
        base, (x, y), evals = images.describe(), images.train, images.evals
    splits = {}
    if "test" in evals or "val" in evals:
        test_name = "test" if "test" in evals else "val"
        test = evals[test_name]
        splits["test"] = {"rule": f"the data's {test_name}/", "sizes": [len(test[1])]}
    else:
        keep, held = test_hold_out(y, config)
        splits["test"] = split_record("stratified hold-out of train/", (keep, held), y, fingerprint(x),
                                      seed=config.split_seed, test_portion=config.test_portion)
        test, (x, y) = (take(x, held), y[held]), (take(x, keep), y[keep])
    evaluate, eval_name = test, "test"
    if config.valid_portion:
        keep, held = stratified_split(y, 1.0 - config.valid_portion, config.split_seed)
        _refuse_empty(held, "validation", "valid_portion", "set --valid-portion 0")
        splits["valid"] = split_record("stratified hold-out of the training images", (keep, held), y,
                                       fingerprint(x), seed=config.split_seed, valid_portion=config.valid_portion)
        evaluate, eval_name, (x, y) = (take(x, held), y[held]), "valid", (take(x, keep), y[keep])
    part = stratified_part(y, config.limit, config.split_seed)
    if part is not None:
        x, y = take(x, part), y[part]
    part = stratified_part(evaluate[1], config.limit_eval, config.split_seed)
    if part is not None:
        evaluate = (take(evaluate[0], part), evaluate[1][part])
    if config.normalize or not isinstance(x, StreamedImages):
        mean, std = normalization(config.normalize, x)
    else:
        mean, std = streamed_stats(x)
    stem = resolve_stem(config.stem, base["image_size"])
    check_image_size(base["image_size"], stem)
    pinned = [fingerprint(x), y, fingerprint(evaluate[0]), evaluate[1]]
    if eval_name == "valid":
        pinned += [fingerprint(test[0]), test[1]]
    record = describe(base, mean, std, stem, split=splits, evaluated_on=splits[eval_name]["rule"],
                      path="streamed from disk" if streamed is not None else "decoded once into memory",
                      digest=digest(*pinned))
    return TrainingImages(train=(x, y), evaluate=evaluate, eval_name=eval_name,
                          test=test if eval_name == "valid" else None, mean=mean, std=std, record=record)


__all__ = ["resolve_stem", "check_image_size", "fits_network", "normalization", "stratified_part", "describe",
           "test_hold_out",
           "split_record", "training_images",
           "TrainingImages", "CIFAR_STEM_MAX"]
