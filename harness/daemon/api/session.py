"""``POST /session``: BuildKit's session over a hijacked HTTP/2 connection, which refd does not serve.

dockerd hands the request to BuildKit's session manager, whose errors are 400s: no ``Upgrade`` header is
"no upgrade proto in request", another protocol than h2c is "protocol X not supported". An h2c upgrade is
where BuildKit would start; refd has no BuildKit and answers 501.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import invalid, not_implemented
from ..httpd import Request, Response

if TYPE_CHECKING:
    from ..daemon import Daemon
    from ..server import Router

__all__ = ["register"]


async def start(req: Request, daemon: Daemon) -> Response:
    proto = req.header("upgrade")
    if not proto:
        raise invalid("no upgrade proto in request")
    if proto != "h2c":
        raise invalid(f"protocol {proto} not supported")
    raise not_implemented("BuildKit sessions are not implemented by refd (it builds with its own builder)")


def register(router: Router) -> None:
    router.add("POST", "/session", start)
