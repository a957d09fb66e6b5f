"""Distribution endpoints: pull (``POST /images/create?fromImage=``), push, login, inspect, search.

The work runs in a thread; its progress lines are streamed as they come. As dockerd's
``WriteFlusher``, an error before the first line is an ordinary error response with its status
(``404 manifest for x:nope not found: ...``), after it an ``errorDetail`` line in the 200 stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from ..distribution.auth import AuthConfig, decode_auth_config
from ..distribution.errors import DistributionError
from ..distribution.progress import ProgressOutput, format_error
from ..distribution.service import ServiceConfig
from ..errors import ApiError, invalid
from ..httpd import Request, Response
from ..images.reference import Named, ReferenceError, parse_any_reference, parse_normalized_named, with_tag
from ..server import json_response

if TYPE_CHECKING:
    from ..daemon import Daemon
    from ..server import Router

__all__ = ["pull_response", "register", "service_config"]

_AUTH_HEADER = "X-Registry-Auth"
_DONE = object()


def service_config(daemon: Daemon) -> ServiceConfig:
    """The registry settings in force (rebuilt from the running configuration: reloads apply)."""
    try:
        return ServiceConfig.from_daemon_config(daemon.config)
    except DistributionError as exc:
        raise ApiError(exc.status, exc.message) from None


async def _streamed(work: Callable[[ProgressOutput, threading.Event], None]) -> Response:
    """Run ``work(out, cancelled)`` in a thread; stream its lines (see the module doc for errors)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    cancelled = threading.Event()

    def sink(line: bytes) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, line)

    def run() -> None:
        try:
            work(ProgressOutput(sink), cancelled)
            loop.call_soon_threadsafe(queue.put_nowait, _DONE)
        except DistributionError as exc:
            loop.call_soon_threadsafe(queue.put_nowait, exc)
        except ApiError as exc:
            loop.call_soon_threadsafe(queue.put_nowait, DistributionError(exc.message, exc.status))
        except Exception as exc:  # an unexpected failure still ends the stream with an error line
            loop.call_soon_threadsafe(queue.put_nowait, DistributionError(f"{type(exc).__name__}: {exc}"))

    worker = loop.run_in_executor(None, run)
    first = await queue.get()
    if isinstance(first, DistributionError):
        await worker
        raise ApiError(first.status, first.message)

    async def stream() -> AsyncIterator[bytes]:
        item = first
        try:
            while True:
                if item is _DONE:
                    return
                if isinstance(item, DistributionError):
                    yield format_error(item.message)
                    return
                yield item
                item = await queue.get()
        finally:
            cancelled.set()
            with contextlib.suppress(Exception):
                await worker

    return Response(200, headers=[("Content-Type", "application/json")], stream=stream())


# -- pull ----------------------------------------------------------------------------------------------
async def pull_response(
    req: Request, daemon: Daemon, ref: Named, platform: tuple[str, str, str] | None
) -> Response:
    """The pull half of ``POST /images/create`` (``ref`` parsed and checked by the caller)."""
    from ..distribution.pull import PullOptions, pull

    store = daemon.images
    creds = decode_auth_config(req.header(_AUTH_HEADER))
    pulled: list[Named] = []

    def work(out: ProgressOutput, cancelled: threading.Event) -> None:
        opts = PullOptions.from_config(daemon.config, store, out, creds, platform, daemon.log, cancelled)
        pulled.append(pull(opts, ref))
        if platform is not None:
            _platform_warning(store, ref, platform, out)

    resp = await _streamed(work)
    if resp.stream is not None:
        resp.stream = _after(resp.stream, lambda: _pull_event(daemon, ref, pulled))
    return resp


def _platform_warning(store: Any, ref: Named, platform: tuple[str, str, str], out: ProgressOutput) -> None:
    """PullImage's check: a single-architecture image of another platform is kept, with a warning."""
    try:
        image = store.resolve(ref.string())
    except ApiError:
        return
    config = image.config
    have = (
        str(config.get("os") or ""),
        str(config.get("architecture") or ""),
        str(config.get("variant") or ""),
    )
    want_os, want_arch, want_variant = platform
    same = have[0] == want_os and _arch(have[1]) == _arch(want_arch)
    if same and want_variant and have[2] and have[2] != want_variant:
        same = False
    if not same:
        out.message(
            "",
            f"WARNING: image with reference {ref.string()} was found but its platform ({_fmt(have)}) "
            "does not "
            f"match the specified platform ({_fmt(platform)})",
        )


def _fmt(platform: tuple[str, ...]) -> str:
    """platforms.FormatAll."""
    return "/".join(x for x in platform if x)


