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

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

if TYPE_CHECKING:
    import asyncio
else:
    from .lazy import asyncio  # imported on first use: refd answers its first /_ping without it

__all__ = [
    "BadRequest",
    "FastApp",
    "FastConnection",
    "HttpServer",
    "Request",
    "Response",
    "handle_connection",
    "http_date",
]

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


_date_cache: tuple[int, str, bytes] = (0, "", b"")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _rfc1123(now: int) -> str:
    """``email.utils.formatdate(now, usegmt=True)`` without importing ``email`` (5 ms of refd's boot)."""
    t = time.gmtime(now)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


def http_date() -> str:
    """RFC 1123 date for the Date header, cached per second."""
    return _dates()[1]


def _date_line() -> bytes:
    """The whole ``Date:`` header line, cached per second (every response has one)."""
    return _dates()[2]


def _dates() -> tuple[int, str, bytes]:
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        text = _rfc1123(now)
        _date_cache = (now, text, f"Date: {text}\r\n".encode("latin-1"))
    return _date_cache


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
        """The first value given for ``name``, as Go's ``r.FormValue`` (docker-py sends ``dockerfile``
        twice for a Dockerfile outside the context: the generated name, then the text)."""
        values = self.query.get(name)
        return values[0] if values else default

    @property
    def has_body(self) -> bool:
        return self._chunked or self._remaining > 0

    @property
    def proto_at_least_11(self) -> bool:
        version = self.version
        return version == "HTTP/1.1" or (version != "HTTP/1.0" and not version.startswith("HTTP/0."))

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


_STATUS_LINES: dict[tuple[str, int], str] = {}


def _status_line(version: str, status: int) -> str:
    line = _STATUS_LINES.get((version, status))
    if line is None:
        reason = _reason(status) or f"status code {status}"
        line = _STATUS_LINES[(version, status)] = f"{version} {status} {reason}\r\n"
    return line


async def _close_stream(stream: AsyncIterator[bytes] | None) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


#: encoded response heads around their Date line, by everything else that shapes them
_HEADS: dict[tuple[Any, ...], tuple[bytes, bytes, bool, bool]] = {}
_HEADS_MAX = 256


def _encode_head(req: Request, resp: Response, keep_alive: bool) -> tuple[bytes, bool, bool]:
    """The response head's bytes, whether the connection stays open, whether the body is chunked."""
    key = (req.proto_at_least_11, resp.status, *resp.headers, len(resp.body), keep_alive, resp.stream is None)
    try:
        cached = _HEADS.get(key)
    except TypeError:  # an unhashable header value: no caching
        cached, key = None, ()
    if cached is None:
        pre, post, keep, chunked = _encode_head_parts(req, resp, keep_alive)
        if key:
            if len(_HEADS) >= _HEADS_MAX:
                _HEADS.clear()
            _HEADS[key] = (pre, post, keep, chunked)
    else:
        pre, post, keep, chunked = cached
    return b"".join((pre, _date_line(), post)), keep, chunked


def _encode_head_parts(req: Request, resp: Response, keep_alive: bool) -> tuple[bytes, bytes, bool, bool]:
    """The head before and after its Date line; whether the connection stays open; whether chunked."""
    http11 = req.proto_at_least_11
    head = [_status_line("HTTP/1.1" if http11 else "HTTP/1.0", resp.status)]
    names = {name.lower() for name, _ in resp.headers}
    head += [f"{name}: {value}\r\n" for name, value in resp.headers]
    pre = "".join(head).encode("latin-1")
    head = []
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
    return pre, "".join(head).encode("latin-1"), keep_alive, chunked


def _body_written(req: Request, resp: Response) -> bytes | None:
    """The body bytes to send after the head for a plain response; None when a stream follows."""
    if req.method == "HEAD" or not (resp.status >= 200 and resp.status not in (204, 304)):
        return b""
    return resp.body if resp.stream is None else None


async def _write_response(req: Request, resp: Response, keep_alive: bool) -> bool:
    """Write ``resp``; returns whether the connection may serve another request."""
    writer = req.writer
    head, keep_alive, chunked = _encode_head(req, resp, keep_alive)
    writer.write(head)
    body = _body_written(req, resp)
    if body is not None:
        if body:
            writer.write(body)
        await writer.drain()
        await _close_stream(resp.stream)
        return keep_alive
    stream = resp.stream
    await writer.drain()  # streams (events, logs) must show their headers before the first item
    try:
        async for piece in stream:  # type: ignore[union-attr]
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
    if not (target.isascii() and target.isprintable()) and any(
        ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target
    ):
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


