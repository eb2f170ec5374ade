"""Hostile inputs for the zoo's readers, built here byte by byte, and a runner that bounds what reading them costs.

Builders (each returns bytes in a real on-disk format):

- :func:`legacy_file`: a legacy ``torch.save`` file around a hand-written object pickle (or header pickles);
- :func:`zip_file`: a zip-format ``torch.save`` file whose ``data.pkl`` is replaced by a hand-written pickle;
- :func:`zip_bomb`: a zip-format file whose one storage is deflated: about 1 kB per MB it claims;
- the pickle bodies: a tuple key nested ``depth`` levels deep, each level sharing the one below
  (:func:`shared_tuple_key`, :func:`shared_tuple_set_items`, :func:`set_of_shared_tuples`) and a list
  built the same way (:func:`shared_list`), whose ``repr`` has ``2**depth`` items.

:func:`run_bounded` runs snippets of Python in a child process under a memory limit and reports, for
each, the exception it raised, its message and the seconds it took, with the child's peak RSS.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import resource
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import torch
from child_bounds import MAX_SECONDS, run_child, wall_budget
from zoo_testutil import MAGIC, PROTOCOL, SYS_INFO

_HERE = Path(__file__).resolve().parent


# ----------------------------------------------------------------------------------------------- pickles


def _get(i: int) -> bytes:
    return b"h" + bytes([i]) if i < 256 else b"j" + struct.pack("<I", i)


def _put(i: int) -> bytes:
    return b"q" + bytes([i]) if i < 256 else b"r" + struct.pack("<I", i)


def _shared_tuples(depth: int) -> bytes:
    """Pushes t_depth where t_0 = () and t_{i+1} = (t_i, t_i), each memoised: a few bytes a level."""
    body = b")" + _put(0)
    for i in range(depth):
        body += b"0" + _get(i) + _get(i) + b"\x86" + _put(i + 1)
    return body


def shared_tuple_key(depth: int) -> bytes:
    """``{t_depth: 1}``: hashing the key visits 2**depth tuples."""
    return b"\x80\x02}" + _shared_tuples(depth) + b"K\x01s."


def shared_tuple_set_items(depth: int) -> bytes:
    """A set holding t_depth (protocol 4's EMPTY_SET + ADDITEMS)."""
    return b"\x80\x04\x8f(" + _shared_tuples(depth) + b"\x90."


def set_of_shared_tuples(depth: int) -> bytes:
    """``builtins.set([t_depth])``: a set built the way protocol 2 pickles one (and the allow-list permits)."""
    return b"\x80\x02c__builtin__\nset\n" + _shared_tuples(depth) + b"\x85\x85R."


def shared_list(depth: int) -> bytes:
    """l_depth where l_0 = [] and l_{i+1} = [l_i, l_i], pushed without a STOP (to be wrapped)."""
    body = b"]" + _put(0)
    for i in range(depth):
        body += b"0(" + _get(i) + _get(i) + b"l" + _put(i + 1)
    return body


# ----------------------------------------------------------------------------------------------- files


def legacy_file(object_pickle: bytes, magic: bytes = None, protocol: bytes = None) -> bytes:
    """A legacy torch.save file whose object pickle (and optionally magic or protocol pickle) is given."""
    f = io.BytesIO()
    f.write(magic if magic is not None else pickle.dumps(MAGIC, protocol=2))
    f.write(protocol if protocol is not None else pickle.dumps(PROTOCOL, protocol=2))
    f.write(pickle.dumps(SYS_INFO, protocol=2))
    f.write(object_pickle)
    f.write(pickle.dumps([], protocol=2))
    return f.getvalue()


def _torch_zip_entries() -> List[Tuple[str, bytes]]:
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(7)}, buf)
    z = zipfile.ZipFile(buf)
    return [(i.filename, z.read(i)) for i in z.infolist()]


