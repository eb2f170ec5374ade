"""Cases of the ``network`` area: a local HTTP server misbehaving; offline pushes."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

from . import cases as _cases
from .cases import SENTINEL, case, sentinel_absent, snippet
from .pickles import _write
from .runs import _run_copy

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
        "push": lambda d: ["push", str(_cases.FIXTURES / "saved"), "org/repo"],
        "push_token": lambda d: ["push", str(_cases.FIXTURES / "saved"), "org/repo", "--token", "hf_xxx"],
        "push_missing_dir": lambda d: ["push", str(d / "nope"), "org/repo"],
        "push_bad_repo": lambda d: ["push", str(_cases.FIXTURES / "saved"), "../../x"],
        "download": lambda d: ["download", "darts-cifar10"],
        "download_all": lambda d: ["download", "--all"],
        "eval_name": lambda d: ["eval", "darts-cifar10", "--data", str(_cases.FIXTURES / "cifar"), "--no-download"],
        "eval_hub": lambda d: ["eval", "hf-hub:org/repo", "--data", str(_cases.FIXTURES / "cifar"), "--no-download"],
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


