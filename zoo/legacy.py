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
:class:`UnsafeCheckpointError` before any object is built (the stand-ins and the allow-list are in
:mod:`zoo.standins`). Newer zip-format files are read with ``torch.load(weights_only=True)``. Every
pickle, of either format, is first scanned by :mod:`zoo.torchfile`, which bounds the work of
unpickling it whatever it holds, and a zip's declared sizes are checked before anything is inflated.
"""
from __future__ import annotations

import io
import logging
import os
import pickle
import struct
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, Tuple, Union

import torch

from genotypes.quoting import quote

from .errors import CheckpointError, UnsafeCheckpointError
from .limits import MAX_CHECKPOINT_BYTES
from .standins import (
    ALLOWED_GLOBALS,
    BUILDABLE,
    LegacyStorage,
    StandinModule,
    StandinParameter,
    StorageType,
    refuse_all_globals,
    refuse_global,
)
from .torchfile import check_torch_zip, scan_pickle

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001


def _as_text(value):
    return value.decode("ascii") if isinstance(value, bytes) else value


class LegacyUnpickler(pickle._Unpickler):
    """Pure-python unpickler (C's preallocates whatever length a BINBYTES8 claims): allow-listed globals only,
    storages through persistent ids, guarded BUILD. Run only on a pickle :func:`zoo.torchfile.scan_pickle`
    has passed, which bounds its work (hashing, objects built)."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, max_bytes: int, allowed=refuse_global):
        super().__init__(file, encoding="latin1")
        self.storages: Dict[str, LegacyStorage] = {}
        self.max_bytes = max_bytes
        self.declared_bytes = 0  # of all storages together: they must fit in the file
        self.allowed = allowed

    def find_class(self, module, name):
        self.allowed(module, name)
        return ALLOWED_GLOBALS[(module, name)]

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid:
            raise pickle.UnpicklingError(f"unexpected persistent id {quote(pid)}")
        typename = _as_text(pid[0])
        if typename == "module":  # ('module', class, source_file, source): the class of a pickled nn.Module
            cls = pid[1] if len(pid) > 1 else None
            if not (isinstance(cls, type) and issubclass(cls, StandinModule)):
                raise UnsafeCheckpointError(f"module persistent id names {quote(cls)}, not an allowed module class")
            return cls
        if typename != "storage":
            raise pickle.UnpicklingError(f"unknown persistent id type {quote(typename)}")
        if len(pid) != 6:
            raise pickle.UnpicklingError(f"storage persistent id has {len(pid)} fields, expected 6")
        _, stype, key, location, numel, view = pid
        if not isinstance(stype, StorageType):
            raise UnsafeCheckpointError(f"storage type {quote(stype)} is not an allowed storage class")
        key, location = _as_text(key), _as_text(location)
        if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
            raise pickle.UnpicklingError(f"bad storage record {quote(pid[2:])}")
        nbytes = numel * torch.empty((), dtype=stype.dtype).element_size()
        if nbytes > self.max_bytes:
            raise pickle.UnpicklingError(f"storage {quote(key)} claims {numel} elements, more than the file holds")
        root = self.storages.get(key)
        if root is None:
            self.declared_bytes += nbytes
            if self.declared_bytes > self.max_bytes:
                raise pickle.UnpicklingError(f"the storages declare {self.declared_bytes} bytes, more than the "
                                             f"file's {self.max_bytes}")
            root = self.storages[key] = LegacyStorage(key, stype.dtype, numel, str(location)[:60])
        elif root.dtype != stype.dtype or root.numel != numel:
            raise pickle.UnpicklingError(f"storage {quote(key)} is declared twice with different types or sizes")
        if view is None:
            return root
        view_key, offset, view_size = view
        if not (isinstance(offset, int) and isinstance(view_size, int) and 0 <= offset
                and offset + view_size <= numel):
            raise pickle.UnpicklingError(f"storage view {quote(view)} lies outside storage {quote(key)}")
        sub = LegacyStorage(str(view_key)[:60], stype.dtype, 0, str(location)[:60])
        sub.data, sub.numel, sub.filled = root.data[offset:offset + view_size], view_size, True
        return sub

    def load_build(self):
        state = self.stack.pop()
        inst = self.stack[-1]
        if not isinstance(inst, BUILDABLE):
            raise UnsafeCheckpointError(f"refusing to set the state of a {type(inst).__name__} object")
        if isinstance(inst, OrderedDict):
            if state:
                if not isinstance(state, dict):
                    raise pickle.UnpicklingError("bad OrderedDict state")
                for k, v in state.items():  # state_dict._metadata, the only attribute a state dict carries
                    if k != "_metadata":
                        raise UnsafeCheckpointError(f"refusing to set attribute {quote(k)} of an OrderedDict "
                                                    f"(only a state dict's _metadata is expected)")
                    inst.__dict__[k] = v
            return
        type(inst).__setstate__(inst, state)  # the class's: an earlier BUILD may have put one in the __dict__

    dispatch[pickle.BUILD[0]] = load_build


def _fail(path, what: str) -> CheckpointError:
    return CheckpointError(
        f"{path}: {what}. The file is damaged or not a PyTorch checkpoint; get a fresh copy of it "
        f"(compare its size/sha256 with the source)")


def _error_text(e: BaseException) -> str:
    """An exception's message, short (a KeyError's is the repr of its key, which can come from the file)."""
    return f"{type(e).__name__}: " + (quote(e.args[0]) if isinstance(e, KeyError) and e.args else
                                      quote(str(e), 160)[1:-1])


def _check_size(path: Path) -> int:
    size = path.stat().st_size
    if size > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(f"{path}: {size} bytes, more than the {MAX_CHECKPOINT_BYTES} a checkpoint may have "
                              f"here: not a DARTS checkpoint")
    return size


def read_legacy(path: PathLike) -> Any:
    """Read a legacy-format (PyTorch < 1.6, non-tar) ``torch.save`` file safely; returns stand-in objects."""
    path = Path(path)
    _check_size(path)
    return _read_legacy_bytes(path.read_bytes(), path)


def _load_one(data: bytes, f: io.BytesIO, path, unpickler) -> Any:
    scan_pickle(data, f.tell(), path, unpickler.allowed)
    return unpickler.load()


def _header(data: bytes, f: io.BytesIO, path) -> Any:
    return _load_one(data, f, path, LegacyUnpickler(f, 0, allowed=refuse_all_globals))


def _read_legacy_bytes(data: bytes, path) -> Any:
    f = io.BytesIO(data)
    try:
        if _header(data, f, path) != LEGACY_MAGIC:
            raise _fail(path, "no PyTorch legacy magic number at the start")
        proto = _header(data, f, path)
        if proto != LEGACY_PROTOCOL:
            raise _fail(path, f"unsupported legacy protocol version {quote(proto)}")
        sys_info = _header(data, f, path)
        if isinstance(sys_info, dict) and sys_info.get("little_endian") is False:
            raise CheckpointError(f"{path}: saved on a big-endian machine; not supported")
        unpickler = LegacyUnpickler(f, max_bytes=len(data))
        obj = _load_one(data, f, path, unpickler)
        keys = _header(data, f, path)
    except CheckpointError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            struct.error, RuntimeError, UnicodeDecodeError, OverflowError) as e:
        raise _fail(path, f"could not read its pickle ({_error_text(e)})") from None
    storages = unpickler.storages
    if not (isinstance(keys, list) and all(isinstance(k, (str, int)) for k in keys)
            and set(map(str, keys)) == set(storages)):
        raise _fail(path, "the storage key list does not match the storages the object uses")
    for key in keys:
        st = storages[str(key)]
        head = f.read(8)
        if len(head) < 8:
            raise _fail(path, f"truncated: storage {quote(key)} (of {len(keys)}) is missing")
        (numel,) = struct.unpack("<q", head)
        if numel != st.numel:
            raise _fail(path, f"storage {quote(key)} holds {numel} elements, the object expects {st.numel}")
        nbytes = numel * st.data.element_size()
        raw = f.read(nbytes)
        if len(raw) < nbytes:
            raise _fail(path, f"truncated: storage {quote(key)} has {len(raw)} of its {nbytes} bytes")
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


