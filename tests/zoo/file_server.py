"""A small HTTP file server on 127.0.0.1 for tests of the zoo's downloads, with misbehaving routes.

``server.files[path] = bytes`` serves a file. ``server.faults[path]`` makes a route misbehave:
``404``, ``500``, ``"truncate"`` (announces the full length, sends a tenth, closes), ``"stall"``
(waits ``stall_s`` seconds before answering), ``"trickle"`` (announces the full length, then sends one
byte every ``trickle_s`` seconds) or ``"endless"`` (no length, zeros until the client hangs up; a
``files`` entry is not needed). Every request is recorded in ``server.requests``.
"""
from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FileServer:
    def __init__(self, stall_s: float = 5.0, trickle_s: float = 0.2):
        self.files = {}
        self.faults = {}
        self.requests = []
        self.stall_s = stall_s
        self.trickle_s = trickle_s
        self._server = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FileServer":
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the http.server name
                owner.requests.append(self.path)
                fault = owner.faults.get(self.path)
                if fault == "endless":
                    self._endless()
                    return
                if fault in (404, 500) or (fault is None and self.path not in owner.files):
                    self.send_error(fault or 404)
                    return
                if fault == "stall":
                    time.sleep(owner.stall_s)
                data = owner.files[self.path]
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if fault == "trickle":
                    self._trickle(data)
                    return
                self.wfile.write(data[: len(data) // 10] if fault == "truncate" else data)
                self.close_connection = True

            def _trickle(self, data):
                for i in range(len(data)):
                    try:
                        self.wfile.write(data[i:i + 1])
                        self.wfile.flush()
                    except OSError:  # the client gave up
                        return
                    time.sleep(owner.trickle_s)

            def _endless(self):
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                self.close_connection = True
                block = bytes(64 * 1024)
                while True:
                    try:
                        self.wfile.write(block)
                    except OSError:  # the client hung up
                        return

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
