"""Checks of a torch file before any of it is unpickled or inflated: bounded work whatever the file holds.

:func:`scan_pickle` walks a pickle's opcodes without building anything, keeping only a small record
of what each stack entry is, and refuses a pickle that would make unpickling take unbounded time or
memory:

- more opcodes than :data:`~zoo.limits.MAX_PICKLE_OPCODES` (each builds at most one object);
- a dict key or set item that is not a string, bytes, a float, None or an integer of at most 64
  bits. Hashing is the one step of unpickling whose cost is not bounded by the bytes read: a tuple
  key nested 60 levels deep, each level sharing the one below, hashes in 2**60 steps, and
  attacker-chosen tuples or huge integers can all collide (quadratic dict inserts). Checkpoints key
  their dicts by names and small integers only. The same holds for the items a constructor that
  hashes (``set``, ``OrderedDict``, ...) is called with;
- more items copied by constructors (``set(list)`` repeated over one shared list) than
  :data:`~zoo.limits.MAX_PICKLE_COPIES`;
- SETITEM/APPEND/ADDITEMS on anything but a dict/list/set (on a tensor they would call its arithmetic);
- with an allow-list, any global outside it, so a bad file is refused before anything is built.

:func:`check_torch_zip` reads a zip-format torch file's central directory (zipfile reads nothing
else) and refuses entries that declare more bytes than the file holds (a deflated storage of
gigabytes in a file of one megabyte), then scans its pickle. ``torch.load`` runs only afterwards.
"""
from __future__ import annotations

import io
import os
import pickletools
import struct
import zipfile
from typing import Any, Callable, List, Optional, Union

from genotypes.quoting import quote

from .errors import CheckpointError, UnsafeCheckpointError
from .limits import MAX_CHECKPOINT_BYTES, MAX_PICKLE_COPIES, MAX_PICKLE_OPCODES

_KEYABLE_INT_BITS = 64
# Constructors a file may call that hash their arguments' items (the allow-lists' and torch's weights_only's).
_SET_CALLEES = {"builtins.set", "builtins.frozenset", "__builtin__.set", "__builtin__.frozenset",
                "collections.Counter"}
_DICT_CALLEES = {"collections.OrderedDict", "builtins.dict", "__builtin__.dict"}
_STRING_OPS = {"STRING", "BINSTRING", "SHORT_BINSTRING", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "UNICODE",
               "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8"}
_ATOM_OPS = _STRING_OPS | {"INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
                           "NONE", "NEWTRUE", "NEWFALSE"}


class _Entry:
    """What the scan knows of one stack entry: its kind, whether it may be hashed, items of lists and tuples."""

    __slots__ = ("kind", "keyable", "items", "count", "text")

    def __init__(self, kind: str, keyable: bool = False, items: Optional[list] = None, text: Optional[str] = None):
        self.kind, self.keyable, self.items, self.text = kind, keyable, items, text
        self.count = len(items) if items is not None else 0


class _Refused(Exception):
    """Why a scan stops: becomes a CheckpointError naming the file."""

    def __init__(self, what: str, unsafe: bool = False):
        super().__init__(what)
        self.unsafe = unsafe


def _atom(op_name: str, arg: Any) -> _Entry:
    keyable = not (isinstance(arg, int) and not isinstance(arg, bool) and arg.bit_length() > _KEYABLE_INT_BITS)
    text = arg if op_name in _STRING_OPS and isinstance(arg, str) and len(arg) <= 200 else None
    return _Entry("atom", keyable=keyable, text=text)


def _check_keys(keys, what: str) -> None:
    for key in keys:
        if not key.keyable:
            raise _Refused(f"a {what} that is a {key.kind}, not a name or a small number: hashing it could take "
                           f"without bound, and no checkpoint has one")


