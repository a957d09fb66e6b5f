"""What a container mounts (moby ``daemon/mounts.go``, ``daemon/volumes.go``, the rootfs part of
``daemon/start.go``): its read-write layer and root filesystem, and its volumes, binds and tmpfs.

At create, ``HostConfig.Binds``, ``HostConfig.Mounts`` and the image's ``Volumes`` become inspect's
``Mounts`` (named volumes created on demand, anonymous ones for the rest); at start the rootfs is
mounted, volumes with mount options are mounted for their first running user and empty volumes get
the image's content; at exit all of that is released; at removal the read-write layer goes, and with
``rm -v``/``--rm`` the anonymous volumes nobody else uses.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import ApiError, invalid
from .model import Container

if TYPE_CHECKING:
    from ..daemon import Daemon

__all__ = ["MountWiring", "volume_names"]

_PROPAGATIONS = ("rprivate", "private", "rshared", "shared", "rslave", "slave")


def volume_names(c: Container) -> list[str]:
    """The volumes ``c`` mounts."""
    return [str(p["Name"]) for p in c.mounts if p.get("Type") == "volume" and p.get("Name")]


def _bind_point(source: str, dest: str, mode: str, rw: bool, propagation: str) -> dict[str, Any]:
    return {
        "Type": "bind",
        "Source": source,
        "Destination": dest,
        "Mode": mode,
        "RW": rw,
        "Propagation": propagation,
    }


class MountWiring:
    """A daemon's containers and the layer store and volumes they mount (both set up after the wiring)."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    @property
    def _layers(self) -> Any:
        return getattr(getattr(self.daemon, "images", None), "layers", None)

    @property
    def _volumes(self) -> Any:
        return getattr(self.daemon, "volumes", None)

    # -- create ----------------------------------------------------------------------------------------
    def mount_points(self, c: Container) -> list[dict[str, Any]]:
        """Inspect's ``Mounts``: binds, named volumes (created on demand) and anonymous volumes."""
        points: list[dict[str, Any]] = []
        taken: set[str] = set()
        for bind in c.host_config.get("Binds") or []:
            point = self._bind(bind)
            points.append(point)
            taken.add(point["Destination"])
        for mount in c.host_config.get("Mounts") or []:
            extra = self._mount(mount)
            if extra is not None:
                points.append(extra)
                taken.add(mount["Target"])
        for dest in c.config.get("Volumes") or {}:
            if dest not in taken:
                points.append(self._volume_point("", dest, "", True, anonymous=True))
        return points

    def _bind(self, bind: str) -> dict[str, Any]:
        """``source:dest[:mode]`` from ``HostConfig.Binds``: a host path, or a named volume."""
        parts = bind.split(":")
        if len(parts) < 2 or not parts[0] or not parts[1]:
            raise invalid(f"invalid volume specification: '{bind}'")
        source, dest = parts[0], parts[1]
        mode = parts[2] if len(parts) > 2 else ""
        options = mode.split(",")
        rw = "ro" not in options
        if not source.startswith("/"):
            return self._volume_point(source, dest, mode or "z", rw)
        propagation = next((o for o in options if o in _PROPAGATIONS), "rprivate")
        return _bind_point(source, dest, mode, rw, propagation)

    def _mount(self, mount: dict[str, Any]) -> dict[str, Any] | None:
        """One of ``HostConfig.Mounts`` (tmpfs is listed as dockerd lists it, mounted from the spec)."""
        kind = mount.get("Type", "volume")
        rw = not mount.get("ReadOnly")
        if kind == "volume":
            source = mount.get("Source") or ""
            point = self._volume_point(source, mount["Target"], "z", rw, anonymous=not source)
            if (mount.get("VolumeOptions") or {}).get("NoCopy"):
                point["NoCopy"] = True
            return point
        if kind == "bind":
            propagation = (mount.get("BindOptions") or {}).get("Propagation") or "rprivate"
            return _bind_point(mount.get("Source", ""), mount["Target"], "", rw, propagation)
        if kind == "tmpfs":
            return {
                "Type": "tmpfs",
                "Source": "",
                "Destination": mount["Target"],
                "Mode": "",
                "RW": rw,
                "Propagation": "",
            }
        return None

    def _volume_point(
        self, name: str, dest: str, mode: str, rw: bool, anonymous: bool = False
    ) -> dict[str, Any]:
        volumes = self._volumes
        if volumes is None:
            raise invalid("volumes are not available")
        volume = volumes.create(name, anonymous=anonymous)
        return {
            "Type": "volume",
            "Name": volume.name,
            "Source": volumes.path(volume.name),
            "Destination": dest,
            "Driver": "local",
            "Mode": mode,
            "RW": rw,
            "Propagation": "",
        }

    def create_layer(self, c: Container, image: Any) -> None:
        """``c``'s read-write layer on its image, with its WorkingDir made in it (as dockerd does)."""
        layers = self._layers
        if layers is None or not hasattr(layers, "create_rw_layer"):
            return
        layers.create_rw_layer(c.id, image.top_chain)
        graph = getattr(layers, "graph_driver", None)
        if callable(graph):
            c.graph_driver = graph(c.id)
        if c.config.get("WorkingDir") and hasattr(layers, "mount_rootfs"):
            from .workdir import setup_working_directory

            try:
                setup_working_directory(layers, c.id, str(c.config["WorkingDir"]))
            except BaseException:
                layers.remove_rw_layer(c.id)
                raise

    # -- start / exit ----------------------------------------------------------------------------------
    def mount(self, c: Container) -> str:
        """The rootfs (its path, "" without a layer store), then the volumes, filled on first use."""
        layers = self._layers
        rootfs = ""
        if layers is not None and hasattr(layers, "mount_rootfs"):
            rootfs = layers.mount_rootfs(c.id)
        self._mount_volumes(c)
        self._copy_up(c, rootfs)
        return rootfs

    def _mount_volumes(self, c: Container) -> None:
        """Volumes with mount options (tmpfs, bind, nfs...) are mounted for their first running user."""
        volumes = self._volumes
        if volumes is None:
            return
        done: list[str] = []
        try:
            for name in volume_names(c):
                volumes.mount(name, c.id)
                done.append(name)
        except BaseException:
            for name in done:
                volumes.unmount(name, c.id)
            raise

    def _copy_up(self, c: Container, rootfs: str) -> None:
        """Empty volumes get the image's content at their mount point on first use (unless NoCopy)."""
        volumes = self._volumes
        if volumes is None or not rootfs:
            return
        from ..runtime.users import secure_join

        for point in c.mounts:
            if point.get("Type") == "volume" and not point.get("NoCopy"):
                volumes.copy_up(point["Name"], secure_join(rootfs, point["Destination"]))

    def restore(self, c: Container) -> None:
        """A container kept running across refd's restart (live-restore) still has its volumes mounted."""
        volumes = self._volumes
        if volumes is not None:
            for name in volume_names(c):
                volumes.active.setdefault(name, set()).add(c.id)

    def unmount_volumes(self, c: Container) -> None:
        volumes = self._volumes
        if volumes is not None:
            for name in volume_names(c):
                with contextlib.suppress(Exception):
                    volumes.unmount(name, c.id)

    def unmount_rootfs(self, c: Container) -> None:
        layers = self._layers
        if layers is not None and hasattr(layers, "unmount_rootfs"):
            with contextlib.suppress(Exception):
                layers.unmount_rootfs(c.id)

    # -- removal ---------------------------------------------------------------------------------------
    def remove_layer(self, c: Container) -> None:
        layers = self._layers
        if layers is not None and hasattr(layers, "remove_rw_layer"):
            with contextlib.suppress(Exception):
                layers.remove_rw_layer(c.id)

    def remove_anonymous_volumes(self, c: Container, users: Callable[[str], list[str]]) -> None:
        """``rm -v`` and ``--rm``: ``c``'s anonymous volumes no other container uses (``users(name)``)."""
        store = self._volumes
        if store is None:
            return
        for point in c.mounts:
            name = point.get("Name")
            if name and name in store.volumes and store.volumes[name].anonymous and not users(name):
                with contextlib.suppress(ApiError):
                    store.remove(name)