def _arch(arch: str) -> str:
    return {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64"}.get(arch, arch)


async def _after(stream: AsyncIterator[bytes], done: Callable[[], None]) -> AsyncIterator[bytes]:
    async for chunk in stream:
        yield chunk
    done()


def _pull_event(daemon: Daemon, ref: Named, pulled: list[Named]) -> None:
    """LogImageEvent(FamiliarString(ref), FamiliarName(repo), "pull"): labels of the image when found."""
    if not pulled:
        return
    attrs: dict[str, str] = {}
    with contextlib.suppress(ApiError):
        image = daemon.images.resolve(ref.familiar_string())
        attrs.update({str(k): str(v) for k, v in image.labels.items()})
    attrs["name"] = pulled[0].familiar_name()
    daemon.images.event("pull", ref.familiar_string(), attrs)


# -- login ------------------------------------------------------------------------------------------------
async def _auth_body(req: Request) -> Any:
    """dockerd's postAuth decodes the body itself: any Content-Type, and its errors are 500s."""
    import json

    from ..errors import _GO_KINDS
    from ..gojson import DECODER_EOF, go_json_syntax_error

    raw = (await req.body()).strip()
    if not raw:
        raise ApiError(500, "EOF")
    text = raw.decode("utf-8", errors="replace")
    try:
        doc, _ = json.JSONDecoder().raw_decode(text)
    except ValueError:
        raise ApiError(500, go_json_syntax_error(raw, DECODER_EOF) or DECODER_EOF) from None
    if doc is not None and not isinstance(doc, dict):
        kind = _GO_KINDS.get(type(doc), "value")
        raise ApiError(500, f"json: cannot unmarshal {kind} into Go value of type registry.AuthConfig")
    return doc


async def auth(req: Request, daemon: Daemon) -> Response:
    from ..distribution.login import login

    doc = await _auth_body(req)
    creds = AuthConfig.from_dict(doc if isinstance(doc, dict) else {})
    service = service_config(daemon)
    try:
        status, token = await asyncio.to_thread(login, service, creds, daemon.log)
    except DistributionError as exc:
        raise ApiError(exc.status, exc.message) from None
    return json_response({"IdentityToken": token, "Status": status})


# -- push --------------------------------------------------------------------------------------------------
async def push(req: Request, daemon: Daemon) -> Response:
    from ..distribution.push import PushOptions, push_image

    name, tag = req.match["name"], req.arg("tag")
    try:
        if tag:
            ref = parse_normalized_named(name)
            if ref.is_canonical:
                raise ReferenceError("cannot import digest reference")
            ref = with_tag(ref, tag)
        else:
            ref = parse_normalized_named(name)
    except ReferenceError as exc:
        raise invalid(str(exc)) from None
    creds = decode_auth_config(req.header(_AUTH_HEADER))

    def work(out: ProgressOutput, cancelled: threading.Event) -> None:
        opts = PushOptions.from_config(daemon.config, daemon.images, out, creds, daemon.log, cancelled)
        push_image(opts, ref)

    resp = await _streamed(work)
    if resp.stream is not None:
        resp.stream = _after(
            resp.stream,
            lambda: daemon.images.event("push", ref.familiar_string(), {"name": ref.familiar_name()}),
        )
    return resp


# -- distribution inspect ----------------------------------------------------------------------------------
async def distribution_inspect(req: Request, daemon: Daemon) -> Response:
    from ..distribution.inspect import inspect

    name = req.match["name"]
    try:
        ref = parse_any_reference(name)
    except ReferenceError as exc:
        raise invalid(str(exc)) from None
    if not isinstance(ref, Named):
        raise ApiError(500, "no manifest found for full image ID")
    creds = decode_auth_config(req.header(_AUTH_HEADER))
    service = service_config(daemon)
    try:
        doc = await asyncio.to_thread(inspect, service, ref, creds)
    except DistributionError as exc:
        raise ApiError(exc.status, exc.message) from None
    return json_response(doc)


# -- search -----------------------------------------------------------------------------------------------
async def search(req: Request, daemon: Daemon) -> Response:
    from ..distribution.inspect import search_index

    term = req.arg("term")
    limit = req.arg("limit")
    try:
        results = await asyncio.to_thread(
            search_index, service_config(daemon), term, limit, decode_auth_config(req.header(_AUTH_HEADER))
        )
    except DistributionError as exc:
        raise ApiError(exc.status, exc.message) from None
    return json_response(results)


def register(router: Router) -> None:
    router.add("POST", "/auth", auth)
    router.add("POST", "/images/{name:.*}/push", push)
    router.add("GET", "/distribution/{name:.*}/json", distribution_inspect)
    router.add("GET", "/images/search", search)
