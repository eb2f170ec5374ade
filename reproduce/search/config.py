"""Search configs: the paper's values (original cnn/train_search.py and rnn/train_search.py) as defaults.

The conv search's ``method`` names a recipe: 'darts' (the defaults below) or 'pcdarts' (PC-DARTS, Xu et al.
ICLR 2020: :data:`METHOD_RECIPES`, the defaults of the authors' train_search.py). ``reproduce.config.build``
applies a method's recipe under the fields given with it, so ``--method pcdarts`` alone is the authors' recipe.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, Optional

from zoo.limits import SIZE_LIMITS

from .. import image_size, loggers
from ..config import require
from ..data.options import OwnImageOptions, OwnTextOptions
from ..loggers import LOGGER_HELP


def _f(default, help_text, **meta):
    return field(default=default, metadata=dict(help=help_text, **meta))


BN_GROUPS_HELP = ("BatchNorm batch statistics over G fixed, contiguous sub-batches of each batch (1: the whole "
                  "batch, the paper's). Under N processes 1 means one group per process (N), which is not the "
                  "paper's recipe and is reported as not comparable; N processes compute exactly what one process "
                  "computes with the same G when N divides G")
SYNC_BN_HELP = ("GPUs under torchrun: SyncBatchNorm, statistics over the whole global batch (the paper's); goes "
                "with bn_groups 1")
PROCESSES_HELP = "number of processes (set from torchrun's WORLD_SIZE; recorded, not chosen)"

# Upper bounds of the supernet's sizes, checked before anything is built: the zoo's limits for C, layers and the
# recurrent widths (the networks a search derives must load there), and for steps a bound far above the paper's 4
# (a cell's mixed edges grow with steps squared: 100 steps is 5150 edges of 8 operations in every cell).
MAX_SEARCH_STEPS = 16
MAX_STEM_MULTIPLIER = 16
MAX_SEARCH_IMAGE_SIZE = 1024  # ImageNet search crops: the paper's 224, a few times over


def _at_most(name: str, value: int, limit: int, why: str) -> None:
    require(value <= limit, f"{name} must be at most {limit} ({why}), not {value}")


def validate_processes(config) -> None:
    """The searches' bn_groups / processes: positive, and the global batch divides into that many equal parts."""
    require(config.bn_groups >= 1, f"bn_groups must be >= 1, not {config.bn_groups}")
    require(config.processes >= 1, f"processes must be >= 1, not {config.processes}")
    parts = max(config.bn_groups, config.processes)
    require(config.batch_size % parts == 0, f"batch_size {config.batch_size} (the global batch) must divide into "
                                            f"{parts} equal parts (BatchNorm groups / processes)")


EARLY_STOP_HELP = ("DARTS+ early stopping (Liang et al. 2019, arXiv:1909.06035): 'skip:N' ends the search after the "
                   "first epoch whose normal cell (as DARTS derives it, before any --max-skip cap) has N or more "
                   "skip connections; the record says at which epoch and why. Empty: run every epoch (DARTS). "
                   "Not the paper's recipe: such a run is reported as not comparable")
MAX_SKIP_HELP = ("P-DARTS's cap on the skip connections of the derived normal cell (Chen et al. 2019): the "
                 "weakest are replaced, by their rule, until at most M remain. Unset: DARTS's derivation. "
                 "Not the paper's recipe: such a run is reported as not comparable")


def early_stop_skips(rule: str) -> Optional[int]:
    """The skip-connection count at which ``rule`` ('skip:N') stops a search; None for no rule ('')."""
    if not rule:
        return None
    kind, _, count = rule.partition(":")
    require(kind == "skip" and count.isdigit() and int(count) >= 1,
            f"early_stop must be 'skip:N' with N >= 1 (e.g. skip:2, DARTS+'s rule), not {rule!r}")
    return int(count)