def _parse_request_line(line: bytes) -> tuple[str, str, str]:
    """Go's parseRequestLine and its checks: (method, target, proto) or BadRequest."""
    request_line = _strip_eol(line)
    method, sep1, rest = request_line.partition(" ")
    target, sep2, proto = rest.partition(" ")
    if not sep1 or not sep2:
        raise BadRequest(f"malformed HTTP request {request_line!r}")
    if not method or not set(method) <= _TOKEN:
        raise BadRequest(f"invalid method {method!r}")
    if _parse_version(proto) is None:
        raise BadRequest(f"malformed HTTP version {proto!r}")
    if not _valid_request_uri(target):
        raise BadRequest(f"invalid URI for request {target!r}")
    return method, target, proto


class _HeaderParser:
    """Header lines (EOL stripped) into lower-cased name -> values, with Go's textproto checks."""

    __slots__ = ("first", "headers", "last")

    def __init__(self) -> None:
        self.headers: dict[str, list[str]] = {}
        self.last: list[str] | None = None
        self.first = True

    def add(self, text: str) -> None:
        if text[0] in " \t":  # obs-fold: Go joins a continuation line onto the previous value
            if self.first or self.last is None:
                raise BadRequest(f"malformed MIME header initial line: {text}")
            self.last[-1] = (self.last[-1] + " " + text.strip(" \t")).strip(" \t")
            return
        self.first = False
        name, colon, value = text.partition(":")
        if not colon or not name or not set(name) <= _TOKEN:
            raise BadRequest(f"malformed MIME header line: {text}")
        value = value.strip(" \t")
        if not value.isprintable() and any(
            (ord(ch) < 0x20 and ch != "\t") or ord(ch) == 0x7F for ch in value
        ):
            raise BadRequest(f"malformed MIME header line: {text}")
        self.last = self.headers.setdefault(name.lower(), [])
        self.last.append(value)


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
    method, target, proto = _parse_request_line(line)
    parser = _HeaderParser()
    while True:
        hline = await heads.line()
        if not hline:
            raise BadRequest("unexpected EOF")
        text = _strip_eol(hline)
        if text == "":
            break
        parser.add(text)
    return method, target, proto, parser.headers


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


def _new_request(
    method: str,
    target: str,
    version: str,
    raw_headers: dict[str, list[str]],
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> tuple[Request, bool]:
    """Framing, protocol and Host checks (BadRequest as Go answers them); the request and its keep-alive."""
    chunked, length = _framing(version, raw_headers)
    if version[5] != "1":  # http1ServerSupportsRequest
        raise BadRequest("unsupported protocol version", 505, "unsupported protocol version")
    _check_host(version, raw_headers)
    headers = {name: values[0] for name, values in raw_headers.items()}
    req = Request(method, target, version, headers, reader, writer)
    req._chunked, req._remaining = chunked, length
    if (
        "?" in target
        or "%" in target
        or "#" in target
        or not target.startswith("/")
        or target.startswith("//")
    ):
        split = urlsplit(target)
        req.path = unquote(split.path) or "/"
        req.query = parse_qs(split.query, keep_blank_values=True)
    else:  # the common case: a plain path, nothing to split or unescape
        req.path = target
    conn = headers.get("connection")
    if conn is None:
        keep_alive = req.proto_at_least_11
    else:
        tokens = {t.strip() for t in conn.lower().split(",")}
        keep_alive = "close" not in tokens and (req.proto_at_least_11 or "keep-alive" in tokens)
    return req, keep_alive


async def handle_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, app: App) -> None:
    """Serve requests on one connection until it closes or asks to."""
    await _serve(reader, writer, app, False)


async def _serve(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, app: App, after_post: bool
) -> None:
    try:
        while True:
            heads = _HeadReader(reader)
            try:
                head = await _read_head(heads, after_post)
                if head is None:
                    return
                req, keep_alive = _new_request(*head, reader, writer)
            except BadRequest as exc:
                writer.write(exc.wire())
                await writer.drain()
                return
            after_post = req.method == "POST"
            if not await _serve_one(req, keep_alive, app):
                return
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return
    finally:
        with contextlib.suppress(Exception):  # closing a broken transport must not raise
            writer.close()


async def _serve_one(req: Request, keep_alive: bool, app: App, resp: Response | None = None) -> bool:
    """Answer one parsed request (``resp``: already computed); False when the connection must end."""
    writer = req.writer
    if resp is None:
        expect = req.headers.get("expect", "")
        if "100-continue" in {t.strip().lower() for t in expect.split(",")}:
            req._expect_continue = req.proto_at_least_11 and req.has_body
        elif expect:  # Go's sendExpectationFailed
            await _write_response(req, Response(417, headers=[("Connection", "close")]), True)
            return False
        try:
            resp = await app(req)
        except BadRequest as exc:
            writer.write(exc.wire())
            await writer.drain()
            return False
    if resp.hijack is not None:
        req.response_headers = resp.headers  # middleware headers, for hijackers that echo them
        await resp.hijack(req)
        return False
    keep_alive = keep_alive and not resp.close
    try:
        if not await req.drain(_MAX_POST_HANDLER_READ):
            keep_alive = False
    except BadRequest:
        keep_alive = False
    return await _write_response(req, resp, keep_alive)


