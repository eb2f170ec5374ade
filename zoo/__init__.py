"""The DARTS model zoo: the evaluated networks, state-dict compatible with the original."""
from .cnn import NetworkCIFAR, NetworkImageNet
from .counting import count_macs, count_parameters
from .rnn import RNNModel
from .state import StateDictMismatchError, check_state_dict

__all__ = [
    "NetworkCIFAR", "NetworkImageNet", "RNNModel", "count_parameters", "count_macs",
    "StateDictMismatchError", "check_state_dict",
]
