"""The config fields of one's own data, shared by the search configs and the training recipes that read it."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..config import require

STEMS = ("auto", "cifar", "imagenet")


def _f(default, help_text, **meta):
    return field(default=default, metadata=dict(help=help_text, **meta))


@dataclass
class OwnImageOptions:
    """Where one's own images come from and how they are sized, normalised, stemmed and split."""

    data: str = _f("", "the images: an ImageFolder tree DIR (DIR/train/<class>/*, with val/ and test/ when present), "
                       "CIFAR-10 python batches, or torchvision:NAME:ROOT (e.g. torchvision:MNIST:data/mnist)")
    image_size: int = _f(0, "side the images are resized to (shorter side, then centre crop); 0: the data's own "
                            "size (all images must share it)")
    normalize: str = _f("", "per-channel MEAN/STD, e.g. 0.5,0.5,0.5/0.25,0.25,0.25 (default: computed on the images "
                            "that train the weights)")
    stem: str = _f("auto", "auto: CIFAR's stem (one 3x3 conv) up to 64 px, ImageNet's (three stride-2 convs) above; "
                           "or cifar, imagenet", choices=list(STEMS))
    split_seed: int = _f(0, "seed of the stratified splits (the same for every run seed, as CIFAR-10's fixed split)")
    test_portion: float = _f(0.2, "when the data has neither test/ nor val/: the stratified share of train/ held out "
                                  "as the test split (the search never sees it)")

    def check_own_images(self) -> None:
        require(bool(self.data), "data is required: --data DIR (an ImageFolder tree) or torchvision:NAME:ROOT")
        require(self.image_size == 0 or 4 <= self.image_size <= 1024,
                f"image_size must be 0 (the data's own) or 4..1024, not {self.image_size}")
        require(self.stem in STEMS, f"stem must be auto, cifar or imagenet, not {self.stem!r}")
        require(0.0 < self.test_portion < 1.0, f"test_portion must be in (0, 1), got {self.test_portion}")


@dataclass
class OwnTextOptions:
    """Where one's own text comes from and how large its vocabulary may be."""

    data: str = _f("", "a folder of train.txt, valid.txt and test.txt (one sentence a line)")
    vocab_size: int = _f(0, "cap the vocabulary to the most frequent training words (<eos> and <unk> included); "
                            "0: every word of train.txt")

    def check_own_text(self) -> None:
        require(bool(self.data), "data is required: --data DIR (a folder of train.txt, valid.txt, test.txt)")
        require(self.vocab_size == 0 or self.vocab_size >= 3, f"vocab_size must be 0 or >= 3, not {self.vocab_size}")


__all__ = ["OwnImageOptions", "OwnTextOptions", "STEMS"]
