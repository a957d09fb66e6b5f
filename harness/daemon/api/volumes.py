"""Volume endpoints: create, list (filters), inspect, remove (in-use conflict), prune."""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

from .. import API_VERSION
from ..bodytypes import VOLUME_CREATE
from ..fsutil import walk
from ..gotypes import check
from ..httpd import Request, Response
from ..query import bool_value, parse_filters
from ..server import json_response, read_json, version_tuple

if TYPE_CHECKING:
    from ..daemon import Daemon
    from ..server import Router

__all__ = ["register"]


def _event(daemon: Daemon, action: str, name: str, **attrs: str) -> None:
    from ..events import make_event

    daemon.events.publish(make_event("volume", action, name, {"driver": "local", **attrs}))


async def create(req: Request, daemon: Daemon) -> Response:
    body = check(await read_json(req), VOLUME_CREATE)
    volume = daemon.volumes.create(
        body.get("Name") or "", body.get("Labels"), body.get("DriverOpts"), body.get("Driver") or "local"
    )
    _event(daemon, "create", volume.name)
    return json_response(volume.document(daemon.volumes.root), 201)


async def list_volumes(req: Request, daemon: Daemon) -> Response:
    filters = parse_filters(req.arg("filters"), {"name", "driver", "label", "dangling"})
    store = daemon.volumes
    items = [
        v.document(store.root)
        for v in sorted(store.volumes.values(), key=lambda v: v.name)
        if store.matches(v, filters)
    ]
    return json_response({"Volumes": items, "Warnings": None})


async def inspect(req: Request, daemon: Daemon) -> Response:
    volume = daemon.volumes.get(req.match["name"])
    return json_response(volume.document(daemon.volumes.root))


async def remove(req: Request, daemon: Daemon) -> Response:
    name = req.match["name"]
    daemon.volumes.remove(name, force=bool_value(req, "force"))
    _event(daemon, "destroy", name)
    return Response(204)


async def prune(req: Request, daemon: Daemon) -> Response:
    filters = parse_filters(req.arg("filters"), {"label", "label!", "all"})
    prune_all = any(v.lower() in ("true", "1") for v in filters.pop("all", []))
    # API 1.42 made prune take anonymous volumes only; older clients keep pruning named ones too
    prune_all = prune_all or version_tuple(req.api_version or API_VERSION) < (1, 42)
    store = daemon.volumes
    deleted, reclaimed = [], 0
    for volume in list(store.volumes.values()):
        if store.users(volume.name) or (not prune_all and not volume.anonymous):
            continue
        if not store.matches(volume, {k: v for k, v in filters.items() if k == "label"}):
            continue
        if filters.get("label!") and store.matches(volume, {"label": filters["label!"]}):
            continue
        for dirpath, _, files in walk(store.path(volume.name)):
            for f in files:
                with contextlib.suppress(OSError):
                    reclaimed += os.lstat(os.path.join(dirpath, f)).st_size
        store.remove(volume.name)
        deleted.append(volume.name)
        _event(daemon, "destroy", volume.name)
    return json_response({"VolumesDeleted": deleted or None, "SpaceReclaimed": reclaimed})


def register(router: Router) -> None:
    router.add("POST", "/volumes/create", create)
    router.add("GET", "/volumes", list_volumes)
    router.add("POST", "/volumes/prune", prune)
    router.add("GET", "/volumes/{name}", inspect)
    router.add("DELETE", "/volumes/{name}", remove)
