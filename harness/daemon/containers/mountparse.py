"""What a container's mount requests mean, checked as dockerd checks them (moby ``volume/mounts``'
Linux parser): ``-v`` strings (``HostConfig.Binds``), ``HostConfig.Mounts`` entries, ``--volumes-from``
and ``--tmpfs`` destinations become mount points or 400s with dockerd's words.

A mount point is a plain dict: inspect's keys (``Type``, ``Name``, ``Source``, ``Destination``,
``Driver``, ``Mode``, ``RW``, ``Propagation``) and the request it came from under ``Spec`` (what
``docker inspect`` does not show: subpaths, bind options, tmpfs options). Nothing here touches the
disk but the existence check of a ``Mounts`` bind source.
"""

from __future__ import annotations

import os
import posixpath
from typing import Any

from ..errors import ApiError, invalid

__all__ = [
    "DEFAULT_PROPAGATION",
    "PROPAGATIONS",
    "api_version_gates",
    "is_local",
    "parse_mount_raw",
    "parse_mount_spec",
    "parse_volumes_from",
    "public_view",
    "tmpfs_options",
    "validate_mount_config",
    "validate_tmpfs_destination",
]

PROPAGATIONS = ("private", "rprivate", "slave", "rslave", "shared", "rshared")
DEFAULT_PROPAGATION = "rprivate"
_RW_MODES = ("rw", "ro")
_LABEL_MODES = ("z", "Z")
_CONSISTENCY_MODES = ("consistent", "cached", "delegated")
_COPY_MODES = {"nocopy": False}  # mode word -> copy data?
_TMPFS_OPTIONS = ("exec", "noexec")
#: inspect's MountPoint fields, in dockerd's order (Type, Name and Driver are omitted when empty)
_PUBLIC = ("Type", "Name", "Source", "Destination", "Driver", "Mode", "RW", "Propagation")


def public_view(point: dict[str, Any]) -> dict[str, Any]:
    """A mount point as ``docker inspect`` and ``docker ps`` show it."""
    out: dict[str, Any] = {}
    for key in _PUBLIC:
        value = point.get(key, "" if key != "RW" else True)
        if key in ("Type", "Name", "Driver") and not value:
            continue
        out[key] = value
    return out


def _mount_config_error(mount: dict[str, Any], reason: str) -> ApiError:
    return invalid(f'invalid mount config for type "{mount.get("Type") or ""}": {reason}')


def is_local(path: str) -> bool:
    """Go's ``filepath.IsLocal`` (Unix): relative, not empty, and never above its start after cleaning."""
    if not path or path.startswith("/"):
        return False
    clean = posixpath.normpath(path)
    return clean != ".." and not clean.startswith("../")


def _not_root(path: str) -> str | None:
    if posixpath.normpath(path.replace("\\", "/")) in ("/", "//"):
        return "invalid specification: destination can't be '/'"
    return None


def _absolute(path: str) -> str | None:
    path = path.replace("\\", "/")
    if path.startswith("/"):
        return None
    return f"invalid mount path: '{path}' mount path must be absolute"


def validate_tmpfs_destination(dest: str) -> None:
    """``HostConfig.Tmpfs`` keys: absolute, not ``/`` (moby ValidateTmpfsMountDestination)."""
    problem = _not_root(dest) or _absolute(dest)
    if problem:
        raise invalid(problem)


def tmpfs_options(options: dict[str, Any] | None, read_only: bool) -> str:
    """moby ConvertTmpfsOptions: ``ro``, ``mode=<octal>``, ``size=<n>[kmg]`` and the ``exec``/``noexec``
    pairs of ``TmpfsOptions.Options``, joined with commas."""
    raw: list[str] = ["ro"] if read_only else []
    opts = options or {}
    mode = int(opts.get("Mode") or 0)
    if mode:
        raw.append(f"mode={mode:o}")
    size = int(opts.get("SizeBytes") or 0)
    if size:
        suffix = ""
        for unit, divisor in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
            if size % divisor == 0:
                size, suffix = size // divisor, unit
                break
        raw.append(f"size={size}{suffix}")
    for item in opts.get("Options") or []:
        if not isinstance(item, list) or not 1 <= len(item) <= 2:
            raise ValueError("invalid option array length")
        if item[0] not in _TMPFS_OPTIONS:
            raise ValueError(f"invalid option: {item[0]}")
        raw.append(item[0] if len(item) == 1 else f"{item[0]}={item[1]}")
    return ",".join(raw)


