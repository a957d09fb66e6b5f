"""``GET /containers/{id}/attach/ws``: attach over a websocket as dockerd serves it (x/net/websocket).

What dockerd 28 does, and refd too: the RFC 6455 handshake answered ``101 Switching Protocols``; each write
of the container's stdout or stderr becomes one frame, never multiplexed (binary frames from API 1.28,
text frames before); from API 1.42 the stdin/stdout/stderr query parameters choose the streams (all three
before); ``logs=1`` replays the log first; the client's (masked) frames feed stdin; when the container's
output ends the server sends a close frame (1000) and hangs up. An unknown container is an ordinary 404
before any upgrade.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import struct
from typing import TYPE_CHECKING, Any

from ..containers.attach import background
from ..containers.shimclient import ShimConnection
from ..httpd import Request, Response
from ..logs.reader import replay
from ..query import bool_value
from ..server import version_tuple

if TYPE_CHECKING:
    from ..daemon import Daemon
    from ..server import Router

__all__ = ["encode_frame", "register"]

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x2, 0x8, 0x9, 0xA


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One unmasked, final frame (a server never masks)."""
    head = bytes([0x80 | opcode])
    size = len(payload)
    if size < 126:
        head += bytes([size])
    elif size < 65536:
        head += bytes([126]) + struct.pack("!H", size)
    else:
        head += bytes([127]) + struct.pack("!Q", size)
    return head + payload


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One client frame, unmasked; IncompleteReadError at EOF."""
    b1, b2 = await reader.readexactly(2)
    size = b2 & 0x7F
    if size == 126:
        size = struct.unpack("!H", await reader.readexactly(2))[0]
    elif size == 127:
        size = struct.unpack("!Q", await reader.readexactly(8))[0]
    mask = await reader.readexactly(4) if b2 & 0x80 else b""
    data = await reader.readexactly(size)
    if mask:
        data = bytes(byte ^ mask[i % 4] for i, byte in enumerate(data))
    return b1 & 0x0F, data


def _bad_handshake() -> Response:
    async def hijack(r: Request) -> None:
        r.writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")  # x/net/websocket's answer to a broken handshake
        with contextlib.suppress(Exception):
            await r.writer.drain()
        r.writer.close()

    return Response(hijack=hijack)


async def attach_ws(req: Request, daemon: Daemon) -> Response:
    c = daemon.containers.get(req.match["name"])
    key = req.header("sec-websocket-key")
    if (
        "websocket" not in req.header("upgrade").lower()
        or not key
        or req.header("sec-websocket-version") != "13"
    ):
        return _bad_handshake()
    accept = base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()
    version = version_tuple(req.api_version)
    opcode = OP_BINARY if version >= (1, 28) else OP_TEXT
    if version >= (1, 42):
        use_stdin, use_stdout, use_stderr = (bool_value(req, n) for n in ("stdin", "stdout", "stderr"))
    else:
        use_stdin = use_stdout = use_stderr = True
    want_logs, want_stream = bool_value(req, "logs"), bool_value(req, "stream")
    tty = bool(c.config.get("Tty"))
    manager = daemon.containers

    async def hijack(r: Request) -> None:
        r.writer.write(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
            ).encode()
        )
        if want_logs and c.log_path:
            for _, data in replay(c.log_path, use_stdout, use_stderr):
                r.writer.write(encode_frame(opcode, data))
        await r.writer.drain()
        if want_stream and c.running:
            manager.emit(c, "attach")
            request = {"op": "attach", "stdin": use_stdin, "stdout": use_stdout, "stderr": use_stderr}
            try:
                reader, writer = await ShimConnection.open(manager.state_dir(c), request)
            except OSError:
                reader = writer = None  # type: ignore[assignment]
            if reader is not None and writer is not None:
                await _pump(r, reader, writer, tty, opcode, use_stdin)
        with contextlib.suppress(Exception):
            r.writer.write(encode_frame(OP_CLOSE, struct.pack("!H", 1000)))
            await r.writer.drain()
        with contextlib.suppress(Exception):
            r.writer.close()

    return Response(hijack=hijack)


async def _pump(
    r: Request,
    shim_reader: asyncio.StreamReader,
    shim_writer: asyncio.StreamWriter,
    tty: bool,
    opcode: int,
    use_stdin: bool,
) -> None:
    """Container output to frames (demultiplexed: dockerd never multiplexes here); client frames to stdin."""

    async def down() -> None:
        while True:
            if tty:
                data = await shim_reader.read(65536)
                if not data:
                    return
            else:
                try:
                    header = await shim_reader.readexactly(8)
                    data = await shim_reader.readexactly(struct.unpack(">I", header[4:])[0])
                except asyncio.IncompleteReadError:
                    return
            r.writer.write(encode_frame(opcode, data))
            await r.writer.drain()

    async def up() -> None:
        while True:
            try:
                op, data = await read_frame(r.reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            if op == OP_CLOSE:
                return
            if op == OP_PING:
                r.writer.write(encode_frame(OP_PONG, data))
                continue
            if use_stdin and op in (OP_TEXT, OP_BINARY, 0):
                shim_writer.write(data)
                await shim_writer.drain()

    tasks: list[asyncio.Future[Any]] = [background(down()), background(up())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if not tasks[0].done() and tasks[1].done():
            with contextlib.suppress(Exception):
                if shim_writer.can_write_eof():
                    shim_writer.write_eof()
            await tasks[0]  # the client stopped sending: keep delivering output until the container ends
    except (ConnectionError, OSError):
        pass
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        shim_writer.close()


def register(router: Router) -> None:
    router.add("GET", "/containers/{name}/attach/ws", attach_ws)