def _parse_fast(head: bytes) -> tuple[Request, bool]:
    """A complete head (without its blank line) parsed as the loop parses it; no reader or writer yet."""
    lines = head.split(b"\n")
    method, target, proto = _parse_request_line(lines[0] + b"\n")
    parser = _HeaderParser()
    for raw in lines[1:]:
        parser.add(_strip_eol(raw + b"\n"))
    return _new_request(method, target, proto, parser.headers, None, None)  # type: ignore[arg-type]


#: parsed bodiless request heads by their bytes (a pure function of them), for the fast path
_PARSED: dict[bytes, tuple[Request, bool]] = {}
_PARSED_MAX = 512

#: a fast handler answers a bodiless request synchronously, or returns None to take the async path
FastApp = Callable[[Request], "Response | None"]
_FAST_HEAD_LIMIT = 64 << 10


class FastConnection:
    """The fast path of one connection, over any byte transport: complete bodiless request heads a
    :data:`FastApp` answers at once are answered from ``_buf`` as they come; anything else (a body,
    ``Expect``, an async handler, a stream, a hijack, a malformed head's partial) is ``_go_slow``: the
    connection, buffered bytes first, goes to :func:`handle_connection`'s loop for good. asyncio's
    :class:`~.httpproto.HttpProtocol` and refd's boot loop (:mod:`.bootloop`) are the two transports.
    """

    _buf: bytearray
    _fast: FastApp | None
    _slow: bool
    _after_post: bool

    def _fast_write(self, data: bytes) -> None:
        raise NotImplementedError

    def _fast_close(self) -> None:
        raise NotImplementedError

    def _write_blocked(self) -> bool:
        """Whether the client has stopped reading (then the loop's ``drain()`` applies back-pressure)."""
        raise NotImplementedError

    def _go_slow(self, resp: Response | None = None, req: Request | None = None, keep: bool = True) -> None:
        raise NotImplementedError

    def _serve_fast(self) -> None:
        buf = self._buf
        assert self._fast is not None
        while buf and not self._slow:
            if buf[0] in (0x0D, 0x0A):  # leading blank lines (after a POST): the loop's rules
                self._go_slow()
                return
            end = buf.find(b"\n\r\n")
            end2 = buf.find(b"\n\n")
            if end < 0 or (0 <= end2 < end):
                end = end2
            if end < 0:
                if len(buf) > _FAST_HEAD_LIMIT:
                    self._go_slow()
                return
            if end > _FAST_HEAD_LIMIT:
                self._go_slow()
                return
            size = end + (3 if buf[end + 1] == 0x0D else 2)
            head = bytes(buf[:size])
            parsed = _PARSED.get(head)  # clients repeat their heads byte for byte
            if parsed is None:
                try:
                    parsed = _parse_fast(head[:end])
                except BadRequest as exc:
                    self._fast_write(exc.wire())
                    self._fast_close()
                    self._slow = True
                    return
                if parsed[0].has_body or "expect" in parsed[0].headers:
                    self._go_slow()
                    return
                if len(_PARSED) >= _PARSED_MAX:
                    _PARSED.clear()
                _PARSED[head] = parsed
            model, keep_alive = parsed  # never handed out: each request gets its own copy
            req = Request(model.method, model.target, model.version, dict(model.headers), None, None)  # type: ignore[arg-type]
            req.path = model.path
            if model.query:
                req.query = {k: list(v) for k, v in model.query.items()}
            method = req.method
            try:
                resp = self._fast(req)
            except BadRequest as exc:
                self._fast_write(exc.wire())
                self._fast_close()
                self._slow = True
                return
            if resp is None:
                self._go_slow()
                return
            del buf[:size]
            self._after_post = method == "POST"
            if resp.hijack is not None or resp.stream is not None:
                self._go_slow(resp, req, keep_alive)  # the rest of this response needs the writer
                return
            keep_alive = keep_alive and not resp.close
            head, keep_alive, _ = _encode_head(req, resp, keep_alive)
            body = _body_written(req, resp)
            self._fast_write(head + body if body else head)
            if not keep_alive:
                self._fast_close()
                self._slow = True
                return
            if self._write_blocked():  # the client is not reading: the loop's drain() applies back-pressure
                self._go_slow()
                return


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