def validate_mount_config(mount: dict[str, Any], check_bind_source: bool = True) -> None:
    """moby linuxParser.validateMountConfigImpl: what a ``Mounts`` entry may and must carry, by type."""
    target = str(mount.get("Target") or "")
    if not target:
        raise _mount_config_error(mount, "field Target must not be empty")
    problem = _not_root(target) or _absolute(target)
    if problem:
        raise _mount_config_error(mount, problem)
    kind = mount.get("Type") or ""
    source = str(mount.get("Source") or "")
    bind_options = mount.get("BindOptions")
    volume_options = mount.get("VolumeOptions")
    image_options = mount.get("ImageOptions")
    if kind == "bind":
        if not source:
            raise _mount_config_error(mount, "field Source must not be empty")
        propagation = (bind_options or {}).get("Propagation") or ""
        if propagation and propagation not in PROPAGATIONS:
            raise _mount_config_error(mount, f"invalid propagation mode: {propagation}")
        if volume_options is not None:
            raise _mount_config_error(mount, "field VolumeOptions must not be specified")
        if image_options is not None:
            raise _mount_config_error(mount, "field ImageOptions must not be specified")
        problem = _absolute(source)
        if problem:
            raise _mount_config_error(mount, problem)
        if check_bind_source:
            create = bool((bind_options or {}).get("CreateMountpoint"))
            try:
                os.stat(source)
                exists = True
            except FileNotFoundError:
                exists = False
            except OSError as exc:
                raise _mount_config_error(mount, f"stat {source}: {(exc.strerror or '').lower()}") from None
            if not exists and not create:
                raise _mount_config_error(mount, f"bind source path does not exist: {source}")
    elif kind == "volume":
        if bind_options is not None:
            raise _mount_config_error(mount, "field BindOptions must not be specified")
        if image_options is not None:
            raise _mount_config_error(mount, "field ImageOptions must not be specified")
        anonymous = not source
        subpath = str((volume_options or {}).get("Subpath") or "")
        if subpath:
            if anonymous:
                raise _mount_config_error(mount, "must not set Subpath when using anonymous volumes")
            if not is_local(subpath):
                raise _mount_config_error(mount, "subpath must be a relative path within the volume")
        if mount.get("ReadOnly") and anonymous:
            raise _mount_config_error(mount, "must not set ReadOnly mode when using anonymous volumes")
    elif kind == "tmpfs":
        if bind_options is not None:
            raise _mount_config_error(mount, "field BindOptions must not be specified")
        if image_options is not None:
            raise _mount_config_error(mount, "field ImageOptions must not be specified")
        if source:
            raise _mount_config_error(mount, "field Source must not be specified")
        try:
            tmpfs_options(mount.get("TmpfsOptions"), bool(mount.get("ReadOnly")))
        except ValueError as exc:
            raise _mount_config_error(mount, str(exc)) from None
    elif kind == "image":
        if bind_options is not None:
            raise _mount_config_error(mount, "field BindOptions must not be specified")
        if volume_options is not None:
            raise _mount_config_error(mount, "field VolumeOptions must not be specified")
        if not source:
            raise _mount_config_error(mount, "field Source must not be empty")
        subpath = str((image_options or {}).get("Subpath") or "")
        if subpath and not is_local(subpath):
            raise _mount_config_error(mount, "subpath must be a relative path within the volume")
    else:
        raise _mount_config_error(mount, "mount type unknown")


def _valid_mode(mode: str) -> bool:
    """moby linuxValidMountMode: known words, at most one of each kind."""
    if not mode:
        return True
    counts = [0, 0, 0, 0, 0]
    for word in mode.split(","):
        if word in _RW_MODES:
            counts[0] += 1
        elif word in _LABEL_MODES:
            counts[1] += 1
        elif word in PROPAGATIONS:
            counts[2] += 1
        elif word in _COPY_MODES:
            counts[3] += 1
        elif word in _CONSISTENCY_MODES:
            counts[4] += 1
        else:
            return False
    return all(n <= 1 for n in counts)


def _propagation_of(mode: str) -> str:
    return next((w for w in mode.split(",") if w in PROPAGATIONS), "")


def _read_write(mode: str) -> bool:
    return _valid_mode(mode) and "ro" not in mode.split(",")


def _bind_error(message: str) -> ApiError:
    return ApiError(500, message)


def parse_mount_raw(raw: str, volume_driver: str = "") -> dict[str, Any]:
    """One ``-v`` string (``[source:]destination[:mode]``) as moby ParseMountRaw reads it: a host path
    source is a bind, a name (or nothing) a volume; ``Spec`` is the ``Mounts`` entry it amounts to. Its
    errors are plain ones in moby (registerMountPoints returns them as they are): dockerd answers 500."""
    parts = raw.split(":", 3)
    if not parts[0]:
        raise _bind_error(f"invalid volume specification: '{raw}'")
    spec: dict[str, Any] = {}
    mode = ""
    if len(parts) == 1:
        spec["Target"] = parts[0]
    elif len(parts) == 2:
        if _valid_mode(parts[1]):  # "/foo:rw" is a destination with a mode and no source
            raise _bind_error(f"invalid volume specification: '{raw}'")
        spec["Source"], spec["Target"] = parts[0], parts[1]
    elif len(parts) == 3:
        spec["Source"], spec["Target"], mode = parts
    else:
        raise _bind_error(f"invalid volume specification: '{raw}'")
    if not _valid_mode(mode):
        raise _bind_error(f"invalid mode: {mode}")
    spec["Type"] = "bind" if str(spec.get("Source", "")).startswith("/") else "volume"
    spec["ReadOnly"] = not _read_write(mode)
    if volume_driver and spec["Type"] == "volume":
        spec["VolumeOptions"] = {"DriverConfig": {"Name": volume_driver}}
    copy = next((_COPY_MODES[w] for w in mode.split(",") if w in _COPY_MODES), None)
    if copy is not None:
        spec.setdefault("VolumeOptions", {})["NoCopy"] = not copy
    if _propagation_of(mode):
        spec["BindOptions"] = {"Propagation": _propagation_of(mode)}
    try:
        point = _point(spec, check_bind_source=False)
    except ApiError as exc:
        raise _bind_error(f"invalid volume specification: '{raw}': {exc.message}") from None
    point["Mode"] = mode
    return point


