"""``POST /containers/{id}/update`` (``docker update``): resources and restart policy of a container.

Validation comes before the container lookup, as in dockerd (a bad value on a missing container is a
400, not a 404); see ``containers/update.py`` for the rules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..httpd import Request, Response
from ..server import json_response, read_json, version_tuple

if TYPE_CHECKING:
    from ..daemon import Daemon
    from ..server import Router

__all__ = ["register"]


async def update(req: Request, daemon: Daemon) -> Response:
    from ..containers.update import parse_update, sysinfo, update_container, verify_update

    body = await read_json(req)
    version = version_tuple(req.api_version) if req.api_version else (9, 99)
    changes = parse_update(body, (version[0], version[1]))
    warnings = verify_update(changes, sysinfo())
    if daemon.networks is not None:  # verifyPlatformContainerSettings on the update's (empty) NetworkMode
        warnings += daemon.networks.create_warnings({})
    c = daemon.containers.get(req.match["name"])
    warnings = await update_container(daemon.containers, c, changes, warnings)
    return json_response({"Warnings": warnings or None})


def register(router: Router) -> None:
    router.add("POST", "/containers/{name}/update", update)
