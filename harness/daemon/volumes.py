"""Local volumes: ``<data-root>/volumes/<name>/_data`` plus metadata, with dockerd's names and errors.

Named volumes outlive containers; anonymous ones (image ``VOLUME``, ``-v /path``) get a
64-hex name and go with ``docker rm -v``. A volume that is empty when first mounted is
filled from the image's content at that path (dockerd's copy-up), unless ``nocopy``.
Errors follow moby ``volume/service``: ``get x: no such volume``, ``remove x: volume is in
use - [<ids>]``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass, field
from typing import Any

from .errors import conflict, invalid, not_found

__all__ = ["Volume", "VolumeStore"]

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
        if not name:
            name, anonymous = secrets.token_hex(32), True
        if not _NAME.match(name):
            raise invalid(
                f'create {name}: "{name}" includes invalid characters for a local volume name, only '
                '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, '
                "use absolute path"
            )
        existing = self.volumes.get(name)
        if existing is not None:
            return existing  # dockerd returns the existing volume for a repeated create
        for key in options or {}:
            if key not in ("type", "device", "o", "size"):
                raise invalid(f'create {name}: invalid option: "{key}"')
        os.makedirs(self.path(name), mode=0o755, exist_ok=True)
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
        shutil.rmtree(os.path.join(self.root, name), ignore_errors=True)
        del self.volumes[name]
        self._save()

    def copy_up(self, name: str, source: str) -> None:
        """Fill an empty volume from the image's directory at the mount point (dockerd's first-use copy)."""
        target = self.path(name)
        if os.listdir(target) or not os.path.isdir(source):
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
