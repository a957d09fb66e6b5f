"""What a container mounts (moby ``daemon/volumes.go``, ``daemon/mounts.go``, the mount part of
``daemon/start.go`` and ``daemon/oci_linux.go``): its read-write layer and root filesystem, and its
volumes, binds, image mounts and tmpfs.

At create, ``--volumes-from``, ``HostConfig.Binds``, ``HostConfig.Mounts`` and the image's ``Volumes``
become the container's mount points (:mod:`.mountparse` reads and checks the requests; named volumes are
created on demand, anonymous ones for the rest, an image mount gets a read-write layer of its image); a
bind of (or above) the daemon's root gets ``rslave`` unless it asks for ``rslave`` or ``rshared``, and any
other propagation there is refused; then (:meth:`MountWiring.populate`, dockerd's populateVolumes) empty
volumes get the image's content, once. At start the rootfs is mounted, volumes with mount options are
mounted for their first running user, image layers are mounted, subpaths are resolved inside their
volume or image (never out of it); :meth:`MountWiring.sources` says where each mount point's data is
for the runtime spec. At exit all of that is released; at removal
the read-write layers go, and with ``rm -v``/``--rm`` the anonymous volumes nobody else uses.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import ApiError, invalid, not_found
from .model import Container
from .mountparse import (
    parse_mount_raw,
    parse_mount_spec,
    parse_volumes_from,
    read_write,
    validate_mount_config,
    validate_tmpfs_destination,
)

if TYPE_CHECKING:
    from ..daemon import Daemon

__all__ = ["MountWiring", "resolve_subpath", "validate_mounts", "volume_names"]


def volume_names(c: Container) -> list[str]:
    """The volumes ``c`` mounts."""
    return [str(p["Name"]) for p in c.mounts if p.get("Type") == "volume" and p.get("Name")]


def validate_mounts(host_config: dict[str, Any]) -> list[str]:
    """dockerd's create-time checks of ``Mounts`` (validateHostConfig) and ``Tmpfs`` destinations
    (verifyPlatformContainerSettings); the warnings they give (an image mount is experimental)."""
    warnings = []
    for mount in host_config.get("Mounts") or []:
        if not isinstance(mount, dict):
            continue
        if mount.get("Type") == "image":
            warnings.append("Image mount is an experimental feature")
        validate_mount_config(dict(mount))
    for dest in host_config.get("Tmpfs") or {}:
        validate_tmpfs_destination(str(dest))
    return warnings


def _copy_data(point: dict[str, Any]) -> bool:
    """Whether an empty volume gets the image's content (records before CopyData said NoCopy)."""
    return bool(point.get("CopyData", not point.get("NoCopy")))


class SubpathError(ApiError):
    """A volume's or image's subpath that cannot be mounted (moby internal/safepath's errors)."""


def _safe_join(base: str, subpath: str) -> str:
    """moby safepath.Join's checks: ``base``/``subpath`` with symlinks resolved must exist and stay within
    ``base`` (``cannot access path ...`` is a 404, ``path concatenation escapes the base directory`` a
    400)."""
    try:
        resolved_base = os.path.realpath(base, strict=True)
    except OSError as exc:
        raise SubpathError(404, f"cannot access path {base}: {_go_error('lstat', base, exc)}") from None
    combined = posixpath.join(resolved_base, subpath)
    try:
        resolved = os.path.realpath(combined, strict=True)
    except OSError as exc:
        raise SubpathError(
            404, f"cannot access path {combined}: {_go_error('lstat', combined, exc)}"
        ) from None
    rel = os.path.relpath(resolved, resolved_base)
    if rel == ".." or rel.startswith("../"):
        raise SubpathError(
            400, f"path concatenation escapes the base directory, base: {resolved_base}, subpath: {subpath}"
        )
    return resolved


def resolve_subpath(point: dict[str, Any], source: str) -> str:
    """Where a volume's or image mount's data is: ``source``, or its ``Subpath`` inside it."""
    spec = point.get("Spec") or {}
    options = spec.get("VolumeOptions") if point.get("Type") == "volume" else spec.get("ImageOptions")
    subpath = str((options or {}).get("Subpath") or "")
    return _safe_join(source, subpath) if subpath else source


def _go_error(op: str, path: str, exc: OSError) -> str:
    reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
    return f"{op} {exc.filename or path}: {reason}"


def _mountinfo() -> list[tuple[str, str]]:
    """(mount point, optional fields) of every mount refd sees, as moby's getSourceMount reads them."""
    out = []
    with contextlib.suppress(OSError), open("/proc/self/mountinfo") as fh:
        for line in fh:
            fields = line.split()
            if len(fields) < 7 or "-" not in fields:
                continue
            dash = fields.index("-")
            point = fields[4].replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")
            out.append((point, " ".join(fields[6:dash])))
    return out


