#!/usr/bin/env python
"""A repeatable sweep of hostile inputs through the zoo and the harness: each case in its own child process,
bounded in wall time and memory, its outcome classified.

    python tests/hostile_sweep.py [--only PREFIX] [--name NAME] [--json OUT] [--fresh] [--list] [--keep DIR]

A case builds its hostile input in a fresh temporary directory (files, a config, a run directory, a saved
model) and runs one command on it: the zoo's or the harness's command line (``python -m zoo ...``,
``python -m reproduce ...``) or a few lines of Python calling the library (``zoo.load(path)``); some check
files afterwards. Areas: ``pickles`` (legacy and zip checkpoints), ``saved`` (saved-model folders), ``cli``
(flags and config files of the harness), ``runs`` (run directories and records), ``network`` (a local HTTP
server misbehaving; offline pushes).

How a case runs. By default a fork server: this process imports torch (and numpy, safetensors, yaml) once,
then forks one child per case; the child imports the project's packages itself, so nothing of theirs is
shared, and runs the command as ``python -m`` would (``runpy.run_module(..., run_name="__main__")``; an
uncaught exception prints its traceback and exits 1). ``--fresh`` runs each case in a new interpreter
instead (``python tests/hostile_sweep.py --child ...``): slower (torch is imported each time), otherwise the
same. Each child gets its own session (process group), ``RLIMIT_DATA`` of 3 GB (``RLIMIT_AS`` cannot be
~3 GB: importing torch alone maps 3.2 GB of address space; it is set to 16 GB), stdin from /dev/null,
``HOME``, ``XDG_CACHE_HOME``, ``DARTS_ZOO_HOME`` and ``MPLCONFIGDIR`` inside the case directory, and the
case directory as working directory. The parent polls the process group every 0.2 s: a case still running
after its timeout (30 s) is killed with its group, and so is a group whose resident memory together passes
6 GB. The peak RSS of a case is the child's own ``VmHWM`` (written by the child at exit; ru_maxrss of
children is contaminated by the forking parent) and the highest ``VmHWM`` seen in its process group.

Classification:
- severe: killed at the timeout (a hang); peak RSS above 1.2 GB; a Python traceback on stderr (for library
  snippets: an exception that is not a ValueError/OSError or one of the project's own); death by a signal;
  the sentinel file of a code-carrying pickle created; a file of the case directory outside the named
  outputs changed or deleted; a case that must be refused exiting 0; a case's own check failing.
- moderate: the refusal's message (stderr without log lines) longer than 1000 characters or over 4 lines
  (the "no weights ... tried:" report of a registry name, one line per source: 4000 characters, 20 lines,
  600 a line); a Python object's repr (``<... object at 0x...>``) in the message;
  a message naming neither the offending file nor the flag/field; a valid input refused; files written
  outside the named outputs.
- clean: anything else (refused with exit code != 0 and a short message, or accepted where acceptance is right).

Exit status 1 if any case is severe. ``--only`` takes a prefix of case names (``pickles``, ``cli.train``...).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for _p in (str(REPO), str(HERE), str(HERE / "zoo"), str(HERE / "reproduce")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

TIMEOUT_S = 30.0
MAX_RSS_MB = 1200.0
GROUP_KILL_MB = 6000.0
DATA_LIMIT = 3000 << 20
AS_LIMIT = 16 << 30
MAX_MESSAGE_CHARS = 1000
MAX_MESSAGE_LINES = 4
SENTINEL = "PWNED"
CLEAN_EXCEPTION_ROOTS = ("zoo", "reproduce", "genotypes")
LOG_LINE = re.compile(r"^(\d\d:\d\d:\d\d )?(INFO|DEBUG)[: ]")
ARGPARSE_ERROR = re.compile(r"^\S.*: error: ")
PROGRESS = re.compile(r"(\d+%\||B/s\]|it/s\]|\[\d\d:\d\d<)")


# ============================================================================================ cases


@dataclass
class Case:
    name: str                                # area.family.variant
    make: Callable[[Path, Path], List[str]]  # (case dir, fixtures dir) -> argv: ["-m", MOD, ...] or ["-c", CODE]
    expect: str = "refuse"                   # refuse | accept | either
    names: Tuple[str, ...] = ()              # a refusal must name one of these ("{d}" = the case dir)
    outputs: Tuple[str, ...] = ("out",)      # paths (relative to the case dir) the command may write
    lib: bool = False                        # a library snippet: a clean exception is a refusal (exit 2)
    check: Optional[Callable[[Path], Optional[str]]] = None  # after the run: a severe finding, or None
    timeout: float = TIMEOUT_S
    needs: Tuple[str, ...] = ()              # fixtures beyond the default ones ("run")

    @property
    def area(self) -> str:
        return self.name.split(".", 1)[0]


CASES: List[Case] = []


def case(name, make, **kw) -> None:
    CASES.append(Case(name, make, **kw))


def zoo_cli(*args) -> List[str]:
    return ["-m", "zoo", *map(str, args)]


def repro(*args) -> List[str]:
    return ["-m", "reproduce", *map(str, args)]


def snippet(code: str) -> List[str]:
    return ["-c", code]


def lib_load(path) -> List[str]:
    return snippet(f"import zoo\nzoo.load({str(path)!r})")


def sentinel_absent(d: Path) -> Optional[str]:
    if (d / SENTINEL).exists():
        return f"code from the input ran: {SENTINEL} was created"
    if (d / "user").is_dir() and not (d / "user" / "notes.txt").is_file():
        return "code from the input ran: user/notes.txt was deleted"
    return None


def user_files(d: Path) -> None:
    """A directory of a user's files: must be left as it is (the snapshot checks it)."""
    (d / "user").mkdir(exist_ok=True)
    (d / "user" / "notes.txt").write_text("my notes\n")
    (d / "user" / "data.bin").write_bytes(os.urandom(1000))


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


# --------------------------------------------------------------------------------------------- pickles

def _bu(s: str) -> bytes:  # BINUNICODE
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def _g(mod: str, name: str) -> bytes:  # GLOBAL
    return b"c" + mod.encode() + b"\n" + name.encode() + b"\n"


def _code_payloads(d: Path) -> Dict[str, bytes]:
    s = str(d / SENTINEL)
    cmd = f"touch {s}"
    p2 = b"\x80\x02"
    call1 = lambda mod, name, arg: p2 + _g(mod, name) + _bu(arg) + b"\x85R."  # noqa: E731
    return {
        "os_system": call1("os", "system", cmd),
        "posix_system": call1("posix", "system", cmd),
        "nt_system": call1("nt", "system", cmd),
        "builtins_exec": call1("builtins", "exec", f"open({s!r}, 'w').write('x')"),
        "builtin_eval": call1("__builtin__", "eval", f"__import__('os').system({cmd!r})"),
        "builtins_open": p2 + _g("builtins", "open") + _bu(s) + _bu("w") + b"\x86R.",
        "subprocess_popen": p2 + _g("subprocess", "Popen") + b"](" + _bu("touch") + _bu(s) + b"e\x85R.",
        "import_getattr": p2 + _g("builtins", "getattr") + b"(" + _g("builtins", "__import__") + _bu("os")
        + b"\x85R" + _bu("system") + b"tR" + _bu(cmd) + b"\x85R.",
        "stack_global_p4": b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94\x93" + _bu(cmd) + b"\x85R.",
        "inst_p0": b"(S'" + cmd.encode() + b"'\nios\nsystem\n.",
        "obj_opcode": p2 + b"(" + _g("os", "system") + _bu(cmd) + b"o.",
        "methodcaller": p2 + _g("operator", "methodcaller") + _bu("system") + _bu(cmd) + b"\x86R"
        + _g("importlib", "import_module") + _bu("os") + b"\x85R\x85R.",
        "shutil_rmtree": call1("shutil", "rmtree", str(d / "user")),
        "nested_in_state_dict": p2 + b"}" + _bu("stem.0.weight") + _g("os", "system") + _bu(cmd) + b"\x85Rs.",
        "torch_load_global": call1("torch", "load", str(d / "user" / "notes.txt")),
    }


def _legacy(body: bytes, **kw) -> bytes:
    import hostile
    return hostile.legacy_file(body, **kw)


def _zip(body: bytes) -> bytes:
    import hostile
    return hostile.zip_file(body)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _pickle_entries(name: str, build: Callable[[Path], Path], expect="refuse", check=None, names=None,
                    kinds=("lib", "convert")) -> None:
    """One hostile file, given to zoo.load(path) and to `python -m zoo convert cifar10 FILE --out out`."""
    def lib_make(d, fix):
        return lib_load(build(d))

    def cli_make(d, fix):
        return zoo_cli("convert", "cifar10", build(d), "--out", d / "out")

    nm = names or ("{d}",)
    if "lib" in kinds:
        case(f"pickles.{name}.load", lib_make, lib=True, expect=expect, check=check, names=nm)
    if "convert" in kinds:
        case(f"pickles.{name}.convert", cli_make, expect=expect, check=check, names=nm)