def check_tensors(obj, path) -> None:
    """Every tensor must be a plain (dense, CPU, non-meta) one claiming no more elements than its storage holds
    (a stride-0 view of a few bytes can claim terabytes, which any later copy would allocate). Each container
    is visited once."""
    seen: set = set()
    stack = [(obj, 0)]
    while stack:
        o, depth = stack.pop()
        if isinstance(o, torch.Tensor):
            if o.layout != torch.strided or o.device.type != "cpu" or o.is_quantized:
                raise CheckpointError(f"{path}: a {o.layout} tensor on {o.device.type}"
                                      f"{' (quantized)' if o.is_quantized else ''}, not the plain CPU weights of a "
                                      f"checkpoint (a meta tensor holds no values)")
            held = o.untyped_storage().nbytes() // max(o.element_size(), 1)
            if o.numel() > held:
                raise CheckpointError(f"{path}: a tensor of shape {quote(list(o.shape))} claims {o.numel()} elements "
                                      f"but the file holds {held} for it: damaged or crafted, not a checkpoint")
        elif isinstance(o, (dict, list, tuple)) and id(o) not in seen:
            if depth > MAX_DEPTH:
                raise CheckpointError(f"{path}: containers nested more than {MAX_DEPTH} levels deep: not a checkpoint")
            seen.add(id(o))
            stack.extend((v, depth + 1) for v in (o.values() if isinstance(o, dict) else o))


def _torch_reason(e: BaseException) -> str:
    """The line of torch's weights_only refusal that says what it refused (the others are general advice)."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    said = next((lines[i + 1] for i, line in enumerate(lines[:-1]) if line.endswith("WeightsUnpickler error:")), None)
    return quote(said or (lines[0] if lines else type(e).__name__), 160)[1:-1]


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
        check_torch_zip(path)
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            raise UnsafeCheckpointError(
                f"{path}: torch.load(weights_only=True) refused it ({_torch_reason(e)}); a whole pickled "
                f"model in the new format cannot be read safely: save its state_dict() instead") from None
        except RecursionError:
            raise _fail(path, "its pickle nests containers too deeply") from None
        except (RuntimeError, zipfile.BadZipFile, EOFError, ValueError, TypeError) as e:
            raise _fail(path, f"could not read it ({_error_text(e)})") from None
        check_tensors(obj, path)
        return obj, "zip"
    if fmt == "tar":
        raise CheckpointError(f"{path}: the tar-based format of PyTorch < 0.1.10 is not supported")
    raise _fail(path, "neither the legacy nor the zip torch.save format")


__all__ = [
    "read_legacy", "load_original", "check_tensors", "CheckpointError", "UnsafeCheckpointError",
    "ALLOWED_GLOBALS", "LEGACY_MAGIC", "LEGACY_PROTOCOL", "StandinModule", "StandinParameter",
]
