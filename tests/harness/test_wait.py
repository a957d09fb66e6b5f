"""ping_once speaks just enough HTTP over unix/tcp/tls; wait_until's success, abort and timeout semantics."""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.endpoints import Endpoint, TLSFiles
from harness.tls import TLSMaterial
from harness.wait import ping_once, wait_until

from .conftest import Serving, TCPHTTPServer, server_context


def test_ping_once_over_unix(unix_http: str) -> None:
    assert ping_once(Endpoint("unix", unix_http)) == 200


def test_ping_once_without_a_listener_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        ping_once(Endpoint("unix", str(tmp_path / "missing.sock")))
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(tmp_path / "stale.sock"))  # bound but never listening: what a crashed daemon leaves
    try:
        with pytest.raises(ConnectionRefusedError):
            ping_once(Endpoint("unix", str(tmp_path / "stale.sock")))
    finally:
        stale.close()


@pytest.fixture
def not_http(tmp_path: Path) -> Iterator[str]:
    """A unix socket whose server answers a request with an SSH banner."""
    path = str(tmp_path / "ssh.sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(4)

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            request = b""
            while b"\r\n\r\n" not in request and (chunk := conn.recv(4096)):
                request += chunk  # read it all first: closing on unread data would reset the connection
            conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield path
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(timeout=5)


def test_ping_once_refuses_a_non_http_answer(not_http: str) -> None:
    with pytest.raises(OSError, match=r"not an HTTP answer: b'SSH-2\.0"):
        ping_once(Endpoint("unix", not_http))


def test_ping_once_over_tcp(tcp_http: str) -> None:
    assert ping_once(Endpoint("tcp", tcp_http)) == 200


def test_ping_once_over_tls_with_the_client_pair(tls_files: TLSMaterial, tls_http: str) -> None:
    files = TLSFiles(tls_files.ca, tls_files.client_cert, tls_files.client_key)
    assert ping_once(Endpoint("tcp", tls_http, files)) == 200


def test_ping_once_over_tls_without_a_client_pair_is_refused(tls_files: TLSMaterial, tls_http: str) -> None:
    with pytest.raises(OSError):
        ping_once(Endpoint("tcp", tls_http, TLSFiles(tls_files.ca)))


@pytest.fixture
def tls_no_client_auth(tls_files: TLSMaterial) -> Iterator[str]:
    server = TCPHTTPServer(server_context(tls_files, require_client=False))
    serving = Serving(server)
    try:
        yield server.address
    finally:
        serving.close()


def test_ping_once_with_verify_off_accepts_an_untrusted_server(
    tls_files: TLSMaterial, tls_no_client_auth: str
) -> None:
    untrusting = os.path.join(tls_files.rogue_client_dir, "cert.pem")  # not the CA that signed the server
    assert ping_once(Endpoint("tcp", tls_no_client_auth, TLSFiles(untrusting, verify=False))) == 200
    with pytest.raises(ssl.SSLCertVerificationError):
        ping_once(Endpoint("tcp", tls_no_client_auth, TLSFiles(untrusting)))


# wait_until -------------------------------------------------------------------------------------------------
def test_wait_until_returns_true_as_soon_as_check_holds() -> None:
    calls = []

    def check() -> bool:
        calls.append(time.monotonic())
        return len(calls) == 3

    started = time.monotonic()
    assert wait_until(check, 5) is True
    assert len(calls) == 3 and time.monotonic() - started < 1


def test_wait_until_times_out_close_to_the_deadline() -> None:
    started = time.monotonic()
    assert wait_until(lambda: False, 0.3, interval=0.25) is False
    assert 0.3 <= time.monotonic() - started < 0.45  # the last sleep is cut to the deadline


def test_wait_until_with_zero_timeout_checks_once() -> None:
    calls: list[int] = []

    def check() -> bool:
        calls.append(1)
        return False

    assert wait_until(check, 0) is False
    assert calls == [1]
    assert wait_until(lambda: True, 0) is True


def test_wait_until_stops_when_abort_fires() -> None:
    ticks: list[int] = []

    def abort() -> bool:
        ticks.append(1)
        return len(ticks) >= 2

    started = time.monotonic()
    assert wait_until(lambda: False, 30, abort=abort) is False
    assert time.monotonic() - started < 1


def test_wait_until_success_wins_over_abort() -> None:
    assert wait_until(lambda: True, 5, abort=lambda: True) is True