@dataclass
class CIFAR10SearchConfig:
    """Conv-cell search on CIFAR-10 (paper section 2, appendix A.1.1)."""

    # PC-DARTS's CIFAR-10 recipe: the defaults of the authors' train_search.py (github.com/yuhuixu1993/PC-DARTS,
    # commit b74702f), first order as their README runs it; every other field equals DARTS's.
    stem: ClassVar[str] = "cifar"  # the supernet's stem (cnn_supernet.Network)
    method_recipes: ClassVar[Dict[str, Dict[str, Any]]] = {
        "darts": {},
        "pcdarts": dict(order=1, batch_size=256, learning_rate=0.1, learning_rate_min=0.0, arch_learning_rate=6e-4,
                        partial_channels=4, edge_normalization=True, arch_start_epoch=15),
    }

    seed: int = _f(2, "random seed (the original's default)")
    order: int = _f(2, "1: first-order DARTS (grad of the validation loss at the current weights); "
                       "2: second-order, the one-step unrolled approximation", choices=[1, 2])
    method: str = _f("darts", "search method and its recipe: 'darts' (these defaults) or 'pcdarts' (PC-DARTS, Xu et "
                              "al. 2020, the authors' train_search.py: order 1, batch 256, lr 0.1 to 0, arch lr 6e-4, "
                              "partial channels 4, edge normalisation, architecture updates from epoch 15; fields "
                              "given with it override the recipe; docs/pcdarts.md)", choices=["darts", "pcdarts"])
    partial_channels: int = _f(1, "PC-DARTS: each edge's ops see 1/K of the channels (K; 1: all, as DARTS)")
    edge_normalization: bool = _f(False, "PC-DARTS: each node weights its incoming edges by a softmax of "
                                         "per-edge logits (betas), trained with the alphas and used in the derivation")
    partial_selection: str = _f("shuffle", "PC-DARTS: which channels an edge's ops see: 'shuffle' (the authors' code: "
                                           "the first C/K, then a channel shuffle) or 'random' (their paper's "
                                           "formula: a fresh random C/K per edge and step, the rest in place)",
                                choices=["shuffle", "random"])
    arch_start_epoch: int = _f(0, "first epoch with architecture updates (PC-DARTS: 15, weights only before)")
    lr_warmup_epochs: int = _f(0, "epochs of linear lr warm-up, lr * (epoch + 1) / N, before the cosine (0: none)")
    arch_grad_clip: float = _f(0.0, "clip of the architecture gradient's norm before Adam (0: none, as DARTS)")
    edge_bn_updates: int = _f(1, "momentum updates of the edges' BatchNorm running statistics per training forward "
                                 "(PC-DARTS on ImageNet: 2, as the authors' model_search_imagenet.py, which runs "
                                 "each mixed op twice; only eval-mode figures change)")
    epochs: int = _f(50, "search epochs")
    data: str = _f("data/cifar10", "CIFAR-10 root (torchvision layout; downloaded when missing and online)")
    device: str = _f("auto", "cpu, cuda, cuda:1, ... ('auto': cuda when available, else cpu)")
    deterministic: bool = _f(False, "deterministic kernels (slower on GPU; needed for bit-identical resume)")
    num_threads: int = _f(0, "torch CPU threads (0: torch's choice)")
    batch_size: int = _f(64, "batch size of both halves")
    eval_batch_size: int = _f(0, "batch size of the epoch's validation pass over the architecture half (0: "
                                 "batch_size, as the original); a larger one is faster on a CPU and changes the "
                                 "figure only through the crops' randomness and float rounding")
    learning_rate: float = _f(0.025, "initial weight learning rate (SGD)")
    learning_rate_min: float = _f(0.001, "final learning rate of the cosine schedule")
    momentum: float = _f(0.9, "SGD momentum (also used by the virtual step of order 2)")
    weight_decay: float = _f(3e-4, "weight decay (also used by the virtual step of order 2)")
    grad_clip: float = _f(5.0, "gradient-norm clip of the weight step")
    arch_learning_rate: float = _f(3e-4, "architecture learning rate (Adam)")
    arch_weight_decay: float = _f(1e-3, "architecture weight decay (Adam)")
    arch_beta1: float = _f(0.5, "Adam beta1 of the architecture optimizer")
    arch_beta2: float = _f(0.999, "Adam beta2 of the architecture optimizer")
    C: int = _f(16, "initial channels of the supernet")
    layers: int = _f(8, "cells of the supernet (reductions at 1/3 and 2/3)")
    steps: int = _f(4, "intermediate nodes per cell")
    multiplier: int = _f(4, "nodes concatenated into a cell's output")
    stem_multiplier: int = _f(3, "stem channels = stem_multiplier * C")
    train_portion: float = _f(0.5, "share of the training set that trains the weights (the rest: the architecture)")
    train_examples: int = _f(0, "use only the first N training images (0: all 50000); for demos and tests")
    image_size: int = _f(32, "side of the images the supernet sees: 32 (the paper's), or 16 or 8 (the 32x32 images "
                             "averaged down, crop padding in proportion; for small machines)", choices=[8, 16, 32])
    unrolled_eps: float = _f(0.01, "finite-difference radius r of the Hessian-vector product (eps = r / ||v||)")
    amp: str = _f("none", "autocast dtype for the forward passes ('bf16' changes results slightly; order 1 only)",
                  choices=["none", "bf16"])
    bn_groups: int = _f(1, BN_GROUPS_HELP)
    sync_bn: bool = _f(False, SYNC_BN_HELP)
    processes: int = _f(1, PROCESSES_HELP)
    channels_last: Optional[bool] = _f(
        None, "channels_last memory format: the same float32 arithmetic in another layout (results differ in "
        "float rounding only). Default: the device's measured fastest exact choice (on for CPUs, where BatchNorm "
        "sums its statistics accurately; off elsewhere until measured; see results/bench/README-search.md); "
        "--channels-last / --no-channels-last choose it")
    max_skip: Optional[int] = _f(None, MAX_SKIP_HELP)
    early_stop: str = _f("", EARLY_STOP_HELP)
    logger: str = _f("", LOGGER_HELP)

    def validate_image_size(self) -> None:
        require(self.image_size in image_size.SIZES, f"image_size must be 8, 16 or 32, not {self.image_size}")

    def validate(self) -> None:
        require(self.order in (1, 2), f"order must be 1 or 2, not {self.order}")
        require(self.epochs >= 1, f"epochs must be >= 1, not {self.epochs}")
        validate_processes(self)
        require(self.batch_size >= 1, f"batch_size must be >= 1, not {self.batch_size}")
        require(self.eval_batch_size >= 0, f"eval_batch_size must be >= 0 (0: batch_size), not {self.eval_batch_size}")
        require(0.0 < self.train_portion < 1.0, f"train_portion must be in (0, 1), not {self.train_portion}")
        require(self.C >= 2 and self.C % 2 == 0, f"C must be a positive even number, not {self.C}")
        require(self.layers >= 1, f"layers must be >= 1, not {self.layers}")
        require(1 <= self.multiplier <= self.steps, f"multiplier must be in 1..steps, not {self.multiplier}")
        _at_most("C", self.C, SIZE_LIMITS["C"], "the zoo's limit; the paper's search uses 16")
        _at_most("layers", self.layers, SIZE_LIMITS["layers"], "the zoo's limit; the paper's search uses 8")
        _at_most("steps", self.steps, MAX_SEARCH_STEPS, "the paper's search uses 4")
        _at_most("stem_multiplier", self.stem_multiplier, MAX_STEM_MULTIPLIER, "the paper's search uses 3")
        self.validate_image_size()
        validate_method(self)
        require(self.train_examples >= 0, f"train_examples must be >= 0, not {self.train_examples}")
        require(self.learning_rate > 0 and self.arch_learning_rate > 0, "learning rates must be > 0")
        require(self.unrolled_eps > 0, f"unrolled_eps must be > 0, not {self.unrolled_eps}")
        require(self.amp in ("none", "bf16"), f"amp must be none or bf16, not {self.amp!r}")
        require(not (self.amp == "bf16" and self.order == 2),
                "amp=bf16 does not go with order 2: the unrolled step's finite difference moves each weight by about "
                "0.01/sqrt(number of weights), far below bfloat16's resolution, so its Hessian term would be rounding "
                "noise. Use --order 1 with bf16, or float32 (--amp none) with order 2")
        require(self.max_skip is None or self.max_skip >= 0, f"max_skip must be >= 0, not {self.max_skip}")
        early_stop_skips(self.early_stop)
        loggers.parse(self.logger)

