"""Malformed HTTP against refd: a clear 4xx (or a close), bounded memory, and the daemon keeps serving others.

Oversized heads and query strings, oversized and truncated bodies, broken chunking, bad JSON and wrong content
types, slowloris-style partial requests held open while other clients are served. After all of it refd's
descriptor count is back to its baseline and its resident memory grew by a bounded amount.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from harness.backends.base import DaemonHandle
from harness.wait import wait_until

from .conftest import scale

SLOW_CLIENTS = scale(64, 256)
#: refd's last-resort 500 names the Python exception: it must never reach a client
PYTHON_ERROR = re.compile(rb'"message":"[A-Z][A-Za-z]*(Error|Exception): ')
MEMORY_BOUND = 64 << 20  # what refd's RSS may grow by over the whole module


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _raw(address: str, data: bytes, timeout: float = 15.0, chunks: list[bytes] | None = None) -> bytes:
    """Send ``data`` (then ``chunks``), read until the server closes; the raw answer ('' if reset)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(address)
        try:
            sock.sendall(data)
            for piece in chunks or []:
                sock.sendall(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before reading all of it: read what it said
        out = b""
        try:
            while chunk := sock.recv(65536):
                out += chunk
        except ConnectionResetError:
            pass
        return out


def _status(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1."), answer[:200]
    return int(answer.split(b" ", 2)[1])


def _ping(address: str) -> int:
    return _status(_raw(address, b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n", timeout=5))


@pytest.fixture(scope="module")
def baseline(refd: DaemonHandle, figures: dict[str, Any]) -> Iterator[dict[str, int]]:
    _ping(refd.socket_path)
    before = {"rss": _rss(refd.pid), "fds": _fds(refd.pid)}
    yield before
    fig = figures.setdefault("http", {})
    fig["rss_growth_mib"] = round((_rss(refd.pid) - before["rss"]) / (1 << 20), 1)


CASES: dict[str, tuple[bytes, int]] = {
    "head-2MiB": (b"GET /_ping HTTP/1.1\r\nHost: d\r\nX-Big: " + b"a" * (2 << 20) + b"\r\n\r\n", 431),
    "query-2MiB": (
        b"GET /containers/json?filters=" + b"a" * (2 << 20) + b" HTTP/1.1\r\nHost: d\r\n\r\n",
        431,
    ),
    "many-headers": (b"GET /_ping HTTP/1.1\r\nHost: d\r\n" + b"X-A: b\r\n" * 200_000 + b"\r\n", 431),
    "query-512KiB": (
        b"GET /containers/json?filters="
        + b"%7B" * (170 << 10)
        + b" HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n",
        400,
    ),
    "bad-request-line": (b"GET\r\n\r\n", 400),
    "bad-version": (b"GET / HTTP/9.9\r\nHost: d\r\n\r\n", 505),
    "no-host": (b"GET /_ping HTTP/1.1\r\n\r\n", 400),
    "bad-header": (b"GET /_ping HTTP/1.1\r\nHost: d\r\nBad Header: x\r\n\r\n", 400),
    "bad-content-length": (b"POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Length: -1\r\n\r\n", 400),
    "two-content-lengths": (
        b"POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        400,
    ),
    "gzip-transfer-coding": (
        b"POST /containers/create HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: gzip\r\n\r\n",
        501,
    ),
    "chunk-size-not-hex": (
        b"POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
        400,
    ),
    "chunk-size-overflow": (
        b"POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + b"f" * 40 + b"\r\n{}\r\n0\r\n\r\n",
        400,
    ),
    "chunk-missing-crlf": (
        b"POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n",
        400,
    ),
    "chunk-line-huge": (
        b"POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n1;" + b"e" * 100_000 + b"\r\n{\r\n0\r\n\r\n",
        400,
    ),
    "truncated-body": (
        b"POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n{}",
        0,  # the client goes away: nothing to answer
    ),
    "bad-json": (
        b"POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1\r\nConnection: close\r\n\r\n{",
        400,
    ),
    "wrong-content-type": (
        b"POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: text/plain\r\n"
        b"Content-Length: 2\r\nConnection: close\r\n\r\n{}",
        400,
    ),
    "json-not-utf8": (
        b"POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\n"
        b"Content-Length: 4\r\nConnection: close\r\n\r\n\xff\xfe\xfd\xfc",
        400,
    ),
    "json-deep-nesting": (
        b"POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\n"
        b"Content-Length: 200000\r\nConnection: close\r\n\r\n" + b"[" * 100_000 + b"]" * 100_000,
        400,
    ),
    "filters-deep-nesting": (
        b"GET /containers/json?filters="
        + b"%5B" * 100_000
        + b" HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n",
        400,
    ),
    "registry-auth-deep-nesting": (
        b"POST /images/create?fromImage=127.0.0.1:9/x HTTP/1.1\r\nHost: d\r\nConnection: close\r\n"
        b"X-Registry-Auth: " + __import__("base64").urlsafe_b64encode(b"[" * 50_000) + b"\r\n\r\n",
        500,  # dockerd ignores an undecodable header and pulls: the closed port's 500, not a crash
    ),
    "binary-garbage": (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x01" * 64 + b"\r\n\r\n", 400),
}


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_request_gets_4xx(refd: DaemonHandle, baseline: dict[str, int], case: str) -> None:
    data, want = CASES[case]
    if case == "truncated-body":  # the client sends less than it announced, then half-closes
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(refd.socket_path)
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            answer = sock.recv(65536)
        assert answer == b"" or _status(answer) < 500
    else:
        answer = _raw(refd.socket_path, data)
        assert _status(answer) == want, answer[:300]
        assert not PYTHON_ERROR.search(answer), answer[:300]
    assert _ping(refd.socket_path) == 200


def test_oversized_json_body_is_refused_with_bounded_memory(
    refd: DaemonHandle, baseline: dict[str, int]
) -> None:
    """A 96 MiB JSON body is past refd's 64 MiB cap for a decoded body: a 400 and a close, memory bounded."""
    size = 96 << 20
    head = (
        b"POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % size
    )
    piece = b" " * (1 << 20)
    answer = _raw(refd.socket_path, head, timeout=60, chunks=[piece] * 96)
    assert answer == b"" or _status(answer) == 400
    assert _rss(refd.pid) - baseline["rss"] < MEMORY_BOUND + (64 << 20)
    assert _ping(refd.socket_path) == 200


def test_slowloris_does_not_starve_others(
    refd: DaemonHandle, baseline: dict[str, int], figures: dict[str, Any]
) -> None:
    """Many clients trickle half a request head; others are still served promptly."""
    stop = threading.Event()
    socks: list[socket.socket] = []
    for _ in range(SLOW_CLIENTS):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(refd.socket_path)
        s.sendall(b"GET /containers/json HTTP/1.1\r\nHost: d\r\n")
        socks.append(s)

    def trickle() -> None:
        while not stop.wait(0.2):
            for s in socks:
                with contextlib.suppress(OSError):
                    s.sendall(b"X-Slow: 1\r\n")

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        latencies = []
        for _ in range(20):
            start = time.monotonic()
            assert _ping(refd.socket_path) == 200
            latencies.append(time.monotonic() - start)
    finally:
        stop.set()
        thread.join()
        for s in socks:
            s.close()
    worst = max(latencies)
    figures.setdefault("http", {})["slowloris"] = {
        "slow_clients": SLOW_CLIENTS,
        "worst_ping_s": round(worst, 3),
    }
    assert worst < 2.0


def test_descriptors_and_memory_back_to_baseline(refd: DaemonHandle, baseline: dict[str, int]) -> None:
    """Runs last in this module: every connection above was closed on refd's side too."""
    wait_until(lambda: _fds(refd.pid) <= baseline["fds"] + 2, 10, interval=0.2)
    assert _fds(refd.pid) <= baseline["fds"] + 2

    assert _rss(refd.pid) - baseline["rss"] < MEMORY_BOUND + (64 << 20)
    assert refd.returncode is None