class _Scan:
    def __init__(self, allowed: Optional[Callable[[str, str], None]]):
        self.allowed = allowed
        self.stack: List[_Entry] = []
        self.marks: List[int] = []
        self.memo: dict = {}
        self.copies = 0

    def pop(self, n: int) -> List[_Entry]:
        if len(self.stack) - (self.marks[-1] if self.marks else 0) < n:
            raise _Refused("its pickle takes more from the stack than it put there")
        items = self.stack[len(self.stack) - n:]
        del self.stack[len(self.stack) - n:]
        return items

    def pop_mark(self) -> List[_Entry]:
        if not self.marks:
            raise _Refused("its pickle closes a mark it never opened")
        start = self.marks.pop()
        items = self.stack[start:]
        del self.stack[start:]
        return items

    def top(self, kind: str, op: str) -> _Entry:
        if len(self.stack) <= (self.marks[-1] if self.marks else 0):
            raise _Refused("its pickle takes more from the stack than it put there")
        target = self.stack[-1]
        if kind and target.kind != kind:
            raise _Refused(f"its pickle applies {op} to what is not a {kind} (a {target.kind})")
        return target

    def glob(self, module: str, name: str) -> _Entry:
        if self.allowed is not None:
            self.allowed(module, name)
        return _Entry("global", text=f"{module}.{name}")

    def call(self, func: _Entry, args: List[_Entry]) -> _Entry:
        self.copies += sum(a.count for a in args)
        if self.copies > MAX_PICKLE_COPIES:
            raise _Refused(f"its constructors copy more than {MAX_PICKLE_COPIES} items in all")
        name = func.text if func.kind == "global" else None
        if name in _SET_CALLEES or name in _DICT_CALLEES:
            for a in args:
                if a.kind in ("list", "tuple"):
                    pairs = name in _DICT_CALLEES
                    keys = [(i.items[0] if pairs and i.kind in ("list", "tuple") and i.items else i) for i in a.items]
                    _check_keys(keys, f"key given to {name}")
            return _Entry("dict" if name in _DICT_CALLEES or name == "collections.Counter" else "set")
        return _Entry("object")

    def step(self, op_name: str, arg: Any) -> None:  # noqa: C901 - one branch per opcode family
        stack, push = self.stack, self.stack.append
        if op_name in _ATOM_OPS:
            push(_atom(op_name, arg))
        elif op_name == "MARK":
            self.marks.append(len(stack))
        elif op_name == "POP":
            if self.marks and len(stack) == self.marks[-1]:
                self.marks.pop()
            else:
                self.pop(1)
        elif op_name == "POP_MARK":
            self.pop_mark()
        elif op_name == "DUP":
            push(self.top("", "DUP"))
        elif op_name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
            index = len(self.memo) if op_name == "MEMOIZE" else arg
            if not isinstance(index, int) or index < 0:
                raise _Refused("its pickle has a negative memo index")
            self.memo[index] = self.top("", op_name)
        elif op_name in ("GET", "BINGET", "LONG_BINGET"):
            if arg not in self.memo:
                raise _Refused(f"its pickle refers to memo entry {quote(arg)}, which it never stored")
            push(self.memo[arg])
        elif op_name in ("EMPTY_TUPLE", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "EMPTY_LIST", "LIST"):
            n = {"EMPTY_TUPLE": 0, "TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3, "EMPTY_LIST": 0}.get(op_name)
            push(_Entry("list" if "LIST" in op_name else "tuple", items=self.pop_mark() if n is None else self.pop(n)))
        elif op_name in ("EMPTY_DICT", "DICT"):
            items = self.pop_mark() if op_name == "DICT" else []
            if len(items) % 2:
                raise _Refused("its pickle builds a dict from an odd number of items")
            _check_keys(items[0::2], "dict key")
            push(_Entry("dict"))
        elif op_name in ("EMPTY_SET", "FROZENSET"):
            items = self.pop_mark() if op_name == "FROZENSET" else []
            _check_keys(items, "set item")
            push(_Entry("set" if op_name == "EMPTY_SET" else "object"))
        elif op_name in ("APPEND", "APPENDS"):
            items = self.pop(1) if op_name == "APPEND" else self.pop_mark()
            target = self.top("list", op_name)
            target.items.extend(items)
            target.count += len(items)
        elif op_name in ("SETITEM", "SETITEMS"):
            items = self.pop(2) if op_name == "SETITEM" else self.pop_mark()
            if len(items) % 2:
                raise _Refused("its pickle sets a dict from an odd number of items")
            _check_keys(items[0::2], "dict key")
            self.top("dict", op_name).count += len(items) // 2
        elif op_name == "ADDITEMS":
            items = self.pop_mark()
            _check_keys(items, "set item")
            self.top("set", op_name).count += len(items)
        elif op_name in ("GLOBAL", "INST"):
            module, _, name = str(arg).partition(" ")
            func = self.glob(module, name)
            push(func if op_name == "GLOBAL" else self.call(func, self.pop_mark()))
        elif op_name == "STACK_GLOBAL":
            module, name = self.pop(2)
            if module.text is None or name.text is None:
                raise _Refused("its pickle names a global that is not a string literal", unsafe=True)
            push(self.glob(module.text, name.text))
        elif op_name in ("REDUCE", "NEWOBJ", "NEWOBJ_EX", "OBJ"):
            if op_name == "OBJ":
                items = self.pop_mark()
                if not items:
                    raise _Refused("its pickle calls OBJ without a class")
                func, args = items[0], items[1:]
            else:
                func, *rest = self.pop(3 if op_name == "NEWOBJ_EX" else 2)
                if rest[0].kind != "tuple":
                    raise _Refused(f"its pickle calls {op_name} with arguments that are not a tuple")
                args = rest[0].items + rest[1:]
            push(self.call(func, args))
        elif op_name == "BUILD":
            self.pop(1)
            self.top("", "BUILD")
        elif op_name == "PERSID":
            push(_Entry("object"))
        elif op_name == "BINPERSID":
            self.pop(1)
            push(_Entry("object"))
        elif op_name not in ("PROTO", "FRAME", "STOP"):  # EXT*, out-of-band buffers, BYTEARRAY8
            raise _Refused(f"its pickle uses {op_name}, which no checkpoint does")


def scan_pickle(data: bytes, start: int, where: Any, allowed: Optional[Callable[[str, str], None]] = None) -> int:
    """Check the pickle at ``data[start:]`` as the module docstring says; return the offset just after it.

    ``allowed(module, name)`` raises for a global outside the allow-list (None: globals are torch's to check).
    """
    f = io.BytesIO(data)
    f.seek(start)
    scan = _Scan(allowed)
    n = 0
    try:
        for n, (op, arg, _) in enumerate(pickletools.genops(f), 1):
            if n > MAX_PICKLE_OPCODES:
                raise _Refused(f"its pickle has more than {MAX_PICKLE_OPCODES} opcodes, far more than a checkpoint")
            scan.step(op.name, arg)
    except CheckpointError as e:  # the allow-list's refusal (``allowed``) knows the global, not the file
        raise type(e)(f"{where}: {e}") from None
    except _Refused as e:
        cls = UnsafeCheckpointError if e.unsafe else CheckpointError
        raise cls(f"{where}: {e}: damaged or crafted, not a checkpoint; nothing from it was loaded") from None
    except (ValueError, EOFError, struct.error, UnicodeDecodeError) as e:
        raise CheckpointError(f"{where}: its pickle is cut short or malformed ({type(e).__name__}: "
                              f"{quote(str(e), 120)[1:-1]}): the file is damaged or not a PyTorch checkpoint; get a "
                              f"fresh copy of it") from None
    if n == 0:
        raise CheckpointError(f"{where}: an empty pickle: the file is damaged; get a fresh copy of it")
    return f.tell()


def check_torch_zip(source: Union[str, os.PathLike, bytes], where: Any = None,
                    max_bytes: int = MAX_CHECKPOINT_BYTES) -> None:
    """Refuse a zip-format torch file whose entries declare more bytes than it holds, or whose pickle would not
    unpickle in bounded time and memory (:func:`scan_pickle`), before ``torch.load`` reads any of it."""
    where = where if where is not None else ("the checkpoint" if isinstance(source, bytes) else source)
    size = len(source) if isinstance(source, bytes) else os.path.getsize(source)
    if size > max_bytes:
        raise CheckpointError(f"{where}: {size} bytes, more than the {max_bytes} a checkpoint may have here")
    try:
        with zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source) as z:
            infos = z.infolist()
            declared = sum(i.file_size for i in infos)
            if declared > size:  # torch.save stores entries uncompressed: their sizes sum to less than the file
                raise CheckpointError(
                    f"{where}: its zip entries declare {declared} bytes uncompressed in a file of {size} bytes (a "
                    f"compressed bomb, not what torch.save writes); refused before inflating anything")
            pickles = [i for i in infos if i.filename.rsplit("/", 1)[-1] == "data.pkl"]
            if len(pickles) != 1:
                raise CheckpointError(f"{where}: a zip holding {len(pickles)} data.pkl records, not a torch.save file")
            scan_pickle(z.read(pickles[0]), 0, where)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, OSError, RuntimeError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise CheckpointError(f"{where}: not a readable zip ({type(e).__name__}: {quote(str(e), 120)[1:-1]}): the "
                              f"file is damaged or not a PyTorch checkpoint; get a fresh copy of it") from None


__all__ = ["scan_pickle", "check_torch_zip"]