def zip_file(data_pkl: bytes) -> bytes:
    """A zip-format torch.save file with ``data_pkl`` as its pickle (the other records as torch writes them)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in _torch_zip_entries():
            z.writestr(name, data_pkl if name.endswith("/data.pkl") else data)
    return out.getvalue()


def _raw_zip(entries: Sequence[Tuple[str, bytes, int, int, int]]) -> bytes:
    """A zip of (name, stored bytes, method, crc, uncompressed size) entries, written by hand (zipfile cannot
    write an entry compressed elsewhere)."""
    out, central = io.BytesIO(), io.BytesIO()
    for name, data, method, crc, size in entries:
        offset = out.tell()
        fields = (20, 0, method, 0, 0x21, crc, len(data), size, len(name), 0)
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, *fields) + name.encode() + data)
        central.write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, *fields, 0, 0, 0, 0, offset)
                      + name.encode())
    start, directory = out.tell(), central.getvalue()
    n = len(entries)
    return out.getvalue() + directory + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, len(directory), start, 0)


def zip_bomb(megabytes: int) -> bytes:
    """torch.save of ``{"w": tensor}`` whose float32 storage claims ``megabytes`` MB, deflated to ~1 kB per MB.

    Deflate blocks ended by a full flush do not depend on what came before, so one compressed megabyte of
    zeros repeated is the stream of many.
    """
    numel = (megabytes << 20) // 4
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(bytes(1 << 20)) + c.flush(zlib.Z_FULL_FLUSH)
    stream = block * megabytes + c.flush()
    crc = 0
    for _ in range(megabytes):
        crc = zlib.crc32(bytes(1 << 20), crc)
    entries = []
    for name, data in _torch_zip_entries():
        if name.endswith("/data.pkl"):
            data = data.replace(b"K\x07", b"J" + struct.pack("<i", numel))  # the storage's and tensor's sizes
        if name.endswith("/data/0"):
            entries.append((name, stream, 8, crc, megabytes << 20))
        else:
            entries.append((name, data, 0, zlib.crc32(data), len(data)))
    return _raw_zip(entries)


# ----------------------------------------------------------------------------------------------- the runner

MAX_RSS_MB = 1200  # peak RSS of the child that refuses the inputs (importing torch and the zoo is about 520 MB)
DATA_LIMIT_MB = 3000  # RLIMIT_DATA of the child: a regression fails with MemoryError instead of eating the machine

_CHILD = r"""
import json, sys, time
import zoo, zoo.loader, zoo.__main__  # imported before any case is timed
cases = json.loads(sys.argv[1])
for label, code in cases:
    t = time.monotonic()
    try:
        exec(code, {"__name__": "case", "zoo": zoo})
        result = {"error": None, "message": ""}
    except BaseException as e:  # noqa: B902 - every outcome is reported
        text = str(e)
        result = {"error": type(e).__name__, "message": text[:4000], "length": len(text)}
    result.update(label=label, seconds=time.monotonic() - t)
    print(json.dumps(result), flush=True)
"""


def _limit_data() -> None:
    limit = DATA_LIMIT_MB << 20
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def run_bounded(cases: Sequence[Tuple[str, str]], timeout: float = None, env: Dict[str, str] = None):
    """Run each ``(label, code)`` in one child process; returns ({label: result}, peak RSS in MB, the child's
    own: see tests/child_bounds.py; None where the platform cannot tell).

    A child still running after ``timeout`` seconds is killed and the test fails, so a hang cannot stall the suite.
    """
    timeout = wall_budget(MAX_SECONDS) if timeout is None else timeout
    extra = {**(env or {}), "PYTHONPATH": os.pathsep.join([str(_HERE), (env or os.environ).get("PYTHONPATH", "")])}
    r = run_child("-c", _CHILD, [json.dumps(list(cases))], env=extra, wall_timeout=timeout, preexec_fn=_limit_data)
    if r.returncode == -9:
        raise AssertionError(f"the hostile inputs were still being read after {timeout:.0f} s: killed")
    results = {x["label"]: x for x in map(json.loads, r.stdout.splitlines())}
    assert r.returncode == 0 and len(results) == len(cases), r.stderr[-3000:]
    return results, r.peak_rss_mb
