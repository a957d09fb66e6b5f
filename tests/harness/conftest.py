"""Helpers for the harness's own tests: tiny HTTP servers (unix, tcp, tls) and a private ledger.

Nothing here is named ``target``: the harness plugin parametrizes every test that asks for a fixture of
that name.
"""

from __future__ import annotations

import json
import os
import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from harness.cleanup import Ledger
from harness.tls import TLSMaterial, mint_tls_material


class _EngineHandler(BaseHTTPRequestHandler):
    """Answers the two requests readiness and the SDK make: /_ping and /version."""

    protocol_version = "HTTP/1.1"

    def _answer(self, send_body: bool) -> None:
        path = self.path.split("?")[0]
        if path.endswith("/_ping"):
            status, body, ctype = 200, b"OK", "text/plain; charset=utf-8"
        elif path.endswith("/version"):
            status, ctype = 200, "application/json"
            body = json.dumps({"ApiVersion": "1.41", "MinAPIVersion": "1.12", "Version": "20.10.99"}).encode()
        else:
            status, body, ctype = 404, b'{"message":"page not found"}', "application/json"
        self.send_response(status)
        self.send_header("Api-Version", "1.41")
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer(True)

    def do_HEAD(self) -> None:
        self._answer(False)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Quiet:
    daemon_threads = True
    block_on_close = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # refused TLS handshakes end here; the client side asserts on them


class UnixHTTPServer(_Quiet, socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    pass


class TCPHTTPServer(_Quiet, socketserver.ThreadingMixIn, HTTPServer):
    """HTTP (or HTTPS with ``ssl_context``) on 127.0.0.1:<ephemeral>."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.ssl_context = ssl_context
        super().__init__(("127.0.0.1", 0), _EngineHandler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        if self.ssl_context is not None:
            # the handshake happens on the handler thread's first read, not in the accept loop
            sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


class Serving:
    """Runs a socketserver on a thread; ``close()`` stops it and closes its socket."""

    def __init__(self, server: socketserver.BaseServer) -> None:
        self.server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def unix_http(tmp_path: Path) -> Iterator[str]:
    """Path of a unix socket answering /_ping and /version."""
    path = str(tmp_path / "engine.sock")
    serving = Serving(UnixHTTPServer(path, _EngineHandler))
    try:
        yield path
    finally:
        serving.close()


@pytest.fixture
def tcp_http() -> Iterator[str]:
    """host:port of a plain HTTP server answering /_ping and /version."""
    server = TCPHTTPServer()
    serving = Serving(server)
    try:
        yield server.address
    finally:
        serving.close()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSMaterial:
    """One minted set of CA, server, client, rogue, expired and wrong-name material for the module tests."""
    return mint_tls_material(str(tmp_path_factory.mktemp("tls")))


def server_context(tls: TLSMaterial, require_client: bool = True, wrong_name: bool = False) -> ssl.SSLContext:
    """A server-side context like dockerd --tlsverify (client certs from our CA required)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if wrong_name:
        ctx.load_cert_chain(tls.wrong_name_server_cert, tls.wrong_name_server_key)
    else:
        ctx.load_cert_chain(tls.server_cert, tls.server_key)
    if require_client:
        ctx.load_verify_locations(tls.ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


@pytest.fixture
def tls_http(tls_files: TLSMaterial) -> Iterator[str]:
    """host:port of an HTTPS server that requires a client certificate from the minted CA."""
    server = TCPHTTPServer(server_context(tls_files))
    serving = Serving(server)
    try:
        yield server.address
    finally:
        serving.close()


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ledger:
    """A private ledger the local backend records into (never the machine's /run/harness-ledger)."""
    private = Ledger(str(tmp_path / "ledger"))
    monkeypatch.setattr("harness.backends.local.LEDGER", private)
    return private


def pids_in_netns(ino: int) -> list[int]:
    """Processes whose network namespace has inode ``ino``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}/ns/net").st_ino == ino:
                    found.append(int(entry))
            except OSError:
                continue
    return found
