"""EngineClient: raw HTTP over unix or tcp, never steered by proxy or CA variables from the environment."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import requests

from harness.client import EngineClient
from harness.endpoints import Endpoint


def test_verbs_and_versioned_paths(unix_http: str) -> None:
    client = EngineClient(Endpoint("unix", unix_http))
    try:
        assert client.get("/v1.41/_ping").text == "OK"
        head = client.head("/_ping")
        assert (head.status_code, head.text, head.headers["Api-Version"]) == (200, "", "1.41")
        assert client.get("/nope").status_code == 404
    finally:
        client.close()


def test_proxy_variables_are_ignored(tcp_http: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # discard port: a proxied request would fail
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client = EngineClient(Endpoint("tcp", tcp_http), timeout=5)
    try:
        assert client.get("/_ping").status_code == 200
    finally:
        client.close()
    with requests.Session() as plain, pytest.raises(requests.exceptions.ProxyError):
        plain.get(f"http://{tcp_http}/_ping", timeout=5)  # what the client avoids


def test_refused_unix_connections_do_not_leak_sockets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each socket the client opens towards a refused path is closed when its connect fails.

    Checked on the sockets themselves, not with gc.collect() and ResourceWarning: a collection here also
    finalizes whatever earlier tests left behind (the full suite in a fresh Debian 13 root failed this test
    on a socket's ResourceWarning; run alone there it passes)."""
    gone = str(tmp_path / "gone.sock")
    tried: list[socket.socket] = []

    class Recording(socket.socket):
        def connect(self, address: Any) -> None:
            if address == gone:
                tried.append(self)  # held here, so a leaked one stays open to be seen
            super().connect(address)

    monkeypatch.setattr(socket, "socket", Recording)
    client = EngineClient(Endpoint("unix", gone), timeout=2)
    try:
        for _ in range(3):
            with pytest.raises(requests.ConnectionError):
                client.get("/_ping")
    finally:
        client.close()
        monkeypatch.undo()
    try:
        assert len(tried) >= 3  # at least one connect per request
        assert [s.fileno() for s in tried] == [-1] * len(tried)  # -1: closed
    finally:
        for sock in tried:
            sock.close()