def parse_mount_spec(mount: dict[str, Any]) -> dict[str, Any]:
    """One ``HostConfig.Mounts`` entry as moby ParseMountSpec reads it (the bind source must exist)."""
    return _point(mount, check_bind_source=True)


def _point(spec: dict[str, Any], check_bind_source: bool) -> dict[str, Any]:
    validate_mount_config(spec, check_bind_source)
    kind = spec["Type"]
    point: dict[str, Any] = {
        "Type": kind,
        "Name": "",
        "Source": "",
        "Destination": posixpath.normpath(str(spec["Target"])).replace("//", "/"),
        "Driver": "",
        "Mode": "",
        "RW": not spec.get("ReadOnly"),
        "Propagation": "",
        "Spec": dict(spec),
    }
    if kind == "volume":
        point["Name"] = str(spec.get("Source") or "")
        options = spec.get("VolumeOptions") or {}
        point["Driver"] = str((options.get("DriverConfig") or {}).get("Name") or "")
        point["CopyData"] = not options.get("NoCopy")
    elif kind in ("bind", "image"):
        point["Source"] = posixpath.normpath(str(spec["Source"])) if kind == "bind" else str(spec["Source"])
        point["Propagation"] = (spec.get("BindOptions") or {}).get("Propagation") or DEFAULT_PROPAGATION
    return point


def parse_volumes_from(entry: str) -> tuple[str, str]:
    """``container[:mode]`` of ``--volumes-from``: (container, mode); propagation and copy modes are
    refused (moby ParseVolumesFrom)."""
    if not entry:
        raise invalid("volumes-from specification cannot be an empty string")
    container, _, mode = entry.partition(":")
    if not mode:
        return container, "rw"
    if not _valid_mode(mode) or _propagation_of(mode) or any(w in _COPY_MODES for w in mode.split(",")):
        raise invalid(f"invalid mode: {mode}")
    return container, mode


def read_write(mode: str) -> bool:
    """moby ReadWrite: a valid mode without ``ro``."""
    return _read_write(mode)


def api_version_gates(host_config: dict[str, Any], version: tuple[int, ...]) -> bool:
    """The container-create router's per-version handling of ``Mounts``; returns whether read-only binds
    default to non-recursive (API < 1.44, as before recursive read-only existed)."""
    mounts = [m for m in host_config.get("Mounts") or [] if isinstance(m, dict)]
    if version < (1, 42):
        for m in mounts:
            if m.get("BindOptions"):
                m["BindOptions"].pop("CreateMountpoint", None)
            if m.get("VolumeOptions") is not None and m.get("Type") != "volume":
                m["VolumeOptions"] = None
            if m.get("TmpfsOptions") is not None and m.get("Type") != "tmpfs":
                m["TmpfsOptions"] = None
    else:
        for m in mounts:
            kind = m.get("Type") or ""
            for key, wanted in (
                ("VolumeOptions", "volume"),
                ("BindOptions", "bind"),
                ("TmpfsOptions", "tmpfs"),
            ):
                if m.get(key) is not None and kind != wanted:
                    raise invalid(f'{key} must not be specified on mount type "{kind}"')
    if version < (1, 40):
        for m in mounts:
            if m.get("BindOptions"):
                m["BindOptions"].pop("NonRecursive", None)
    if version < (1, 44):
        for m in mounts:
            if m.get("Type") == "bind" and (m.get("BindOptions") or {}).get("ReadOnlyForceRecursive"):
                raise invalid("BindOptions.ReadOnlyForceRecursive needs API v1.44 or newer")
    if version < (1, 45):
        for m in mounts:
            if (m.get("VolumeOptions") or {}).get("Subpath"):
                raise invalid("VolumeOptions.Subpath needs API v1.45 or newer")
    if version < (1, 48):
        for m in mounts:
            if m.get("Type") == "image":
                raise invalid('Mount type "Image" needs API v1.48 or newer')
    return version < (1, 44)
