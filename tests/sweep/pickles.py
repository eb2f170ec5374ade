"""Cases of the ``pickles`` area: legacy and zip checkpoints."""
from __future__ import annotations

import struct
import zipfile
from pathlib import Path
from typing import Callable, Dict

from . import cases as _cases
from .cases import SENTINEL, case, lib_load, sentinel_absent, user_files, zoo_cli

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
                blob = (_cases.FIXTURES / fix_name).read_bytes()
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
                        f"sd = torch.load({str(_cases.FIXTURES / 'sd_zip.pt')!r})\n"
                        f"k = 'stem.0.weight'\nt = sd[k]\n{edit}\n")
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


