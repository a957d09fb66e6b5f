"""Swarm-mode endpoints on a node that is in no swarm: dockerd 28's errors, so clients see the same texts.

refd has no swarm mode. dockerd answers every manager-only route (swarm, nodes, services, tasks, secrets,
configs) with 503 "This node is not a swarm manager..." before it reads the body, ``POST /swarm/leave`` with
503 "This node is not part of a swarm", service and task logs without a stream with dockerd's 500, and
``PUT /volumes/{name}`` (cluster volumes) with 503. ``POST /swarm/init`` and ``/swarm/join`` get dockerd's
checks of the request (its JSON, ``ListenAddr``, the spec's name, ``RemoteAddrs``: the same 400s), then, where
dockerd would make or join a swarm, refd's own 503 saying it has no swarm mode.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ApiError, invalid
from ..gotypes import List, Struct, check
from ..httpd import Request, Response
from ..query import bool_value
from ..server import read_json

if TYPE_CHECKING:
    from ..daemon import Daemon
    from ..server import Router

__all__ = ["NOT_MANAGER", "NO_SWARM_MODE", "register"]

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


#: refd's answer where dockerd would make or join a swarm
NO_SWARM_MODE = (
    "refd has no swarm mode: this node cannot {} a swarm (refd is a node in no swarm, answering every "
    "swarm route as dockerd does then); use dockerd for swarm services"
)


#: the fields of moby's swarm.InitRequest and swarm.JoinRequest that refd reads, with their Go types, so a
#: value of the wrong kind is Go's 400 'cannot unmarshal', never a crash
_SPEC = Struct("swarm.Spec", {"Name": "string"})
INIT_REQUEST = Struct(
    "swarm.InitRequest",
    {
        "ListenAddr": "string",
        "AdvertiseAddr": "string",
        "DataPathAddr": "string",
        "DataPathPort": "uint32",
        "ForceNewCluster": "bool",
        "Spec": _SPEC,
        "AutoLockManagers": "bool",
        "Availability": "string",
        "DefaultAddrPool": List("string"),
        "SubnetSize": "uint32",
    },
)
JOIN_REQUEST = Struct(
    "swarm.JoinRequest",
    {
        "ListenAddr": "string",
        "AdvertiseAddr": "string",
        "DataPathAddr": "string",
        "RemoteAddrs": List("string"),
        "JoinToken": "string",
        "Availability": "string",
    },
)


def _listen_addr(body: dict[str, Any]) -> None:
    """moby validateAddr on ListenAddr: only an empty one is refused (any other text is taken as given)."""
    addr = str(body.get("ListenAddr") or "")
    if not addr:
        raise invalid(f'invalid ListenAddr "{addr}": invalid empty address')


async def init(req: Request, daemon: Daemon) -> Response:
    """moby Cluster.Init on a node in no swarm: validateAndSanitizeInitRequest's 400s, then refd's 503."""
    body = check(await read_json(req), INIT_REQUEST)
    _listen_addr(body)
    name = str(((body.get("Spec") or {}).get("Name")) or "")
    if name not in ("", "default"):
        raise invalid('swarm spec must be named "default"')
    raise ApiError(503, NO_SWARM_MODE.format("init"))


async def join(req: Request, daemon: Daemon) -> Response:
    """moby Cluster.Join on a node in no swarm: validateAndSanitizeJoinRequest's 400s, then refd's 503."""
    body = check(await read_json(req), JOIN_REQUEST)
    _listen_addr(body)
    remotes = [str(r or "") for r in body.get("RemoteAddrs") or []]
    if not remotes:
        raise invalid("at least 1 RemoteAddr is required to join")
    for remote in remotes:
        if not remote:
            raise invalid(f'invalid remoteAddr "{remote}": invalid empty address')
    raise ApiError(503, NO_SWARM_MODE.format("join"))


async def volume_update(req: Request, daemon: Daemon) -> Response:
    raise ApiError(503, "volume update only valid for cluster volumes, but swarm is unavailable")


def register(router: Router) -> None:
    for method, pattern in _MANAGER_ROUTES:
        router.add(method, pattern, not_manager)
    router.add("POST", "/swarm/init", init)
    router.add("POST", "/swarm/join", join)
    router.add("POST", "/swarm/leave", leave)
    router.add("GET", "/services/{id}/logs", logs)
    router.add("GET", "/tasks/{id}/logs", logs)
    router.add("PUT", "/volumes/{name}", volume_update)
