"""``/_ping``, ``/version`` and ``/info`` with dockerd 28's headers and JSON shapes (spec 6.2-6.4)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..httpd import Request, Response
from ..server import json_response, version_tuple
from ..sysinfo import builder_version, info_document, info_for_version, version_document

if TYPE_CHECKING:
    from ..daemon import Daemon
    from ..server import Router

__all__ = ["register"]


def ping_now(req: Request, daemon: Daemon) -> Response:
    headers = [
        ("Builder-Version", builder_version(daemon)),
        ("Cache-Control", "no-cache, no-store, must-revalidate"),
        ("Pragma", "no-cache"),
        ("Swarm", "inactive"),
        ("Content-Type", "text/plain; charset=utf-8"),
    ]
    if req.method == "HEAD":
        return Response(200, b"", [*headers, ("Content-Length", "0")])
    return Response(200, b"OK", headers)


async def ping(req: Request, daemon: Daemon) -> Response:
    return ping_now(req, daemon)


def version_now(req: Request, daemon: Daemon) -> Response:
    return json_response(version_document(daemon))


async def version(req: Request, daemon: Daemon) -> Response:
    return version_now(req, daemon)


def info_now(req: Request, daemon: Daemon) -> Response:
    return json_response(info_for_version(info_document(daemon), version_tuple(req.api_version)))


async def info(req: Request, daemon: Daemon) -> Response:
    return info_now(req, daemon)


def register(router: Router) -> None:
    router.add("GET", "/_ping", ping, ping_now)
    router.add("HEAD", "/_ping", ping, ping_now)
    # answered synchronously (no await in them), so the boot loop serves them too: docker info and docker
    # version right after a boot need no asyncio
    router.add("GET", "/version", version, version_now)
    router.add("GET", "/info", info, info_now)
