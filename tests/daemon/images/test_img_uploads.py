"""uploads: request bodies and downloads spooled under the data-root's tmp, removed when they fail."""

from __future__ import annotations

import asyncio
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.daemon.errors import ApiError
from harness.daemon.images.uploads import UPLOAD_PREFIX, download, spool


def test_spool_writes_every_chunk(tmp_path: Path) -> None:
    chunks = [b"a" * 10, b"b" * 5, b""]
    asked: list[int] = []

    async def read_chunk(limit: int) -> bytes:
        asked.append(limit)
        return chunks.pop(0)

    path = asyncio.run(spool(read_chunk, str(tmp_path)))
    assert Path(path).read_bytes() == b"a" * 10 + b"b" * 5
    assert os.path.basename(path).startswith(UPLOAD_PREFIX) and asked == [1 << 20] * 3


def test_spool_removes_its_file_when_the_body_fails(tmp_path: Path) -> None:
    async def read_chunk(_limit: int) -> bytes:
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        asyncio.run(spool(read_chunk, str(tmp_path)))
    assert os.listdir(tmp_path) == []


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/rootfs.tar":
            self.send_response(200)
            self.send_header("Content-Length", "6")
            self.end_headers()
            self.wfile.write(b"rootfs")
        else:
            self.send_error(404, "Not Found")

    def log_message(self, *_args: object) -> None:
        pass


class _Server(http.server.HTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the client hangs up on a 404 before its body is written: not the test's business


@pytest.fixture
def server() -> Iterator[str]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_download(server: str, tmp_path: Path) -> None:
    path = download(f"{server}/rootfs.tar", str(tmp_path))
    assert Path(path).read_bytes() == b"rootfs"
    os.unlink(path)
    with pytest.raises(ApiError) as info:
        download(f"{server}/nope", str(tmp_path))
    assert (info.value.status, info.value.message) == (
        500,
        f"failed to GET {server}/nope with status 404 Not Found",
    )
    with pytest.raises(ApiError, match=r'^Get "http://127.0.0.1:9/x": \[Errno 111\] Connection refused$'):
        download("http://127.0.0.1:9/x", str(tmp_path))
    assert os.listdir(tmp_path) == []
