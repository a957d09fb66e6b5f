"""Local volumes: ``<data-root>/volumes/<name>/_data`` plus metadata, with dockerd's names and errors.

Named volumes outlive containers; anonymous ones (image ``VOLUME``, ``-v /path``) get a
64-hex name and go with ``docker rm -v``. A volume that is empty when a container is created
with it is filled from the image's content at that path (dockerd's copy-up), unless ``nocopy``.
Errors follow moby ``volume/service``: ``get x: no such volume``, ``remove x: volume is in
use - [<ids>]``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError, conflict, invalid, not_found
from .fsutil import rmtree

__all__ = ["ANONYMOUS_LABEL", "Volume", "VolumeStore"]

#: the label dockerd's volume service gives a volume it names itself
ANONYMOUS_LABEL = "com.docker.volume.anonymous"
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_META = "metadata.json"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class Volume:
    name: str
    created: str
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    anonymous: bool = False

    def document(self, root: str) -> dict[str, Any]:
        return {
            "CreatedAt": self.created,
            "Driver": "local",
            "Labels": self.labels or None,
            "Mountpoint": os.path.join(root, self.name, "_data"),
            "Name": self.name,
            "Options": self.options or None,
            "Scope": "local",
        }


class VolumeStore:
    """Every volume of one daemon; ``users`` tells which containers mount a volume."""

    def __init__(self, data_root: str) -> None:
        self.root = os.path.join(data_root, "volumes")
        os.makedirs(self.root, mode=0o701, exist_ok=True)
        self.volumes: dict[str, Volume] = {}
        self.users: Any = lambda name: []  # set by the container manager
        self.active: dict[str, set[str]] = {}  # volume -> containers that have it mounted now
        #: ``--userns-remap``: the host uid/gid of container root, which owns each new volume's _data
        self.owner: tuple[int, int] | None = None
        self._load()

    def _load(self) -> None:
        try:
            with open(os.path.join(self.root, _META)) as fh:
                records = json.load(fh)
        except (OSError, ValueError):
            records = {}
        for name, rec in records.items():
            if os.path.isdir(os.path.join(self.root, name, "_data")):
                self.volumes[name] = Volume(
                    name,
                    rec.get("created", _now()),
                    rec.get("labels") or {},
                    rec.get("options") or {},
                    bool(rec.get("anonymous")),
                )

    def _save(self) -> None:
        records = {
            v.name: {"created": v.created, "labels": v.labels, "options": v.options, "anonymous": v.anonymous}
            for v in self.volumes.values()
        }
        tmp = os.path.join(self.root, _META + ".tmp")
        with open(tmp, "w") as fh:
            json.dump(records, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, os.path.join(self.root, _META))

    def path(self, name: str) -> str:
        return os.path.join(self.root, name, "_data")

    def create(
        self,
        name: str = "",
        labels: dict[str, str] | None = None,
        options: dict[str, str] | None = None,
        driver: str = "local",
        anonymous: bool = False,
    ) -> Volume:
        if driver not in ("", "local"):
            raise not_found(f'error looking up volume plugin {driver}: plugin "{driver}" not found')
        if not name:  # dockerd's volume service names it and labels it anonymous
            name, anonymous = secrets.token_hex(32), True
            labels = {**(labels or {}), ANONYMOUS_LABEL: ""}
        if not _NAME.match(name):
            raise invalid(
                f'create {name}: "{name}" includes invalid characters for a local volume name, only '
                '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, '
                "use absolute path"
            )
        existing = self.volumes.get(name)
        if existing is not None:
            return existing  # dockerd returns the existing volume for a repeated create
        _validate_options(name, options or {})
        root = os.path.join(self.root, name)
        try:
            os.makedirs(self.path(name), mode=0o755, exist_ok=True)
            if self.owner is not None:
                os.chown(self.path(name), *self.owner)
        except OSError as exc:  # a name past NAME_MAX, a full disk: dockerd's text (was '<path>: ...')
            raise ApiError(
                500,
                f"create {name}: error while creating volume root path '{root}': "
                f"mkdir {root}: {(exc.strerror or str(exc)).lower()}",
            ) from None
        volume = Volume(name, _now(), dict(labels or {}), dict(options or {}), anonymous)
        self.volumes[name] = volume
        self._save()
        return volume

    def get(self, name: str) -> Volume:
        volume = self.volumes.get(name)
        if volume is None:
            raise not_found(f"get {name}: no such volume")
        return volume

    def remove(self, name: str, force: bool = False) -> None:
        volume = self.volumes.get(name)
        if volume is None:
            if force:
                return
            raise not_found(f"get {name}: no such volume")
        users = list(self.users(name))
        if users:
            raise conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
        rmtree(os.path.join(self.root, name), ignore_errors=True)
        del self.volumes[name]
        self._save()

    # -- mounting (volumes with type/device/o options) --------------------------------------------
    def mount(self, name: str, container_id: str) -> None:
        """Count ``container_id`` as a user; the first user mounts a volume that has mount options."""
        volume = self.volumes.get(name)
        if volume is None:
            return
        users = self.active.setdefault(name, set())
        if not users and _needs_mount(volume.options) and not _is_mounted(self.path(name)):
            try:
                _mount_local(volume.options, self.path(name))
            except OSError as exc:
                if not users:
                    self.active.pop(name, None)
                where, reason = self.path(name), exc.strerror or exc
                raise ApiError(
                    500, f"error while mounting volume '{where}': failed to mount local volume: {reason}"
                ) from None
        users.add(container_id)

    def unmount(self, name: str, container_id: str) -> None:
        """Drop ``container_id``; the last user unmounts (a tmpfs volume's data goes, as on dockerd)."""
        users = self.active.get(name)
        if users is None or container_id not in users:
            return
        users.discard(container_id)
        volume = self.volumes.get(name)
        if not users:
            self.active.pop(name, None)
            if volume is not None and _needs_mount(volume.options):
                from .runtime import syscalls as sc

                with contextlib.suppress(OSError):
                    sc.umount2(self.path(name), sc.MNT_DETACH)

    @staticmethod
    def copy_up_into(target: str, source: str) -> None:
        """Fill the empty directory ``target`` (a volume, or its subpath) from the image's ``source``
        (dockerd's copyExistingContents, at create)."""
        if not os.path.isdir(target) or os.listdir(target) or not os.path.isdir(source):
            return
        for entry in os.listdir(source):
            src = os.path.join(source, entry)
            dst = os.path.join(target, entry)
            if os.path.isdir(src) and not os.path.islink(src):
                shutil.copytree(src, dst, symlinks=True)
            else:
                shutil.copy2(src, dst, follow_symlinks=False)
        shutil.copystat(source, target)

    def matches(self, volume: Volume, filters: dict[str, list[str]]) -> bool:
        for key, values in filters.items():
            if key == "name" and not any(v in volume.name for v in values):
                return False
            if key == "driver" and "local" not in values:
                return False
            if key == "label":
                for value in values:
                    k, sep, v = value.partition("=")
                    if k not in volume.labels or (sep and volume.labels[k] != v):
                        return False
            if key == "dangling":
                dangling = not self.users(volume.name)
                if any(v.lower() in ("true", "1") for v in values) != dangling:
                    return False
        return True


_VALID_OPTIONS = ("type", "o", "device", "size")
_MANDATORY = {"device": ("type",), "type": ("device",), "o": ("device", "type")}


def _validate_options(name: str, options: dict[str, str]) -> None:
    """moby volume/local validateOpts, with the volume service's ``create <name>:`` prefix."""
    for key in options:
        if key not in _VALID_OPTIONS:
            raise invalid(f'create {name}: invalid option: "{key}"')
    if "size" in options:
        raise invalid(f"create {name}: quota size requested but no quota support")
    for key, needed in _MANDATORY.items():
        if key in options:
            for other in needed:
                if other not in options:
                    raise invalid(f'create {name}: missing required option: "{other}"')


def _needs_mount(options: dict[str, str]) -> bool:
    return bool(options.get("device") or options.get("type"))


def _is_mounted(path: str) -> bool:
    real = os.path.realpath(path)
    try:
        with open("/proc/self/mountinfo") as fh:
            return any(line.split()[4] == real for line in fh)
    except OSError:
        return False


#: moby/sys/mount's option words that are flags (the rest go to the filesystem as data).
_FLAG_WORDS: dict[str, tuple[bool, int]] = {
    "defaults": (False, 0),
    "ro": (False, 1),
    "rw": (True, 1),
    "suid": (True, 2),
    "nosuid": (False, 2),
    "dev": (True, 4),
    "nodev": (False, 4),
    "exec": (True, 8),
    "noexec": (False, 8),
    "sync": (False, 16),
    "async": (True, 16),
    "remount": (False, 32),
    "mand": (False, 64),
    "nomand": (True, 64),
    "dirsync": (False, 128),
    "atime": (True, 1024),
    "noatime": (False, 1024),
    "diratime": (True, 2048),
    "nodiratime": (False, 2048),
    "bind": (False, 4096),
    "rbind": (False, 4096 | 16384),
    "relatime": (False, 1 << 21),
    "norelatime": (True, 1 << 21),
    "strictatime": (False, 1 << 24),
    "nostrictatime": (True, 1 << 24),
}


def _mount_local(options: dict[str, str], target: str) -> None:
    """``mount -t type -o o device target`` as moby/sys/mount does it, with its error text."""
    from .runtime import syscalls as sc

    flags, data = 0, []
    for word in (options.get("o") or "").split(","):
        if not word:
            continue
        if word in _FLAG_WORDS:
            clear, bit = _FLAG_WORDS[word]
            flags = flags & ~bit if clear else flags | bit
        else:
            data.append(word)
    device, fstype, text = options.get("device", ""), options.get("type", ""), ",".join(data)
    try:
        sc.mount(device, target, fstype if fstype != "none" else None, flags, text or None)
    except OSError as exc:
        where = f"{device}:{target}" if device else target
        detail = f", flags: {flags:#x}" if flags else ""
        detail += f", data: {text}" if text else ""
        reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
        raise OSError(exc.errno, f"mount {where}{detail}: {reason}") from None
