"""Readiness: is the daemon answering ``GET /_ping`` yet? Timeouts say what was tried."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable

from .endpoints import Endpoint

__all__ = ["ping_once", "wait_until"]


def _connect(endpoint: Endpoint, timeout: float) -> socket.socket:
    if endpoint.kind == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(endpoint.address)
        except OSError:
            sock.close()
            raise
        return sock
    host, _, port = endpoint.address.rpartition(":")
    sock = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
    if endpoint.tls is not None:
        ctx = ssl.create_default_context(cafile=endpoint.tls.ca)
        if not endpoint.tls.verify:  # --tls without --tlsverify: encrypted, server not checked
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if endpoint.tls.cert and endpoint.tls.key:
            ctx.load_cert_chain(endpoint.tls.cert, endpoint.tls.key)
        try:
            sock = ctx.wrap_socket(sock, server_hostname=host.strip("[]"))
        except (OSError, ssl.SSLError):
            sock.close()
            raise
    return sock


def ping_once(endpoint: Endpoint, timeout: float = 2.0) -> int:
    """One ``GET /_ping``; returns the HTTP status or raises OSError."""
    with _connect(endpoint, timeout) as sock:
        sock.sendall(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    parts = data.split(b"\r\n", 1)[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise OSError(f"not an HTTP answer: {data[:80]!r}")
    return int(parts[1])


def wait_until(
    check: Callable[[], bool], timeout: float, interval: float = 0.02, abort: Callable[[], bool] | None = None
) -> bool:
    """Poll ``check`` until it is true (True), ``abort`` is true or time runs out (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if abort is not None and abort():
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(interval, remaining))
        interval = min(interval * 1.5, 0.2)
