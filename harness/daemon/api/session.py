"""``POST /session``: a client's BuildKit session (the gRPC services it serves) on the hijacked connection.

dockerd hands the request to BuildKit's session manager, whose errors are 400s: no ``Upgrade`` header is
"no upgrade proto in request", another protocol than h2c is "protocol X not supported". After ``101``
refd is the gRPC *client* on the connection: it calls the services the ``X-Docker-Expose-Session-*``
headers announce (filesync for the context, secrets, ssh, auth, the exporters' file sending) while the
session's builds run (``buildkit.session``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ApiError, invalid
from ..httpd import Request, Response

if TYPE_CHECKING:
    from ..daemon import Daemon
    from ..server import Router

__all__ = ["register"]

SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"


async def start(req: Request, daemon: Daemon) -> Response:
    proto = req.header("upgrade")
    if not proto:
        raise invalid("no upgrade proto in request")
    if proto != "h2c":
        raise invalid(f"protocol {proto} not supported")
    try:
        from ..buildkit.session import serve_session
    except ImportError as exc:  # buildkit.MissingDependency: how to install h2
        raise ApiError(500, str(exc)) from None

    announced = {k: v for k, v in req.headers.items() if k.startswith("x-docker-expose-session-")}

    async def hijack(r: Request) -> None:
        r.writer.write(SWITCHING)
        await r.writer.drain()
        await serve_session(daemon, r.reader, r.writer, announced)

    return Response(hijack=hijack)


def register(router: Router) -> None:
    router.add("POST", "/session", start)
