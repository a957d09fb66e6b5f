"""Network endpoints: list (filters), inspect, create, remove, connect, disconnect, prune."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..bodytypes import CONNECT_OPTIONS, DISCONNECT_OPTIONS, NETWORK_CREATE
from ..errors import ApiError, invalid
from ..gotypes import check
from ..httpd import Request, Response
from ..query import parse_filters
from ..server import json_response, read_json

if TYPE_CHECKING:
    from ..daemon import Daemon
    from ..server import Router

__all__ = ["register"]

_LIST_FILTERS = {"dangling", "driver", "id", "label", "name", "scope", "type"}


async def list_networks(req: Request, daemon: Daemon) -> Response:
    filters = parse_filters(req.arg("filters"), _LIST_FILTERS)
    for value in filters.get("type", []):
        if value not in ("custom", "builtin"):
            # dockerd 28 does not mark this one InvalidParameter: it answers 500
            raise ApiError(500, f"invalid filter: 'type'='{value}'")
    manager = daemon.networks
    # dockerd 28 lists without the Containers of each network (only inspect fills them)
    return json_response([n.document() for n in manager.ordered() if manager.matches(n, filters)])


async def inspect(req: Request, daemon: Daemon) -> Response:
    manager = daemon.networks
    net = manager.get(req.match["id"])
    scope = req.arg("scope")
    if scope and scope != "local":
        from ..errors import not_found

        raise not_found(f"network {req.match['id']} not found")
    return json_response(net.document(manager.containers_doc(net)))


async def create(req: Request, daemon: Daemon) -> Response:
    raw = await read_json(req)
    body = check(raw, NETWORK_CREATE)
    if raw is None:
        raise invalid("invalid name: name is empty")
    net = daemon.networks.create(body)
    return json_response({"Id": net.id, "Warning": ""}, 201)


async def remove(req: Request, daemon: Daemon) -> Response:
    daemon.networks.remove(req.match["id"])
    return Response(204)


async def connect(req: Request, daemon: Daemon) -> Response:
    body = check(await read_json(req), CONNECT_OPTIONS)
    net = daemon.networks.get(req.match["id"])
    c = daemon.containers.get(str(body.get("Container") or ""))
    async with daemon.containers.lock(c.id):
        daemon.networks.connect(c, net.id, body.get("EndpointConfig") or {})
    daemon.containers.network_changed(c)
    return Response(200)


async def disconnect(req: Request, daemon: Daemon) -> Response:
    body = check(await read_json(req), DISCONNECT_OPTIONS)
    ref = req.match["id"]
    c = daemon.containers.get(str(body.get("Container") or ""))
    async with daemon.containers.lock(c.id):
        daemon.networks.disconnect(c, ref, bool(body.get("Force")))
    daemon.containers.network_changed(c)
    return Response(200)


async def prune(req: Request, daemon: Daemon) -> Response:
    filters = parse_filters(req.arg("filters"), {"until", "label", "label!"})
    manager = daemon.networks
    deleted = []
    for net in list(manager.ordered()):
        if net.predefined or manager.active_endpoints(net):
            continue
        if filters.get("label") and not manager.matches(net, {"label": filters["label"]}):
            continue
        if any(manager.matches(net, {"label": [v]}) for v in filters.get("label!", [])):
            continue
        manager.remove(net.id)
        deleted.append(net.name)
    return json_response({"NetworksDeleted": deleted or None})


def register(router: Router) -> None:
    router.add("GET", "/networks", list_networks)
    router.add("GET", "/networks/", list_networks)  # dockerd routes both (moby issue 24595)
    router.add("POST", "/networks/create", create)
    router.add("POST", "/networks/prune", prune)
    router.add("GET", "/networks/{id}", inspect)
    router.add("DELETE", "/networks/{id}", remove)
    router.add("POST", "/networks/{id}/connect", connect)
    router.add("POST", "/networks/{id}/disconnect", disconnect)
