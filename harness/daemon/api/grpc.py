"""``POST /grpc``: BuildKit's control API (gRPC over HTTP/2) on the hijacked connection, as dockerd serves it.

dockerd checks the upgrade before anything else, with 500s: no ``Upgrade`` header is "no upgrade
proto in request", another protocol than h2c "protocol X not supported". Then ``101 Switching
Protocols`` and the client speaks HTTP/2 (gRPC) on the connection; ``buildkit.control`` serves it.
The BuildKit modules (and ``h2``) load on the first such request, never at boot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ApiError
from ..httpd import Request, Response

if TYPE_CHECKING:
    from ..daemon import Daemon
    from ..server import Router

__all__ = ["register"]

SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"


async def start(req: Request, daemon: Daemon) -> Response:
    proto = req.header("upgrade")
    if not proto:
        raise ApiError(500, "no upgrade proto in request")
    if proto != "h2c":
        raise ApiError(500, f"protocol {proto} not supported")
    try:
        from ..buildkit.control import serve_control
    except ImportError as exc:  # buildkit.MissingDependency: how to install h2
        raise ApiError(500, str(exc)) from None

    async def hijack(r: Request) -> None:
        r.writer.write(SWITCHING)
        await r.writer.drain()
        await serve_control(daemon, r.reader, r.writer)

    return Response(hijack=hijack)


def register(router: Router) -> None:
    router.add("POST", "/grpc", start)
