"""Small helpers scenarios share for daemons they booted themselves (the session daemon has ``engine``)."""

from __future__ import annotations

from typing import Any

from harness.backends.base import DaemonHandle
from harness.client import EngineClient

__all__ = ["http_get_in_daemon_netns", "info"]


def info(daemon: DaemonHandle) -> dict[str, Any]:
    """``GET /info`` on ``daemon``'s primary endpoint."""
    assert daemon.endpoint is not None
    client = EngineClient(daemon.endpoint)
    try:
        return dict(client.get("/info").json())
    finally:
        client.close()


def http_get_in_daemon_netns(daemon: DaemonHandle, host: str, port: int, path: str = "/") -> str:
    """``GET path`` from inside ``daemon``'s network namespace (where its published ports live).

    Returns the raw response, or ``error: ...`` when nothing answers, so scenarios can record it.
    """
    import socket

    from harness.netns import NetnsConnector

    request = f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode()
    connector = NetnsConnector(daemon.netns_path) if daemon.netns_path else None
    try:
        try:
            sock = (
                connector.connect(host, port, timeout=5)
                if connector
                else socket.create_connection((host, port), timeout=5)
            )
        except OSError as exc:
            return f"error: {exc.strerror or exc}"
        with sock:
            sock.sendall(request)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")
    finally:
        if connector is not None:
            connector.close()
