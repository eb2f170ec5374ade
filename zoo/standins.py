"""Inert stand-ins for what the original DARTS checkpoints pickle, and the allow-list that maps each global
a legacy file may name to one of them (or to a function rebuilding a tensor over the file's own storage).

Nothing here runs code from a file: a stand-in only stores what the pickle gives it, after checking
its type. :mod:`zoo.legacy` reads the files with these.
"""
from __future__ import annotations

import math
import pickle
from collections import OrderedDict
from typing import Any, Dict, Tuple

import torch

from genotypes.quoting import quote

from .errors import UnsafeCheckpointError


class StandinModule:
    """An ``nn.Module`` from the file, reduced to its ``__dict__`` (parameters, submodules, attributes)."""

    original = "?"

    def __repr__(self) -> str:
        return f"<stand-in for {self.original}>"

    # modules were pickled with the default protocol-2 reduce: NEWOBJ then BUILD with the __dict__
    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(
                f"{self.original}: expected a dict as module state, got {type(state).__name__}")
        self.__dict__.update(state)


def _standin_class(module: str, name: str) -> type:
    return type(name, (StandinModule,), {"__module__": "zoo.legacy.standin." + module, "original": f"{module}.{name}"})


_MODULE_CLASSES = [
    ("model", "RNNModel"), ("model", "DARTSCell"), ("model", "NetworkCIFAR"), ("model", "NetworkImageNet"),
    ("utils", "LockedDropout"),
    ("torch.nn.modules.sparse", "Embedding"), ("torch.nn.modules.linear", "Linear"),
    ("torch.nn.modules.container", "ModuleList"), ("torch.nn.modules.container", "ParameterList"),
    ("torch.nn.modules.container", "Sequential"), ("torch.nn.modules.dropout", "Dropout"),
    ("torch.nn.modules.activation", "ReLU"), ("torch.nn.modules.activation", "Tanh"),
    ("torch.nn.modules.activation", "Sigmoid"),
]
STANDIN_CLASSES: Dict[Tuple[str, str], type] = {key: _standin_class(*key) for key in _MODULE_CLASSES}


class StandinParameter:
    """``torch.nn.Parameter`` as PyTorch 0.3 pickled it: ``(Parameter, (data,), (requires_grad, volatile, hooks))``."""

    def __init__(self, data=None, requires_grad=True, *_ignored):
        if not isinstance(data, torch.Tensor):
            raise pickle.UnpicklingError(f"Parameter data must be a tensor, got {type(data).__name__}")
        self.data = data
        self.requires_grad = bool(requires_grad)

    def __setstate__(self, state):
        if isinstance(state, tuple) and state:
            self.requires_grad = bool(state[0])


def _rebuild_parameter(data, requires_grad=True, backward_hooks=None, *_ignored):
    return StandinParameter(data, requires_grad)


class StandinGenotype(tuple):
    """``genotypes.Genotype`` of the original (a namedtuple: ``recurrent, concat`` or the 4 conv fields)."""

    def __new__(cls, *fields):
        return tuple.__new__(cls, fields)

    def __setstate__(self, state):  # namedtuples pickle no state; accept an empty one
        if state:
            raise pickle.UnpicklingError("unexpected state for genotypes.Genotype")


class StorageType:
    """Stand-in for ``torch.FloatStorage``, ``torch.cuda.FloatStorage``, ..."""

    def __init__(self, module: str, name: str, dtype: torch.dtype):
        self.module, self.name, self.dtype = module, name, dtype

    def __repr__(self) -> str:
        return f"{self.module}.{self.name}"


_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "LongStorage": torch.int64, "IntStorage": torch.int32, "ShortStorage": torch.int16,
    "CharStorage": torch.int8, "ByteStorage": torch.uint8,
}
STORAGE_TYPES = {(mod, name): StorageType(mod, name, dt) for mod in ("torch", "torch.cuda")
                 for name, dt in _STORAGE_DTYPES.items()}


class LegacyStorage:
    """A storage from the file: its elements are filled in after the object pickle has been read."""

    def __init__(self, key: str, dtype: torch.dtype, numel: int, location: str):
        self.key, self.dtype, self.numel, self.location = key, dtype, numel, location
        self.data = torch.empty(numel, dtype=dtype)
        self.filled = False


