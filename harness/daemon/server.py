"""The Engine API router: version prefix, version middleware, error mapping, debug lines.

Shaped after moby ``api/server``: routes are served both as ``/v{version}/path`` and
``/path``; unknown paths and wrong methods give a bare 404 ``page not found`` that skips
the middlewares; errors are JSON (or plain text for API < 1.24) ending in a newline.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from . import API_VERSION, ENGINE_VERSION, MIN_API_VERSION
from .errors import ApiError
from .goformat import error_line
from .httpd import BadRequest, Request, Response

if TYPE_CHECKING:
    import asyncio
else:
    from .lazy import asyncio  # imported on first use: refd answers its first /_ping without it

if TYPE_CHECKING:
    from .daemon import Daemon

__all__ = ["Router", "error_response", "json_response", "version_tuple", "worker_stream"]

Handler = Callable[[Request, "Daemon"], Awaitable[Response]]
FastHandler = Callable[[Request, "Daemon"], "Response | None"]

_VERSIONED = re.compile(r"^/v([0-9.]+)(/.*)$")
_NOT_FOUND_BODY = b'{"message":"page not found"}\n'
_SPLIT: dict[str, tuple[str, str]] = {}
_SPLIT_MAX = 256


def _split_version(path: str) -> tuple[str, str]:
    """``/v1.41/x`` -> ("1.41", "/x"); ("", path) without a version prefix. Clients repeat their paths."""
    split = _SPLIT.get(path)
    if split is None:
        versioned = _VERSIONED.match(path)
        split = (versioned.group(1), versioned.group(2)) if versioned else ("", path)
        if len(_SPLIT) >= _SPLIT_MAX:
            _SPLIT.clear()
        _SPLIT[path] = split
    return split


@functools.lru_cache(maxsize=64)
def version_tuple(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in text.split("."))
    except ValueError:
        return (0,)


def json_response(obj: Any, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Response:
    """JSON as Go's json.Encoder writes it: compact, HTML-escaped off, trailing newline."""
    body = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
    return Response(status, body, [*(headers or []), ("Content-Type", "application/json")])


def error_response(status: int, message: str, api_version: str) -> Response:
    """dockerd's error body: JSON for API >= 1.24 (or unversioned), Go's http.Error text below."""
    if api_version and version_tuple(api_version) < (1, 24):
        return Response(
            status,
            (message + "\n").encode(),
            [("Content-Type", "text/plain; charset=utf-8"), ("X-Content-Type-Options", "nosniff")],
        )
    return json_response({"message": message}, status)


_DONE = object()


