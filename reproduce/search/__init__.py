"""DARTS architecture search: conv cells on CIFAR-10, recurrent cells on PTB, first and second order.

>>> from reproduce.search import search, SEARCH_CONFIGS
>>> cfg = SEARCH_CONFIGS["cifar10"](order=2, seed=2)  # the paper's values otherwise
>>> record = search("cifar10", cfg, "runs/search-c10-s2")  # doctest: +SKIP
"""
from .config import CIFAR10SearchConfig, PTBSearchConfig
from .loop import SEARCH_CONFIGS, search

__all__ = ["search", "SEARCH_CONFIGS", "CIFAR10SearchConfig", "PTBSearchConfig"]
