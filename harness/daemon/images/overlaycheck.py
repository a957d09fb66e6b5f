"""Whether overlay mounts work on a data-root's filesystem: probed with a test mount, a success remembered.

dockerd's overlay2 driver proves overlay works with a test mount at every start. The mount, its
umount and removing the probe directories took 15-30 ms of refd's ~120 ms boot, and the answer only
changes with the kernel or the filesystem under the data-root. A successful probe is therefore
remembered in ``CACHE_DIR`` under a key made of the kernel release, the user namespace, overlay's
entry in ``/proc/filesystems`` and the backing mount's filesystem type, source and super-block
options; a later boot with the same key skips the mount. A failed probe is never remembered: it
runs (and is reported at boot) every time, as dockerd does.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil

__all__ = ["CACHE_DIR", "backing_mount", "overlay_supported", "probe_key"]

#: tmpfs on a normal host, so verdicts go with a reboot (the key has the kernel release anyway)
CACHE_DIR = "/run/refd/overlay-probe"


def backing_mount(path: str) -> tuple[str, str, str, str]:
    """The mount holding ``path``: (mount point, filesystem type, source, super-block options).

    ``("", "<unknown>", "", "")`` when ``/proc/self/mountinfo`` cannot be read.
    """
    best: tuple[str, str, str, str] = ("", "<unknown>", "", "")
    real = os.path.realpath(path)
    try:
        with open("/proc/self/mountinfo") as fh:
            for line in fh:
                fields = line.split()
                sep = fields.index("-")
                mount_point = fields[4].replace("\\040", " ")
                inside = real == mount_point or real.startswith(mount_point.rstrip("/") + "/")
                if inside and len(mount_point) >= len(best[0]):
                    source = fields[sep + 2] if len(fields) > sep + 2 else ""
                    options = fields[sep + 3] if len(fields) > sep + 3 else ""
                    best = (mount_point, fields[sep + 1], source, options)
    except (OSError, ValueError, IndexError):
        return ("", "<unknown>", "", "")
    return best


def probe_key(path: str) -> str:
    """What an overlay probe's verdict depends on, hashed; '' when it cannot be known (no caching)."""
    mount_point, fstype, source, options = backing_mount(path)
    if not mount_point:
        return ""
    if not _overlay_loaded():
        return ""  # not loaded yet: the probe's mount loads it; remember nothing before that
    try:
        user_ns = os.stat("/proc/self/ns/user").st_ino
    except OSError:
        return ""
    text = "\0".join((os.uname().release, str(user_ns), mount_point, fstype, source, options))
    return hashlib.sha256(text.encode()).hexdigest()


def _overlay_loaded() -> bool:
    try:
        with open("/proc/filesystems") as fh:
            return "\toverlay\n" in fh.read()
    except OSError:
        return False


def _remembered(key: str) -> bool:
    return bool(key) and os.path.exists(os.path.join(CACHE_DIR, key))


def _remember(key: str) -> None:
    """Best effort: a read-only or missing ``/run`` only means the next boot probes again."""
    if not key:
        return
    with contextlib.suppress(OSError):
        os.makedirs(CACHE_DIR, mode=0o700, exist_ok=True)
        tmp = os.path.join(CACHE_DIR, f".{key}.{secrets.token_hex(4)}")
        with open(tmp, "w") as fh:
            fh.write(os.uname().release + "\n")
        os.replace(tmp, os.path.join(CACHE_DIR, key))


def _mount(source: str, target: str, fstype: str, data: str) -> None:
    from ..runtime.syscalls import mount

    mount(source, target, fstype, 0, data)


def _umount(target: str) -> None:
    from ..runtime.syscalls import MNT_DETACH, umount2

    umount2(target, MNT_DETACH)


def _probe(home_parent: str) -> str:
    """dockerd's test mount: two lowers, an upper and a workdir under ``home_parent``."""
    os.makedirs(home_parent, exist_ok=True)
    probe = os.path.join(home_parent, f"overlay-check-{secrets.token_hex(4)}")
    try:
        for sub in ("lower1", "lower2", "upper", "work", "merged"):
            os.makedirs(os.path.join(probe, sub))
        data = f"lowerdir={probe}/lower2:{probe}/lower1,upperdir={probe}/upper,workdir={probe}/work"
        try:
            _mount("overlay", os.path.join(probe, "merged"), "overlay", data)
        except OSError as exc:
            return f"failed to mount overlay: {exc.strerror or exc}"
        _umount(os.path.join(probe, "merged"))
        return ""
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def overlay_supported(home_parent: str, fstype: str) -> str:
    """'' when an overlay mount works under ``home_parent`` (on a ``fstype`` filesystem), else why not."""
    if fstype == "overlayfs":
        return "'overlay' is not supported over overlayfs"
    os.makedirs(home_parent, exist_ok=True)
    key = probe_key(home_parent)
    if _remembered(key):
        return ""
    why = _probe(home_parent)
    if not why:
        _remember(key or probe_key(home_parent))  # the probe's mount may have just loaded overlay
    return why
