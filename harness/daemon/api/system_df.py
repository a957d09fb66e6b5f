"""``GET /system/df`` (``docker system df``): disk usage of images, containers, volumes and build cache.

Follows moby ``daemon/disk_usage.go`` (28.5): ``type`` picks the object kinds (container, image,
volume, build-cache; an unknown one is a 400 ``unknown object type``); kinds not asked for are
``null``; images carry their container count and shared size, containers their sizes (SizeRw only
when non-zero), volumes ``UsageData`` with their size and reference count. refd has no builder, so
the build cache is always empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import TYPE_CHECKING, Any

from ..containers.changes import fill_sizes
from ..errors import invalid
from ..fsutil import walk
from ..httpd import Request, Response
from ..images.summaries import ListOptions, for_api_version, layers_size, summaries
from ..server import json_response, version_tuple

if TYPE_CHECKING:
    from ..daemon import Daemon
    from ..server import Router

__all__ = ["register"]

_KINDS = ("container", "image", "volume", "build-cache")


def _tree_size(path: str) -> int:
    total = 0
    seen: set[tuple[int, int]] = set()
    for dirpath, _, files in walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(dirpath, name))
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_size
    return total


async def disk_usage(req: Request, daemon: Daemon) -> Response:
    kinds = req.query.get("type") or []
    for kind in kinds:
        if kind not in _KINDS:
            raise invalid(f"unknown object type: {kind}")
    wanted = set(kinds) or set(_KINDS)
    doc: dict[str, Any] = {
        "LayersSize": 0,
        "Images": None,
        "Containers": None,
        "Volumes": None,
        "BuildCache": None,
    }
    if "image" in wanted and getattr(daemon, "images", None) is not None:
        version = version_tuple(req.api_version)
        opts = ListOptions(shared_size=version >= (1, 42))
        images = for_api_version(await asyncio.to_thread(summaries, daemon.images, opts), version)
        for summary in images:
            summary["Containers"] = len(daemon.containers.uses_image(summary["Id"]))
        doc["Images"] = images
        doc["LayersSize"] = await asyncio.to_thread(layers_size, daemon.images)
    if "container" in wanted:
        containers = []
        for c in sorted(daemon.containers.by_id.values(), key=lambda c: c.created, reverse=True):
            summary = c.summary(c.image_name)
            await fill_sizes(daemon, c)
            if c.size_rw:
                summary["SizeRw"] = c.size_rw
            summary["SizeRootFs"] = c.size_root_fs or 0
            containers.append(summary)
        doc["Containers"] = containers
    if "volume" in wanted and daemon.volumes is not None:
        store = daemon.volumes
        volumes = []
        for volume in sorted(store.volumes.values(), key=lambda v: v.name):
            entry = volume.document(store.root)
            size = await asyncio.to_thread(_tree_size, store.path(volume.name))
            entry["UsageData"] = {"RefCount": len(store.users(volume.name)), "Size": size}
            volumes.append(entry)
        doc["Volumes"] = volumes
    if "build-cache" in wanted:
        from ..buildkit.cache import disk_usage_documents

        doc["BuildCache"] = await disk_usage_documents(daemon)
    return json_response(doc)


def register(router: Router) -> None:
    router.add("GET", "/system/df", disk_usage)
