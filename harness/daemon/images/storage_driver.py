"""Which storage driver a daemon uses, chosen as dockerd's ``graphdriver.New`` chooses it.

A configured driver (``--storage-driver``) is used or refused with dockerd's start-up message
(removed drivers, btrfs off btrfs, unknown names, overlay2 where overlay cannot mount); without
one, the driver whose state is already in the data-root ("prior"), then overlay2 when overlay
mounts work here, else vfs with a warning.
"""

from __future__ import annotations

import os
from typing import Any

from .layers import DRIVERS, Driver, Overlay2Driver, overlay_supported

__all__ = ["REMOVED_DRIVERS", "StorageInitError", "select_driver"]

#: drivers dockerd 28 names as removed (moby daemon/graphdriver checkRemoved) rather than unknown
REMOVED_DRIVERS = ("aufs", "devicemapper", "overlay")
_BTRFS_MAGIC = 0x9123683E


class StorageInitError(Exception):
    """The storage driver could not be initialised; ``str()`` is dockerd's start-up message."""


def select_driver(name: str, data_root: str, log: Any = None) -> Driver:
    """The driver ``name`` (configured) or the one dockerd would pick under ``data_root``."""
    if name:
        return _configured(name, data_root, log)
    prior = [n for n in DRIVERS if _non_empty_dir(os.path.join(data_root, n))]
    if len(prior) > 1:
        raise StorageInitError(
            f"{data_root} contains several valid graphdrivers: {', '.join(prior)}; "
            "cleanup or explicitly choose storage driver (-s <DRIVER>)"
        )
    if prior:
        if log is not None:
            log.info(f"[graphdriver] using prior storage driver: {prior[0]}")
        if prior[0] == "overlay2" and overlay_supported(data_root):
            raise StorageInitError("error initializing graphdriver: driver not supported")
        return DRIVERS[prior[0]](os.path.join(data_root, prior[0]))
    why = overlay_supported(data_root)
    if not why:
        return Overlay2Driver(os.path.join(data_root, "overlay2"))
    if log is not None:
        log.warning(f"[graphdriver] overlay2 is not supported here ({why}); falling back to vfs")
    return DRIVERS["vfs"](os.path.join(data_root, "vfs"))


def _configured(name: str, data_root: str, log: Any) -> Driver:
    if log is not None:
        log.info(f"[graphdriver] trying configured driver: {name}")
    if name in REMOVED_DRIVERS:  # moby graphdriver checkRemoved
        raise StorageInitError(
            f"error initializing graphdriver: [graphdriver] ERROR: the {name} storage-driver has "
            "been deprecated and removed; visit https://docs.docker.com/go/storage-driver/ for more "
            f"information: {name}"
        )
    if name == "btrfs" and not _on_btrfs(data_root):  # built into dockerd, refused off btrfs
        raise StorageInitError(
            "error initializing graphdriver: prerequisites for driver not satisfied (wrong "
            "filesystem?): btrfs"
        )
    if name not in DRIVERS:
        if log is not None:
            log.error("Failed to GetDriver graph", driver=name, **{"home-dir": data_root})
        raise StorageInitError(f"error initializing graphdriver: driver not supported: {name}")
    if name == "overlay2":
        why = overlay_supported(data_root)
        if why:
            if log is not None:
                log.error(why)
            raise StorageInitError("error initializing graphdriver: driver not supported: overlay2")
    return DRIVERS[name](os.path.join(data_root, name))


def _on_btrfs(path: str) -> bool:
    """True when ``path`` is on btrfs (``stat -f -c %t``), where dockerd's btrfs driver would start."""
    import subprocess  # only for --storage-driver=btrfs: not paid at every boot

    try:
        out = subprocess.run(["stat", "-f", "-c", "%t", path], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and out.stdout.strip() == f"{_BTRFS_MAGIC:x}"


def _non_empty_dir(path: str) -> bool:
    """Prior driver state: anything in the driver's home besides an empty overlay2 ``l``."""
    try:
        names = os.listdir(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    for name in names:
        sub = os.path.join(path, name)
        if name in ("l", "dir") and os.path.isdir(sub) and not os.listdir(sub):
            continue
        return True
    return False
