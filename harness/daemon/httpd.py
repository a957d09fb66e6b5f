"""A small HTTP/1.1 server on asyncio streams, shaped like Go's net/http where clients see it.

refd owns its HTTP layer instead of importing a framework: importing aiohttp.web alone
costs ~165 ms, most of refd's boot budget, and the Engine API needs raw control anyway
(connection hijacking for attach/exec, Go's plaintext-to-TLS reply, exact error bodies).
Limits follow Go's defaults: 1 MiB of request headers.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["BadRequest", "HttpServer", "Request", "Response", "handle_connection", "http_date"]

MAX_HEADER_BYTES = 1 << 20
MAX_LINE = 64 * 1024


class BadRequest(Exception):
    """The request could not be parsed; answered with Go's bare 400."""


_date_cache: tuple[int, str] = (0, "")


def http_date() -> str:
    """RFC 1123 date for the Date header, cached per second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, email.utils.formatdate(now, usegmt=True))
    return _date_cache[1]


@dataclass
class Request:
    """A parsed request. The body is read lazily so streaming uploads stay streaming."""

    method: str
    target: str
    version: str
    headers: dict[str, str]
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    path: str = ""
    query: dict[str, list[str]] = field(default_factory=dict)
    match: dict[str, str] = field(default_factory=dict)
    api_version: str = ""
    _remaining: int = 0
    _chunked: bool = False
    _chunk_left: int = 0
    _eof: bool = False

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    def arg(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[-1] if values else default

    @property
    def has_body(self) -> bool:
        return self._chunked or self._remaining > 0

    async def read_chunk(self, limit: int = 65536) -> bytes:
        """Next piece of the body, b'' at its end."""
        if self._eof:
            return b""
        if not self._chunked:
            if self._remaining <= 0:
                self._eof = True
                return b""
            data = await self.reader.read(min(limit, self._remaining))
            if not data:
                raise BadRequest("unexpected EOF")
            self._remaining -= len(data)
            return data
        if self._chunk_left == 0:
            line = await self.reader.readline()
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise BadRequest("invalid chunk size") from None
            if size == 0:
                while (await self.reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
                self._eof = True
                return b""
            self._chunk_left = size
        data = await self.reader.read(min(limit, self._chunk_left))
        if not data:
            raise BadRequest("unexpected EOF")
        self._chunk_left -= len(data)
        if self._chunk_left == 0:
            await self.reader.readline()
        return data

    async def body(self, limit: int = 64 << 20) -> bytes:
        parts: list[bytes] = []
        total = 0
        while chunk := await self.read_chunk():
            total += len(chunk)
            if total > limit:
                raise BadRequest("request body too large")
            parts.append(chunk)
        return b"".join(parts)

    async def drain(self) -> None:
        while await self.read_chunk():
            pass


Hijacker = Callable[[Request], Awaitable[None]]


@dataclass
class Response:
    """What a handler returns: a body, a stream, or a hijack of the connection."""

    status: int = 200
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    stream: AsyncIterator[bytes] | None = None
    hijack: Hijacker | None = None
    close: bool = False


App = Callable[[Request], Awaitable[Response]]


def _status_line(version: str, status: int) -> str:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "status code " + str(status)
    return f"{version} {status} {reason}\r\n"


async def _write_response(req: Request, resp: Response, keep_alive: bool) -> None:
    writer = req.writer
    head = [_status_line("HTTP/1.1", resp.status)]
    names = {name.lower() for name, _ in resp.headers}
    head += [f"{name}: {value}\r\n" for name, value in resp.headers]
    head.append(f"Date: {http_date()}\r\n")
    chunked = resp.stream is not None
    if chunked:
        head.append("Transfer-Encoding: chunked\r\n")
    elif "content-length" not in names and resp.status not in (204, 304) and resp.status >= 200:
        head.append(f"Content-Length: {len(resp.body)}\r\n")
    if not keep_alive:
        head.append("Connection: close\r\n")
    head.append("\r\n")
    writer.write("".join(head).encode("latin-1"))
    if req.method == "HEAD":
        await writer.drain()
        return
    if resp.stream is None:
        if resp.body:
            writer.write(resp.body)
        await writer.drain()
        return
    await writer.drain()  # streams (events, logs) must show their headers before the first item
    try:
        async for piece in resp.stream:
            if piece:
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
    finally:
        aclose = getattr(resp.stream, "aclose", None)
        if aclose is not None:
            await aclose()


async def _read_head(reader: asyncio.StreamReader) -> tuple[str, str, str, dict[str, str]] | None:
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise BadRequest("unexpected EOF") from None
        return None
    except asyncio.LimitOverrunError:
        raise BadRequest("request line too long") from None
    while line in (b"\r\n", b"\n"):  # tolerate stray CRLF between requests, as Go does
        line = await reader.readuntil(b"\n")
    parts = line.decode("latin-1").rstrip("\r\n").split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest("malformed HTTP request")
    method, target, version = parts
    headers: dict[str, str] = {}
    total = len(line)
    while True:
        try:
            hline = await reader.readuntil(b"\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            raise BadRequest("malformed MIME header") from None
        total += len(hline)
        if total > MAX_HEADER_BYTES:
            raise BadRequest("header too large")
        if hline in (b"\r\n", b"\n"):
            break
        name, sep, value = hline.decode("latin-1").partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest("malformed MIME header line")
        key = name.lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers and key != "content-length" else value
    return method, target, version, headers


async def handle_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, app: App) -> None:
    """Serve requests on one connection until it closes or asks to."""
    try:
        while True:
            try:
                head = await _read_head(reader)
            except BadRequest:
                writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
                             b"Connection: close\r\n\r\n400 Bad Request")
                await writer.drain()
                return
            if head is None:
                return
            method, target, version, headers = head
            req = Request(method, target, version, headers, reader, writer)
            split = urlsplit(target)
            req.path = unquote(split.path) or "/"
            req.query = parse_qs(split.query, keep_blank_values=True)
            te = headers.get("transfer-encoding", "").lower()
            if te:
                if te != "chunked":
                    writer.write(b"HTTP/1.1 501 Not Implemented\r\nContent-Type: text/plain; charset=utf-8\r\n"
                                 b"Connection: close\r\n\r\nUnsupported transfer encoding")
                    await writer.drain()
                    return
                req._chunked = True
            else:
                try:
                    req._remaining = int(headers.get("content-length", "0") or "0")
                    if req._remaining < 0:
                        raise ValueError
                except ValueError:
                    writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
                                 b"Connection: close\r\n\r\n400 Bad Request: bad Content-Length")
                    await writer.drain()
                    return
            conn = headers.get("connection", "").lower()
            keep_alive = "close" not in conn and (version == "HTTP/1.1" or "keep-alive" in conn)
            try:
                resp = await app(req)
            except BadRequest:
                resp = Response(400, b"400 Bad Request", [("Content-Type", "text/plain; charset=utf-8")],
                                close=True)
            if resp.hijack is not None:
                await resp.hijack(req)
                return
            keep_alive = keep_alive and not resp.close
            try:
                await req.drain()
            except BadRequest:
                keep_alive = False
            await _write_response(req, resp, keep_alive)
            if not keep_alive:
                return
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return
    finally:
        try:
            writer.close()
        except Exception:  # noqa: BLE001 - closing a broken transport must not raise
            pass


class HttpServer:
    """Binds the app to already-listening sockets (refd binds before init, serves after)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.servers: list[asyncio.AbstractServer] = []
        self.connections: set[asyncio.Task[Any]] = set()

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.connections.add(task)
        try:
            await handle_connection(reader, writer, self.app)
        finally:
            if task is not None:
                self.connections.discard(task)

    async def close(self) -> None:
        for server in self.servers:
            server.close()
        for task in list(self.connections):
            task.cancel()
        if self.connections:
            await asyncio.wait(list(self.connections), timeout=1)
