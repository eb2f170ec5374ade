"""Read torch.save files of the original DARTS code (PyTorch 0.3.1) without running any code from them.

The released files are:

- ``cifar10_model.pt``: a state dict (``OrderedDict`` of tensors, no ``num_batches_tracked``).
- ``imagenet_model.pt``: ``{"state_dict": ..., ...}``, keys possibly prefixed ``module.``.
- ``ptb_model.pt``: a whole pickled ``model.RNNModel`` (``model.DARTSCell``, ``utils.LockedDropout``,
  ``genotypes.Genotype``) saved from the GPU, decoder weight tied to the encoder's.

All three use the *legacy* ``torch.save`` format of PyTorch < 1.6: a sequence of pickles (magic
number, protocol version, system info, the object with persistent ids for its storages, the
sorted storage keys), then each storage's raw bytes (an int64 element count followed by the
data). This module reads that format with its own reader: every global the pickle names must be
on an allow-list and is mapped to an inert stand-in (or to a tensor-rebuilding function);
anything else (``os.system``, ``builtins.eval``, ...) stops the load with
:class:`UnsafeCheckpointError` before any object is built. Newer zip-format files are read with
``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import io
import logging
import math
import os
import pickle
import struct
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, Tuple, Union

import torch

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: corrupt, truncated, or not what it should be."""


class UnsafeCheckpointError(CheckpointError):
    """A pickle that names a global outside the allow-list (it could run code); nothing was executed."""


# --------------------------------------------------------------------------------------------
# Inert stand-ins for what the original pickles contain
# --------------------------------------------------------------------------------------------

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
        raise pickle.UnpicklingError(f"{name} must be a tuple of non-negative ints, got {values!r}")
    return tuple(values)


def _rebuild_tensor(storage, storage_offset, size, stride):
    if not isinstance(storage, LegacyStorage):
        raise pickle.UnpicklingError(f"tensor storage is a {type(storage).__name__}, not a storage of this file")
    size, stride = _check_ints("tensor size", size), _check_ints("tensor stride", stride)
    if not isinstance(storage_offset, int) or storage_offset < 0 or len(size) != len(stride):
        raise pickle.UnpicklingError(f"bad tensor layout: offset {storage_offset!r}, size {size}, stride {stride}")
    needed = storage_offset + (1 + sum((s - 1) * st for s, st in zip(size, stride)) if all(size) else 0)
    if math.prod(size) > storage.numel:  # a view repeating elements (stride 0) claims more than the file holds
        raise pickle.UnpicklingError(
            f"tensor of size {list(size)} claims {math.prod(size)} elements, its storage holds {storage.numel}")
    if needed > storage.numel:
        raise pickle.UnpicklingError(
            f"tensor of size {list(size)} at offset {storage_offset} overruns its storage of {storage.numel} elements")
    return storage.data.as_strided(size, stride, storage_offset)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    if metadata:
        raise pickle.UnpicklingError("tensor metadata (conj/neg bits) is not supported in legacy files")
    return _rebuild_tensor(storage, storage_offset, size, stride)


MAX_RANGE = 10_000  # genotype concat ranges are a handful of node indices


def _bounded_range(*args):
    r = range(*args)
    if len(r) > MAX_RANGE:
        raise pickle.UnpicklingError(f"a range of {len(r)} elements; genotypes hold at most {MAX_RANGE}")
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
_BUILDABLE = (StandinModule, StandinParameter, StandinGenotype, OrderedDict)


class _NoGlobalsUnpickler(pickle._Unpickler):
    """The header pickles (magic number, protocol, sys info): no globals at all. Pure Python, like the
    object reader, since C's unpickler preallocates whatever length a BINBYTES8 claims."""

    def find_class(self, module, name):
        raise UnsafeCheckpointError(
            f"refusing to load global '{module}.{name}' where the checkpoint format allows none: this is not an "
            f"original checkpoint or it was tampered with; nothing from it was executed")


