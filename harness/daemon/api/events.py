"""``GET /events``: history replay (``since``), live stream, ``until`` and ``filters``."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ..errors import invalid
from ..events import matches
from ..httpd import Request, Response
from ..query import parse_filters, parse_timestamp
from ..server import version_tuple

if TYPE_CHECKING:
    from ..daemon import Daemon
    from ..server import Router

__all__ = ["register"]


async def events(req: Request, daemon: Daemon) -> Response:
    now = time.time()
    since = parse_timestamp(req.arg("since"), now)
    until = parse_timestamp(req.arg("until"), now)
    if since is not None and until is not None and until < since:
        raise invalid(f"`since` time ({req.arg('since')}) cannot be after `until` time ({req.arg('until')})")
    filters = parse_filters(req.arg("filters"), None)
    queue = daemon.events.subscribe()
    backlog = [e for e in daemon.events.history if since is not None and e["timeNano"] / 1e9 >= since]

    # image create events (commits, build steps) were added in API 1.46: older clients never see them
    old_api = version_tuple(req.api_version) < (1, 46)

    def wanted(event: dict[str, Any]) -> bool:
        if old_api and event.get("Type") == "image" and event.get("Action") == "create":
            return False
        return (until is None or event["timeNano"] / 1e9 <= until) and matches(event, filters)

    async def stream() -> AsyncIterator[bytes]:
        try:
            yield b""  # headers go out before the first event, as dockerd flushes them
            for event in backlog:
                if wanted(event):
                    yield json.dumps(event, separators=(",", ":")).encode() + b"\n"
            while True:
                timeout = None if until is None else max(0.0, until - time.time())
                if timeout == 0.0:
                    return
                try:
                    event = await asyncio.wait_for(queue.get(), timeout)
                except TimeoutError:
                    return
                if since is not None and event in backlog:
                    continue
                if wanted(event):
                    yield json.dumps(event, separators=(",", ":")).encode() + b"\n"
        finally:
            daemon.events.unsubscribe(queue)

    return Response(200, headers=[("Content-Type", "application/json")], stream=stream())


def register(router: Router) -> None:
    router.add("GET", "/events", events)
