"""Swarm-mode endpoints on a node that is in no swarm: dockerd 28's errors, so clients see the same texts.

refd has no swarm mode. dockerd answers every manager-only route (swarm, nodes, services, tasks, secrets,
configs) with 503 "This node is not a swarm manager..." before it reads the body, ``POST /swarm/leave`` with
503 "This node is not part of a swarm", service and task logs without a stream with dockerd's 500, and
``PUT /volumes/{name}`` (cluster volumes) with 503. ``/swarm/init`` and ``/swarm/join`` stay unrouted: they
would make a swarm, which refd cannot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ApiError
from ..httpd import Request, Response
from ..query import bool_value

if TYPE_CHECKING:
    from ..daemon import Daemon
    from ..server import Router

__all__ = ["NOT_MANAGER", "register"]

NOT_MANAGER = (
    'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" '
    "to connect this node to swarm and try again."
)

# (method, pattern) of the routes a manager serves (moby api/server/router/swarm/cluster.go)
_MANAGER_ROUTES = (
    ("GET", "/swarm"),
    ("GET", "/swarm/unlockkey"),
    ("POST", "/swarm/update"),
    ("POST", "/swarm/unlock"),
    ("GET", "/nodes"),
    ("GET", "/nodes/{id}"),
    ("DELETE", "/nodes/{id}"),
    ("POST", "/nodes/{id}/update"),
    ("GET", "/services"),
    ("POST", "/services/create"),
    ("GET", "/services/{id}"),
    ("DELETE", "/services/{id}"),
    ("POST", "/services/{id}/update"),
    ("GET", "/tasks"),
    ("GET", "/tasks/{id}"),
    ("GET", "/secrets"),
    ("POST", "/secrets/create"),
    ("GET", "/secrets/{id}"),
    ("DELETE", "/secrets/{id}"),
    ("POST", "/secrets/{id}/update"),
    ("GET", "/configs"),
    ("POST", "/configs/create"),
    ("GET", "/configs/{id}"),
    ("DELETE", "/configs/{id}"),
    ("POST", "/configs/{id}/update"),
)


async def not_manager(req: Request, daemon: Daemon) -> Response:
    raise ApiError(503, NOT_MANAGER)


async def leave(req: Request, daemon: Daemon) -> Response:
    raise ApiError(503, "This node is not part of a swarm")


async def logs(req: Request, daemon: Daemon) -> Response:
    """Service and task logs: the stream choice is checked before the swarm (moby swarm_routes.go)."""
    if not (bool_value(req, "stdout") or bool_value(req, "stderr")):
        raise ApiError(500, "Bad parameters: you must choose at least one stream")
    raise ApiError(503, NOT_MANAGER)


async def volume_update(req: Request, daemon: Daemon) -> Response:
    raise ApiError(503, "volume update only valid for cluster volumes, but swarm is unavailable")


def register(router: Router) -> None:
    for method, pattern in _MANAGER_ROUTES:
        router.add(method, pattern, not_manager)
    router.add("POST", "/swarm/leave", leave)
    router.add("GET", "/services/{id}/logs", logs)
    router.add("GET", "/tasks/{id}/logs", logs)
    router.add("PUT", "/volumes/{name}", volume_update)