class LegacyUnpickler(pickle._Unpickler):
    """Pure-python unpickler: allow-listed globals only, storages through persistent ids, guarded BUILD."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, max_bytes: int):
        super().__init__(file, encoding="latin1")
        self.storages: Dict[str, LegacyStorage] = {}
        self.max_bytes = max_bytes
        self.declared_bytes = 0  # of all storages together: they must fit in the file

    def find_class(self, module, name):
        obj = ALLOWED_GLOBALS.get((module, name))
        if obj is None:
            raise UnsafeCheckpointError(
                f"refusing to load global '{module}.{name}': the file wants to call or build something outside the "
                f"allow-list of the original DARTS checkpoints, so it may run code. Nothing from it was executed. "
                f"Only convert files from a source you trust; if this is a genuine original checkpoint, report it"
            )
        return obj

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid:
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        typename = pid[0].decode("ascii") if isinstance(pid[0], bytes) else pid[0]
        if typename == "module":  # ('module', class, source_file, source): the class of a pickled nn.Module
            cls = pid[1] if len(pid) > 1 else None
            if not (isinstance(cls, type) and issubclass(cls, StandinModule)):
                raise UnsafeCheckpointError(f"module persistent id names {cls!r}, not an allowed module class")
            return cls
        if typename == "storage":
            if len(pid) != 6:
                raise pickle.UnpicklingError(f"storage persistent id has {len(pid)} fields, expected 6")
            _, stype, key, location, numel, view = pid
            if not isinstance(stype, StorageType):
                raise UnsafeCheckpointError(f"storage type {stype!r} is not an allowed storage class")
            key = key.decode("ascii") if isinstance(key, bytes) else key
            location = location.decode("ascii") if isinstance(location, bytes) else location
            if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
                raise pickle.UnpicklingError(f"bad storage record {pid[2:]!r}")
            if numel * torch.empty((), dtype=stype.dtype).element_size() > self.max_bytes:
                raise pickle.UnpicklingError(f"storage {key} claims {numel} elements, more than the file holds")
            root = self.storages.get(key)
            if root is None:
                self.declared_bytes += numel * torch.empty((), dtype=stype.dtype).element_size()
                if self.declared_bytes > self.max_bytes:
                    raise pickle.UnpicklingError(f"the storages declare {self.declared_bytes} bytes, more than the "
                                                 f"file's {self.max_bytes}")
                root = self.storages[key] = LegacyStorage(key, stype.dtype, numel, str(location))
            elif root.dtype != stype.dtype or root.numel != numel:
                raise pickle.UnpicklingError(f"storage {key} is declared twice with different types or sizes")
            if view is None:
                return root
            view_key, offset, view_size = view
            if not (isinstance(offset, int) and isinstance(view_size, int) and 0 <= offset
                    and offset + view_size <= numel):
                raise pickle.UnpicklingError(f"storage view {view!r} lies outside storage {key}")
            sub = LegacyStorage(str(view_key), stype.dtype, 0, str(location))
            sub.data, sub.numel, sub.filled = root.data[offset:offset + view_size], view_size, True
            return sub
        raise pickle.UnpicklingError(f"unknown persistent id type {typename!r}")

    def load_build(self):
        state = self.stack.pop()
        inst = self.stack[-1]
        if not isinstance(inst, _BUILDABLE):
            raise UnsafeCheckpointError(f"refusing to set the state of a {type(inst).__name__} object")
        setstate = getattr(inst, "__setstate__", None)
        if isinstance(inst, OrderedDict):
            if state:
                if not isinstance(state, dict):
                    raise pickle.UnpicklingError("bad OrderedDict state")
                for k, v in state.items():  # state_dict._metadata, the only attribute a state dict carries
                    if k != "_metadata":
                        raise UnsafeCheckpointError(f"refusing to set attribute {k!r} of an OrderedDict "
                                                    f"(only a state dict's _metadata is expected)")
                    inst.__dict__[k] = v
            return
        setstate(state)

    dispatch[pickle.BUILD[0]] = load_build


def prescan_pickle(data: bytes, start: int, path) -> None:
    """Walk the pickle's opcodes without executing any: it must end with STOP, and every global it
    names (GLOBAL/INST) must be on the allow-list, so a bad file is refused before anything is built."""
    import pickletools

    f = io.BytesIO(data)
    f.seek(start)
    try:
        for op, arg, _ in pickletools.genops(f):
            if op.name in ("GLOBAL", "INST"):
                module, _, name = str(arg).partition(" ")
                if (module, name) not in ALLOWED_GLOBALS:
                    LegacyUnpickler.find_class(None, module, name)  # raises UnsafeCheckpointError
    except CheckpointError:
        raise
    except (ValueError, EOFError, struct.error, UnicodeDecodeError) as e:
        raise _fail(path, f"its object pickle is cut short or malformed ({e})") from None


def _fail(path, what: str) -> CheckpointError:
    return CheckpointError(
        f"{path}: {what}. The file is damaged or not a PyTorch checkpoint; get a fresh copy of it "
        f"(compare its size/sha256 with the source)")


def read_legacy(path: PathLike) -> Any:
    """Read a legacy-format (PyTorch < 1.6, non-tar) ``torch.save`` file safely; returns stand-in objects."""
    path = Path(path)
    data = path.read_bytes()
    return _read_legacy_bytes(data, path)


def _read_legacy_bytes(data: bytes, path) -> Any:
    f = io.BytesIO(data)
    try:
        magic = _NoGlobalsUnpickler(f, encoding="latin1").load()
        if magic != LEGACY_MAGIC:
            raise _fail(path, "no PyTorch legacy magic number at the start")
        proto = _NoGlobalsUnpickler(f, encoding="latin1").load()
        if proto != LEGACY_PROTOCOL:
            raise _fail(path, f"unsupported legacy protocol version {proto!r}")
        sys_info = _NoGlobalsUnpickler(f, encoding="latin1").load()
        if isinstance(sys_info, dict) and sys_info.get("little_endian") is False:
            raise CheckpointError(f"{path}: saved on a big-endian machine; not supported")
        prescan_pickle(data, f.tell(), path)
        unpickler = LegacyUnpickler(f, max_bytes=len(data))
        obj = unpickler.load()
        keys = _NoGlobalsUnpickler(f, encoding="latin1").load()
    except CheckpointError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            struct.error, RuntimeError, UnicodeDecodeError) as e:
        raise _fail(path, f"could not read its pickle ({type(e).__name__}: {e})") from None
    storages = unpickler.storages
    if not isinstance(keys, list) or set(map(str, keys)) != set(storages):
        raise _fail(path, "the storage key list does not match the storages the object uses")
    for key in keys:
        st = storages[str(key)]
        head = f.read(8)
        if len(head) < 8:
            raise _fail(path, f"truncated: storage {key} (of {len(keys)}) is missing")
        (numel,) = struct.unpack("<q", head)
        if numel != st.numel:
            raise _fail(path, f"storage {key} holds {numel} elements, the object expects {st.numel}")
        nbytes = numel * st.data.element_size()
        raw = f.read(nbytes)
        if len(raw) < nbytes:
            raise _fail(path, f"truncated: storage {key} has {len(raw)} of its {nbytes} bytes")
        if nbytes:
            st.data.view(torch.uint8).copy_(torch.frombuffer(bytearray(raw), dtype=torch.uint8))
        st.filled = True
    rest = len(data) - f.tell()
    if rest:
        log.warning("%s: %d unexpected trailing bytes after the last storage", path, rest)
    return obj


MAX_DEPTH = 64  # a checkpoint is a dict of tensors, a module tree or a dict holding one: a few levels


def _plain(obj, path=None):
    """Stand-in parameters -> tensors through containers (modules are kept). Each container is converted
    once (a small file can share one many times); a container inside itself or nested deeper than any
    checkpoint is refused."""
    done: Dict[int, Any] = {}
    active: set = set()

    def walk(o, depth):
        if isinstance(o, StandinParameter):
            return o.data
        if not isinstance(o, (dict, list)):
            return o
        if id(o) in done:
            return done[id(o)]
        if depth > MAX_DEPTH or id(o) in active:
            raise CheckpointError(f"{path}: containers nested more than {MAX_DEPTH} levels deep (or containing "
                                  f"themselves): not a checkpoint")
        active.add(id(o))
        if isinstance(o, OrderedDict):
            out = OrderedDict((k, walk(v, depth + 1)) for k, v in o.items())
        elif isinstance(o, dict):
            out = {k: walk(v, depth + 1) for k, v in o.items()}
        else:
            out = [walk(v, depth + 1) for v in o]
        active.discard(id(o))
        done[id(o)] = out
        return out

    return walk(obj, 0)


def check_tensor_sizes(obj, path) -> None:
    """No tensor may claim more elements than its storage holds (a stride-0 view of a few bytes can
    claim terabytes, which any later copy would allocate). Each container is visited once."""
    seen: set = set()
    stack = [(obj, 0)]
    while stack:
        o, depth = stack.pop()
        if isinstance(o, torch.Tensor):
            held = o.untyped_storage().nbytes() // max(o.element_size(), 1)
            if o.numel() > held:
                raise CheckpointError(f"{path}: a tensor of shape {list(o.shape)} claims {o.numel()} elements but "
                                      f"the file holds {held} for it: damaged or crafted, not a checkpoint")
        elif isinstance(o, (dict, list, tuple)) and id(o) not in seen:
            if depth > MAX_DEPTH:
                raise CheckpointError(f"{path}: containers nested more than {MAX_DEPTH} levels deep: not a checkpoint")
            seen.add(id(o))
            stack.extend((v, depth + 1) for v in (o.values() if isinstance(o, dict) else o))


def _file_format(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(512)
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    if head[:1] == b"\x80":
        return "legacy"
    return "unknown"


def load_original(path: PathLike) -> Tuple[Any, str]:
    """The object stored in an original checkpoint (stand-ins for modules) and its format name."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    fmt = _file_format(path)
    if fmt == "legacy":
        return _plain(read_legacy(path), path), "legacy"
    if fmt == "zip":
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
            check_tensor_sizes(obj, path)
            return obj, "zip"
        except pickle.UnpicklingError as e:
            raise UnsafeCheckpointError(
                f"{path}: torch.load(weights_only=True) refused it ({str(e).splitlines()[0]}); a whole pickled "
                f"model in the new format cannot be read safely: save its state_dict() instead") from None
        except RecursionError:
            raise _fail(path, "its pickle nests containers too deeply") from None
        except (RuntimeError, zipfile.BadZipFile, EOFError) as e:
            raise _fail(path, f"could not read it ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    if fmt == "tar":
        raise CheckpointError(f"{path}: the tar-based format of PyTorch < 0.1.10 is not supported")
    raise _fail(path, "neither the legacy nor the zip torch.save format")


__all__ = [
    "read_legacy", "load_original", "prescan_pickle", "CheckpointError", "UnsafeCheckpointError",
    "ALLOWED_GLOBALS", "LEGACY_MAGIC", "LEGACY_PROTOCOL", "StandinModule", "StandinParameter",
]