def _add_pickle_cases() -> None:
    import hostile as H

    # code carried by a pickle: GLOBAL/REDUCE, STACK_GLOBAL, INST, OBJ naming os.system and friends
    for payload in ("os_system", "posix_system", "nt_system", "builtins_exec", "builtin_eval", "builtins_open",
                    "subprocess_popen", "import_getattr", "stack_global_p4", "inst_p0", "obj_opcode",
                    "methodcaller", "shutil_rmtree", "nested_in_state_dict", "torch_load_global"):
        for container in ("legacy", "zip"):
            def build(d, payload=payload, container=container):
                user_files(d)
                body = _code_payloads(d)[payload]
                return _write(d / "evil.pt", _legacy(body) if container == "legacy" else _zip(body))
            _pickle_entries(f"code.{payload}.{container}", build, check=sentinel_absent)
    # shared-substructure hash bombs and list bombs quoted in messages (tests/zoo/hostile.py's builders)
    depth = 60
    pid = b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x01NtQ"
    bombs = {
        "tuple_key.legacy": lambda: H.legacy_file(H.shared_tuple_key(depth)),
        "tuple_key.zip": lambda: H.zip_file(H.shared_tuple_key(depth)),
        "set_additems.legacy": lambda: H.legacy_file(H.shared_tuple_set_items(depth)),
        "set_additems.zip": lambda: H.zip_file(H.shared_tuple_set_items(depth)),
        "set_call.legacy": lambda: H.legacy_file(H.set_of_shared_tuples(depth)),
        "set_call.zip": lambda: H.zip_file(H.set_of_shared_tuples(depth)),
        "list_in_protocol": lambda: H.legacy_file(b"", protocol=b"\x80\x02" + H.shared_list(depth) + b"."),
        "list_in_magic": lambda: H.legacy_file(b"", magic=b"\x80\x02" + H.shared_list(depth) + b"."),
        "list_persistent_id": lambda: H.legacy_file(b"\x80\x02" + H.shared_list(depth) + b"Q."),
        "list_tensor_size": lambda: H.legacy_file(b"\x80\x02ctorch._utils\n_rebuild_tensor\n(" + pid + b"K\x00"
                                                  + H.shared_list(depth) + b"(K\x01ttR."),
        "list_as_dict_key.zip": lambda: H.zip_file(b"\x80\x02}" + H.shared_list(depth) + b"K\x01s."),
        "frozenset_of_tuples.zip": lambda: H.zip_file(b"\x80\x04(" + H._shared_tuples(depth) + b"\x91."),
        "list_as_state_value.zip": lambda: H.zip_file(b"\x80\x02}X\r\x00\x00\x00stem.0.weight"
                                                      + H.shared_list(depth) + b"s."),
        "shared_dict_values.zip": lambda: H.zip_file(b"\x80\x02}X\x01\x00\x00\x00a" + H.shared_list(40)
                                                     + b"sX\x01\x00\x00\x00b" + b"h\x28s."),
    }
    for name, blob in bombs.items():
        _pickle_entries(f"bomb.{name}", lambda d, blob=blob, name=name: _write(d / f"{name}.pt", blob()))
    # deep nesting and cycles
    for n in (65, 1000, 200_000):
        deep = b"\x80\x02" + b"]" * n + b"a" * (n - 1) + b"."
        for container in ("legacy", "zip"):
            _pickle_entries(f"deep.list{n}.{container}",
                            lambda d, deep=deep, c=container: _write(d / "deep.pt", _legacy(deep) if c == "legacy"
                                                                     else _zip(deep)))
    tuples = b"\x80\x02" + b"(" * 50_000 + b"t" * 50_000 + b"."
    dicts = b"\x80\x02" + b"}X\x01\x00\x00\x00k" * 20_000 + b"N" + b"s" * 20_000 + b"."
    loop = b"\x80\x02]q\x00h\x00a."  # a list containing itself
    dloop = b"\x80\x02}q\x00X\x01\x00\x00\x00kh\x00s."
    for name, body in (("tuple50000", tuples), ("dict20000", dicts), ("self_list", loop), ("self_dict", dloop)):
        for container in ("legacy", "zip"):
            _pickle_entries(f"deep.{name}.{container}",
                            lambda d, b=body, c=container: _write(d / "x.pt", _legacy(b) if c == "legacy" else _zip(b)))
    # long strings and big lists in places an error message would quote
    big_values = {
        "key_5MB": "sd = {'k' * 5_000_000: torch.zeros(1)}",
        "str_value_5MB": "sd = {'stem.0.weight': 'x' * 5_000_000}",
        "list_value_1M": "sd = {'stem.0.weight': [0] * 1_000_000}",
        "nonstr_key": "sd = {(1, 2): torch.zeros(1), 'stem.0.weight': torch.zeros(4, 3, 3, 3)}",
        "int_keys_20k": "sd = {i: torch.zeros(1) for i in range(20_000)}",
    }
    for name, code in big_values.items():
        for container in ("legacy", "zip"):
            def build(d, code=code, container=container):
                return _in_child_build(d, "import torch\nfrom zoo_testutil import write_legacy\n" + code + (
                    f"\nwrite_legacy(sd, {str(d / 'big.pt')!r})" if container == "legacy"
                    else f"\ntorch.save(sd, {str(d / 'big.pt')!r})"), d / "big.pt")
            _pickle_entries(f"quoted.{name}.{container}", build)
    # truncated files
    for container, fix_name in (("legacy", "sd_legacy.pt"), ("zip", "sd_zip.pt")):
        for cut in ("0", "1", "100", "half", "last_byte"):
            def build(d, fix_name=fix_name, cut=cut):
                blob = (FIXTURES / fix_name).read_bytes()
                n = {"0": 0, "1": 1, "100": 100, "half": len(blob) // 2, "last_byte": len(blob) - 1}[cut]
                return _write(d / "cut.pt", blob[:n])
            _pickle_entries(f"truncated.{container}.{cut}", build)
    # wrong magic, protocol numbers, pickle protocols
    heads = {
        "magic_wrong": dict(magic=b"\x80\x02K\x01."),
        "magic_string": dict(magic=b"\x80\x02X\x03\x00\x00\x00abc."),
        "protocol_1000": dict(protocol=b"\x80\x02M\xe8\x03."),
        "protocol_1002": dict(protocol=b"\x80\x02M\xea\x03."),
        "protocol_neg": dict(protocol=b"\x80\x02J\xff\xff\xff\xff."),
        "protocol_2pow70": dict(protocol=b"\x80\x02\x8a\x09" + bytes(8) + b"\x40."),
        "protocol_str": dict(protocol=b"\x80\x02X\x04\x00\x00\x001001."),
        "protocol_none": dict(protocol=b"\x80\x02N."),
    }
    for name, kw in heads.items():
        _pickle_entries(f"header.{name}", lambda d, kw=kw: _write(d / "h.pt", _legacy(b"\x80\x02}.", **kw)))
    for proto in (6, 255):
        body = bytes([0x80, proto]) + b"}."
        _pickle_entries(f"header.pickle_protocol{proto}.legacy", lambda d, b=body: _write(d / "p.pt", _legacy(b)))
        _pickle_entries(f"header.pickle_protocol{proto}.zip", lambda d, b=body: _write(d / "p.pt", _zip(b)))
    _pickle_entries("header.not_a_pickle", lambda d: _write(d / "n.pt", b"hello world, not a checkpoint\n" * 10))
    _pickle_entries("header.empty_zip", lambda d: _write(d / "z.pt", _plain_zip({})))
    # zips: bombs, huge declared sizes, many entries, odd names
    _pickle_entries("zip.bomb_1200MB", lambda d: _write(d / "bomb.pt", H.zip_bomb(1200)))
    _pickle_entries("zip.bomb_64MB", lambda d: _write(d / "bomb.pt", H.zip_bomb(64)))
    _pickle_entries("zip.declared_2pow40", lambda d: _write(d / "z.pt", _declared_size_zip(1 << 40)))
    _pickle_entries("zip.pickle_bomb_300MB", lambda d: _write(d / "z.pt", _deflated_pickle_zip(300)))
    _pickle_entries("zip.entries_20000", lambda d: _write(d / "z.pt", _plain_zip(
        {f"archive/data/{i}": b"" for i in range(20_000)}, base=True)))
    _pickle_entries("zip.slip_names", lambda d: _write(d / "z.pt", _plain_zip(
        {"../../evil/data.pkl": b"\x80\x02}.", "archive/../../x": b""})), check=lambda d: (
        "a file was written outside the case directory" if (d.parent / "x").exists() else None))
    _pickle_entries("zip.no_data_pkl", lambda d: _write(d / "z.pt", _plain_zip({"archive/version": b"3\n"})))
    _pickle_entries("zip.storage_short", lambda d: _write(d / "z.pt", _short_storage_zip()))
    # weights of a real (tiny) network in the original layout: odd dtypes and values
    weights = {
        "nan": ("t[0] = float('nan')", "refuse"), "inf": ("t[0] = float('inf')", "refuse"),
        "neg_inf": ("t[-1] = -float('inf')", "refuse"), "bool": ("sd[k] = t.bool()", "refuse"),
        "int64": ("sd[k] = t.long()", "either"), "complex": ("sd[k] = t.to(torch.complex64)", "refuse"),
        "meta": ("sd[k] = torch.empty(t.shape, device='meta')", "refuse"),
        "float16": ("sd = {a: (b.half() if b.is_floating_point() else b) for a, b in sd.items()}", "accept"),
        "float64": ("sd = {a: (b.double() if b.is_floating_point() else b) for a, b in sd.items()}", "accept"),
        "wrong_shape": ("sd[k] = t.reshape(-1)", "refuse"),
        "transposed": ("sd[k] = t.transpose(0, 1).contiguous()", "refuse"),
        "missing_key": ("del sd['classifier.weight']", "refuse"),
        "extra_key": ("sd['bogus.weight'] = torch.zeros(3)", "refuse"),
        "scalar": ("sd['classifier.weight'] = torch.tensor(1.0)", "refuse"),
        "empty": ("sd['classifier.weight'] = torch.zeros(0)", "refuse"),
        "sparse": ("sd['classifier.weight'] = sd['classifier.weight'].to_sparse()", "refuse"),
        "not_tensor": ("sd['classifier.weight'] = 'weights'", "refuse"),
        "nan_in_bn_buffer": ("sd['stem.1.running_var'][0] = float('nan')", "refuse"),
        "huge_num_classes": ("sd['classifier.weight'] = torch.zeros(1).expand(10**7, 64)", "refuse"),
    }
    for name, (edit, expect) in weights.items():
        containers = ("zip", "legacy") if name in ("nan", "inf", "wrong_shape", "extra_key") else ("zip",)
        for container in containers:
            def build(d, edit=edit, container=container):
                code = (f"import torch\nfrom zoo_testutil import write_legacy\n"
                        f"sd = torch.load({str(FIXTURES / 'sd_zip.pt')!r})\nk = 'stem.0.weight'\nt = sd[k]\n{edit}\n")
                code += (f"write_legacy(sd, {str(d / 'w.pt')!r})" if container == "legacy"
                         else f"torch.save(sd, {str(d / 'w.pt')!r})")
                return _in_child_build(d, code, d / "w.pt")
            out_ok = ((lambda d: None if (d / "out" / "model.safetensors").is_file() else
                       "accepted but out/model.safetensors missing") if expect == "accept" else None)
            _pickle_entries(f"weights.{name}.{container}", build, expect=expect, check=out_ok,
                            kinds=("convert",) if expect == "accept" else ("lib", "convert"))


def _plain_zip(entries: Dict[str, bytes], base: bool = False) -> bytes:
    import io
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        if base:
            z.writestr("archive/data.pkl", b"\x80\x02}.")
            z.writestr("archive/version", b"3\n")
        for name, data in entries.items():
            z.writestr(name, data)
    return out.getvalue()


def _declared_size_zip(size: int) -> bytes:
    """A torch zip whose storage entry claims ``size`` bytes uncompressed in its headers (stored, 4 bytes held)."""
    import hostile as H
    entries = []
    for name, data in H._torch_zip_entries():
        import zlib
        if name.endswith("/data/0"):
            entries.append((name, data, 0, zlib.crc32(data), size & 0xFFFFFFFF or 0xFFFFFFFE))
        else:
            entries.append((name, data, 0, zlib.crc32(data), len(data)))
    return H._raw_zip(entries)


def _deflated_pickle_zip(megabytes: int) -> bytes:
    """A torch zip whose data.pkl is ``megabytes`` MB of MARK opcodes, deflated to a few hundred kB."""
    import zlib

    import hostile as H
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = b"(" * (1 << 20)
    block = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    stream = block * megabytes + c.flush()
    crc = 0
    for _ in range(megabytes):
        crc = zlib.crc32(chunk, crc)
    entries = []
    for name, data in H._torch_zip_entries():
        if name.endswith("/data.pkl"):
            entries.append((name, stream, 8, crc, megabytes << 20))
        else:
            entries.append((name, data, 0, zlib.crc32(data), len(data)))
    return H._raw_zip(entries)


def _short_storage_zip() -> bytes:
    """A torch zip whose storage holds fewer bytes than its tensor claims."""
    import zlib

    import hostile as H
    entries = []
    for name, data in H._torch_zip_entries():
        if name.endswith("/data/0"):
            data = data[:4]
        entries.append((name, data, 0, zlib.crc32(data), len(data)))
    return H._raw_zip(entries)


def _in_child_build(d: Path, code: str, result: Path) -> Path:
    """Run build code (torch, zoo_testutil) in this build process: builds already run in a forked child."""
    exec(compile(code, "<build>", "exec"), {"__name__": "build"})
    return result


# --------------------------------------------------------------------------------------------- saved folders


def _edit_config(d: Path, fn) -> Path:
    m = d / "m"
    shutil.copytree(FIXTURES / "saved", m)
    cfg = json.loads((m / "config.json").read_text())
    new = fn(cfg, m)
    if new is not None:
        (m / "config.json").write_text(new if isinstance(new, str) else json.dumps(new))
    return m


def _set(path: str, value):
    def fn(cfg, m):
        node = cfg
        keys = path.split(".")
        for k in keys[:-1]:
            node = node[k]
        if value is _DELETE:
            node.pop(keys[-1], None)
        else:
            node[keys[-1]] = value
        return cfg
    return fn


_DELETE = object()


def _raw(text: str):
    return lambda cfg, m: text


def _weights(fn):
    """Edit model.safetensors with ``fn(tensors) -> tensors``; ``digest=True`` records the new sha256."""
    def edit(cfg, m, digest=True):
        from safetensors.torch import load_file, save_file
        tensors = fn(load_file(m / "model.safetensors"))
        save_file(tensors, m / "model.safetensors")
        if digest:
            data = (m / "model.safetensors").read_bytes()
            cfg["files"]["model.safetensors"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        return cfg
    return edit


def _bytes(fn):
    def edit(cfg, m):
        p = m / "model.safetensors"
        fn(p)
        return cfg
    return edit


def _nan_first(t):
    t["classifier.weight"][0, 0] = float("nan")
    return t


def _add_saved_cases() -> None:
    huge = "[" + ",".join(["0"] * 2_000_000) + "]"
    g_code = "__import__('os').system('touch PWNED')"
    edits = {
        # JSON itself
        "json.empty": (_raw(""), "refuse"), "json.brace": (_raw("{"), "refuse"),
        "json.null": (_raw("null"), "refuse"), "json.list": (_raw("[]"), "refuse"),
        "json.number": (_raw("1"), "refuse"), "json.string": (_raw('"config"'), "refuse"),
        "json.binary": (lambda c, m: (m / "config.json").write_bytes(os.urandom(4096)), "refuse"),
        "json.utf16": (lambda c, m: (m / "config.json").write_bytes(json.dumps(c).encode("utf-16")), "refuse"),
        "json.truncated": (lambda c, m: json.dumps(c)[: len(json.dumps(c)) // 2], "refuse"),
        "json.nan_literal": (lambda c, m: json.dumps(c).replace('"C": 4', '"C": NaN'), "refuse"),
        "json.inf_literal": (lambda c, m: json.dumps(c).replace('"C": 4', '"C": 1e999'), "refuse"),
        "json.deep_100000": (lambda c, m: json.dumps(c)[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
                             "refuse"),
        "json.array_2M": (lambda c, m: json.dumps(c)[:-1] + ', "x": ' + huge + "}", "refuse"),
        "json.dup_key_top": (lambda c, m: json.dumps(c)[:-1] + ', "name": "darts-cifar10"}', "refuse"),
        "json.dup_key_args": (lambda c, m: json.dumps(c).replace('"C": 4', '"C": 4, "C": 400000'), "refuse"),
        "json.huge_string_40MB": (lambda c, m: json.dumps({**c, "description": "x" * 40_000_000}), "refuse"),
        "json.fifo": (lambda c, m: ((m / "config.json").unlink(), fifo(m / "config.json")) and None, "refuse"),
        "json.is_dir": (lambda c, m: ((m / "config.json").unlink(), (m / "config.json").mkdir()) and None, "refuse"),
        "json.dev_zero_link": (lambda c, m: ((m / "config.json").unlink(), (m / "config.json").symlink_to(
            "/dev/zero")) and None, "refuse"),
        # fields
        "field.format_other": (_set("format", "pytorch"), "refuse"),
        "field.format_version_2": (_set("format_version", 2), "refuse"),
        "field.format_version_str": (_set("format_version", "1"), "refuse"),
        "field.kind_unknown": (lambda c, m: {**c, "kind": "os.system", "arch": "os.system"}, "refuse"),
        "field.arch_missing": (lambda c, m: {k: v for k, v in c.items() if k not in ("arch", "kind")}, "refuse"),
        "field.args_missing": (_set("args", _DELETE), "refuse"),
        "field.args_list": (_set("args", [4, 10, 3]), "refuse"),
        "field.args_extra": (_set("args.evil", "__import__('os')"), "refuse"),
        "field.C_0": (_set("args.C", 0), "refuse"), "field.C_neg": (_set("args.C", -4), "refuse"),
        "field.C_1e9": (_set("args.C", 10**9), "refuse"), "field.C_str": (_set("args.C", "4"), "refuse"),
        "field.C_true": (_set("args.C", True), "refuse"), "field.C_float": (_set("args.C", 4.0), "refuse"),
        "field.C_2pow70": (_set("args.C", 2**70), "refuse"),
        "field.layers_1e6": (_set("args.layers", 10**6), "refuse"),
        "field.num_classes_0": (_set("args.num_classes", 0), "refuse"),
        "field.num_classes_1e9": (_set("args.num_classes", 10**9), "refuse"),
        "field.auxiliary_str": (_set("args.auxiliary", "yes"), "refuse"),
        "field.genotype_garbage": (_set("genotype", "Genotype(normal=garbage"), "refuse"),
        "field.genotype_code": (_set("genotype", g_code), "refuse"),
        "field.genotype_bad_op": (lambda c, m: {**c, "genotype": c["genotype"].replace("sep_conv_3x3", "os.system")},
                                  "refuse"),
        "field.genotype_bad_index": (lambda c, m: {**c, "genotype": c["genotype"].replace("1), ('skip", "99), ('skip")},
                                     "refuse"),
        "field.genotype_1MB": (_set("genotype", "Genotype(normal=[" + "('sep_conv_3x3', 0), " * 50_000 + "])"),
                               "refuse"),
        "field.genotype_list": (_set("genotype", [["sep_conv_3x3", 0]] * 1000), "refuse"),
        "field.dataset_unknown": (_set("dataset", "../../etc"), "either"),
        "field.mean_nan": (lambda c, m: json.dumps({**c, "preprocessing": {**c["preprocessing"], "mean": [
            float("nan")] * 3}}), "refuse"),
        "field.mean_1M": (_set("preprocessing.mean", [0.5] * 1_000_000), "refuse"),
        "field.input_size_huge": (_set("preprocessing.input_size", [3, 10**9, 10**9]), "refuse"),
        "field.tied_bogus": (_set("tied", {"classifier.weight": "nope"}), "refuse"),
        "field.tied_list": (_set("tied", ["a"] * 1000), "refuse"),
        # files / digest
        "files.string": (_set("files", "model.safetensors"), "refuse"),
        "files.list": (_set("files", ["model.safetensors"]), "refuse"),
        "files.entry_str": (lambda c, m: {**c, "files": {"model.safetensors": "abc"}}, "refuse"),
        "files.sha_int": (lambda c, m: {**c, "files": {"model.safetensors": {"sha256": 5, "size": 1}}}, "refuse"),
        "files.sha_wrong": (lambda c, m: {**c, "files": {"model.safetensors": {
            "sha256": "0" * 64, "size": c["files"]["model.safetensors"]["size"]}}}, "refuse"),
        "files.size_neg": (lambda c, m: {**c, "files": {"model.safetensors": {
            **c["files"]["model.safetensors"], "size": -1}}}, "refuse"),
        "files.size_mismatch": (lambda c, m: {**c, "files": {"model.safetensors": {
            **c["files"]["model.safetensors"], "size": 10**12}}}, "refuse"),
        "files.path_escape": (lambda c, m: {**c, "files": {"../../../etc/passwd": {"sha256": "0" * 64, "size": 1}}},
                              "either"),
        "files.sha_list_1M": (lambda c, m: {**c, "files": {"model.safetensors": {"sha256": ["a"] * 1_000_000}}},
                              "refuse"),
        # the weights
        "weights.missing": (lambda c, m: (m / "model.safetensors").unlink() or c, "refuse"),
        "weights.empty": (_bytes(lambda p: p.write_bytes(b"")), "refuse"),
        "weights.truncated": (_bytes(lambda p: p.write_bytes(p.read_bytes()[:1000])), "refuse"),
        "weights.header_2pow62": (_bytes(lambda p: p.write_bytes(struct.pack("<Q", 1 << 62) + b"{}")), "refuse"),
        "weights.header_garbage": (_bytes(lambda p: p.write_bytes(struct.pack("<Q", 20) + b"{not json at all}!!!")),
                                   "refuse"),
        "weights.offsets_past_end": (_bytes(lambda p: p.write_bytes(struct.pack("<Q", 64) + json.dumps(
            {"classifier.weight": {"dtype": "F32", "shape": [10, 64], "data_offsets": [0, 2560]}}).ljust(64)
            .encode())), "refuse"),
        "weights.dev_zero_link": (_bytes(lambda p: (p.unlink(), p.symlink_to("/dev/zero"))), "refuse"),
        "weights.fifo": (_bytes(lambda p: (p.unlink(), fifo(p))), "refuse"),
        "weights.dir": (_bytes(lambda p: (p.unlink(), p.mkdir())), "refuse"),
        "weights.nan_with_digest": (_weights(_nan_first), "refuse"),
        "weights.inf_with_digest": (_weights(lambda t: (t["classifier.weight"].fill_(float("inf")), t)[1]), "refuse"),
        "weights.nan_no_digest": (lambda c, m: (_weights(_nan_first)(c, m, digest=False), c.pop("files"), c)[2],
                                  "refuse"),
        "weights.int_dtype": (_weights(lambda t: {**t, "classifier.weight": t["classifier.weight"].long()}), "refuse"),
        "weights.bool_dtype": (_weights(lambda t: {**t, "classifier.weight": t["classifier.weight"].bool()}),
                               "refuse"),
        "weights.f64_dtype": (_weights(lambda t: {k: (v.double() if v.is_floating_point() else v)
                                                  for k, v in t.items()}), "either"),
        "weights.wrong_shape": (_weights(lambda t: {**t, "classifier.weight": t["classifier.weight"].t()
                                                   .contiguous()}), "refuse"),
        "weights.missing_tensor": (_weights(lambda t: {k: v for k, v in t.items() if k != "classifier.weight"}),
                                   "refuse"),
        "weights.extra_tensor": (_weights(lambda t: {**t, "evil": __import__("torch").zeros(3)}), "refuse"),
        "weights.huge_extra_64MB": (_weights(lambda t: {**t, "evil": __import__("torch").zeros(16 << 20)}),
                                    "refuse"),
        "ok.untouched": (lambda c, m: None, "accept"),
    }
    for name, (fn, expect) in edits.items():
        def make_lib(d, fix, fn=fn):
            return lib_load(_edit_config(d, fn))

        def make_eval(d, fix, fn=fn):
            return zoo_cli("eval", _edit_config(d, fn), "--data", FIXTURES / "cifar", "--no-download", "--no-progress",
                           "--device", "cpu", "--batch-size", "24", "--json", d / "out" / "eval.json")

        def make_info(d, fix, fn=fn):
            return snippet(f"import zoo, json\nprint(json.dumps(zoo.info({str(_edit_config(d, fn))!r}), default=str)"
                           f"[:200])")
        names = ("{d}/m",)
        case(f"saved.{name}.load", make_lib, lib=True, expect=expect, names=names, check=sentinel_absent)
        case(f"saved.{name}.eval", make_eval, expect=expect, names=names, check=sentinel_absent,
             outputs=("out", "home"))
        if name.startswith(("json.", "field.genotype", "files.")):
            # info reads the metadata only (no weights, no digests): it must refuse what cannot be read or is
            # ambiguous (a key given twice with two values), and may show the rest
            info_refuses = name.startswith("json.") and name not in ("json.nan_literal", "json.inf_literal")
            case(f"saved.{name}.info", make_info, lib=True, expect="refuse" if info_refuses else "either",
                 names=names, check=sentinel_absent)


# --------------------------------------------------------------------------------------------- the harness CLI

TRAIN_TINY = ["--device", "cpu", "--num-threads", "1", "--epochs", "1", "--C", "4", "--layers", "3", "--batch-size",
              "16", "--eval-batch-size", "24", "--no-auxiliary", "--no-progress"]
SEARCH_TINY = ["--device", "cpu", "--num-threads", "1", "--epochs", "1", "--C", "4", "--layers", "2", "--batch-size",
               "8", "--train-examples", "24", "--image-size", "8", "--no-progress"]
EXP_TINY = ["--device", "cpu", "--runs", "1", "--epochs", "1", "--C", "4", "--layers", "3", "--batch-size", "16",
            "--eval-batch-size", "24", "--no-auxiliary", "--no-cutout", "--no-progress", "--num-threads", "1"]


def _train(d, *extra, out=None):
    return repro("train", "cifar10", "--out", out or d / "out", "--data", FIXTURES / "cifar", *TRAIN_TINY, *extra)


def _search(d, *extra, out=None):
    return repro("search", "cifar10", "--out", out or d / "out", "--data", FIXTURES / "cifar", *SEARCH_TINY, *extra)


def _exp(d, *extra, out=None, cmd="cifar10"):
    return repro(cmd, "--dry-run", "--out", out or d / "out", "--data", FIXTURES / "cifar", *EXP_TINY, *extra)


def _config_files(tiny: bool = False) -> Dict[str, Tuple[Callable[[Path], Path], str]]:
    """Hostile config files. ``tiny``: a JSON object gets the tiny training recipe's fields beside its own (those
    it does not give itself), so that the command line need not override them and a config that is accepted
    trains for seconds."""
    def text(name, content, binary=False):
        def build(d):
            p = d / name
            data = content
            if tiny and not binary and name.endswith(".json") and content.startswith("{"):
                given = set(re.findall(r'"(\w+)"\s*:', content[:10_000]))
                base = {k: v for k, v in dict(data=str(FIXTURES / "cifar"), num_threads=1, epochs=1, C=4, layers=3,
                                              batch_size=16, eval_batch_size=24, auxiliary=False).items()
                        if k not in given}
                data = "{" + json.dumps(base)[1:-1] + ", " + content[1:]
            p.write_bytes(data if binary else data.encode())
            return p
        return build
    return {
        "dup_keys": (text("c.json", '{"epochs": 1, "epochs": 100000000}'), "refuse"),
        "dup_nested": (text("c.json", '{"epochs": 1, "logger": "", "logger": "wandb"}'), "refuse"),
        "array_2M": (text("c.json", json.dumps({"epochs": [0] * 2_000_000})), "refuse"),
        "array_300k": (text("c.json", json.dumps({"epochs": [0] * 300_000})), "refuse"),
        "deep_100000": (text("c.json", '{"epochs": ' + "[" * 100_000 + "]" * 100_000 + "}"), "refuse"),
        "nan": (text("c.json", '{"learning_rate": NaN}'), "refuse"),
        "inf": (text("c.json", '{"learning_rate": Infinity}'), "refuse"),
        "epochs_str": (text("c.json", '{"epochs": "1"}'), "refuse"),
        "epochs_bool": (text("c.json", '{"epochs": true}'), "refuse"),
        "epochs_null": (text("c.json", '{"epochs": null}'), "refuse"),
        "epochs_float": (text("c.json", '{"epochs": 1.5}'), "refuse"),
        "C_huge": (text("c.json", '{"C": 100000000}'), "refuse"),
        "unknown_field": (text("c.json", '{"epochz": 1}'), "refuse"),
        "not_mapping": (text("c.json", "[1, 2, 3]"), "refuse"),
        "empty": (text("c.json", ""), "refuse"),
        "binary": (text("c.json", os.urandom(2000), binary=True), "refuse"),
        "huge_50MB": (text("c.json", '{"genotype": "' + "x" * 50_000_000 + '"}'), "refuse"),
        "yaml_alias_bomb": (text("c.yaml", "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]"
                                 "\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c]\n"),
                            "refuse"),
        "yaml_python_tag": (text("c.yaml", "epochs: !!python/object/apply:os.system ['touch PWNED']\n"), "refuse"),
        "yaml_dup": (text("c.yaml", "epochs: 1\nepochs: 1000000\n"), "refuse"),
        "yaml_deep": (text("c.yaml", "epochs: " + "[" * 50_000 + "]" * 50_000 + "\n"), "refuse"),
        "data_escape": (text("c.json", '{"data": "/nonexistent/../../etc"}'), "refuse"),
        "is_dir": (lambda d: (d / "cdir.json").mkdir() or d / "cdir.json", "refuse"),
        "missing": (lambda d: d / "nope.json", "refuse"),
        "fifo": (lambda d: fifo(d / "c.json"), "refuse"),
        "dev_zero": (lambda d: (d / "c.json").symlink_to("/dev/zero") or d / "c.json", "refuse"),
    }


def _add_cli_cases() -> None:
    s = None  # noqa: F841
    # train cifar10: integer and float flags
    ints = ["--epochs", "--C", "--layers", "--batch-size", "--eval-batch-size", "--cutout-length", "--image-size",
            "--valid-split", "--limit", "--limit-eval", "--seed", "--num-threads"]
    huge_ok = {"--batch-size", "--eval-batch-size", "--cutout-length", "--limit", "--limit-eval", "--seed"}
    for flag in ints:
        values = {"neg": "-1", "str": "x", "float": "1.5", "nan": "nan", "empty": "", "huge": "99999999999999999999"}
        for label, v in values.items():
            if flag == "--epochs" and label == "huge":
                continue  # a legitimate request for a very long run: checked by the dry runs below
            expect = "either" if (label == "huge" and flag in huge_ok) or (label == "neg" and flag == "--seed") \
                else "refuse"
            case(f"cli.train.{flag[2:]}.{label}", lambda d, fix, flag=flag, v=v: _train(d, flag, v), expect=expect,
                 names=(flag, flag[2:].replace("-", "_")))
    floats = ["--learning-rate", "--momentum", "--weight-decay", "--grad-clip", "--drop-path-prob",
              "--auxiliary-weight"]
    for flag in floats:
        for label, v in {"nan": "nan", "inf": "inf", "neg": "-1", "str": "x", "huge": "1e308"}.items():
            expect = "refuse" if label in ("nan", "inf", "str") or (label == "neg" and flag in (
                "--learning-rate", "--momentum", "--weight-decay", "--drop-path-prob")) or (
                label == "huge" and flag in ("--drop-path-prob", "--momentum", "--learning-rate")) else "either"
            case(f"cli.train.{flag[2:]}.{label}", lambda d, fix, flag=flag, v=v: _train(d, flag, v), expect=expect,
                 names=(flag, flag[2:].replace("-", "_"), "--lr" if flag == "--learning-rate" else flag))
    strings = {
        "device.mps": ("--device", "mps", "refuse"), "device.xpu": ("--device", "xpu", "refuse"),
        "device.cuda99": ("--device", "cuda:99", "refuse"), "device.shell": ("--device", "cpu;touch PWNED", "refuse"),
        "device.empty": ("--device", "", "refuse"), "amp.fp8": ("--amp", "fp8", "refuse"),
        "amp.empty": ("--amp", "", "refuse"), "logger.unknown": ("--logger", "x", "refuse"),
        "logger.path": ("--logger", "wandb,../../x", "refuse"),
        "logger.long": ("--logger", ",".join(["tensorboard"] * 5000), "either"),
        "arch.module": ("--arch", "os.system", "refuse"), "arch.unknown": ("--arch", "NOPE", "refuse"),
        "arch.code": ("--arch", "__import__('os').system('touch PWNED')", "refuse"),
        "genotype.garbage": ("--genotype", "Genotype(normal=garbage", "refuse"),
        "genotype.code": ("--genotype", "__import__('os').system('touch PWNED')", "refuse"),
        "genotype.long": ("--genotype", "Genotype(normal=[" + "('sep_conv_3x3', 0), " * 5000 + "])", "refuse"),
        "genotype.bad_op": ("--genotype", "Genotype(normal=[('os.system', 0)] * 8, normal_concat=range(2, 6), "
                            "reduce=[('os.system', 0)] * 8, reduce_concat=range(2, 6))", "refuse"),
        "profile.unknown": ("--profile", "x", "refuse"), "experiment.long": ("--experiment", "e" * 100_000, "either"),
        "experiment.path": ("--experiment", "../../../../tmp/evil", "either"),
    }
    for label, (flag, v, expect) in strings.items():
        case(f"cli.train.{label}", lambda d, fix, flag=flag, v=v: _train(d, flag, v), expect=expect,
             names=(flag, flag[2:], "genotype", "PWNED"), check=sentinel_absent)
    data_cases = {
        "missing": lambda d: d / "nope", "file": lambda d: _write(d / "f", b"x"),
        "empty_dir": lambda d: (d / "e").mkdir() or d / "e", "dev_null": lambda d: Path("/dev/null"),
        "garbage_batches": lambda d: _garbage_cifar(d),
    }
    for label, build in data_cases.items():
        case(f"cli.train.data.{label}", lambda d, fix, build=build: _train(d, "--data", build(d)),
             names=("{d}", "--data", "data", "/dev/null"))
    # --out: a file, a user's directory, the root
    case("cli.train.out.file", lambda d, fix: (_write(d / "f.txt", b"mine"), _train(d, out=d / "f.txt"))[1],
         outputs=(), names=("{d}/f.txt", "--out"))
    case("cli.train.out.user_dir", lambda d, fix: (user_files(d), _train(d, out=d / "user"))[1], expect="either",
         outputs=("user/config.json", "user/record.json", "user/metrics.jsonl", "user/checkpoint.pt", "user/.lock",
                  "user/RUNNING", "user/BEST"), names=("{d}/user", "--out"))
    case("cli.train.out.root", lambda d, fix: _train(d, out="/"), outputs=(), names=("--out", "/"))
    case("cli.train.out.dev_null", lambda d, fix: _train(d, out="/dev/null"), outputs=(), names=("--out", "/dev/null"))
    for label, (build, expect) in _config_files(tiny=True).items():
        case(f"cli.train.config.{label}", lambda d, fix, build=build: repro(
            "train", "cifar10", "--out", d / "out", "--device", "cpu", "--no-progress", "--config", build(d)),
            expect=expect, names=("{d}", "--config"), check=sentinel_absent)
    case("cli.train.config.overridden_invalid", lambda d, fix: _train(d, "--config", _write(
        d / "c.json", b'{"epochs": "x", "C": 100000000}')), expect="either", names=("{d}", "--config"))
    case("cli.train.genotype_from.missing", lambda d, fix: _train(d, "--genotype-from", d / "nope"), names=("{d}",))
    case("cli.train.genotype_from.file", lambda d, fix: _train(d, "--genotype-from", _write(d / "r", b"x")),
         names=("{d}",))
    case("cli.train.genotype_from.garbage_record", lambda d, fix: _train(d, "--genotype-from", _garbage_search(d)),
         names=("{d}",), check=sentinel_absent)
    # search cifar10
    search_flags = {
        "epochs.neg": ("--epochs", "-1"), "C.huge": ("--C", "1000000"), "layers.0": ("--layers", "0"),
        "steps.100": ("--steps", "100"), "multiplier.0": ("--multiplier", "0"), "train_portion.nan": (
            "--train-portion", "nan"), "train_portion.1.5": ("--train-portion", "1.5"), "train_portion.0": (
            "--train-portion", "0"), "train_examples.neg": ("--train-examples", "-1"), "unrolled_eps.nan": (
            "--unrolled-eps", "nan"), "arch_lr.nan": ("--arch-learning-rate", "nan"), "order.3": ("--order", "3"),
        "method.x": ("--method", "x"), "partial_channels.0": ("--partial-channels", "0"),
        "partial_channels.3": ("--partial-channels", "3"), "max_skip.neg": ("--max-skip", "-1"),
        "early_stop.x": ("--early-stop", "skip:x"), "early_stop.kind": ("--early-stop", "x:1"),
        "bn_groups.0": ("--bn-groups", "0"), "processes.5": ("--processes", "5"), "image_size.7": ("--image-size", "7"),
        "num_threads.100000": ("--num-threads", "100000"), "device.mps": ("--device", "mps"),
        "arch_beta1.2": ("--arch-beta1", "2"), "learning_rate_min.neg": ("--learning-rate-min", "-1"),
    }
    for label, (flag, v) in search_flags.items():
        case(f"cli.search.{label}", lambda d, fix, flag=flag, v=v: _search(d, flag, v),
             names=(flag, flag[2:].replace("-", "_"), flag[2:]))
    case("cli.search.out.file", lambda d, fix: (_write(d / "f.txt", b"mine"), _search(d, out=d / "f.txt"))[1],
         outputs=(), names=("{d}/f.txt", "--out"))
    for label in ("dup_keys", "array_2M", "yaml_python_tag", "nan"):
        build, _ = _config_files()[label]
        case(f"cli.search.config.{label}", lambda d, fix, build=build: _search(d, "--config", build(d)),
             names=("{d}", "--config"), check=sentinel_absent)
    # the experiment commands, dry runs
    exp_flags = {
        "baseline.1e9": (["--baseline", "random:1000000000"], "refuse"),
        "baseline.neg": (["--baseline", "random:-1"], "refuse"), "baseline.x": (["--baseline", "random:x"], "refuse"),
        "baseline.seed_x": (["--baseline", "random:1:x"], "refuse"), "baseline.empty": (["--baseline", "random:"],
                                                                                       "refuse"),
        "baseline.kind": (["--baseline", "sobol:3"], "refuse"), "baseline.extra": (["--baseline", "random:1:2:3"],
                                                                                  "refuse"),
        "runs.100000": (["--runs", "100000"], "refuse"), "runs.neg": (["--runs", "-1"], "refuse"),
        "runs.0": (["--runs", "0"], "refuse"), "runs.x": (["--runs", "x"], "refuse"),
        "seeds.range_1e9": (["--seeds", "0-1000000000"], "refuse"), "seeds.x": (["--seeds", "x"], "refuse"),
        "seeds.neg": (["--seeds", "-1"], "refuse"), "seeds.backwards": (["--seeds", "5-2"], "refuse"),
        "seeds.empty": (["--seeds", ""], "refuse"), "seeds.dup": (["--seeds", "0,0"], "refuse"),
        "gpus.99": (["--gpus", "99"], "either"), "gpus.x": (["--gpus", "x"], "refuse"),
        "gpus.dup": (["--gpus", "0,0"], "refuse"), "search_seeds.x": (["--search", "--search-seeds", "x"], "refuse"),
        "selection_epochs.neg": (["--search", "--selection-epochs", "-1"], "refuse"),
        "order.3": (["--search", "--order", "3"], "refuse"),
        "slurm.time_neg": (["--launcher", "slurm", "--partition", "x", "--time", "-1"], "refuse"),
        "slurm.mem_neg": (["--launcher", "slurm", "--partition", "x", "--mem-gb", "-5"], "refuse"),
        "slurm.array_neg": (["--launcher", "slurm", "--partition", "x", "--array-parallelism", "-1"], "refuse"),
        "slurm.gpus_per_job_neg": (["--launcher", "slurm", "--partition", "x", "--gpus-per-job", "-1"], "refuse"),
        "device.mps": (["--device", "mps"], "either"), "device.cuda": (["--device", "cuda"], "either"),
        "format.xml": (["--format", "xml"], "refuse"), "epochs.1e12": (["--epochs", "1000000000000"], "either"),
        "num_threads.100000": (["--num-threads", "100000"], "refuse"),
        "search_epochs.neg": (["--search", "--search-epochs", "-1"], "refuse"),
        "search_C.huge": (["--search", "--search-C", "100000000"], "refuse"),
        "lr.nan": (["--learning-rate", "nan"], "refuse"), "batch.0": (["--batch-size", "0"], "refuse"),
    }
    for label, (extra, expect) in exp_flags.items():
        case(f"cli.exp.{label}", lambda d, fix, extra=extra: _exp(d, *extra), expect=expect,
             names=tuple(x for x in extra if x.startswith("--")) + tuple(
                 x[2:].replace("-", "_") for x in extra if x.startswith("--")), timeout=60)
    case("cli.exp.out.file", lambda d, fix: (_write(d / "f.txt", b"mine"), _exp(d, out=d / "f.txt"))[1], outputs=(),
         names=("{d}/f.txt", "--out"))
    case("cli.exp.out.user_dir", lambda d, fix: (user_files(d), _exp(d, out=d / "user"))[1], expect="either",
         outputs=(), names=("{d}/user", "--out"), timeout=60)
    case("cli.exp.data.missing", lambda d, fix: _exp(d, "--data", d / "nope"), names=("{d}", "--data"))
    case("cli.exp.data.file", lambda d, fix: _exp(d, "--data", _write(d / "f", b"x")), names=("{d}", "--data"))
    case("cli.exp.genotype.garbage_file", lambda d, fix: _exp(d, "--genotype", _write(d / "g.txt", os.urandom(3000))),
         names=("{d}", "--genotype", "genotype"))
    case("cli.exp.genotype.huge_file", lambda d, fix: _exp(d, "--genotype", _write(d / "g.txt", b"x" * 50_000_000)),
         names=("{d}", "--genotype", "genotype"))
    case("cli.exp.genotype.fifo", lambda d, fix: _exp(d, "--genotype", fifo(d / "g.txt")),
         names=("{d}", "--genotype", "genotype"))
    for label in ("dup_keys", "array_2M", "yaml_alias_bomb", "fifo"):
        build, _ = _config_files()[label]
        case(f"cli.exp.config.{label}", lambda d, fix, build=build: _exp(d, "--config", build(d)),
             names=("{d}", "--config"))
    for cmd in ("ptb", "imagenet", "wt2"):
        case(f"cli.exp.{cmd}.data_missing", lambda d, fix, cmd=cmd: repro(cmd, "--dry-run", "--out", d / "out",
                                                                          "--data", d / "nope", "--device", "cpu"),
             names=("{d}", "--data"))
        case(f"cli.exp.{cmd}.runs_x", lambda d, fix, cmd=cmd: repro(cmd, "--dry-run", "--runs", "x", "--out",
                                                                    d / "out"), names=("--runs",))
    # demo: every one of these must be refused before anything runs
    demo = {
        "threads.0": ["--threads", "0"], "threads.neg": ["--threads", "-1"], "threads.100000": ["--threads", "100000"],
        "threads.x": ["--threads", "x"], "threads.nan": ["--threads", "nan"], "threads.float": ["--threads", "1e3"],
        "jobs.0": ["--jobs", "0"], "jobs.neg": ["--jobs", "-1"], "jobs.x": ["--jobs", "x"],
        "jobs.64_threads0": ["--jobs", "64", "--threads", "0"], "jobs.64_mps": ["--jobs", "64", "--device", "mps"],
        "jobs.64_threads_huge": ["--jobs", "64", "--threads", "100000"],
        "device.mps": ["--device", "mps"], "device.x": ["--device", "x"], "device.cuda": ["--device", "cuda"],
    }
    for label, extra in demo.items():
        case(f"cli.demo.{label}", lambda d, fix, extra=extra: repro("demo", "--out", d / "out", "--fast",
                                                                    "--no-progress", *extra),
             names=tuple(x for x in extra if x.startswith("--")))
    case("cli.demo.out.file", lambda d, fix: (_write(d / "f.txt", b"mine"), repro(
        "demo", "--out", d / "f.txt", "--fast", "--threads", "0"))[1], outputs=(), names=("--threads", "{d}/f.txt"))
    case("cli.demo.out.user_dir", lambda d, fix: (user_files(d), repro(
        "demo", "--out", d / "user", "--fast", "--device", "mps"))[1], outputs=(), names=("--device", "mps"))


def _garbage_cifar(d: Path) -> Path:
    root = d / "g"
    b = root / "cifar-10-batches-py"
    b.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        (b / name).write_bytes(b"\x80\x02" + _g("os", "system") + _bu(f"touch {d / SENTINEL}") + b"\x85R.")
    return root


def _garbage_search(d: Path) -> Path:
    r = d / "search"
    r.mkdir()
    (r / "record.json").write_text(json.dumps({"status": "finished", "kind": "search", "dataset": "cifar10",
                                               "genotype": "__import__('os').system('touch PWNED')", "seed": "x"}))
    (r / "config.json").write_text("{}")
    return r


# --------------------------------------------------------------------------------------------- runs and records


def _demo_copy(d: Path) -> Path:
    res = d / "res"
    for name in ("digits-order2", "digits-random"):
        shutil.copytree(REPO / "results" / "demo" / name, res / name)
    return res


def _json_edit(path: Path, fn) -> None:
    data = json.loads(path.read_text())
    new = fn(data)
    path.write_text(new if isinstance(new, str) else json.dumps(new))


def _report(d: Path, res: Path) -> List[str]:
    return repro("report", res, "--no-figures", "--out", d / "out" / "REPORT.md")


def _no_nan_in_report(d: Path) -> Optional[str]:
    p = d / "out" / "REPORT.md"
    if not p.is_file():
        return None
    for line in p.read_text().splitlines():  # an exclusion may say "test_error is nan, not a finite number"
        if "finite" not in line and re.search(r"(?<![\w.])(nan|inf)(?![\w])", line, re.IGNORECASE):
            return f"the report shows a nan/inf figure (garbage accepted): {line.strip()[:150]}"
    return None


def _add_run_cases() -> None:
    rec = "digits-order2/runs/seed-0/record.json"
    record_edits = {
        "final_nan": lambda r: json.dumps({**r, "final": {k: float("nan") for k in r["final"]}}),
        "final_inf": lambda r: json.dumps({**r, "final": {k: float("inf") for k in r["final"]}}),
        "final_neg": lambda r: {**r, "final": {k: -1.0 for k in r["final"]}},
        "final_huge": lambda r: {**r, "final": {k: 1e308 for k in r["final"]}},
        "final_str": lambda r: {**r, "final": {k: "x" for k in r["final"]}},
        "final_null": lambda r: {**r, "final": None},
        "final_list_1M": lambda r: {**r, "final": [0] * 1_000_000},
        "final_bool": lambda r: {**r, "final": {k: True for k in r["final"]}},
        "seed_x": lambda r: {**r, "seed": "x"}, "seed_null": lambda r: {**r, "seed": None},
        "seed_float": lambda r: {**r, "seed": 1e300}, "seed_neg": lambda r: {**r, "seed": -1},
        "seed_dup": lambda r: {**r, "seed": 1}, "seed_list": lambda r: {**r, "seed": [0] * 1000},
        "status_garbage": lambda r: {**r, "status": "finished\n" * 1000},
        "kind_search": lambda r: {**r, "kind": "search"},
        "config_edited": lambda r: {**r, "config": {**r["config"], "epochs": 400}},
        "config_not_dict": lambda r: {**r, "config": "x"},
        "config_deep": lambda r: json.dumps(r)[:-1] + ', "deep": ' + "[" * 100_000 + "]" * 100_000 + "}",
        "dup_keys": lambda r: json.dumps(r)[:-1] + ', "seed": 7}',
        "invalid_json": lambda r: "{",
        "empty": lambda r: "",
        "list": lambda r: "[]",
        "huge_30MB": lambda r: {**r, "pad": "x" * 30_000_000},
        "curve_nan": lambda r: json.dumps({**r, "curve": [{"epoch": 0, "test_error": float("nan")}] * 10}),
        "genotype_code": lambda r: {**r, "genotype": "__import__('os').system('touch PWNED')"},
        "experiment_other": lambda r: {**r, "experiment": "../../etc"},
    }
    for label, fn in record_edits.items():
        def make(d, fix, fn=fn):
            res = _demo_copy(d)
            _json_edit(res / rec, fn)
            return _report(d, res)
        case(f"runs.report.record.{label}", make, expect="either", names=("{d}",),
             check=lambda d: _no_nan_in_report(d) or sentinel_absent(d))
    exp_edits = {
        "invalid": lambda e: "{", "seeds_x": lambda e: {**e, "seeds": "x"},
        "seeds_1M": lambda e: {**e, "seeds": list(range(1_000_000))},
        "baseline_escape": lambda e: {**e, "baseline": {**e["baseline"], "dir": "../../../../../etc"}},
        "baseline_root": lambda e: {**e, "baseline": {**e["baseline"], "dir": "/"}},
        "baseline_self": lambda e: {**e, "baseline": {**e["baseline"], "dir": "."}},
        "baseline_n_huge": lambda e: {**e, "baseline": {**e["baseline"], "n": 10**12}},
        "profile_paper": lambda e: {**e, "profile": "paper", "comparable": True},
        "genotype_code": lambda e: {**e, "genotype": "__import__('os').system('touch PWNED')"},
        "dup_keys": lambda e: json.dumps(e)[:-1] + ', "experiment": "ptb"}',
        "null": lambda e: "null",
    }
    for label, fn in exp_edits.items():
        def make(d, fix, fn=fn):
            res = _demo_copy(d)
            _json_edit(res / "digits-order2" / "experiment.json", fn)
            return _report(d, res)
        case(f"runs.report.experiment.{label}", make, expect="either", names=("{d}",),
             check=lambda d: _no_nan_in_report(d) or sentinel_absent(d))
    misc = {
        "metrics_nan": lambda res: (res / "digits-order2/runs/seed-0/metrics.jsonl").write_text(
            '{"epoch": 0, "test_error": NaN}\n' * 5),
        "metrics_garbage": lambda res: (res / "digits-order2/runs/seed-0/metrics.jsonl").write_bytes(os.urandom(5000)),
        "record_fifo": lambda res: ((res / rec).unlink(), fifo(res / rec)),
        "record_dir": lambda res: ((res / rec).unlink(), (res / rec).mkdir()),
        "record_dev_zero": lambda res: ((res / rec).unlink(), (res / rec).symlink_to("/dev/zero")),
        "selection_garbage": lambda res: (res / "digits-order2/selection.json").write_text('{"chosen": [1e999]}'),
        "paper_json_nan": lambda res: (res / "paper.json").write_text('{"cifar10": {"test_error": NaN}}'),
        "paper_json_garbage": lambda res: (res / "paper.json").write_text("[" * 100_000),
        "symlink_loop": lambda res: (res / "loop").symlink_to(res),
    }
    for label, fn in misc.items():
        def make(d, fix, fn=fn):
            res = _demo_copy(d)
            fn(res)
            return _report(d, res)
        case(f"runs.report.misc.{label}", make, expect="either", names=("{d}",), check=_no_nan_in_report)
    case("runs.report.out_is_results", lambda d, fix: repro("report", _demo_copy(d), "--no-figures", "--out",
                                                            d / "res" / "digits-order2" / "experiment.json"),
         outputs=(), names=("--out", "experiment.json"))
    case("runs.report.paper_fifo", lambda d, fix: repro("report", _demo_copy(d), "--no-figures", "--out",
                                                        d / "out" / "R.md", "--paper", fifo(d / "p.json")),
         names=("{d}", "--paper"))
    # export of a trained run (fixture "run": one epoch of a tiny network)
    run_edits = {
        "record.status_running": ("record.json", lambda r: {**r, "status": "running"}),
        "record.kind_search": ("record.json", lambda r: {**r, "kind": "search"}),
        "record.dataset_ptb": ("record.json", lambda r: {**r, "dataset": "ptb"}),
        "record.C_huge": ("record.json", lambda r: {**r, "config": {**r["config"], "C": 10**6}}),
        "record.genotype_garbage": ("record.json", lambda r: {**r, "genotype": "Genotype(normal=garbage"}),
        "record.genotype_code": ("record.json", lambda r: {**r, "genotype": "__import__('os').system('touch PWNED')"}),
        "record.final_nan": ("record.json", lambda r: json.dumps({**r, "final": {"test_error": float("nan")}})),
        "record.seed_x": ("record.json", lambda r: {**r, "seed": "x"}),
        "record.invalid": ("record.json", lambda r: "{"),
        "record.dup_keys": ("record.json", lambda r: json.dumps(r)[:-1] + ', "status": "finished"}'),
        "config.C_8": ("config.json", lambda c: {**c, "C": 8}),
        "config.layers_1e6": ("config.json", lambda c: {**c, "layers": 10**6}),
        "config.invalid": ("config.json", lambda c: "{"),
        "config.seed_x": ("config.json", lambda c: {**c, "seed": "x"}),
    }
    for label, (fname, fn) in run_edits.items():
        def make(d, fix, fname=fname, fn=fn):
            run = _run_copy(d)
            _json_edit(run / fname, fn)
            return repro("export", run, "--out", d / "out")
        expect = "either" if label in ("record.seed_x", "config.seed_x") else "refuse"
        case(f"runs.export.{label}", make, expect=expect, names=("{d}/run",), check=sentinel_absent, needs=("run",))
    ckpt = {
        "missing": lambda p: p.unlink(), "empty": lambda p: p.write_bytes(b""),
        "truncated": lambda p: p.write_bytes(p.read_bytes()[:5000]),
        "garbage": lambda p: p.write_bytes(os.urandom(5000)),
        "zip_bomb": lambda p: p.write_bytes(__import__("hostile").zip_bomb(1200)),
        "code_pickle": lambda p: p.write_bytes(_zip(_code_payloads(p.parent.parent)["os_system"])),
        "tuple_key_bomb": lambda p: p.write_bytes(__import__("hostile").zip_file(
            __import__("hostile").shared_tuple_key(60))),
        "fifo": lambda p: (p.unlink(), fifo(p)),
        "dev_zero": lambda p: (p.unlink(), p.symlink_to("/dev/zero")),
    }
    for label, fn in ckpt.items():
        def make(d, fix, fn=fn):
            run = _run_copy(d)
            fn(run / "checkpoint.pt")
            return repro("export", run, "--out", d / "out")
        case(f"runs.export.checkpoint.{label}", make, names=("{d}/run",), check=sentinel_absent, needs=("run",))
    case("runs.export.out_is_run", lambda d, fix: repro("export", _run_copy(d), "--out", d / "run"), outputs=(),
         expect="either", names=("--out", "{d}/run"), needs=("run",))
    case("runs.export.out_is_file", lambda d, fix: (_run_copy(d), _write(d / "f.txt", b"mine"),
                                                     repro("export", d / "run", "--out", d / "f.txt"))[2], outputs=(),
         names=("--out", "{d}/f.txt"), needs=("run",))
    case("runs.export.out_user_dir", lambda d, fix: (_run_copy(d), user_files(d),
                                                      repro("export", d / "run", "--out", d / "user"))[2],
         outputs=(), expect="either", names=("--out", "{d}/user"), needs=("run",))
    case("runs.export.ok", lambda d, fix: repro("export", _run_copy(d), "--out", d / "out"), expect="accept",
         needs=("run",), check=lambda d: None if (d / "out" / "model.safetensors").is_file() else "no model written")
    # resuming a run whose files were edited
    resume = {
        "config_C_8": ("config.json", lambda c: {**c, "C": 8}),
        "config_epochs_str": ("config.json", lambda c: {**c, "epochs": "x"}),
        "config_invalid": ("config.json", lambda c: "{"),
        "metrics_nan": ("metrics.jsonl", None),
        "record_running_nan": ("record.json", lambda r: json.dumps({**r, "status": "running",
                                                                   "final": {"test_error": float("nan")}})),
    }
    for label, (fname, fn) in resume.items():
        def make(d, fix, fname=fname, fn=fn):
            run = _run_copy(d)
            if fn is None:
                (run / fname).write_text('{"epoch": 0, "test_error": NaN, "train_loss": Infinity}\n')
            else:
                _json_edit(run / fname, fn)
            return _train(d, "--epochs", "2", out=run)
        case(f"runs.resume.{label}", make, expect="either", names=("{d}/run",), outputs=("run",), needs=("run",),
             check=lambda d: _finished_finite(d / "run"))


def _finished_finite(run: Path) -> Optional[str]:
    try:
        r = json.loads((run / "record.json").read_text())
    except (OSError, ValueError):
        return None
    if r.get("status") == "finished" and isinstance(r.get("final"), dict):
        import math
        bad = [k for k, v in r["final"].items() if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            return f"a resumed run finished with non-finite {bad}"
    return None


def _run_copy(d: Path) -> Path:
    shutil.copytree(FIXTURES / "run", d / "run")
    return d / "run"


# --------------------------------------------------------------------------------------------- network

SERVER = r'''
import socket, threading, time, gzip, os, json
REQUESTS = []
def _serve(conn, mode, body):
    try:
        conn.settimeout(60)
        req = b""
        while b"\r\n\r\n" not in req and len(req) < 65536:
            chunk = conn.recv(4096)
            if not chunk:
                break
            req += chunk
        path = req.split(b" ")[1].decode() if req.count(b" ") >= 2 else "?"
        REQUESTS.append(path)
        base = "HTTP/1.1 200 OK\r\nConnection: close\r\n"
        if mode == "404":
            conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        elif mode == "500":
            conn.sendall(b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        elif mode == "body":
            conn.sendall((base + f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
        elif mode == "truncate":
            conn.sendall((base + f"Content-Length: {len(body)}\r\n\r\n").encode() + body[: len(body) // 10])
        elif mode == "stall":
            time.sleep(120)
        elif mode == "stall_headers":
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            time.sleep(120)
        elif mode == "trickle":
            conn.sendall((base + f"Content-Length: {len(body)}\r\n\r\n").encode())
            for i in range(len(body)):
                conn.sendall(body[i:i + 1]); time.sleep(0.1)
        elif mode == "endless":
            conn.sendall(base.encode() + b"\r\n")
            block = bytes(1 << 16)
            while True:
                conn.sendall(block)
        elif mode == "endless_chunked":
            conn.sendall(base.encode() + b"Transfer-Encoding: chunked\r\n\r\n")
            chunk = b"10000\r\n" + bytes(1 << 16) + b"\r\n"
            while True:
                conn.sendall(chunk)
        elif mode == "bad_chunks":
            conn.sendall(base.encode() + b"Transfer-Encoding: chunked\r\n\r\nzzzz\r\nhello\r\n")
        elif mode == "huge_length":
            conn.sendall((base + "Content-Length: 1000000000000000\r\n\r\n").encode() + b"x" * 100)
        elif mode == "neg_length":
            conn.sendall((base + "Content-Length: -5\r\n\r\n").encode() + b"x" * 100)
        elif mode == "gzip_bomb":
            z = gzip.compress(bytes(200 << 20), 9)
            conn.sendall((base + f"Content-Encoding: gzip\r\nContent-Length: {len(z)}\r\n\r\n").encode() + z)
        elif mode == "endless_headers":
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            while True:
                conn.sendall(b"X-Junk: " + b"a" * 1000 + b"\r\n")
        elif mode == "long_header_line":
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Junk: " + b"a" * 10_000_000 + b"\r\n\r\n")
        elif mode == "garbage_status":
            conn.sendall(b"HELLO THERE\r\n\r\n" + os.urandom(1000))
        elif mode == "http09":
            conn.sendall(os.urandom(5000))
        elif mode == "redirect_loop":
            conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: " + path.encode() + b"\r\nContent-Length: 0\r\n"
                         b"Connection: close\r\n\r\n")
        elif mode == "redirect_file":
            conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: file:///etc/passwd\r\nContent-Length: 0\r\n"
                         b"Connection: close\r\n\r\n")
        elif mode == "redirect_closed":
            conn.sendall(b"HTTP/1.1 301 Moved\r\nLocation: http://127.0.0.1:1/x\r\nContent-Length: 0\r\n"
                         b"Connection: close\r\n\r\n")
        elif mode == "redirect_long":
            conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: /" + b"a" * 60000 + b"\r\nContent-Length: 0\r\n"
                         b"Connection: close\r\n\r\n")
        elif mode == "html":
            page = b"<html><body>Google Drive can't scan this file for viruses. <a href='/x'>Download</a>" \
                   b"</body></html>"
            conn.sendall((base + f"Content-Type: text/html\r\nContent-Length: {len(page)}\r\n\r\n").encode() + page)
        elif mode == "reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    except OSError:
        pass
    finally:
        try:
            conn.close()
        except OSError:
            pass

def start(mode, body=b""):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    def loop():
        while True:
            conn, _ = s.accept()
            threading.Thread(target=_serve, args=(conn, mode, body), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()
    return "http://127.0.0.1:%d" % s.getsockname()[1]
'''


def _net_lib(mode: str, body_code: str = "b''", deadline: float = 5.0, timeout: float = 3.0) -> str:
    """zoo.load('darts-cifar10') whose only source is a URL on a local misbehaving server (verified sha256)."""
    return SERVER + f"""
import dataclasses, os
body = {body_code}
url = start({mode!r}, body)
import zoo, zoo.download
from zoo import registry
zoo.download.DEADLINE_S = {deadline}
zoo.download.TIMEOUT_S = {timeout}
entry = registry.get_entry("darts-cifar10")
src = [s for s in entry.sources if s.kind == "url"][0]
only = dataclasses.replace(src, location=url + "/darts-v2.pth")
registry._REGISTRY["darts-cifar10"] = dataclasses.replace(entry, sources=(only,))
zoo.load("darts-cifar10")
"""


def _net_cli(mode: str, args: Sequence[str], body_code: str = "b''", offline_check: bool = False) -> str:
    """The zoo's command line in this process, with DARTS_ZOO_URL_PREFIX (and HF_ENDPOINT) at the server."""
    return SERVER + f"""
import os, sys
body = {body_code}
url = start({mode!r}, body)
os.environ["DARTS_ZOO_URL_PREFIX"] = url + "/site"
os.environ["HF_ENDPOINT"] = url
import zoo.__main__
rc = zoo.__main__.main({list(args)!r})
if {offline_check!r} and REQUESTS:
    open("home/CONTACTED", "w").write(repr(REQUESTS))
sys.exit(rc)
"""


def _contacted(d: Path) -> Optional[str]:
    p = d / "home" / "CONTACTED"
    return f"offline, yet the server was contacted: {p.read_text()[:200]}" if p.exists() else None


def _add_network_cases() -> None:
    bodies = {
        "none": "b''", "random": "os.urandom(4096)",
        "legacy_bomb": "__import__('hostile').legacy_file(__import__('hostile').shared_tuple_key(60))",
        "code_pickle": f"__import__('hostile').zip_file(b'\\x80\\x02cos\\nsystem\\nX\\x0b\\x00\\x00\\x00touch "
                       f"{SENTINEL}\\x85R.')",
        "zip_bomb": "__import__('hostile').zip_bomb(1200)",
    }
    lib_modes = [("404", "none"), ("500", "none"), ("body", "random"), ("body", "legacy_bomb"), ("body", "code_pickle"),
                 ("body", "zip_bomb"), ("truncate", "random"), ("stall", "none"), ("stall_headers", "none"),
                 ("trickle", "random"), ("endless", "none"), ("endless_chunked", "none"), ("bad_chunks", "none"),
                 ("huge_length", "none"), ("neg_length", "none"), ("gzip_bomb", "none"), ("endless_headers", "none"),
                 ("long_header_line", "none"), ("garbage_status", "none"), ("http09", "none"),
                 ("redirect_loop", "none"), ("redirect_file", "none"), ("redirect_closed", "none"),
                 ("redirect_long", "none"), ("html", "none"), ("reset", "none")]
    for mode, body in lib_modes:
        case(f"network.load.{mode}.{body}", lambda d, fix, mode=mode, body=body: snippet(
            _net_lib(mode, bodies[body])), lib=True, outputs=("home",), check=sentinel_absent,
            names=("darts-cifar10",))
    cli_modes = [("404", "none"), ("body", "random"), ("body", "legacy_bomb"), ("body", "code_pickle"),
                 ("trickle", "random"), ("endless", "none"), ("gzip_bomb", "none"), ("garbage_status", "none"),
                 ("redirect_loop", "none"), ("html", "none"), ("huge_length", "none"), ("endless_headers", "none")]
    for mode, body in cli_modes:
        # a trickle of 40 bytes (4 s): the CLI's deadline (30 min) is not shortened here
        case(f"network.download_cli.{mode}.{body}", lambda d, fix, mode=mode, body=body: snippet(
            _net_cli(mode, ["download", "darts-cifar10"], "os.urandom(40)" if mode == "trickle" else bodies[body])),
            outputs=("home",), check=sentinel_absent, names=("darts-cifar10",), timeout=45)
    # offline: nothing is contacted
    offline = {
        "push": lambda d: ["push", str(FIXTURES / "saved"), "org/repo"],
        "push_token": lambda d: ["push", str(FIXTURES / "saved"), "org/repo", "--token", "hf_xxx"],
        "push_missing_dir": lambda d: ["push", str(d / "nope"), "org/repo"],
        "push_bad_repo": lambda d: ["push", str(FIXTURES / "saved"), "../../x"],
        "download": lambda d: ["download", "darts-cifar10"],
        "download_all": lambda d: ["download", "--all"],
        "eval_name": lambda d: ["eval", "darts-cifar10", "--data", str(FIXTURES / "cifar"), "--no-download"],
        "eval_hub": lambda d: ["eval", "hf-hub:org/repo", "--data", str(FIXTURES / "cifar"), "--no-download"],
    }
    for flag in ("DARTS_ZOO_OFFLINE", "HF_HUB_OFFLINE"):
        for label, args in offline.items():
            def make(d, fix, args=args, flag=flag):
                os.environ[flag] = "1"  # the build runs in its own child; the case's env is set below
                return snippet(f"import os\nos.environ[{flag!r}] = '1'\nos.environ['HF_TOKEN'] = 'hf_fake'\n"
                               + _net_cli("404", args(d), offline_check=True))
            case(f"network.offline.{flag}.{label}", make, outputs=("home",), check=_contacted,
                 names=("offline", "OFFLINE", "{d}", "org/repo"))
    case("network.offline.export_push", lambda d, fix: snippet(
        "import os, sys\nos.environ['DARTS_ZOO_OFFLINE'] = '1'\n" + SERVER.replace("REQUESTS = []", "REQUESTS = []")
        + f"\nurl = start('404')\nos.environ['HF_ENDPOINT'] = url\nimport reproduce.__main__ as M\n"
        f"rc = M.main(['export', {str(d / 'run')!r}, '--out', {str(d / 'out')!r}, '--push', 'org/repo'])\n"
        f"if REQUESTS: open('home/CONTACTED', 'w').write(repr(REQUESTS))\nsys.exit(rc)") if _run_copy(d) else None,
        outputs=("out", "home"), check=_contacted, names=("offline", "OFFLINE"), needs=("run",), expect="refuse")
    case("network.lib.load_hub_offline", lambda d, fix: snippet(
        "import os\nos.environ['DARTS_ZOO_OFFLINE'] = '1'\nimport zoo\nzoo.load('hf-hub:org/repo')"), lib=True,
        outputs=("home",), names=("org/repo", "offline"))
    case("network.lib.prefix_garbage", lambda d, fix: snippet(
        "import os\nos.environ['DARTS_ZOO_URL_PREFIX'] = 'ht!tp://[::1'\nimport zoo\nzoo.load('darts-cifar10')"),
        lib=True, outputs=("home",), names=("darts-cifar10",))
    case("network.lib.prefix_file_scheme", lambda d, fix: snippet(
        "import os\nos.environ['DARTS_ZOO_URL_PREFIX'] = 'file:///etc'\nimport zoo\nzoo.load('darts-cifar10')"),
        lib=True, outputs=("home",), names=("darts-cifar10",))
    case("network.lib.home_is_file", lambda d, fix: (_write(d / "homefile", b"x"), snippet(
        f"import os\nos.environ['DARTS_ZOO_HOME'] = {str(d / 'homefile')!r}\nimport zoo\nzoo.load('darts-cifar10')"
    ))[1], lib=True, outputs=(), names=("darts-cifar10", "homefile"))


# ============================================================================================ running

FIXTURES = Path()  # set by main


def build_fixtures(fix: Path, need_run: bool) -> None:
    import torch
    from train_helpers import make_cifar
    from zoo_testutil import write_legacy

    import zoo
    torch.manual_seed(0)
    if not (fix / "cifar").is_dir():
        make_cifar(fix / "cifar")
    if not (fix / "saved").is_dir():
        model = zoo.NetworkCIFAR(4, 10, 3, False, "DARTS_V2")
        zoo.save_pretrained(model, fix / "saved", card=False)
        sd = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
        torch.save(sd, fix / "sd_zip.pt")
        write_legacy(sd, fix / "sd_legacy.pt")
    if need_run and not (fix / "run" / "record.json").is_file():
        args = ["train", "cifar10", "--out", str(fix / "run"), "--data", str(fix / "cifar"), *TRAIN_TINY]
        r = subprocess.run([sys.executable, "-m", "reproduce", *args], capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=str(fix))
        if r.returncode != 0:
            raise RuntimeError(f"could not train the fixture run: {r.stderr[-2000:]}")


def _clean_exception(e: BaseException) -> bool:
    roots = {c.__module__.split(".")[0] for c in type(e).__mro__}
    return isinstance(e, (ValueError, OSError)) or bool(roots & set(CLEAN_EXCEPTION_ROOTS))


def child_entry(argv: List[str], lib: bool) -> int:
    """Run one case's command in this (child) process as `python -m` or `python -c` would; returns the exit code."""
    import runpy
    mode, target, *rest = argv
    code = 0
    try:
        if mode == "-m":
            sys.argv = [target, *rest]
            runpy.run_module(target, run_name="__main__", alter_sys=True)
        else:
            sys.argv = ["-c", *rest]
            try:
                exec(compile(target, "<case>", "exec"), {"__name__": "__main__"})
            except Exception as e:  # noqa: BLE001 - classified: a clean refusal or an internal error
                if lib and _clean_exception(e):
                    print(f"REFUSED {type(e).__name__}: {e}", file=sys.stderr)
                    code = 2
                else:
                    raise
    except SystemExit as e:
        c = e.code
        if c is None:
            code = 0
        elif isinstance(c, int):
            code = c
        else:
            print(c, file=sys.stderr)
            code = 1
    except BaseException:  # noqa: BLE001 - as the interpreter does: print it, exit 1
        traceback.print_exc()
        code = 1
    return code


def _finish_child(code: int, peak_file: str) -> None:
    import atexit
    import threading
    for t in threading.enumerate():  # as the interpreter's exit: wait for the non-daemon threads
        if t is not threading.main_thread() and not t.daemon:
            t.join()
    try:
        atexit._run_exitfuncs()
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001
        pass
    try:
        with open("/proc/self/status") as f:
            kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
        Path(peak_file).write_text(str(kb))
    except (OSError, StopIteration, ValueError):
        pass
    os._exit(code & 0xFF if code >= 0 else 1)


def _limits() -> None:
    os.setsid()
    resource.setrlimit(resource.RLIMIT_DATA, (DATA_LIMIT, DATA_LIMIT))
    resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _case_env(d: Path) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DARTS_ZOO", "HF_", "XDG_"))}
    home = d / "home"
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), MPLCONFIGDIR=str(home / "mpl"),
               DARTS_ZOO_HOME=str(home / "zoo"), HF_HOME=str(home / "hf"), PYTHONDONTWRITEBYTECODE="1",
               PYTHONPATH=os.pathsep.join([str(REPO), str(HERE), str(HERE / "zoo"), str(HERE / "reproduce")]),
               OMP_NUM_THREADS="1", TQDM_DISABLE="1", WANDB_MODE="disabled")
    return env


def _fork_run(argv: List[str], lib: bool, d: Path, env: Dict[str, str], out: Path, err: Path, peak: Path) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            _limits()
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 1)
            os.dup2(os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
            os.chdir(d)
            os.environ.clear()
            os.environ.update(env)
            sys.path[:] = [p for p in sys.path if p not in ("",)] + [str(d)]
            signal.signal(signal.SIGINT, signal.default_int_handler)
            code = child_entry(argv, lib)
        except BaseException:  # noqa: BLE001
            traceback.print_exc()
        _finish_child(code, str(peak))
    return pid


def _fresh_run(argv, lib, d, env, out, err, peak) -> int:
    p = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(
        {"argv": argv, "lib": lib, "peak": str(peak)})], stdin=subprocess.DEVNULL, stdout=open(out, "wb"),
        stderr=open(err, "wb"), cwd=d, env=env, preexec_fn=_limits)
    return p.pid


def _group_memory(pgid: int) -> Tuple[float, float]:
    """(sum of VmRSS, max VmHWM) in MB over the processes of group ``pgid``."""
    total, hwm = 0.0, 0.0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                stat = f.read()
            if int(stat.rsplit(")", 1)[1].split()[2]) != pgid:
                continue
            with open(f"/proc/{entry.name}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) / 1024
                    elif line.startswith("VmHWM:"):
                        hwm = max(hwm, int(line.split()[1]) / 1024)
        except (OSError, ValueError, IndexError):
            continue
    return total, hwm


def _snapshot(d: Path, outputs: Sequence[str]) -> Dict[str, Tuple]:
    skip = [d / o for o in outputs] + [d / "home"]
    snap = {}
    for root, dirs, files in os.walk(d):
        rp = Path(root)
        dirs[:] = [x for x in dirs if not any(rp / x == s or s in (rp / x).parents for s in skip)]
        for name in files + [x for x in dirs]:
            p = rp / name
            if any(p == s or s in p.parents for s in skip):
                continue
            try:
                st = os.lstat(p)
            except OSError:
                continue
            digest = None
            if name in files and not os.path.islink(p) and os.path.isfile(p) and st.st_size < (64 << 20):
                with open(p, "rb") as f:
                    digest = hashlib.sha1(f.read()).hexdigest()
            snap[str(p.relative_to(d))] = (st.st_mode, st.st_size, digest)
    return snap


@dataclass
class Outcome:
    name: str
    area: str
    category: str
    reasons: List[str]
    rc: Optional[int]
    seconds: float
    peak_mb: Optional[float]
    stderr_tail: str
    argv: List[str] = field(default_factory=list)


def _message(stderr: str) -> str:
    """The refusal as a user reads it: stderr without log lines, warnings and argparse's usage block (argparse
    prints the command's usage before its one-line ``PROG: error: ...``; that block is not counted)."""
    lines, in_usage = [], False
    for ln in stderr.splitlines():
        if ln.startswith("usage: "):
            in_usage = True
        if in_usage and ARGPARSE_ERROR.match(ln):
            in_usage = False
        if in_usage or not ln.strip() or LOG_LINE.match(ln) or "UserWarning" in ln or ln.startswith("  warnings.warn"):
            continue
        if PROGRESS.search(ln):  # a progress bar (tqdm's, gdown's) drawn on stderr, not a message
            continue
        lines.append(ln)
    return "\n".join(lines).strip()


def classify(c: Case, d: Path, rc: Optional[int], timed_out: bool, killed_for_memory: bool, peak: Optional[float],
             stderr: str, before: Dict, after: Dict) -> Tuple[str, List[str]]:
    severe, moderate = [], []
    if timed_out:
        severe.append(f"hang: still running after {c.timeout:g} s (killed)")
    if killed_for_memory:
        severe.append(f"its processes together passed {GROUP_KILL_MB:g} MB resident (killed)")
    if rc is not None and rc < 0 and not timed_out and not killed_for_memory:
        severe.append(f"killed by signal {-rc}")
    if peak is not None and peak > MAX_RSS_MB:
        severe.append(f"peak RSS {peak:.0f} MB > {MAX_RSS_MB:g} MB")
    if "Traceback (most recent call last)" in stderr:
        severe.append("a Python traceback on stderr")
    if "MemoryError" in stderr and "Traceback" not in stderr:
        moderate.append("ran out of memory (MemoryError under the 3 GB data limit)")
    for path in sorted(set(before) - set(after)):
        severe.append(f"deleted {path} (outside the named outputs)")
    for path in sorted(set(before) & set(after)):
        if before[path] != after[path]:
            severe.append(f"changed {path} (outside the named outputs)")
    new = sorted(set(after) - set(before))
    if new:
        moderate.append(f"wrote outside the named outputs: {', '.join(new[:5])}")
    if c.check is not None and not timed_out:
        try:
            finding = c.check(d)
        except Exception as e:  # noqa: BLE001
            finding = f"check failed: {type(e).__name__}: {e}"
        if finding:
            severe.append(finding)
    elif c.check is not None and (d / SENTINEL).exists():
        severe.append(f"code from the input ran: {SENTINEL} was created")
    finished = rc is not None and not timed_out and not killed_for_memory and rc >= 0
    if finished and rc == 0 and c.expect == "refuse":
        severe.append("accepted (exit 0) an input that must be refused")
    if finished and rc != 0:
        msg = _message(stderr)
        lines = msg.splitlines()
        report = "no weights for" in msg and "tried:" in msg
        max_chars, max_lines = (4000, 20) if report else (MAX_MESSAGE_CHARS, MAX_MESSAGE_LINES)
        if len(msg) > max_chars or len(lines) > max_lines or any(len(ln) > 600 for ln in lines if report):
            moderate.append(f"message of {len(msg)} characters on {len(lines)} lines")
        if not msg:
            moderate.append("refused without a message")
        if re.search(r"object at 0x[0-9a-f]+>", msg):
            moderate.append("a Python object's repr on stderr: " + re.search(r".{0,40}object at 0x[0-9a-f]+>", msg)[0])
        names = [n.replace("{d}", str(d)) for n in c.names]
        if names and msg and not any(n.lower() in msg.lower() for n in names):
            moderate.append(f"the message names none of {[n.replace(str(d), '<case>') for n in names]}")
        if c.expect == "accept":
            moderate.append("refused an input that should be accepted")
    if severe:
        return "severe", severe + moderate
    if moderate:
        return "moderate", moderate
    return "clean", []


def run_case(c: Case, work: Path, fresh: bool, keep: Optional[Path]) -> Outcome:
    d = work / re.sub(r"[^\w.-]", "_", c.name)[:150]
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    (d / "home").mkdir()
    logs = work / ".logs"
    logs.mkdir(exist_ok=True)
    out, err, peak_file, argv_file = (logs / f"{d.name}.{x}" for x in ("out", "err", "peak", "argv"))
    for p in (out, err, peak_file, argv_file):
        p.unlink(missing_ok=True)
    # the input is built in its own child, so that the builders leave nothing behind in this process
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.chdir(d)
            argv = [str(a) for a in c.make(d, FIXTURES)]
            argv_file.write_text(json.dumps(argv))
        except BaseException:  # noqa: BLE001
            err.write_text(traceback.format_exc())
            code = 3
        sys.stdout.flush()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0 or not argv_file.exists():
        return Outcome(c.name, c.area, "error", ["could not build the input: " + err.read_text()[-800:]], None, 0.0,
                       None, "")
    argv = json.loads(argv_file.read_text())
    before = _snapshot(d, c.outputs)
    env = _case_env(d)
    t0 = time.monotonic()
    pid = (_fresh_run if fresh else _fork_run)(argv, c.lib, d, env, out, err, peak_file)
    timeout = c.timeout * (3 if fresh else 1)
    timed_out = killed_mem = False
    group_hwm = 0.0
    status = None
    while True:
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = st
            break
        total, hwm = _group_memory(pid)
        group_hwm = max(group_hwm, hwm)
        if total > GROUP_KILL_MB:
            killed_mem = True
        if time.monotonic() - t0 > timeout:
            timed_out = True
        if timed_out or killed_mem:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _, status = os.waitpid(pid, 0)
            break
        time.sleep(0.2)
    seconds = time.monotonic() - t0
    try:
        os.killpg(pid, signal.SIGKILL)  # whatever the case left running in its group
    except (ProcessLookupError, PermissionError):
        pass
    rc = os.waitstatus_to_exitcode(status) if status is not None else None
    peak = None
    try:
        peak = int(peak_file.read_text()) / 1024
    except (OSError, ValueError):
        pass
    peak = max(x for x in (peak, group_hwm or None, 0.0) if x is not None)
    stderr = err.read_text(errors="replace") if err.exists() else ""
    after = _snapshot(d, c.outputs)
    category, reasons = classify(c, d, rc, timed_out, killed_mem, peak or None, stderr, before, after)
    tail = "\n".join(stderr.strip().splitlines()[-3:])[-600:]
    if keep is not None and category != "clean":
        try:  # FIFOs and other special files are left out (copying one would block)
            shutil.copytree(d, keep / d.name, symlinks=True, dirs_exist_ok=True, ignore=lambda root, names: [
                n for n in names if not os.path.islink(os.path.join(root, n)) and not os.path.isdir(
                    os.path.join(root, n)) and not os.path.isfile(os.path.join(root, n))])
            for p in (out, err):
                if p.exists():
                    shutil.copy(p, keep / d.name / f"_sweep_{p.suffix[1:]}.txt")
        except (OSError, shutil.Error) as e:
            print(f"could not keep {d}: {e}", file=sys.stderr)
    _rmtree(d)
    shown = [a if len(a) < 200 else a[:120] + f"...<{len(a)} chars>" for a in argv]
    return Outcome(c.name, c.area, category, reasons, rc, seconds, peak, tail, shown)


def _rmtree(d: Path) -> None:
    for root, dirs, _files in os.walk(d):  # a FIFO or a read-only dir must not stop the cleanup
        for x in dirs:
            try:
                os.chmod(Path(root) / x, 0o755)
            except OSError:
                pass
    shutil.rmtree(d, ignore_errors=True)


def all_cases() -> List[Case]:
    if not CASES:
        _add_pickle_cases()
        _add_saved_cases()
        _add_cli_cases()
        _add_run_cases()
        _add_network_cases()
        names = [c.name for c in CASES]
        dup = {n for n in names if names.count(n) > 1}
        assert not dup, dup
    return CASES


def _preimport() -> None:
    """The heavy third-party modules the children would import anyway (torch, numpy, safetensors, yaml); never
    the project's packages, nor modules that read the environment when imported (huggingface_hub)."""
    import numpy  # noqa: F401
    import safetensors.torch  # noqa: F401
    import torch  # noqa: F401
    import yaml  # noqa: F401

    os.environ.setdefault("MPLBACKEND", "Agg")
    import hostile  # noqa: F401  (tests/zoo: torch and the standard library only)
    import matplotlib.pyplot  # noqa: F401  (the harness's command line imports both: seconds each)
    import scipy.stats  # noqa: F401


def summarize(outcomes: List[Outcome]) -> str:
    cats = ("clean", "moderate", "severe", "error")
    areas = sorted({o.area for o in outcomes})
    lines = [f"{'area':<10} {'total':>6} " + " ".join(f"{c:>9}" for c in cats)]
    for a in areas + ["all"]:
        sel = [o for o in outcomes if a == "all" or o.area == a]
        lines.append(f"{a:<10} {len(sel):>6} " + " ".join(f"{sum(o.category == c for o in sel):>9}" for c in cats))
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    global FIXTURES
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", action="append", default=[], help="run only cases whose name starts with this (repeat)")
    p.add_argument("--name", action="append", default=[], help="run only the case of this exact name (repeat)")
    p.add_argument("--json", type=Path, help="write every outcome to this JSON file")
    p.add_argument("--fresh", action="store_true", help="a new interpreter per case instead of the fork server")
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    p.add_argument("--keep", type=Path, help="copy the directories of non-clean cases here")
    p.add_argument("--fixtures", type=Path, help="directory for the shared fixtures (kept between sweeps)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        spec = json.loads(args.child)
        _finish_child(child_entry(spec["argv"], spec["lib"]), spec["peak"])
    cases = [c for c in all_cases() if (not args.only and not args.name) or c.name in args.name
             or (args.only and c.name.startswith(tuple(args.only)))]
    if args.list:
        for c in cases:
            print(c.name)
        print(f"{len(cases)} cases")
        return 0
    work = Path(tempfile.mkdtemp(prefix="hostile-sweep-"))
    FIXTURES = (args.fixtures or work / "fixtures").resolve()
    FIXTURES.mkdir(parents=True, exist_ok=True)
    need_run = any("run" in c.needs for c in cases)
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            build_fixtures(FIXTURES, need_run)
        except BaseException:  # noqa: BLE001
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        os._exit(code)
    _, st = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(st) != 0:
        print("could not build the fixtures", file=sys.stderr)
        return 2
    if not args.fresh:
        os.environ["MPLCONFIGDIR"] = str(work / "mpl")
        _preimport()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    outcomes = []
    t0 = time.monotonic()
    print(f"{len(cases)} cases, {'a fresh interpreter' if args.fresh else 'a fork'} each; work dir {work}",
          flush=True)
    for i, c in enumerate(cases, 1):
        o = run_case(c, work, args.fresh, args.keep)
        outcomes.append(o)
        flag = "" if o.category == "clean" else f"  <-- {o.category}: {'; '.join(o.reasons)[:300]}"
        print(f"[{i:>3}/{len(cases)} {time.monotonic() - t0:6.0f}s] {o.seconds:5.1f}s {o.peak_mb or 0:6.0f}MB "
              f"rc={o.rc} {c.name}{flag}",
              flush=True)
    elapsed = time.monotonic() - t0
    print()
    print(summarize(outcomes))
    peak = max((o.peak_mb or 0) for o in outcomes)
    print(f"\n{len(outcomes)} cases in {elapsed:.0f} s; peak RSS of any case {peak:.0f} MB; slowest "
          f"{max(o.seconds for o in outcomes):.1f} s")
    bad = [o for o in outcomes if o.category != "clean"]
    for o in bad:
        print(f"\n{o.category.upper()} {o.name} (rc={o.rc}, {o.seconds:.1f} s, {o.peak_mb or 0:.0f} MB)")
        for r in o.reasons:
            print(f"  - {r}")
        print("  argv: " + " ".join(o.argv)[:400])
        if o.stderr_tail:
            print("  stderr: " + o.stderr_tail.replace("\n", "\n          "))
    if args.json:
        args.json.write_text(json.dumps({"elapsed_s": elapsed, "outcomes": [o.__dict__ for o in outcomes]}, indent=1))
    if not args.fixtures:
        _rmtree(work)
    else:
        _rmtree(work)
    return 1 if any(o.category in ("severe", "error") for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
