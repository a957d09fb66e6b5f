"""``GET /containers/{id}/changes`` (``docker diff``): the container's filesystem changes.

The walk of both layer trees blocks, so it runs in a worker thread; see ``containers/changes.py``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ..errors import system
from ..httpd import Request, Response
from ..server import json_response

if TYPE_CHECKING:
    from ..daemon import Daemon
    from ..server import Router

__all__ = ["register"]


async def changes(req: Request, daemon: Daemon) -> Response:
    from ..containers.changes import container_changes

    c = daemon.containers.get(req.match["name"])
    loop = asyncio.get_running_loop()
    try:
        found = await loop.run_in_executor(None, container_changes, daemon, c)
    except OSError as exc:
        raise system(str(exc)) from None
    return json_response(found)


def register(router: Router) -> None:
    router.add("GET", "/containers/{name}/changes", changes)
