"""The DARTS model zoo: the evaluated networks, state-dict compatible with the original.

Named pretrained models: ``zoo.list_models()``, ``zoo.info(name)``, ``zoo.create_model(name)``,
``zoo.load(name_or_dir_or_"hf-hub:org/repo"_or_checkpoint_file, num_classes=None, in_chans=None,
features_only=False)``, ``zoo.transforms(name_or_model_or_dir)``, ``zoo.pretrained_cfg(...)``,
``zoo.save_pretrained(model, dir)``, ``zoo.push_to_hub(dir, repo_id)``; the network classes also have
``from_pretrained`` / ``save_pretrained`` / ``push_to_hub`` (huggingface_hub's mixin interface) and
timm's backbone conventions (docs/zoo-library.md).

Modules, from the bottom up: the networks (``cnn``, ``rnn``, ``ops``; ``backbone``: timm's in_chans
and feature maps; ``pretrained_cfg``: what the weights expect; ``hub_mixin``: the classes' hub
methods); ``registry`` (named models and their weight sources, as data); format readers
(``legacy``: the original's pickles, read safely; ``layouts``: the original's and NNI's keys);
``saved`` (safetensors directories) and ``card``; ``hub`` (Hugging Face Hub); ``download`` (files
into the zoo cache); ``convert`` (a checkpoint file to a network); ``loader`` (``load``, trying an
entry's sources in order). Evaluation is in ``zoo.evaluate`` (``folder_eval``: a user's image
folder), datasets in ``zoo.datasets``.
"""
from .cnn import NetworkCIFAR, NetworkImageNet
from .counting import count_macs, count_parameters
from .errors import ModelLoadError, WeightsNotFoundError
from .hub import push_to_hub
from .loader import create_model, info, load, pretrained_cfg, transforms
from .registry import UnknownModelError, list_models
from .rnn import RNNModel
from .saved import load_pretrained, save_pretrained
from .state import StateDictMismatchError, check_state_dict

__all__ = [
    "NetworkCIFAR", "NetworkImageNet", "RNNModel", "count_parameters", "count_macs",
    "StateDictMismatchError", "check_state_dict",
    "list_models", "info", "create_model", "load", "load_pretrained", "save_pretrained", "push_to_hub", "transforms",
    "pretrained_cfg",
    "UnknownModelError", "ModelLoadError", "WeightsNotFoundError",
]