def _check_ints(name, values):
    if not isinstance(values, (tuple, list)) or not all(isinstance(v, int) and v >= 0 for v in values):
        raise pickle.UnpicklingError(f"{name} must be a tuple of non-negative ints, got {quote(values)}")
    return tuple(values)


def _rebuild_tensor(storage, storage_offset, size, stride):
    if not isinstance(storage, LegacyStorage):
        raise pickle.UnpicklingError(f"tensor storage is a {type(storage).__name__}, not a storage of this file")
    size, stride = _check_ints("tensor size", size), _check_ints("tensor stride", stride)
    if not isinstance(storage_offset, int) or storage_offset < 0 or len(size) != len(stride):
        raise pickle.UnpicklingError(f"bad tensor layout: offset {quote(storage_offset)}, size {quote(size)}, "
                                     f"stride {quote(stride)}")
    needed = storage_offset + (1 + sum((s - 1) * st for s, st in zip(size, stride)) if all(size) else 0)
    if math.prod(size) > storage.numel:  # a view repeating elements (stride 0) claims more than the file holds
        raise pickle.UnpicklingError(
            f"tensor of size {quote(size)} claims {quote(math.prod(size))} elements, its storage holds {storage.numel}")
    if needed > storage.numel:
        raise pickle.UnpicklingError(
            f"tensor of size {quote(size)} at offset {quote(storage_offset)} overruns its storage of {storage.numel} "
            f"elements")
    return storage.data.as_strided(size, stride, storage_offset)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    if metadata:
        raise pickle.UnpicklingError("tensor metadata (conj/neg bits) is not supported in legacy files")
    return _rebuild_tensor(storage, storage_offset, size, stride)


MAX_RANGE = 10_000  # genotype concat ranges are a handful of node indices


def _bounded_range(*args):
    r = range(*args)
    try:
        size = len(r)
    except OverflowError:  # longer than sys.maxsize
        size = None
    if size is None or size > MAX_RANGE:
        raise pickle.UnpicklingError(f"a range of {quote(size) if size else 'more than 2**63'} elements; genotypes "
                                     f"hold at most {MAX_RANGE}")
    return r


def _thnn_backend():
    return None  # PyTorch 0.3 modules pickled their backend through this function; nothing to rebuild


ALLOWED_GLOBALS: Dict[Tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch.nn.parameter", "Parameter"): StandinParameter,
    ("torch.nn.backends.thnn", "_get_thnn_function_backend"): _thnn_backend,
    ("collections", "OrderedDict"): OrderedDict,
    ("__builtin__", "xrange"): _bounded_range,
    ("builtins", "range"): _bounded_range,
    # PyTorch >= 1.6 pickles a module's `_non_persistent_buffers_set` (a whole-model file re-saved by it)
    ("__builtin__", "set"): set,
    ("builtins", "set"): set,
    ("genotypes", "Genotype"): StandinGenotype,
    **STANDIN_CLASSES,
    **STORAGE_TYPES,
}

# BUILD (__setstate__ / __dict__ update) is only allowed on these kinds of objects.
BUILDABLE = (StandinModule, StandinParameter, StandinGenotype, OrderedDict)



def refuse_global(module: str, name: str) -> None:
    """Raise UnsafeCheckpointError for a global outside :data:`ALLOWED_GLOBALS` (the pickle scan and the reader)."""
    if (module, name) not in ALLOWED_GLOBALS:
        raise UnsafeCheckpointError(
            f"refusing to load global '{module[:60]}.{name[:60]}': the file wants to call or "
            f"build something outside the allow-list of the original DARTS checkpoints, so it may run code. Nothing "
            f"from it was executed. Only convert files from a source you trust; if this is a genuine original "
            f"checkpoint, report it")


def refuse_all_globals(module: str, name: str) -> None:
    """The header pickles of a legacy file (magic number, protocol, sys info, storage keys) name no globals."""
    raise UnsafeCheckpointError(
        f"refusing to load global '{module[:60]}.{name[:60]}' where the checkpoint format "
        f"allows none: this is not an original checkpoint or it was tampered with; nothing from it was executed")


__all__ = ["StandinModule", "StandinParameter", "StandinGenotype", "StorageType", "LegacyStorage", "ALLOWED_GLOBALS",
           "STORAGE_TYPES", "BUILDABLE", "refuse_global", "refuse_all_globals"]
