"""A tiny Hugging Face Hub look-alike on 127.0.0.1 for tests, serving what huggingface_hub asks for.

Endpoints (as the installed huggingface_hub client calls them):

- ``HEAD|GET /{org}/{name}/resolve/{revision}/{path}``: file metadata (``X-Repo-Commit``, ``ETag``,
  ``Content-Length``) and content;
- ``GET /api/models/{org}/{name}/revision/{revision}``: repo info with its files;
- ``POST /api/validate-yaml`` (the card's metadata block), ``POST /api/repos/create``,
  ``POST /api/models/{org}/{name}/preupload/{revision}`` (every file
  "regular") and ``POST /api/models/{org}/{name}/commit/{revision}`` (ndjson, base64 contents):
  what ``HfApi.create_repo`` / ``upload_folder`` use.

Every request is recorded in ``hub.requests`` as ``(method, path)``.
"""
from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


class FakeHub:
    def __init__(self):
        self.repos = {}  # repo_id -> {"refs": {name: sha}, "commits": {sha: {path: bytes}}}
        self.requests = []
        self._server = None
        self._thread = None

    # -- repository state ---------------------------------------------------------------
    def add_commit(self, repo_id: str, files: dict, branch: str = "main") -> str:
        repo = self.repos.setdefault(repo_id, {"refs": {}, "commits": {}})
        parent = repo["refs"].get(branch)
        tree = dict(repo["commits"].get(parent, {}))
        tree.update(files)
        h = hashlib.sha1((parent or "").encode())
        for k in sorted(tree):
            h.update(k.encode() + hashlib.sha256(tree[k]).digest())
        sha = h.hexdigest()
        repo["commits"][sha] = tree
        repo["refs"][branch] = sha
        return sha

    def resolve(self, repo_id, revision):
        repo = self.repos.get(repo_id)
        if repo is None:
            return None, None
        sha = repo["refs"].get(revision, revision if revision in repo["commits"] else None)
        return sha, (repo["commits"].get(sha) if sha else None)

    # -- server -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeHub":
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, code, body=b"", headers=None, head=False):
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head and body:
                    self.wfile.write(body)

            def _json(self, code, obj, headers=None):
                self._send(code, json.dumps(obj).encode(), {"Content-Type": "application/json", **(headers or {})})

            def _error(self, code, msg, kind="EntryNotFound", headers=None, head=False):
                self._send(code, json.dumps({"error": msg}).encode(),
                           {"Content-Type": "application/json", "X-Error-Code": kind, "X-Error-Message": msg,
                            **(headers or {})}, head=head)

            def _body(self):
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _resolve_file(self, head):
                parts = unquote(urlsplit(self.path).path).strip("/").split("/")
                if len(parts) < 5 or parts[2] != "resolve":
                    return self._error(404, "not found", "RepoNotFound", head=head)
                repo_id, revision, filename = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
                if repo_id not in hub.repos:
                    return self._error(401, f"Repository {repo_id} not found", "RepoNotFound", head=head)
                sha, tree = hub.resolve(repo_id, revision)
                if tree is None:
                    return self._error(404, f"Invalid rev id: {revision}", "RevisionNotFound", head=head)
                if filename not in tree:
                    return self._error(404, f"{filename} not found", "EntryNotFound", {"X-Repo-Commit": sha},
                                       head=head)
                data = tree[filename]
                self._send(200, data, {"X-Repo-Commit": sha, "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                                       "Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"},
                           head=head)

            def do_HEAD(self):
                hub.requests.append(("HEAD", self.path))
                self._resolve_file(head=True)

            def do_GET(self):
                hub.requests.append(("GET", self.path))
                path = unquote(urlsplit(self.path).path)
                if path.startswith("/api/models/"):
                    parts = path[len("/api/models/"):].split("/")
                    repo_id = "/".join(parts[:2])
                    revision = parts[3] if len(parts) > 3 and parts[2] == "revision" else "main"
                    sha, tree = hub.resolve(repo_id, revision)
                    if tree is None:
                        return self._error(404, f"{repo_id}@{revision} not found", "RepoNotFound")
                    return self._json(200, {"id": repo_id, "modelId": repo_id, "sha": sha, "private": False,
                                            "siblings": [{"rfilename": k} for k in sorted(tree)]})
                self._resolve_file(head=False)

            def do_POST(self):
                hub.requests.append(("POST", self.path))
                path = unquote(urlsplit(self.path).path)
                body = self._body()
                if path == "/api/validate-yaml":  # the client checks the card's metadata block before uploading
                    content = json.loads(body or b"{}").get("content", "")
                    ok = content.startswith("---\n") and "\n---\n" in content[4:]
                    return self._json(200 if ok else 400, {"warnings": [], "errors": [] if ok else [
                        {"message": "no YAML metadata block"}]})
                if path == "/api/repos/create":
                    req = json.loads(body or b"{}")
                    repo_id = f"{req['organization']}/{req['name']}" if req.get("organization") else req["name"]
                    hub.repos.setdefault(repo_id, {"refs": {}, "commits": {}})
                    return self._json(200, {"url": f"{hub.url}/{repo_id}", "name": repo_id, "id": repo_id})
                if path.startswith("/api/models/"):
                    parts = path[len("/api/models/"):].split("/")
                    repo_id, action, revision = "/".join(parts[:2]), parts[2], "/".join(parts[3:]) or "main"
                    if repo_id not in hub.repos:
                        return self._error(404, f"Repository {repo_id} not found", "RepoNotFound")
                    if action == "preupload":
                        files = json.loads(body)["files"]
                        return self._json(200, {"files": [{"path": f["path"], "uploadMode": "regular",
                                                           "shouldIgnore": False} for f in files]})
                    if action == "commit":
                        files = {}
                        for line in body.decode().splitlines():
                            if not line.strip():
                                continue
                            item = json.loads(line)
                            if item["key"] == "file":
                                v = item["value"]
                                files[v["path"]] = base64.b64decode(v["content"])
                            elif item["key"] != "header":
                                return self._error(400, f"unsupported commit operation {item['key']}", "BadRequest")
                        sha = hub.add_commit(repo_id, files, branch=revision)
                        return self._json(200, {"commitUrl": f"{hub.url}/{repo_id}/commit/{sha}", "commitOid": sha,
                                                "pullRequestUrl": None})
                return self._error(404, f"no route for POST {path}", "NotFound")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None
