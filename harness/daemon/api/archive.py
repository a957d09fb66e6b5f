"""``docker cp`` and ``docker export``: the archive endpoints on a container's root filesystem.

``HEAD/GET /containers/{id}/archive`` stat or tar a path (with ``X-Docker-Container-Path-Stat``);
``PUT`` extracts a tar into a directory; ``GET /export`` tars the whole rootfs. The work is
:mod:`..containers.archive`'s (in a worker thread); these handlers parse, call and answer.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import stat
import tempfile
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ..containers.archive import (
    archive_path,
    archive_target,
    export_rootfs,
    extract_to_dir,
    mounted_rootfs,
    stat_path,
)
from ..containers.fsview import in_container_fs
from ..errors import invalid
from ..httpd import Request, Response
from ..query import bool_value

if TYPE_CHECKING:
    from ..daemon import Daemon
    from ..server import Router

__all__ = ["register"]


def _stat_header(doc: dict[str, Any]) -> tuple[str, str]:
    raw = json.dumps(doc, separators=(",", ":")).encode()
    return ("X-Docker-Container-Path-Stat", base64.b64encode(raw).decode())


async def _stream_file(path: str) -> AsyncIterator[bytes]:
    """The temporary file's bytes, then the file is gone."""
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(256 * 1024):
                yield chunk
                await asyncio.sleep(0)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


async def head_archive(req: Request, daemon: Daemon) -> Response:
    ref = req.match["name"]
    c = daemon.containers.get(ref)
    path = req.arg("path")
    _, _, doc = await in_container_fs(daemon, c, lambda rootfs: stat_path(c, rootfs, path, ref))
    return Response(200, b"", [_stat_header(doc), ("Content-Length", "0")])


async def get_archive(req: Request, daemon: Daemon) -> Response:
    ref = req.match["name"]
    c = daemon.containers.get(ref)
    path, tmp_dir = req.arg("path"), daemon.config["exec-root"]

    def tar_of(rootfs: str) -> tuple[dict[str, Any], str]:
        # dockerd stats and tars Join("/", path) with its trailing "/" or "/." kept (archive_target): a
        # directory's entries are rebased to its base name ("/" for the root: "/", "/etc/", ...)
        if not path:
            raise invalid("Path cannot be empty")
        target = archive_target(path)
        host, st, doc = stat_path(c, rootfs, target, ref, asked=path)
        return doc, archive_path(host, doc["name"], tmp_dir, tree=stat.S_ISDIR(st.st_mode))

    doc, tmp = await in_container_fs(daemon, c, tar_of)
    return Response(
        200, headers=[_stat_header(doc), ("Content-Type", "application/x-tar")], stream=_stream_file(tmp)
    )


async def put_archive(req: Request, daemon: Daemon) -> Response:
    ref = req.match["name"]
    c = daemon.containers.get(ref)
    path = req.arg("path")
    if not path:
        raise invalid("Path cannot be empty")
    no_overwrite = bool_value(req, "noOverwriteDirNonDir")
    copy_uid_gid = bool_value(req, "copyUIDGID")
    fd, tmp = tempfile.mkstemp(prefix="refd-put-", dir=daemon.config["exec-root"])
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := await req.read_chunk():
                out.write(chunk)
        await in_container_fs(
            daemon,
            c,
            lambda rootfs: extract_to_dir(
                c,
                rootfs,
                path,
                tmp,
                no_overwrite,
                copy_uid_gid,
                ref,
                daemon.idmap.to_host
                if daemon.idmap is not None and (c.host_config.get("UsernsMode") or "") != "host"
                else None,
            ),
        )
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return Response(200, b"", [("Content-Type", "text/plain; charset=utf-8")])


async def export(req: Request, daemon: Daemon) -> Response:
    c = daemon.containers.get(req.match["name"])
    with mounted_rootfs(daemon, c) as rootfs:
        unmap = daemon.idmap.to_container if daemon.idmap is not None else None
        tmp = await asyncio.to_thread(export_rootfs, rootfs, daemon.config["exec-root"], unmap)
    daemon.containers.emit(c, "export")
    return Response(200, headers=[("Content-Type", "application/x-tar")], stream=_stream_file(tmp))


def register(router: Router) -> None:
    router.add("HEAD", "/containers/{name}/archive", head_archive)
    router.add("GET", "/containers/{name}/archive", get_archive)
    router.add("PUT", "/containers/{name}/archive", put_archive)
    router.add("GET", "/containers/{name}/export", export)
