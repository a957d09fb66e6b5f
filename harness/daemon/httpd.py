"""A small HTTP/1.1 server on asyncio streams, shaped like Go's net/http where clients see it.

refd owns its HTTP layer instead of importing a framework: importing aiohttp.web alone
costs ~165 ms, most of refd's boot budget, and the Engine API needs raw control anyway
(connection hijacking for attach/exec, Go's plaintext-to-TLS reply, exact error bodies).
Limits and error answers follow Go's server: 1 MiB (+4 KiB) of request head, then
``431``; a bad request line, header or Content-Length is a bare ``400 Bad Request`` and
a close; a missing Host on HTTP/1.1 is ``400 Bad Request: missing required Host header``;
a transfer coding other than chunked is ``501``; HTTP/2+ request lines get ``505``.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["BadRequest", "HttpServer", "Request", "Response", "handle_connection", "http_date"]

#: Go's DefaultMaxHeaderBytes; the server reads up to this plus 4096 bytes of request head.
MAX_HEADER_BYTES = 1 << 20
_HEAD_LIMIT = MAX_HEADER_BYTES + 4096
#: Go reads at most this much of a body the handler left unread before giving up keep-alive.
_MAX_POST_HANDLER_READ = 256 << 10
_MAX_CHUNK_LINE = 4096
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_DIGITS = frozenset("0123456789")
_HEXDIGITS = frozenset("0123456789abcdefABCDEF")
#: Go's StatusText where Python's phrase differs (or differs between Python versions).
_GO_REASONS = {
    413: "Request Entity Too Large",
    414: "Request URI Too Long",
    416: "Requested Range Not Satisfiable",
    418: "I'm a teapot",
    422: "Unprocessable Entity",
    431: "Request Header Fields Too Large",
}
_ERROR_HEADERS = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"


class BadRequest(Exception):
    """The request could not be parsed; answered as Go's net/http answers it, then the connection closes.

    ``status`` and ``detail`` follow Go: a plain error is a bare ``400 Bad Request``; a
    ``statusError`` (such as ``missing required Host header``) shows its text after the reason.
    """

    def __init__(self, message: str, status: int = 400, detail: str = "", body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail
        self.body = body

    def wire(self) -> bytes:
        """The bytes Go's server writes for this error (``c.serve`` error handling)."""
        text = f"{self.status} {_reason(self.status)}"
        if self.detail:
            text += f": {self.detail}"
        return f"HTTP/1.1 {text}{_ERROR_HEADERS}{self.body or text}".encode("latin-1")


