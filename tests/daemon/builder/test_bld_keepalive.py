"""A build's progress stream leaves its keep-alive connection usable for the next request.

The build watches the connection for the client hanging up (dockerd cancels the build then). Its watcher used
to be cancelled but not awaited when the stream ended; the connection's next read then found the stream still
"waiting for incoming data" and refd closed the connection with no ``Connection: close``. A client reusing it
(requests does) got "connection reset by peer": ``api/build/remote-context`` failed that way under load.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.backends.base import DaemonHandle, DaemonSpec
from harness.backends.local import LocalBackend
from harness.netns import Inbound
from harness.targets import resolve_target
from harness.testimage import load_test_image

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="running build steps needs root")


@pytest.fixture(scope="module")
def refd() -> Iterator[DaemonHandle]:
    backend = LocalBackend()
    handle = backend.start(resolve_target("refd"), DaemonSpec(), tempfile.mkdtemp(prefix="harness-refd-bld-"))
    try:
        assert handle.endpoint is not None
        load_test_image(handle.endpoint)
        yield handle
    finally:
        backend.teardown(handle)


@pytest.fixture
def remote_dockerfile(refd: DaemonHandle, tmp_path: Path) -> Iterator[str]:
    """A URL reachable from refd's network namespace, serving a Dockerfile with a RUN step."""
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN echo remote\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    relay = Inbound(os.path.join(refd.workdir, "ns", "net"), ("127.0.0.1", port), ("127.0.0.1", port))
    try:
        yield f"http://127.0.0.1:{port}/Dockerfile"
    finally:
        relay.close()
        server.shutdown()
        server.server_close()
        shutil.rmtree(tmp_path, ignore_errors=True)


def _exchange(conn: socket.socket, target: str) -> bytes:
    """One POST with an empty body on ``conn``; the whole chunked answer (b'' if refd closed first)."""
    conn.sendall(
        f"POST {target} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/x-tar\r\n"
        "Content-Length: 0\r\n\r\n".encode()
    )
    data = b""
    while not data.endswith(b"\r\n0\r\n\r\n"):
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    return data


def test_connection_serves_another_build_after_a_streamed_one(
    refd: DaemonHandle, remote_dockerfile: str
) -> None:
    target = f"/v1.41/build?nocache=1&remote={remote_dockerfile}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(refd.socket_path)
        conn.settimeout(60)
        first = _exchange(conn, target)
        assert first.startswith(b"HTTP/1.1 200 OK\r\n") and b"Successfully built" in first, first[-300:]
        assert b"connection: close" not in first.split(b"\r\n\r\n", 1)[0].lower()
        conn.settimeout(0.5)
        try:
            after = conn.recv(1)
        except TimeoutError:
            after = None  # the connection stays open and quiet, as dockerd's does
        assert after is None, "refd closed the keep-alive connection after the build (recv gave EOF)"
        conn.settimeout(60)
        second = _exchange(conn, target)
        assert second.startswith(b"HTTP/1.1 200 OK\r\n") and b"Successfully built" in second, second[-300:]


def test_a_client_hanging_up_still_ends_the_build_stream(refd: DaemonHandle, remote_dockerfile: str) -> None:
    """The watcher's job stays: a client that closes its side mid-build frees the connection at once."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(refd.socket_path)
        conn.sendall(
            b"POST /v1.41/build?nocache=1&remote=" + remote_dockerfile.encode() + b" HTTP/1.1\r\n"
            b"Host: docker\r\nContent-Length: 0\r\n\r\n"
        )
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(60)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
