"""A container's filesystem as ``docker cp`` sees it (moby ``daemon/containerfs_linux.go``).

The archive endpoints work on the container's rootfs with its volumes, bind mounts and network files
(``/etc/hosts``, ``/etc/hostname``, ``/etc/resolv.conf``) mounted at their destinations, whether the
container runs or not. As dockerd does, those mounts are made in a mount namespace of their own: one
thread unshares it, makes every mount a slave (nothing propagates back to refd or to a container), binds
the sources (read-only where the mount is) and runs the operation there. The thread ends with the
operation, and its namespace with it, so two copies at once never see each other's mounts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import ApiError
from .archive import mounted_rootfs
from .mounts import volume_names

if TYPE_CHECKING:
    from ..daemon import Daemon
    from .model import Container

__all__ = ["ViewMount", "in_container_fs", "view_mounts"]

T = TypeVar("T")

_NETWORK_FILES = (("hosts", "/etc/hosts"), ("hostname", "/etc/hostname"), ("resolv.conf", "/etc/resolv.conf"))


@dataclass(frozen=True)
class ViewMount:
    """One mount of the view: a host path bound at a container path."""

    source: str
    destination: str
    writable: bool


def view_mounts(c: Container, sources: dict[str, str] | None = None) -> list[ViewMount]:
    """``c``'s volumes, binds and image mounts whose source exists (at ``sources``: a subpath's), then its
    network files once they are written, parents before children (dockerd sorts its mounts by depth)."""
    mounts: list[ViewMount] = []
    taken: set[str] = set()
    for point in c.mounts:
        if point.get("Type") not in ("volume", "bind", "image"):
            continue  # tmpfs lives only in the running container's own namespace
        dest = str(point.get("Destination") or "")
        source = (sources or {}).get(dest) or str(point.get("Source") or "")
        if source and dest and os.path.exists(source):
            mounts.append(ViewMount(source, os.path.normpath(dest), bool(point.get("RW", True))))
            taken.add(os.path.normpath(dest))
    for name, dest in _NETWORK_FILES:
        source = c.file(name)
        if dest not in taken and os.path.isfile(source):
            mounts.append(ViewMount(source, dest, True))
    mounts.sort(key=lambda m: m.destination.rstrip("/").count("/"))
    return mounts


@contextlib.contextmanager
def _mounts_in_use(daemon: Daemon, c: Container) -> Iterator[dict[str, str]]:
    """``c``'s volumes (one with mount options is mounted only while in use) and image layers mounted for
    the operation; yields where each volume or image mount's data is (its subpath resolved, as moby's
    openContainerFS sets the mounts up: a subpath that leaves its volume fails the copy)."""
    from .mounts import resolve_subpath

    volumes: Any = getattr(daemon, "volumes", None)
    layers: Any = getattr(getattr(daemon, "images", None), "layers", None)
    user = f"{c.id}-fsview-{secrets.token_hex(4)}"
    done: list[str] = []
    images: list[str] = []
    try:
        for name in volume_names(c) if volumes is not None else []:
            volumes.mount(name, user)
            done.append(name)
        sources: dict[str, str] = {}
        for point in c.mounts:
            source = str(point.get("Source") or "")
            if point.get("Type") == "image" and point.get("LayerID") and layers is not None:
                source = layers.mount_rootfs(point["LayerID"])
                images.append(point["LayerID"])
            if point.get("Type") in ("volume", "image") and source:
                sources[str(point["Destination"])] = resolve_subpath(point, source)
        yield sources
    finally:
        for layer_id in images:
            with contextlib.suppress(Exception):
                layers.unmount_rootfs(layer_id)
        for name in done:
            with contextlib.suppress(Exception):
                volumes.unmount(name, user)


def _make_target(path: str, is_dir: bool) -> None:
    """The mount point (moby fileutils.CreateIfNotExists): a directory, or an empty file for a file."""
    if os.path.lexists(path):
        return
    if is_dir:
        os.makedirs(path, mode=0o755, exist_ok=True)
        return
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o755)
    os.close(fd)


def _bind_all(rootfs: str, mounts: list[ViewMount]) -> None:
    """In the calling thread's fresh mount namespace: every mount bound under ``rootfs``."""
    from ..runtime import syscalls as sc
    from ..runtime.users import secure_join

    sc.mount(None, "/", None, sc.MS_REC | sc.MS_SLAVE)
    for m in mounts:
        target = secure_join(rootfs, m.destination)
        _make_target(target, os.path.isdir(m.source))
        sc.mount(m.source, target, None, sc.MS_BIND | sc.MS_REC)
        if not m.writable:
            sc.mount(None, target, None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY)


def _run_in_namespace(rootfs: str, mounts: list[ViewMount], fn: Callable[[str], T]) -> T:
    """``fn(rootfs)`` on a thread of its own in a private mount namespace holding ``mounts``."""
    from ..runtime import syscalls as sc

    outcome: list[Any] = []

    def body() -> None:
        try:
            if mounts:
                sc.unshare(sc.CLONE_NEWNS)
                _bind_all(rootfs, mounts)
        except OSError as exc:
            outcome.append((False, ApiError(500, f"error mounting the container's volumes: {exc}")))
            return
        try:
            outcome.append((True, fn(rootfs)))
        except BaseException as exc:  # handed to the caller's thread
            outcome.append((False, exc))

    thread = threading.Thread(target=body, name="refd-containerfs", daemon=True)
    thread.start()
    thread.join()
    ok, value = outcome[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


async def in_container_fs(daemon: Daemon, c: Container, fn: Callable[[str], T]) -> T:
    """``fn(rootfs)`` with ``c``'s rootfs mounted and its mounts in place, off the event loop."""
    with mounted_rootfs(daemon, c) as rootfs, _mounts_in_use(daemon, c) as sources:
        return await asyncio.to_thread(_run_in_namespace, rootfs, view_mounts(c, sources), fn)
