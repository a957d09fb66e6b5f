"""``GET /containers/{id}/top`` and ``/stats``: a container's processes and counters
(:mod:`..containers.stats`); these handlers parse, call and answer."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from ..containers import stats as container_stats
from ..httpd import Request, Response
from ..query import bool_value
from ..server import json_response

if TYPE_CHECKING:
    from ..daemon import Daemon
    from ..server import Router

__all__ = ["register"]


async def top(req: Request, daemon: Daemon) -> Response:
    c = daemon.containers.get(req.match["name"])
    return json_response(await container_stats.top(daemon, c, req.arg("ps_args") or "-ef"))


async def stats(req: Request, daemon: Daemon) -> Response:
    c = daemon.containers.get(req.match["name"])
    stream = req.arg("stream") == "" or bool_value(req, "stream")
    one_shot = bool_value(req, "one-shot")

    async def body() -> AsyncIterator[bytes]:
        async for doc in container_stats.stats(daemon, c, stream, one_shot):
            yield json.dumps(doc, separators=(",", ":")).encode() + b"\n"

    return Response(200, headers=[("Content-Type", "application/json")], stream=body())


def register(router: Router) -> None:
    router.add("GET", "/containers/{name}/top", top)
    router.add("GET", "/containers/{name}/stats", stats)