@dataclass
class ImageSearchConfig(OwnImageOptions, CIFAR10SearchConfig):
    """Conv-cell search on one's own images (any classes, 1 or 3 channels, any size): the CIFAR-10 search's
    values, the data's own classes, channels and size, and a seeded stratified split into the two halves."""

    train_examples: int = _f(0, "use only a stratified N of the training images (0: all); for demos and tests")

    def validate_image_size(self) -> None:
        self.check_own_images()


def validate_method(config) -> None:
    """The method's fields: DARTS has neither partial channels nor betas; PC-DARTS's partial channels split C."""
    require(config.method in config.method_recipes,
            f"method must be one of {', '.join(config.method_recipes)}, not {config.method!r}")
    require(config.partial_channels >= 1, f"partial_channels must be >= 1, not {config.partial_channels}")
    require(config.edge_bn_updates >= 1, f"edge_bn_updates must be >= 1, not {config.edge_bn_updates}")
    require(config.partial_selection in ("shuffle", "random") and (
        config.partial_selection == "shuffle" or config.partial_channels > 1),
        f"partial_selection must be shuffle, or random with partial_channels > 1, not {config.partial_selection!r}")
    if config.method == "darts":
        require(config.partial_channels == 1 and not config.edge_normalization,
                "partial_channels and edge_normalization are PC-DARTS's: use --method pcdarts")
    else:
        require(config.partial_channels > 1 or config.edge_normalization,
                f"method {config.method} without partial channels or edge normalisation is DARTS: build the config "
                f"with reproduce.config.build (or --method {config.method}), which applies the method's recipe")
    require(config.C % (2 * config.partial_channels) == 0,
            f"C={config.C} must be a multiple of 2 * partial_channels = {2 * config.partial_channels} (each edge's "
            "ops take C / partial_channels channels, an even number for the reduction edges)")