async def worker_stream(
    work: Callable[[Callable[[bytes], None], threading.Event], None],
    done: Callable[[], None] | None = None,
) -> Response:
    """Run ``work(write, cancelled)`` in a thread and stream the lines it writes, as dockerd's WriteFlusher.

    An error before the first line is an ordinary error response with its status; after it, an
    ``errorDetail`` line ends the 200 stream. Errors carry ``status`` and ``message`` (ApiError,
    DistributionError); any other exception is a 500 naming its type. ``cancelled`` is set when the
    stream ends or the client goes away; ``done`` runs once the stream has been sent to its end
    (an error line included), not when the client left before.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    cancelled = threading.Event()

    def write(line: bytes) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, line)

    def run() -> None:
        try:
            work(write, cancelled)
            item: Any = _DONE
        except Exception as exc:  # an unexpected failure still ends the stream with an error line
            status, message = getattr(exc, "status", None), getattr(exc, "message", None)
            if not isinstance(status, int) or not isinstance(message, str):
                status, message = 500, f"{type(exc).__name__}: {exc}"
            item = ApiError(status, message)
        loop.call_soon_threadsafe(queue.put_nowait, item)

    worker = loop.run_in_executor(None, run)
    first = await queue.get()
    if isinstance(first, ApiError):
        await worker
        raise first

    async def stream() -> AsyncIterator[bytes]:
        item = first
        try:
            while item is not _DONE:
                if isinstance(item, ApiError):
                    yield error_line(item.message)
                    break
                yield item
                item = await queue.get()
        finally:
            cancelled.set()
            with contextlib.suppress(Exception):
                await worker
        if done is not None:
            done()

    return Response(200, headers=[("Content-Type", "application/json")], stream=stream())


class _Route:
    __slots__ = ("fast", "handler")

    def __init__(self, handler: Handler, fast: FastHandler | None) -> None:
        self.handler = handler
        self.fast = fast


_BASE_HEADERS = (
    ("Api-Version", API_VERSION),
    ("Ostype", "linux"),
    ("Server", f"Docker/{ENGINE_VERSION} (linux)"),
)
_MIN_VERSION = version_tuple(MIN_API_VERSION)
_MAX_VERSION = version_tuple(API_VERSION)


class Router:
    """Maps (method, path pattern) to handlers and applies dockerd's middleware chain.

    A route may also have a *fast* handler: a plain function that answers synchronously (or
    returns None to leave the request to the async handler). The HTTP server serves requests
    whose route has one straight from the connection's ``data_received``, without a task; it
    must not block, read a body, or return a stream or hijack.
    """

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.routes: dict[str, list[tuple[re.Pattern[str], _Route]]] = {}
        #: literal patterns no earlier pattern shadows: looked up before the regex scan
        self.exact: dict[str, dict[str, _Route]] = {}

    def add(self, method: str, pattern: str, handler: Handler, fast: FastHandler | None = None) -> None:
        regex = re.compile(
            "^"
            + re.sub(
                r"\{(\w+)(?::([^}]+))?\}", lambda m: f"(?P<{m.group(1)}>{m.group(2) or '[^/]+'})", pattern
            )
            + "$"
        )
        route = _Route(handler, fast)
        earlier = self.routes.setdefault(method, [])
        literal = not re.search(r"[{}\\.^$*+?()\[\]|]", pattern)
        if (
            literal
            and pattern not in self.exact.get(method, {})
            and not any(r.match(pattern) for r, _ in earlier)
        ):
            self.exact.setdefault(method, {})[pattern] = route
        earlier.append((regex, route))

    _deferred: Callable[[Router], None] | None = None

    def defer(self, load: Callable[[Router], None]) -> None:
        """``load`` adds the remaining routes on the first request the routes so far do not answer, so
        that refd answers ``/_ping`` before importing every handler module."""
        self._deferred = load

    def _find(self, method: str, path: str) -> tuple[_Route, dict[str, str]] | None:
        found = self._lookup(method, path)
        if found is None and self._deferred is not None:
            load, self._deferred = self._deferred, None
            try:
                load(self)
            except BaseException:
                self._deferred = load  # a handler module that fails to import fails every request, loudly
                raise
            found = self._lookup(method, path)
        return found

    def _lookup(self, method: str, path: str) -> tuple[_Route, dict[str, str]] | None:
        route = self.exact.get(method, {}).get(path)
        if route is not None:
            return route, {}
        for regex, route in self.routes.get(method, ()):
            match = regex.match(path)
            if match:
                return route, match.groupdict()
        return None

    def _base_headers(self) -> list[tuple[str, str]]:
        return list(_BASE_HEADERS)

    def _route(self, req: Request) -> Response | tuple[_Route, str, list[tuple[str, str]]]:
        """Version prefix, route and version checks: an early answer, or (route, version, headers)."""
        path, version = req.path, ""
        if path.startswith("/v"):
            version, path = _split_version(path)
        found = self._find(
            "GET" if req.method == "HEAD" and not self._find("HEAD", path) else req.method, path
        )
        if found is None:
            return Response(404, _NOT_FOUND_BODY, [("Content-Type", "application/json")])
        route, params = found
        req.match = params
        headers = self._base_headers()
        if version:
            wanted = version_tuple(version)
            if wanted < _MIN_VERSION:
                resp = error_response(
                    400,
                    f"client version {version} is too old. Minimum supported API version "
                    f"is {MIN_API_VERSION}, please upgrade your client to a newer version",
                    version,
                )
                resp.headers[:0] = headers
                self._log_request(req)
                return resp
            if wanted > _MAX_VERSION:
                resp = error_response(
                    400,
                    f"client version {version} is too new. Maximum supported API version is {API_VERSION}",
                    version,
                )
                resp.headers[:0] = headers
                self._log_request(req)
                return resp
        req.api_version = version or API_VERSION
        headers.append(("Docker-Experimental", "true" if self.daemon.config["experimental"] else "false"))
        return route, version, headers

    def _log_request(self, req: Request) -> None:
        log = self.daemon.log
        if log.enabled("debug"):
            # gorilla/mux's route variables as Go prints a map (sorted): the path's {params} and the version
            found = dict(getattr(req, "match", None) or {})
            versioned = _VERSIONED.match(req.path) if req.path.startswith("/v") else None
            if versioned:
                found["version"] = versioned.group(1)
            route_vars = "map[" + " ".join(f"{k}:{v}" for k, v in sorted(found.items())) + "]"
            log.debug(
                f"handling {req.method} request",
                method=req.method,
                module="api",
                **{"request-url": req.target, "vars": route_vars},
            )

    def _error(self, req: Request, exc: Exception, version: str) -> Response:
        log = self.daemon.log
        if isinstance(exc, ApiError):
            if exc.status >= 500:
                log.error(f"Handler for {req.method} {req.path} returned error: {exc.message}")
            return error_response(exc.status, exc.message, version)
        log.error(f"Handler for {req.method} {req.path} returned error: {exc!r}")
        if isinstance(exc, OSError) and exc.strerror:  # a full or read-only disk: Go's wording, no type name
            where = f"{exc.filename}: " if exc.filename else ""
            return error_response(500, f"{where}{exc.strerror.lower()}", version)
        return error_response(500, f"{type(exc).__name__}: {exc}", version)

    def fast(self, req: Request) -> Response | None:
        """Answer ``req`` synchronously if its route allows it (see the class doc); else None."""
        routed = self._route(req)
        if isinstance(routed, Response):
            return routed
        route, version, headers = routed
        if route.fast is None:
            return None
        try:
            resp = route.fast(req, self.daemon)
        except BadRequest:
            raise
        except Exception as exc:
            self._log_request(req)
            resp = self._error(req, exc, version)
        else:
            if resp is None:
                return None
            self._log_request(req)
        resp.headers[:0] = headers
        return resp

    async def __call__(self, req: Request) -> Response:
        routed = self._route(req)
        if isinstance(routed, Response):
            return routed
        route, version, headers = routed
        self._log_request(req)
        try:
            resp = route.fast(req, self.daemon) if route.fast is not None else None
            if resp is None:
                resp = await route.handler(req, self.daemon)
        except BadRequest:
            raise
        except Exception as exc:
            resp = self._error(req, exc, version)
        resp.headers[:0] = headers
        return resp


async def read_json(req: Request) -> Any:
    """Decode a JSON request body as dockerd 28's httputils.ReadJSON does (Content-Type, Go's messages)."""
    from .gojson import DECODER_EOF, go_json_syntax_error

    ctype = req.header("content-type")
    framed = req.has_body  # a chunked body is one even when it turns out empty (Go: ContentLength -1)
    raw = await req.body()
    if (raw or framed) and ctype and ctype.split(";")[0].strip().lower() != "application/json":
        raise ApiError(400, f"unsupported Content-Type header ({ctype}): must be 'application/json'")
    if not raw:
        if framed:  # Go decodes a chunked body and reads EOF
            raise ApiError(400, "invalid JSON: got EOF while reading request body")
        return None  # an empty body (no Content-Length, or 0) is not invalid
    stripped = raw.strip()
    if not stripped:
        raise ApiError(400, "invalid JSON: got EOF while reading request body")
    # a Decoder reads one value: text after it is "unexpected content", not a syntax error
    text = stripped.decode("utf-8", errors="replace")
    try:
        value, end = json.JSONDecoder().raw_decode(text)
    except json.JSONDecodeError:
        raise ApiError(
            400, f"invalid JSON: {go_json_syntax_error(stripped, DECODER_EOF) or DECODER_EOF}"
        ) from None
    except RecursionError:  # nested deeper than Python decodes; Go's limit is 10000 levels
        syntax = go_json_syntax_error(stripped, DECODER_EOF) or "exceeded max depth"
        raise ApiError(400, f"invalid JSON: {syntax}") from None
    late = go_json_syntax_error(
        text[:end].encode(), DECODER_EOF
    )  # Python accepts NaN and Infinity; Go does not
    if late:
        raise ApiError(400, f"invalid JSON: {late}")
    if text[end:].strip():
        raise ApiError(400, "unexpected content after JSON")
    return value
