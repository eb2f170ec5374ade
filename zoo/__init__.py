"""The DARTS model zoo: the evaluated networks, state-dict compatible with the original.

Named pretrained models: ``zoo.list_models()``, ``zoo.info(name)``, ``zoo.create_model(name)``,
``zoo.load(name_or_dir_or_"hf-hub:org/repo"_or_original_file)``, ``zoo.save_pretrained(model, dir)``,
``zoo.push_to_hub(dir, repo_id)``. Importers of the original checkpoints are in ``zoo.convert``,
evaluation in ``zoo.evaluate``, datasets in ``zoo.datasets``.
"""
from .cnn import NetworkCIFAR, NetworkImageNet
from .counting import count_macs, count_parameters
from .hub import ModelLoadError, WeightsNotFoundError, load, load_pretrained, push_to_hub, save_pretrained
from .registry import UnknownModelError, create_model, info, list_models
from .rnn import RNNModel
from .state import StateDictMismatchError, check_state_dict

__all__ = [
    "NetworkCIFAR", "NetworkImageNet", "RNNModel", "count_parameters", "count_macs",
    "StateDictMismatchError", "check_state_dict",
    "list_models", "info", "create_model", "load", "load_pretrained", "save_pretrained", "push_to_hub",
    "UnknownModelError", "ModelLoadError", "WeightsNotFoundError",
]
