"""A tiny in-process registry API v2 (stdlib http.server) for refd's distribution tests.

Serves blobs and manifests from dicts, accepts uploads (POST/PATCH/PUT, cross-repo mounts) and can
demand basic auth or bearer tokens from a token endpoint it serves itself. Fast: no binary, no netns.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeRegistry"]


@dataclass
class FakeRegistry:
    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[tuple[str, str], tuple[bytes, str]] = field(default_factory=dict)  # (repo, ref) -> body
    repo_blobs: dict[str, set[str]] = field(default_factory=dict)
    basic: tuple[str, str] | None = None
    bearer: bool = False
    token_requests: list[dict[str, list[str]]] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    fail_blob_gets: int = 0

    def __post_init__(self) -> None:
        self.uploads: dict[str, bytearray] = {}
        registry = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                if "Content-Length" not in (headers or {}):
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _error(
                self, status: int, code: str, message: str, headers: dict[str, str] | None = None
            ) -> None:
                body = json.dumps({"errors": [{"code": code, "message": message, "detail": None}]}).encode()
                self._send(status, body, {"Content-Type": "application/json", **(headers or {})})

            def _authorised(self) -> bool:
                if self.path.startswith("/token"):
                    return True
                auth = self.headers.get("Authorization", "")
                if registry.basic is not None:
                    want = "Basic " + base64.b64encode(":".join(registry.basic).encode()).decode()
                    if auth != want:
                        self._error(
                            401,
                            "UNAUTHORIZED",
                            "authentication required",
                            {"WWW-Authenticate": 'Basic realm="r"'},
                        )
                        return False
                if registry.bearer and auth != "Bearer good-token":
                    host = self.headers.get("Host")
                    challenge = f'Bearer realm="http://{host}/token",service="fake"'
                    self._error(
                        401, "UNAUTHORIZED", "authentication required", {"WWW-Authenticate": challenge}
                    )
                    return False
                return True

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = bytearray()
                    while True:
                        size = int(self.rfile.readline().strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            return bytes(out)
                        out += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def do_GET(self) -> None:
                self._route()

            def do_HEAD(self) -> None:
                self._route()

            def do_POST(self) -> None:
                self._route()

            def do_PATCH(self) -> None:
                self._route()

            def do_PUT(self) -> None:
                self._route()

            def do_DELETE(self) -> None:
                self._route()

            def _route(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query)
                registry.requests.append((self.command, url.path))
                body = self._body() if self.command in ("POST", "PATCH", "PUT") else b""
                if url.path == "/token":
                    registry.token_requests.append(query)
                    auth = self.headers.get("Authorization", "")
                    if registry.basic is not None:
                        want = "Basic " + base64.b64encode(":".join(registry.basic).encode()).decode()
                        if auth != want:
                            self._error(401, "UNAUTHORIZED", "incorrect username or password")
                            return
                    doc = {"token": "good-token", "refresh_token": "refresh-me"}
                    self._send(200, json.dumps(doc).encode(), {"Content-Type": "application/json"})
                    return
                if not self._authorised():
                    return
                if url.path == "/v2/":
                    self._send(200, b"{}", {"Content-Type": "application/json"})
                    return
                parts = url.path[len("/v2/") :].split("/")
                for i, part in enumerate(parts):
                    if part in ("manifests", "blobs", "tags"):
                        repo, kind, rest = "/".join(parts[:i]), part, "/".join(parts[i + 1 :])
                        break
                else:
                    self._send(404)
                    return
                if kind == "manifests":
                    self._manifests(repo, rest, body)
                elif kind == "tags":
                    tags = sorted(r for (rp, r) in registry.manifests if rp == repo and ":" not in r)
                    self._send(
                        200,
                        json.dumps({"name": repo, "tags": tags}).encode(),
                        {"Content-Type": "application/json"},
                    )
                else:
                    self._blobs(repo, rest, query, body)

            def _manifests(self, repo: str, ref: str, body: bytes) -> None:
                if self.command == "PUT":
                    digest = "sha256:" + hashlib.sha256(body).hexdigest()
                    media = self.headers.get("Content-Type", "")
                    registry.manifests[(repo, ref)] = (body, media)
                    registry.manifests[(repo, digest)] = (body, media)
                    self._send(201, b"", {"Docker-Content-Digest": digest})
                    return
                found = registry.manifests.get((repo, ref))
                if found is None:
                    self._error(404, "MANIFEST_UNKNOWN", "manifest unknown")
                    return
                raw, media = found
                digest = "sha256:" + hashlib.sha256(raw).hexdigest()
                self._send(200, raw, {"Content-Type": media, "Docker-Content-Digest": digest})

            def _blobs(self, repo: str, rest: str, query: dict[str, list[str]], body: bytes) -> None:
                if rest.startswith("uploads"):
                    if self.command == "POST":
                        mount, source = query.get("mount", [""])[0], query.get("from", [""])[0]
                        if mount and mount in registry.repo_blobs.get(source, set()):
                            registry.repo_blobs.setdefault(repo, set()).add(mount)
                            self._send(
                                201,
                                b"",
                                {"Docker-Content-Digest": mount, "Location": f"/v2/{repo}/blobs/{mount}"},
                            )
                            return
                        uid = str(len(registry.uploads) + 1)
                        registry.uploads[uid] = bytearray()
                        self._send(202, b"", {"Location": f"/v2/{repo}/blobs/uploads/{uid}"})
                        return
                    uid = rest.split("/")[-1]
                    registry.uploads.setdefault(uid, bytearray()).extend(body)
                    if self.command == "PATCH":
                        self._send(202, b"", {"Location": f"/v2/{repo}/blobs/uploads/{uid}"})
                        return
                    if self.command == "DELETE":
                        self._send(204)
                        return
                    data = bytes(registry.uploads.pop(uid))
                    digest = query.get("digest", [""])[0]
                    if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
                        self._error(400, "DIGEST_INVALID", "provided digest did not match uploaded content")
                        return
                    registry.blobs[digest] = data
                    registry.repo_blobs.setdefault(repo, set()).add(digest)
                    self._send(201, b"", {"Docker-Content-Digest": digest})
                    return
                found = registry.blobs.get(rest)
                if found is None or rest not in registry.repo_blobs.get(repo, set()):
                    self._error(404, "BLOB_UNKNOWN", "blob unknown to registry")
                    return
                data = found
                if self.command == "GET" and registry.fail_blob_gets > 0:
                    registry.fail_blob_gets -= 1
                    self._send(200, data[: len(data) // 2], {"Content-Length": str(len(data))})
                    self.close_connection = True
                    return
                self._send(200, data, {"Content-Type": "application/octet-stream"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add_image(
        self, repo: str, tag: str, manifest: bytes, media_type: str, blobs: list[tuple[str, bytes]]
    ) -> None:
        for digest, data in blobs:
            self.blobs[digest] = data
            self.repo_blobs.setdefault(repo, set()).add(digest)
        digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        self.manifests[(repo, tag)] = (manifest, media_type)
        self.manifests[(repo, digest)] = (manifest, media_type)
