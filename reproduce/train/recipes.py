"""The paper's training recipes as config dataclasses; every default is the original's value.

- :class:`CIFAR10Config`: the original ``cnn/train.py`` run with ``--auxiliary --cutout``.
- :class:`ImageNetConfig`: the original ``cnn/train_imagenet.py`` run with ``--auxiliary``.
- :class:`PTBConfig`: the original ``rnn/train.py`` (Penn Treebank).
- :class:`WT2Config`: the PTB recipe with 700 units, dropouth 0.15, weight decay 5e-7 (WikiText-2).

Fields shared by all recipes: ``arch`` (a named genotype), ``genotype`` (genotype text, wins
over ``arch`` when set), ``seed``, ``epochs``, ``data``, ``device``, ``deterministic``, ``amp``,
``channels_last``, ``compile``, ``limit``/``limit_eval`` to shrink the data for demos and tests, and
``logger`` (live logs, a run-time choice like ``device``: :mod:`reproduce.loggers`).

Batch sizes are *global*: under ``torchrun`` each of the N processes takes ``batch_size / N``
examples per step and gradients are averaged, so the update equals one process with the whole
batch, at the same learning rate (no learning-rate scaling). A batch that does not divide across
the processes is refused before any work starts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict

import torch

import genotypes

from .. import image_size, loggers
from ..config import ConfigError, canonical, require
from ..data.images import image_side
from ..data.options import OwnImageOptions, OwnTextOptions
from ..data.own import resolve_stem
from ..loggers import LOGGER_HELP

# The recipe profiles: the paper's recipe, a shortened one (not comparable) and the demo's.
PROFILES = ("paper", "quick", "demo")

AMP_CHOICES = ("none", "bf16")
# The training recipes of one's own images (ImagesConfig.recipe); 'auto' picks one by the images' side.
RECIPES = ("auto", "cifar", "imagenet")
# The ImageNet recipe's training fields: what ``train images --recipe imagenet`` takes from ImageNetConfig.
IMAGENET_RECIPE_FIELDS = ("epochs", "C", "layers", "auxiliary", "auxiliary_weight", "drop_path_prob", "label_smooth",
                          "batch_size", "eval_batch_size", "learning_rate", "gamma", "decay_period", "momentum",
                          "weight_decay", "grad_clip")


def _f(default, help_text, **meta):
    return field(default=default, metadata={"help": help_text, **meta})


def resolve_genotype(arch: str, genotype_text: str, cell: str, option: str = ""):
    """The genotype a config names: its ``genotype`` (text or a name) when set, else the named ``arch``.

    :func:`genotypes.resolve` does the work; this turns its errors into a ConfigError naming the
    option and the fix (unknown name, unparsable text, wrong kind of cell, invalid cell).
    """
    text = genotype_text or arch
    option = option or ("--genotype" if genotype_text else "--arch")
    which = "convolutional" if cell == "cnn" else "recurrent"
    try:
        return genotypes.resolve(text, cell)
    except TypeError as e:
        raise ConfigError(f"{option}: {e}; this trains a {which} cell") from None
    except genotypes.UnknownGenotypeError as e:
        raise ConfigError(f"{option}: {e}") from None
    except ValueError as e:
        raise ConfigError(f"malformed genotype {option} {str(text)[:80]!r}: {e}. Give a name (e.g. DARTS_V2) or "
                          f"the text the search printed, e.g. {genotypes.format(genotypes.get('DARTS_V2', cell))!r}"
                          ) from None


def _check_common(cfg) -> None:
    # A profile decides which records are aggregated and compared with the paper: an unknown one would be a
    # group of its own that no report labels.
    require(cfg.profile in PROFILES, f"profile must be one of {', '.join(PROFILES)}, got {cfg.profile!r}")
    require(cfg.epochs >= 1, f"epochs must be >= 1, got {cfg.epochs}")
    require(cfg.batch_size >= 1, f"batch_size must be >= 1, got {cfg.batch_size}")
    require(cfg.eval_batch_size >= 1, f"eval_batch_size must be >= 1, got {cfg.eval_batch_size}")
    require(cfg.limit >= 0 and cfg.limit_eval >= 0, "limit and limit_eval must be >= 0 (0 = all the data)")
    require(cfg.amp in AMP_CHOICES, f"amp must be one of {', '.join(AMP_CHOICES)}, got {cfg.amp!r}")
    require(cfg.learning_rate > 0, f"learning_rate must be > 0, got {cfg.learning_rate}")
    require(cfg.seed >= 0, f"seed must be >= 0, got {cfg.seed}")
    if cfg.device != "auto":
        try:
            dev = torch.device(cfg.device)
        except (RuntimeError, ValueError):
            raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {cfg.device!r}") from None
        # Whether the device exists is checked where the run starts (reproduce.device.pick_device), not
        # here: a config built on a login node for a GPU job (--gpus, --launcher slurm) is valid.
        require(dev.type in ("cpu", "cuda", "mps", "xpu"), f"unsupported device {cfg.device!r}")
    genotype_of(cfg)
    loggers.parse(cfg.logger)


@dataclass
class _Common:
    arch: str = _f("DARTS_V2", "named genotype to train (DARTS in the original = DARTS_V2)")
    genotype: str = _f("", "genotype text (as the search prints it) or a name; overrides arch when set")
    experiment: str = _f("", "experiment name stored in the record (default: train-<dataset>)")
    profile: str = _f("paper", "recipe profile the harness ran this under (paper, quick, demo); saved with the "
                      "run so that records of different profiles are never aggregated together", choices=PROFILES)
    device: str = _f("auto", "auto (cuda if available, else cpu), cpu, cuda, cuda:N")
    deterministic: bool = _f(False, "deterministic kernels; bit-identical reruns (slower on GPU)")
    amp: str = _f("none", "autocast dtype: none (fp32, as the paper) or bf16 (faster on recent GPUs, "
                  "changes the numbers slightly)", choices=AMP_CHOICES)
    channels_last: bool = _f(False, "channels_last memory format (faster convolutions on tensor-core GPUs)")
    compile: bool = _f(False, "torch.compile the model (faster steps after a compile of minutes)")
    limit: int = _f(0, "use only this many training examples (tokens for LMs); 0 = all")
    limit_eval: int = _f(0, "use only this many evaluation examples (tokens for LMs); 0 = all")
    num_threads: int = _f(0, "torch CPU threads; 0 = torch's choice")
    logger: str = _f("", LOGGER_HELP)


@dataclass
class CIFAR10Config(_Common):
    """cnn/train.py --auxiliary --cutout: NetworkCIFAR C=36, 20 cells, 600 epochs of cosine SGD."""

    cell: ClassVar[str] = "cnn"  # the kind of cell the recipe trains (genotypes.resolve's kind)

    seed: int = _f(0, "random seed")
    data: str = _f("data/cifar10", "directory with cifar-10-batches-py")
    download: bool = _f(False, "download CIFAR-10 into data when it is missing")
    epochs: int = _f(600, "training epochs")
    C: int = _f(36, "initial channels (init_channels)")
    layers: int = _f(20, "number of cells")
    auxiliary: bool = _f(True, "auxiliary tower")
    auxiliary_weight: float = _f(0.4, "weight of the auxiliary loss")
    cutout: bool = _f(True, "cutout augmentation")
    cutout_length: int = _f(16, "cutout square side")
    drop_path_prob: float = _f(0.2, "drop-path probability, ramped linearly: p * epoch / epochs")
    batch_size: int = _f(96, "global batch size")
    eval_batch_size: int = _f(96, "evaluation batch size (does not change results)")
    learning_rate: float = _f(0.025, "initial learning rate (--lr), cosine-annealed to 0 per epoch")
    momentum: float = _f(0.9, "SGD momentum")
    weight_decay: float = _f(3e-4, "weight decay")
    grad_clip: float = _f(5.0, "gradient norm clip")
    cuda_graphs: bool = _f(False, "EXPERIMENTAL, not yet run on a GPU: replay each training step from a CUDA "
                           "graph (one process on a GPU; recaptured every epoch)")
    valid_split: int = _f(0, "hold out this many training images and report valid_error on them "
                          "(0 = the paper's protocol: train on all 50k, report test error)")
    image_size: int = _f(32, "side of the images the network sees: 32 (the paper's), or 16 or 8 (the 32x32 images "
                             "averaged down, crop padding in proportion; for small machines)", choices=[8, 16, 32])

    def validate(self) -> None:
        _check_common(self)
        self._check_data()
        require(self.C >= 1 and self.layers >= 3, f"need C >= 1 and layers >= 3, got C={self.C}, layers={self.layers}")
        require(0 <= self.drop_path_prob < 1, f"drop_path_prob must be in [0, 1), got {self.drop_path_prob}")
        require(self.cutout_length >= 0, f"cutout_length must be >= 0, got {self.cutout_length}")
        require(self.valid_split >= 0, f"valid_split must be >= 0, got {self.valid_split}")
        require(self.grad_clip > 0, f"grad_clip must be > 0, got {self.grad_clip}")

    def _check_data(self) -> None:
        require(self.image_size in image_size.SIZES, f"image_size must be 8, 16 or 32, got {self.image_size}")
        require(not (self.auxiliary and self.image_size != 32),
                f"the auxiliary head needs 32x32 images (it pools an 8x8 map), got image_size {self.image_size}: "
                "use --no-auxiliary with smaller images")


@dataclass
class ImageNetConfig(_Common):
    """cnn/train_imagenet.py --auxiliary: NetworkImageNet C=48, 14 cells, 250 epochs, lr x0.97 per epoch."""

    cell: ClassVar[str] = "cnn"

    seed: int = _f(0, "random seed")
    data: str = _f("data/imagenet", "ImageFolder root with train/ and val/")
    epochs: int = _f(250, "training epochs")
    C: int = _f(48, "initial channels (init_channels); must be even")
    layers: int = _f(14, "number of cells")
    auxiliary: bool = _f(True, "auxiliary tower")
    auxiliary_weight: float = _f(0.4, "weight of the auxiliary loss")
    drop_path_prob: float = _f(0.0, "drop-path probability (0 in the original's ImageNet recipe)")
    label_smooth: float = _f(0.1, "label smoothing of the training loss")
    batch_size: int = _f(128, "global batch size")
    eval_batch_size: int = _f(128, "evaluation batch size (does not change results)")
    learning_rate: float = _f(0.1, "initial learning rate (--lr)")
    gamma: float = _f(0.97, "learning-rate decay factor")
    decay_period: int = _f(1, "epochs between two learning-rate decays")
    momentum: float = _f(0.9, "SGD momentum")
    weight_decay: float = _f(3e-5, "weight decay")
    grad_clip: float = _f(5.0, "gradient norm clip")
    workers: int = _f(8, "data-loading worker processes per training process (the original used 4)")

    def validate(self) -> None:
        _check_common(self)
        require(self.C >= 2 and self.C % 2 == 0, f"C must be even and >= 2 (the stem halves it), got {self.C}")
        require(self.layers >= 3, f"layers must be >= 3, got {self.layers}")
        require(0 <= self.drop_path_prob < 1, f"drop_path_prob must be in [0, 1), got {self.drop_path_prob}")
        require(0 <= self.label_smooth < 1, f"label_smooth must be in [0, 1), got {self.label_smooth}")
        require(self.decay_period >= 1, f"decay_period must be >= 1, got {self.decay_period}")
        require(self.workers >= 0, f"workers must be >= 0, got {self.workers}")
        require(self.grad_clip > 0, f"grad_clip must be > 0, got {self.grad_clip}")


@dataclass
class ImagesConfig(OwnImageOptions, CIFAR10Config):
    """One's own images (any classes, 1 or 3 channels, any size): the CIFAR-10 recipe up to 64 px, ImageNet's above.

    ``recipe`` names the training recipe: 'cifar' (these defaults: cosine lr, random crop + flip + cutout) or
    'imagenet' (:data:`IMAGENET_RECIPE`, ImageNetConfig's values: step decay, random resized crop + flip + colour
    jitter at the images' size, label smoothing, no cutout); 'auto' is resolved by :meth:`with_recipe` from the
    images' side before the config is built, so a run's config.json names the recipe it ran."""

    # what each recipe sets, under the fields given with it (ImageNetConfig's own defaults for 'imagenet')
    training_recipes: ClassVar[Dict[str, Dict[str, Any]]] = {
        "cifar": {}, "imagenet": {**{name: getattr(ImageNetConfig, name) for name in IMAGENET_RECIPE_FIELDS},
                                  "cutout": False}}

    recipe: str = _f("auto", "training recipe: auto (cifar up to 64 px, imagenet above, the stem's rule), cifar "
                             "(cosine lr, random crop + flip + cutout; C 36, 20 cells, 600 epochs) or imagenet (the "
                             "ImageNet recipe: lr 0.1 x 0.97 per epoch, random resized crop + flip + colour jitter at "
                             "the images' size, label smoothing 0.1; C 48, 14 cells, 250 epochs, batch 128); fields "
                             "given with it override the recipe's values", choices=list(RECIPES))
    label_smooth: float = _f(0.0, "label smoothing of the training loss (the imagenet recipe: 0.1)")
    gamma: float = _f(ImageNetConfig.gamma, "imagenet recipe: learning-rate decay factor (the cifar recipe's "
                                            "schedule is cosine)")
    decay_period: int = _f(ImageNetConfig.decay_period, "imagenet recipe: epochs between two learning-rate decays")

    cutout_length: int = _f(0, "cutout square side (0: half the image side, the paper's 16 at 32 px)")
    valid_portion: float = _f(0.0, "hold out this stratified share of the training images and report valid_error "
                                   "on it every epoch (the test split once at the end); 0: report test_error")
    in_memory_mb: int = _f(4096, "decode an image folder once into memory up to about this many MiB; a larger one is "
                                 "streamed from disk, each batch decoded as it is needed (needs --image-size)")
    workers: int = _f(4, "threads decoding the images of a streamed image folder")

    @classmethod
    def with_recipe(cls, overrides: Dict[str, Any], data=None) -> Dict[str, Any]:
        """``overrides`` over the fields of the recipe they name (``recipe``; 'auto' or none: by the side of the
        images of ``data``, else of the ``data`` field), with ``recipe`` set to the one chosen. Left as they are
        when the recipe cannot be known yet (no data, a bad field): validation names the problem."""
        overrides = canonical(dict(overrides))
        recipe, size = overrides.get("recipe", "auto"), overrides.get("image_size", 0)
        if recipe == "auto":
            source = data if data is not None else overrides.get("data")
            if not source or not isinstance(size, int) or isinstance(size, bool):
                return overrides
            recipe = resolve_stem("auto", image_side(source, size))
        if recipe not in cls.training_recipes:
            return overrides
        return {**cls.training_recipes[recipe], **overrides, "recipe": recipe}

    def _check_data(self) -> None:
        self.check_own_images()
        require(self.recipe in RECIPES, f"recipe must be one of {', '.join(RECIPES)}, not {self.recipe!r}")
        require(not (self.recipe == "imagenet" and self.cutout),
                "cutout belongs to the cifar recipe's augmentation; the imagenet recipe's is random resized crops, "
                "flips and colour jitter: drop --cutout, or use --recipe cifar")
        require(0 <= self.label_smooth < 1, f"label_smooth must be in [0, 1), got {self.label_smooth}")
        require(self.decay_period >= 1, f"decay_period must be >= 1, got {self.decay_period}")
        require(0.0 <= self.valid_portion < 1.0, f"valid_portion must be in [0, 1), got {self.valid_portion}")
        require(self.valid_split == 0, "valid_split holds out CIFAR-10's last images; for one's own images use "
                                       "--valid-portion (a stratified share)")
        require(not self.download, "download fetches CIFAR-10; one's own images are never downloaded (torchvision:"
                                   "NAME:ROOT datasets download themselves)")


@dataclass
class PTBConfig(_Common):
    """rnn/train.py: DARTS recurrent cell, 850 units, SGD lr 20 then ASGD (awd-lstm-lm style)."""

    cell: ClassVar[str] = "rnn"

    seed: int = _f(1267, "random seed (the original rnn/train.py default)")
    data: str = _f("data/penn", "directory with train.txt, valid.txt, test.txt (awd-lstm-lm layout)")
    epochs: int = _f(8000, "epoch budget (the original's upper limit)")
    emsize: int = _f(850, "embedding size")
    nhid: int = _f(850, "hidden units")
    nhidlast: int = _f(850, "hidden units of the last layer")
    dropout: float = _f(0.75, "dropout on the output")
    dropouth: float = _f(0.25, "dropout on the hidden state inside the cell")
    dropoutx: float = _f(0.75, "dropout on the input inside the cell")
    dropouti: float = _f(0.2, "dropout on the embedded input")
    dropoute: float = _f(0.1, "dropout of whole words from the embedding")
    learning_rate: float = _f(20.0, "learning rate (--lr; SGD, then ASGD)")
    weight_decay: float = _f(8e-7, "weight decay (--wdecay)")
    grad_clip: float = _f(0.25, "gradient norm clip (--clip)")
    batch_size: int = _f(64, "global batch size")
    eval_batch_size: int = _f(10, "validation batch size (10 in the original)")
    test_batch_size: int = _f(1, "test batch size (1 in the original)")
    bptt: int = _f(35, "mean sequence length")
    max_seq_len_delta: int = _f(20, "a sampled sequence is at most bptt + this long")
    alpha: float = _f(0.0, "activation regularisation (AR) weight")
    beta: float = _f(1e-3, "temporal activation regularisation (TAR) weight")
    nonmono: int = _f(5, "switch to ASGD when validation has not improved on the best of all but the last "
                      "nonmono epochs (>= 1)")
    nan_rollbacks: int = _f(10, "on a non-finite loss, roll back to the best checkpoint (as the original) at most "
                            "this many times; 0 = stop with an error")

    def validate(self) -> None:
        _check_common(self)
        require(self.emsize == self.nhid == self.nhidlast,
                f"the DARTS recurrent model ties emsize == nhid == nhidlast, got {self.emsize}, {self.nhid}, "
                f"{self.nhidlast}")
        require(self.emsize >= 1, f"emsize must be >= 1, got {self.emsize}")
        require(self.bptt >= 1 and self.max_seq_len_delta >= 0, "need bptt >= 1 and max_seq_len_delta >= 0")
        require(self.test_batch_size >= 1, f"test_batch_size must be >= 1, got {self.test_batch_size}")
        for name in ("dropout", "dropouth", "dropoutx", "dropouti", "dropoute"):
            value = getattr(self, name)
            require(0 <= value < 1, f"{name} must be in [0, 1), got {value}")
        require(self.nonmono >= 1, f"nonmono must be >= 1, got {self.nonmono}: the switch to ASGD compares the "
                "validation loss with the best of all epochs but the last nonmono, and with 0 that is no epoch (the "
                "original stops with an error there); use --nonmono 1 for the quickest switch")
        require(self.nan_rollbacks >= 0, f"nan_rollbacks must be >= 0, got {self.nan_rollbacks}")
        require(self.grad_clip > 0, f"grad_clip must be > 0, got {self.grad_clip}")


@dataclass
class WT2Config(PTBConfig):
    """The PTB recipe for WikiText-2: 700 units, dropouth 0.15, weight decay 5e-7 (the original README)."""

    data: str = _f("data/wikitext-2", "directory with train.txt, valid.txt, test.txt (awd-lstm-lm layout)")
    emsize: int = _f(700, "embedding size")
    nhid: int = _f(700, "hidden units")
    nhidlast: int = _f(700, "hidden units of the last layer")
    dropouth: float = _f(0.15, "dropout on the hidden state inside the cell")
    weight_decay: float = _f(5e-7, "weight decay (--wdecay)")


@dataclass
class TextConfig(OwnTextOptions, PTBConfig):
    """One's own text with the PTB recipe: any folder of train.txt, valid.txt, test.txt; vocabulary from train.txt."""

    def validate(self) -> None:
        super().validate()
        self.check_own_text()


# How the record, the card and the dry run name each recipe of one's own images.
RECIPE_NAMES = {"cifar": "the CIFAR recipe (cosine lr, random crop + flip + cutout)",
                "imagenet": "the ImageNet recipe (step decay, random resized crop + flip + colour jitter, "
                            "label smoothing)"}


def recipe_name(config: Dict[str, Any]) -> str:
    """What a config dict's ``recipe`` is (one's own images), e.g. "the ImageNet training recipe (...)"; "" when it
    names none (the paper's datasets have one recipe each)."""
    return RECIPE_NAMES.get(config.get("recipe"), "")


def genotype_of(config):
    """The cell a recipe's config trains (its ``genotype``, else its ``arch``), of the recipe's kind of cell."""
    return resolve_genotype(config.arch, config.genotype, config.cell)