def _default(name: str, value):
    """A field of :class:`CIFAR10SearchConfig` with another default (its help and choices kept)."""
    return field(default=value, metadata=CIFAR10SearchConfig.__dataclass_fields__[name].metadata)


@dataclass
class ImageNetSearchConfig(CIFAR10SearchConfig):
    """PC-DARTS's search on ImageNet: the defaults of the authors' train_search_imagenet.py (commit b74702f)."""

    stem: ClassVar[str] = "imagenet"
    method_recipes: ClassVar[Dict[str, Dict[str, Any]]] = {"pcdarts": {}}  # the defaults: PC-DARTS's ImageNet recipe

    method: str = _f("pcdarts", "search method (the ImageNet search is PC-DARTS's)", choices=["pcdarts"])
    order: int = _f(1, "1: first order, as the authors' script (it has no unrolled step)", choices=[1, 2])
    partial_channels: int = _default("partial_channels", 2)
    edge_normalization: bool = _default("edge_normalization", True)
    arch_start_epoch: int = _default("arch_start_epoch", 35)  # their "begin" argument
    data: str = _f("data/imagenet", "ImageFolder root with train/<class>/<image> (ImageNet's training set)")
    batch_size: int = _default("batch_size", 1024)
    learning_rate: float = _default("learning_rate", 0.5)
    learning_rate_min: float = _default("learning_rate_min", 0.0)
    arch_learning_rate: float = _default("arch_learning_rate", 6e-3)
    image_size: int = _f(224, "side of the random crops (RandomResizedCrop) the supernet sees")
    lr_warmup_epochs: int = _default("lr_warmup_epochs", 5)  # their script: when the batch is above 256
    arch_grad_clip: float = _default("arch_grad_clip", 5.0)  # their "grad_clip", the weights' clip too
    edge_bn_updates: int = _default("edge_bn_updates", 2)
    train_fraction: float = _f(0.1, "share of each class's training images that trains the weights")
    arch_fraction: float = _f(0.025, "share of each class's training images that trains the architecture")
    subset_seed: int = _f(0, "seed of the per-class draw of the two subsets (recorded in the run's subsets.json)")
    workers: int = _f(4, "DataLoader worker processes (4, as their script)")

    def validate_image_size(self) -> None:
        _at_most("image_size", self.image_size, MAX_SEARCH_IMAGE_SIZE, "the paper's crops are 224")
        require(self.image_size >= 16 and self.image_size % 16 == 0,
                f"image_size must be a multiple of 16 (the stems divide by 8, the reductions by 2 more), "
                f"not {self.image_size}")
        require(0 < self.train_fraction and 0 < self.arch_fraction and self.train_fraction + self.arch_fraction <= 1,
                "train_fraction and arch_fraction must be > 0 and add up to at most 1")