def source_mount(path: str) -> tuple[str, str]:
    """The mount ``path`` lives on and its propagation fields (``shared:N``, ``master:N``)."""
    real = os.path.realpath(path)
    best, optional = "/", ""
    for point, opts in _mountinfo():
        if (real == point or real.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
            best, optional = point, opts
    return best, optional


class MountWiring:
    """A daemon's containers and the layer store and volumes they mount (both set up after the wiring)."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        #: where each mount point's data is, per running container (set at start, dropped at exit)
        self._sources: dict[str, dict[str, str]] = {}

    @property
    def _layers(self) -> Any:
        return getattr(getattr(self.daemon, "images", None), "layers", None)

    @property
    def _volumes(self) -> Any:
        return getattr(self.daemon, "volumes", None)

    def _daemon_root(self) -> str:
        return str(self.daemon.config.get("data-root") or "")

    # -- create ----------------------------------------------------------------------------------------
    def mount_points(self, c: Container, default_ro_non_recursive: bool = False) -> list[dict[str, Any]]:
        """moby registerMountPoints then the image's ``Volumes``: the container's mount points, later
        requests replacing earlier ones at the same destination. ``default_ro_non_recursive``: a client
        older than API 1.44 gets the read-only binds it knew (not recursively read-only)."""
        hc = c.host_config
        tmpfs = hc.get("Tmpfs") or {}
        driver = str(hc.get("VolumeDriver") or "")
        points: dict[str, dict[str, Any]] = {}
        claimed: set[str] = set()
        for entry in hc.get("VolumesFrom") or []:
            for point in self._volumes_from(str(entry)):
                points[point["Destination"]] = point
        for raw in hc.get("Binds") or []:
            point = parse_mount_raw(str(raw), driver)
            self._check_daemon_root(point)
            dest = point["Destination"]
            if dest in claimed or dest in tmpfs:
                raise invalid(f"Duplicate mount point: {dest}")
            if point["Type"] == "volume":
                self._attach_volume(point, {})
            elif not point["RW"] and default_ro_non_recursive:
                point["Spec"].setdefault("BindOptions", {})["ReadOnlyNonRecursive"] = True
            claimed.add(dest)
            points[dest] = point
        for mount in hc.get("Mounts") or []:
            point = parse_mount_spec(dict(mount))
            self._check_daemon_root(point)
            dest = point["Destination"]
            if dest in claimed:
                raise invalid(f"Duplicate mount point: {mount.get('Target')}")
            if point["Type"] == "volume":
                self._attach_volume(point, mount.get("VolumeOptions") or {})
            elif point["Type"] == "bind":
                point["SkipMountpointCreation"] = not (mount.get("BindOptions") or {}).get("CreateMountpoint")
                if not point["RW"] and default_ro_non_recursive:
                    point["Spec"].setdefault("BindOptions", {})["ReadOnlyNonRecursive"] = True
            elif point["Type"] == "image":
                self._attach_image(point)
            claimed.add(dest)
            points[dest] = point
        for volume_dest in c.config.get("Volumes") or {}:
            dest = posixpath.normpath(str(volume_dest))
            if dest in points or dest in tmpfs or volume_dest in tmpfs:
                continue  # a --volumes-from, bind, mount or tmpfs is there already
            point = {
                "Type": "volume",
                "Name": "",
                "Source": "",
                "Destination": dest,
                "Driver": "",
                "Mode": "",
                "RW": True,
                "Propagation": "",
                "Spec": {},
                "CopyData": True,
            }
            self._attach_volume(point, {}, driver=driver, keep_mode=True)
            points[dest] = point
        return list(points.values())

    def _volumes_from(self, entry: str) -> list[dict[str, Any]]:
        ref, mode = parse_volumes_from(entry)
        try:
            other = self.daemon.containers.get(ref)
        except ApiError as exc:
            raise invalid(exc.message) from None
        copies = []
        for m in other.mounts:
            point = {k: v for k, v in m.items() if k not in ("LayerID", "SkipMountpointCreation")}
            point["RW"] = bool(m.get("RW", True)) and read_write(mode)
            point["CopyData"] = False
            if point.get("Type") == "volume" and point.get("Name") and self._volumes is not None:
                self._volumes.get(point["Name"])  # still there (dockerd takes a reference on it)
            copies.append(point)
        return copies

    def _check_daemon_root(self, point: dict[str, Any]) -> None:
        """moby validateBindDaemonRoot: a bind of the daemon's root, of something in it or of a parent of
        it gets ``rslave`` when it names no propagation; ``rslave``/``rshared`` stay; the rest is a 400."""
        spec = point["Spec"]
        if spec.get("Type") != "bind":
            return
        root = self._daemon_root()
        source = str(spec.get("Source") or "")
        if not root or not (source.startswith(root) or root.startswith(source)):
            return
        options = spec.get("BindOptions")
        propagation = str((options or {}).get("Propagation") or "")
        if options is None or not propagation:
            point["Propagation"] = "rslave"
        elif propagation not in ("rslave", "rshared"):
            raise invalid(
                'invalid mount config: must use either propagation mode "rslave" or "rshared" when mount '
                f'source is within the daemon root, daemon root: "{root}", bind mount source: "{source}", '
                f'propagation: "{propagation}"'
            )

    def _attach_volume(
        self, point: dict[str, Any], options: dict[str, Any], driver: str = "", keep_mode: bool = False
    ) -> None:
        """The volume behind a volume mount point, created when it does not exist."""
        volumes = self._volumes
        if volumes is None:
            raise invalid("volumes are not available")
        driver = point.get("Driver") or driver or "local"
        name = str(point.get("Name") or "")
        volume = volumes.create(
            name,
            labels=options.get("Labels"),
            options=(options.get("DriverConfig") or {}).get("Options"),
            driver=driver,
            anonymous=not name,
        )
        point.update(Name=volume.name, Source=volumes.path(volume.name), Driver="local")
        if not keep_mode and not point.get("Mode"):
            point["Mode"] = "z"  # moby setBindModeIfNull for the local driver

    def _attach_image(self, point: dict[str, Any]) -> None:
        """An image mount: the image it names (a 404 when there is none), kept by ID; its layer is made
        with the container's (:meth:`create_layer`)."""
        images = getattr(self.daemon, "images", None)
        if images is None:
            raise not_found(f"No such image: {point['Source']}")
        image = images.resolve(point["Source"])
        point["Name"] = point["Spec"]["Source"]
        point["Spec"]["Source"] = str(image.id)
        point["ImageChain"] = image.top_chain
        point["RW"] = False

    def create_layer(self, c: Container, image: Any) -> None:
        """``c``'s read-write layer on its image, with its WorkingDir made in it (as dockerd does), and a
        layer of each image it mounts."""
        layers = self._layers
        if layers is None or not hasattr(layers, "create_rw_layer"):
            return
        layers.create_rw_layer(c.id, image.top_chain)
        try:
            for point in c.mounts:
                if point.get("Type") == "image" and not point.get("LayerID"):
                    point["LayerID"] = f"{c.id}-image-{secrets.token_hex(6)}"
                    layers.create_rw_layer(point["LayerID"], point.get("ImageChain") or "", init=False)
                    point["Source"] = layers.driver.root(layers.rw_layer(point["LayerID"]).mount_id)
        except BaseException:
            self.remove_layer(c)
            raise
        graph = getattr(layers, "graph_driver", None)
        if callable(graph):
            c.graph_driver = graph(c.id)
        if c.config.get("WorkingDir") and hasattr(layers, "mount_rootfs"):
            from .workdir import setup_working_directory

            try:
                setup_working_directory(layers, c.id, str(c.config["WorkingDir"]))
            except BaseException:
                self.remove_layer(c)
                raise

    def populate(self, c: Container) -> None:
        """moby populateVolumes, at create and only then: each volume that copies data gets the image's
        content at its mount point when the volume (or its subpath) is empty. A volume with mount options is
        mounted for the copy and unmounted after (a tmpfs volume's copy goes with it, as on dockerd); a
        subpath that does not exist is skipped, one that leaves its volume fails the create."""
        volumes, layers = self._volumes, self._layers
        points = [p for p in c.mounts if p.get("Type") == "volume" and p.get("Name") and _copy_data(p)]
        if not points or volumes is None or layers is None or not hasattr(layers, "mount_rootfs"):
            return
        from ..runtime.users import secure_join

        rootfs = layers.mount_rootfs(c.id)
        user = f"{c.id}-populate"
        try:
            for point in points:
                source = secure_join(rootfs, str(point["Destination"]))
                if not os.path.exists(source):
                    continue  # nothing in the image there
                volumes.mount(point["Name"], user)
                try:
                    try:
                        target = resolve_subpath(point, volumes.path(point["Name"]))
                    except SubpathError as exc:
                        if exc.status == 404:
                            continue
                        raise ApiError(exc.status, f"failed to populate volume: {exc.message}") from None
                    if not os.path.isdir(target):
                        raise ApiError(500, f"readdirent {target}: not a directory")
                    volumes.copy_up_into(target, source)
                finally:
                    volumes.unmount(point["Name"], user)
        finally:
            layers.unmount_rootfs(c.id)

    # -- start / exit ----------------------------------------------------------------------------------
    def mount(self, c: Container) -> str:
        """The rootfs (its path, "" without a layer store), then the volumes and image layers, subpaths
        resolved; :meth:`sources` says where each one is."""
        layers = self._layers
        rootfs = ""
        if layers is not None and hasattr(layers, "mount_rootfs"):
            rootfs = layers.mount_rootfs(c.id)
        self._mount_volumes(c)
        try:
            self._mount_images(c)
            self._sources[c.id] = self._resolve_sources(c)
        except BaseException:
            self._sources.pop(c.id, None)
            self._unmount_images(c)
            self.unmount_volumes(c)
            raise
        return rootfs

    def sources(self, c: Container) -> dict[str, str]:
        """Destination -> where its data is, for the container :meth:`mount` prepared."""
        return dict(self._sources.get(c.id) or {})

    def _resolve_sources(self, c: Container) -> dict[str, str]:
        out: dict[str, str] = {}
        for point in c.mounts:
            kind, dest = point.get("Type"), str(point["Destination"])
            source = str(point.get("Source") or "")
            if kind in ("volume", "image"):
                out[dest] = resolve_subpath(point, source)
            elif kind == "bind":
                if not point.get("SkipMountpointCreation") and not os.path.lexists(source):
                    with contextlib.suppress(NotADirectoryError):
                        os.makedirs(source, 0o755, exist_ok=True)  # dockerd creates a missing -v source
                out[dest] = source
        return out

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

    def _mount_images(self, c: Container) -> None:
        layers = self._layers
        for point in c.mounts:
            if point.get("Type") == "image" and point.get("LayerID") and layers is not None:
                point["Source"] = layers.mount_rootfs(point["LayerID"])

    def _unmount_images(self, c: Container) -> None:
        layers = self._layers
        for point in c.mounts:
            if point.get("Type") == "image" and point.get("LayerID") and layers is not None:
                with contextlib.suppress(Exception):
                    layers.unmount_rootfs(point["LayerID"])

    def restore(self, c: Container) -> None:
        """A container kept running across refd's restart (live-restore) still has its volumes mounted."""
        volumes = self._volumes
        if volumes is not None:
            for name in volume_names(c):
                volumes.active.setdefault(name, set()).add(c.id)

    def unmount_volumes(self, c: Container) -> None:
        self._sources.pop(c.id, None)
        self._unmount_images(c)
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
            for point in c.mounts:
                if point.get("Type") == "image" and point.get("LayerID"):
                    with contextlib.suppress(Exception):
                        layers.remove_rw_layer(point["LayerID"])
            with contextlib.suppress(Exception):
                layers.remove_rw_layer(c.id)

    def remove_anonymous_volumes(self, c: Container, users: Callable[[str], list[str]]) -> None:
        """``rm -v`` and ``--rm``: the volumes ``c`` asked for without a name (moby removeMountPoints: the
        request's ``Source`` is empty) that no other container uses (``users(name)``)."""
        store = self._volumes
        if store is None:
            return
        for point in c.mounts:
            name = point.get("Name")
            if point.get("Type") != "volume" or not name or name not in store.volumes or users(name):
                continue
            spec = point.get("Spec")
            if (not spec.get("Source")) if isinstance(spec, dict) else store.volumes[name].anonymous:
                with contextlib.suppress(ApiError):
                    store.remove(name)

    # -- start-time propagation checks (moby withMounts) -----------------------------------------------
    def rootfs_propagation(self, c: Container, sources: dict[str, str]) -> str:
        """The propagation of the container's "/" its binds need (``shared`` for a shared bind,
        ``rslave`` for a slave one, else runc's default), after moby's checks that the bind sources are
        on mounts that can propagate: ``path X is mounted on Y but it is not a shared mount``."""
        root = self._daemon_root()
        wanted = ""
        for point in c.mounts:
            if point.get("Type") not in ("bind", "volume"):
                continue
            propagation = str(point.get("Propagation") or "")
            source = sources.get(str(point["Destination"])) or str(point.get("Source") or "")
            if propagation in ("shared", "rshared"):
                mounted_on, optional = source_mount(source)
                if "shared:" not in optional:
                    raise ApiError(
                        500, f"path {source} is mounted on {mounted_on} but it is not a shared mount"
                    )
                wanted = "shared"
            elif propagation in ("slave", "rslave"):
                mounted_on, optional = source_mount(source)
                if "shared:" not in optional and "master:" not in optional:
                    explicit = str(
                        ((point.get("Spec") or {}).get("BindOptions") or {}).get("Propagation") or ""
                    )
                    in_root = bool(root) and (source.startswith(root) or root.startswith(source))
                    if not in_root or explicit:
                        raise ApiError(
                            500,
                            f"path {source} is mounted on {mounted_on} but it is not a shared or slave mount",
                        )
                    continue  # dockerd falls back to the default for its own root
                if wanted != "shared":
                    wanted = "rslave"
        return wanted
