"""Distribution endpoints: push, login (``POST /auth``), distribution inspect, search.

A push runs in a thread, its progress lines streamed as they come (``server.worker_stream``: an error
before the first line is an ordinary error response, after it an ``errorDetail`` line). A pull is
``POST /images/create?fromImage=``, served by ``api/images.py`` with the same stream.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..distribution.auth import AuthConfig, decode_auth_config
from ..distribution.errors import DistributionError
from ..distribution.progress import ProgressOutput
from ..distribution.service import ServiceConfig
from ..errors import ApiError, go_kind, invalid
from ..httpd import Request, Response
from ..images.reference import Named, ReferenceError, parse_any_reference, parse_normalized_named, with_tag
from ..server import json_response, worker_stream

if TYPE_CHECKING:
    from ..daemon import Daemon
    from ..server import Router

__all__ = ["register"]

_AUTH_HEADER = "X-Registry-Auth"


def _service_config(daemon: Daemon) -> ServiceConfig:
    """The registry settings in force (rebuilt from the running configuration: reloads apply)."""
    try:
        return ServiceConfig.from_daemon_config(daemon.config)
    except DistributionError as exc:
        raise ApiError(exc.status, exc.message) from None


# -- login ------------------------------------------------------------------------------------------------
async def _auth_body(req: Request) -> Any:
    """dockerd's postAuth decodes the body itself: any Content-Type, and its errors are 500s."""
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
        raise ApiError(
            500, f"json: cannot unmarshal {go_kind(doc)} into Go value of type registry.AuthConfig"
        )
    return doc


async def auth(req: Request, daemon: Daemon) -> Response:
    from ..distribution.login import login

    doc = await _auth_body(req)
    creds = AuthConfig.from_dict(doc if isinstance(doc, dict) else {})
    service = _service_config(daemon)
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

    def work(write: Callable[[bytes], None], cancelled: threading.Event) -> None:
        out = ProgressOutput(write)
        push_image(
            PushOptions.from_config(daemon.config, daemon.images, out, creds, daemon.log, cancelled), ref
        )

    def pushed() -> None:
        daemon.images.event("push", ref.familiar_string(), {"name": ref.familiar_name()})

    return await worker_stream(work, pushed)


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
    service = _service_config(daemon)
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
            search_index, _service_config(daemon), term, limit, decode_auth_config(req.header(_AUTH_HEADER))
        )
    except DistributionError as exc:
        raise ApiError(exc.status, exc.message) from None
    return json_response(results)


def register(router: Router) -> None:
    router.add("POST", "/auth", auth)
    router.add("POST", "/images/{name:.*}/push", push)
    router.add("GET", "/distribution/{name:.*}/json", distribution_inspect)
    router.add("GET", "/images/search", search)