class _TooLarge(BadRequest):
    def __init__(self) -> None:
        super().__init__("request head too large", 431)


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
    """A parsed request. The body is read lazily so streaming uploads stay streaming.

    ``headers`` maps lower-cased names to the *first* value, as Go's ``Header.Get``.
    """

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
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    _remaining: int = 0
    _chunked: bool = False
    _chunk_left: int = 0
    _eof: bool = False
    _expect_continue: bool = False

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    def arg(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[-1] if values else default

    @property
    def has_body(self) -> bool:
        return self._chunked or self._remaining > 0

    @property
    def proto_at_least_11(self) -> bool:
        return self.version != "HTTP/1.0" and not self.version.startswith("HTTP/0.")

    async def _send_continue(self) -> None:
        if self._expect_continue:
            self._expect_continue = False
            self.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await self.writer.drain()

    async def _chunk_size(self) -> int:
        try:
            line = await self.reader.readuntil(b"\n")
        except asyncio.IncompleteReadError:
            raise BadRequest("unexpected EOF") from None
        except asyncio.LimitOverrunError:
            raise BadRequest("header line too long") from None
        if len(line) > _MAX_CHUNK_LINE:
            raise BadRequest("header line too long")
        text = line.decode("latin-1").rstrip("\r\n").rstrip(" \t").split(";", 1)[0].rstrip(" \t")
        if not text:
            raise BadRequest("empty hex number for chunk length")
        if not set(text) <= _HEXDIGITS:
            raise BadRequest("invalid byte in chunk length")
        if len(text) > 16:
            raise BadRequest("http chunk length too large")
        return int(text, 16)

    async def read_chunk(self, limit: int = 65536) -> bytes:
        """Next piece of the body, b'' at its end."""
        if self._eof:
            return b""
        await self._send_continue()
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
            size = await self._chunk_size()
            if size == 0:
                while True:  # trailer fields, up to the blank line
                    line = await self.reader.readline()
                    if line in (b"\r\n", b"\n"):
                        break
                    if not line:
                        raise BadRequest("unexpected EOF")
                self._eof = True
                return b""
            self._chunk_left = size
        data = await self.reader.read(min(limit, self._chunk_left))
        if not data:
            raise BadRequest("unexpected EOF")
        self._chunk_left -= len(data)
        if self._chunk_left == 0:
            try:
                crlf = await self.reader.readexactly(2)
            except asyncio.IncompleteReadError:
                raise BadRequest("unexpected EOF") from None
            if crlf != b"\r\n":
                raise BadRequest("malformed chunked encoding")
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

    async def drain(self, limit: int | None = None) -> bool:
        """Discard the unread body; False if more than ``limit`` bytes were left (then do not reuse)."""
        if self._expect_continue:  # the client never got 100 Continue: it will not send the body
            return False
        total = 0
        while chunk := await self.read_chunk():
            total += len(chunk)
            if limit is not None and total > limit:
                return False
        return True


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


def _reason(status: int) -> str:
    if status in _GO_REASONS:
        return _GO_REASONS[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _status_line(version: str, status: int) -> str:
    reason = _reason(status) or f"status code {status}"
    return f"{version} {status} {reason}\r\n"


async def _close_stream(stream: AsyncIterator[bytes] | None) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


async def _write_response(req: Request, resp: Response, keep_alive: bool) -> bool:
    """Write ``resp``; returns whether the connection may serve another request."""
    writer = req.writer
    http11 = req.proto_at_least_11
    head = [_status_line("HTTP/1.1" if http11 else "HTTP/1.0", resp.status)]
    names = {name.lower() for name, _ in resp.headers}
    head += [f"{name}: {value}\r\n" for name, value in resp.headers]
    head.append(f"Date: {http_date()}\r\n")
    body_allowed = resp.status >= 200 and resp.status not in (204, 304)
    stream = resp.stream if body_allowed else None
    chunked = stream is not None and http11
    if stream is not None and not http11:
        keep_alive = False  # HTTP/1.0 has no chunking: the end of the body is the end of the connection
    if chunked:
        head.append("Transfer-Encoding: chunked\r\n")
    elif stream is None and body_allowed and "content-length" not in names:
        head.append(f"Content-Length: {len(resp.body)}\r\n")
    if not keep_alive and http11:
        head.append("Connection: close\r\n")
    elif keep_alive and not http11:
        head.append("Connection: keep-alive\r\n")
    head.append("\r\n")
    writer.write("".join(head).encode("latin-1"))
    if req.method == "HEAD" or not body_allowed:
        await writer.drain()
        await _close_stream(resp.stream)
        return keep_alive
    if stream is None:
        if resp.body:
            writer.write(resp.body)
        await writer.drain()
        return keep_alive
    await writer.drain()  # streams (events, logs) must show their headers before the first item
    try:
        async for piece in stream:
            if piece:
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                await writer.drain()
        if chunked:
            writer.write(b"0\r\n\r\n")
            await writer.drain()
    finally:
        await _close_stream(stream)
    return keep_alive


class _HeadReader:
    """Reads the request line and headers within Go's byte budget (MaxHeaderBytes + 4096)."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self.used = 0

    async def line(self) -> bytes:
        """One line including its LF; b'' at a clean EOF; raises _TooLarge past the budget."""
        parts: list[bytes] = []
        while True:
            try:
                piece = await self.reader.readuntil(b"\n")
            except asyncio.LimitOverrunError as exc:
                piece = await self.reader.readexactly(exc.consumed)
                self._count(piece)
                parts.append(piece)
                continue
            except asyncio.IncompleteReadError as exc:
                self._count(exc.partial)
                if parts or exc.partial:
                    raise BadRequest("unexpected EOF") from None
                return b""
            self._count(piece)
            parts.append(piece)
            return b"".join(parts)

    def _count(self, data: bytes) -> None:
        self.used += len(data)
        if self.used > _HEAD_LIMIT:
            raise _TooLarge()


def _strip_eol(line: bytes) -> str:
    text = line.decode("latin-1")
    return text[:-2] if text.endswith("\r\n") else text.rstrip("\n")


def _parse_version(proto: str) -> tuple[int, int] | None:
    """Go ``http.ParseHTTPVersion``."""
    if proto == "HTTP/1.1":
        return 1, 1
    if proto == "HTTP/1.0":
        return 1, 0
    if (
        not proto.startswith("HTTP/")
        or len(proto) != 8
        or proto[6] != "."
        or proto[5] not in _DIGITS
        or proto[7] not in _DIGITS
    ):
        return None
    return int(proto[5]), int(proto[7])


def _valid_request_uri(target: str) -> bool:
    """The checks of Go's ``url.ParseRequestURI`` that a daemon's clients can trip."""
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target):
        return False
    if target == "*":
        return True
    if not target.startswith("/"):
        scheme, sep, _ = target.partition(":")
        if (
            not sep
            or not scheme
            or not scheme[0].isalpha()
            or not all(ch.isalnum() or ch in "+-." for ch in scheme if ch.isascii())
        ):
            return False
    path = target.split("?", 1)[0]
    for i, ch in enumerate(path):  # url.unescape(path, encodePath): every % needs two hex digits
        if ch == "%" and not (len(path) >= i + 3 and set(path[i + 1 : i + 3]) <= _HEXDIGITS):
            return False
    return True


async def _read_head(
    heads: _HeadReader, after_post: bool
) -> tuple[str, str, str, dict[str, list[str]]] | None:
    line = await heads.line()
    skipped = 0
    # RFC 7230 section 3 tolerance for old clients: after a POST, Go discards up to 4 CR/LF bytes
    while after_post and line and not line.strip(b"\r\n") and skipped + len(line) <= 4:
        skipped += len(line)
        line = await heads.line()
    if not line:
        return None
    request_line = _strip_eol(line)
    method, sep1, rest = request_line.partition(" ")
    target, sep2, proto = rest.partition(" ")
    if not sep1 or not sep2:
        raise BadRequest(f"malformed HTTP request {request_line!r}")
    if not method or not set(method) <= _TOKEN:
        raise BadRequest(f"invalid method {method!r}")
    version = _parse_version(proto)
    if version is None:
        raise BadRequest(f"malformed HTTP version {proto!r}")
    if not _valid_request_uri(target):
        raise BadRequest(f"invalid URI for request {target!r}")
    headers: dict[str, list[str]] = {}
    last: list[str] | None = None
    first = True
    while True:
        hline = await heads.line()
        if not hline:
            raise BadRequest("unexpected EOF")
        text = _strip_eol(hline)
        if text == "":
            break
        if text[0] in " \t":  # obs-fold: Go joins a continuation line onto the previous value
            if first or last is None:
                raise BadRequest(f"malformed MIME header initial line: {text}")
            last[-1] = (last[-1] + " " + text.strip(" \t")).strip(" \t")
            continue
        first = False
        name, colon, value = text.partition(":")
        if not colon or not name or not set(name) <= _TOKEN:
            raise BadRequest(f"malformed MIME header line: {text}")
        value = value.strip(" \t")
        if any((ord(ch) < 0x20 and ch != "\t") or ord(ch) == 0x7F for ch in value):
            raise BadRequest(f"malformed MIME header line: {text}")
        last = headers.setdefault(name.lower(), [])
        last.append(value)
    return method, target, proto, headers


def _framing(proto: str, headers: dict[str, list[str]]) -> tuple[bool, int]:
    """Go's readTransfer for a request: (chunked, content length) or BadRequest/501."""
    http11 = proto != "HTTP/1.0" and not proto.startswith("HTTP/0.")
    te = headers.pop("transfer-encoding", None)
    if te is not None and http11:  # Go ignores Transfer-Encoding on HTTP/1.0 requests
        if len(te) != 1 or te[0].lower() != "chunked":
            # not echoed back, as Go does not echo it (cross-site scripting)
            raise BadRequest("unsupported transfer encoding", 501, body="Unsupported transfer encoding")
        headers.pop("content-length", None)
        return True, 0
    lengths = headers.get("content-length")
    if not lengths:
        return False, 0
    first = lengths[0].strip(" \t")
    if any(v.strip(" \t") != first for v in lengths[1:]):
        raise BadRequest("http: message cannot contain multiple Content-Length headers")
    if first == "":
        raise BadRequest("invalid empty Content-Length")
    if not set(first) <= _DIGITS or int(first) >= 1 << 63:
        raise BadRequest(f"bad Content-Length {first!r}")
    return False, int(first)


def _check_host(proto: str, headers: dict[str, list[str]]) -> None:
    hosts = headers.get("host")
    if proto != "HTTP/1.0" and not hosts:
        raise BadRequest("missing required Host header", 400, "missing required Host header")
    if hosts and len(hosts) > 1:
        raise BadRequest("too many Host headers")
    if hosts and any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in hosts[0]):
        raise BadRequest("malformed Host header", 400, "malformed Host header")


async def handle_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, app: App) -> None:
    """Serve requests on one connection until it closes or asks to."""
    after_post = False
    try:
        while True:
            heads = _HeadReader(reader)
            try:
                head = await _read_head(heads, after_post)
                if head is None:
                    return
                method, target, version, raw_headers = head
                chunked, length = _framing(version, raw_headers)
                if version[5] != "1":  # http1ServerSupportsRequest
                    raise BadRequest("unsupported protocol version", 505, "unsupported protocol version")
                _check_host(version, raw_headers)
            except BadRequest as exc:
                writer.write(exc.wire())
                await writer.drain()
                return
            headers = {name: values[0] for name, values in raw_headers.items()}
            req = Request(method, target, version, headers, reader, writer)
            req._chunked, req._remaining = chunked, length
            split = urlsplit(target)
            req.path = unquote(split.path) or "/"
            req.query = parse_qs(split.query, keep_blank_values=True)
            after_post = method == "POST"
            conn = headers.get("connection", "").lower()
            tokens = {t.strip() for t in conn.split(",")}
            keep_alive = "close" not in tokens and (req.proto_at_least_11 or "keep-alive" in tokens)
            expect = headers.get("expect", "")
            if "100-continue" in {t.strip().lower() for t in expect.split(",")}:
                req._expect_continue = req.proto_at_least_11 and req.has_body
            elif expect:  # Go's sendExpectationFailed
                await _write_response(req, Response(417, headers=[("Connection", "close")]), True)
                return
            try:
                resp = await app(req)
            except BadRequest as exc:
                writer.write(exc.wire())
                await writer.drain()
                return
            if resp.hijack is not None:
                req.response_headers = resp.headers  # middleware headers, for hijackers that echo them
                await resp.hijack(req)
                return
            keep_alive = keep_alive and not resp.close
            try:
                if not await req.drain(_MAX_POST_HANDLER_READ):
                    keep_alive = False
            except BadRequest:
                keep_alive = False
            if not await _write_response(req, resp, keep_alive):
                return
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return
    finally:
        with contextlib.suppress(Exception):  # closing a broken transport must not raise
            writer.close()


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