@dataclass
class PTBSearchConfig:
    """Recurrent-cell search on Penn Treebank (original rnn/train_search.py)."""

    seed: int = _f(3, "random seed (the original's default)")
    order: int = _f(2, "1: first-order DARTS; 2: second-order (one-step unrolled)", choices=[1, 2])
    epochs: int = _f(50, "search epochs")
    data: str = _f("data/penn", "corpus directory in the awd-lstm-lm layout (train.txt, valid.txt, test.txt)")
    device: str = _f("auto", "cpu, cuda, cuda:1, ... ('auto': cuda when available, else cpu)")
    deterministic: bool = _f(False, "deterministic kernels (slower on GPU; needed for bit-identical resume)")
    num_threads: int = _f(0, "torch CPU threads (0: torch's choice)")
    emsize: int = _f(300, "embedding size (= nhid = nhidlast)")
    nhid: int = _f(300, "hidden units of the cell")
    nhidlast: int = _f(300, "hidden units of the last layer (= nhid)")
    learning_rate: float = _f(20.0, "weight learning rate (SGD; --lr)")
    grad_clip: float = _f(0.25, "gradient-norm clip (weight step and the unrolled step; --clip)")
    batch_size: int = _f(256, "batch size (train and architecture batches)")
    eval_batch_size: int = _f(10, "batch size of the validation evaluation")
    bptt: int = _f(35, "sequence length (halved with probability 0.05)")
    dropout: float = _f(0.75, "dropout on the cell output")
    dropouth: float = _f(0.25, "dropout on hidden states inside the cell")
    dropoutx: float = _f(0.75, "dropout on the cell input")
    dropouti: float = _f(0.2, "dropout on the input embedding")
    dropoute: float = _f(0.0, "dropout of whole words in the embedding")
    weight_decay: float = _f(5e-7, "weight decay (--wdecay)")
    alpha: float = _f(0.0, "activation regularisation (AR) coefficient")
    beta: float = _f(1e-3, "temporal activation regularisation (TAR) coefficient")
    arch_learning_rate: float = _f(3e-3, "architecture learning rate (Adam; --arch-lr)")
    arch_weight_decay: float = _f(1e-3, "architecture weight decay (Adam; --arch-wdecay)")
    unrolled_eps: float = _f(0.01, "finite-difference radius r of the Hessian-vector product (eps = r / ||v||)")
    virtual_step_tied_weight: str = _f(
        "held", "order 2: the tied embedding/decoder weight in the virtual step w' = w - lr * grad. 'held': stays "
        "at w, as the original's code does (it produced the paper's PTB numbers); 'stepped': moved like every "
        "other weight, the paper's formula (eq. 7). The two give different architecture gradients from the "
        "first step", choices=["held", "stepped"])
    bn_groups: int = _f(1, BN_GROUPS_HELP)
    sync_bn: bool = _f(False, SYNC_BN_HELP)
    processes: int = _f(1, PROCESSES_HELP)
    valid_bn: str = _f(
        "running", "BatchNorm statistics of the supernet's validation perplexity. 'running': eval mode, where "
        "the cell's one BatchNorm normalises the initial state and all 8 steps with the same running statistics, "
        "as the original's code does; 'batch': each state normalised with its own statistics over the "
        "evaluation batch, as in training (the running statistics are neither used nor updated). Only the "
        "reported figure changes, not the search", choices=["running", "batch"])
    logger: str = _f("", LOGGER_HELP)

    def validate(self) -> None:
        require(self.order in (1, 2), f"order must be 1 or 2, not {self.order}")
        require(self.epochs >= 1, f"epochs must be >= 1, not {self.epochs}")
        validate_processes(self)
        require(self.virtual_step_tied_weight in ("held", "stepped"),
                f"virtual_step_tied_weight must be held or stepped, not {self.virtual_step_tied_weight!r}")
        require(self.valid_bn in ("running", "batch"), f"valid_bn must be running or batch, not {self.valid_bn!r}")
        require(self.valid_bn != "batch" or self.eval_batch_size >= 2,
                "valid_bn=batch normalises over the evaluation batch: eval_batch_size must be >= 2")
        _at_most("nhid", self.nhid, SIZE_LIMITS["nhid"], "the zoo's limit; the paper's search uses 300")
        require(self.emsize == self.nhid == self.nhidlast,
                f"the DARTS recurrent model ties emsize = nhid = nhidlast, got "
                f"{self.emsize}, {self.nhid}, {self.nhidlast}")
        require(self.batch_size >= 1 and self.eval_batch_size >= 1, "batch sizes must be >= 1")
        require(self.bptt >= 2, f"bptt must be >= 2, not {self.bptt}")
        for name in ("dropout", "dropouth", "dropoutx", "dropouti", "dropoute"):
            value = getattr(self, name)
            require(0.0 <= value < 1.0, f"{name} must be in [0, 1), not {value}")
        require(self.learning_rate > 0 and self.arch_learning_rate > 0, "learning rates must be > 0")
        require(self.unrolled_eps > 0, f"unrolled_eps must be > 0, not {self.unrolled_eps}")
        loggers.parse(self.logger)


@dataclass
class TextSearchConfig(OwnTextOptions, PTBSearchConfig):
    """Recurrent-cell search on one's own text: the PTB search's values, the vocabulary from train.txt."""

    def validate(self) -> None:
        super().validate()
        self.check_own_text()
