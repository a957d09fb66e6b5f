"""Resolve a path inside a root the way a chroot would: symlinks are followed but never leave it.

moby's ``symlink.FollowSymlinkInScope``: absolute link targets restart at the root, ``..`` never
climbs above it, so the result is always inside the root (it may not exist). Shared by the
runtime (files in a rootfs) and the image store (paths in an unpacked archive).
"""

from __future__ import annotations

import errno
import os

__all__ = ["MAX_SYMLINK_HOPS", "follow_in_scope"]

MAX_SYMLINK_HOPS = 255


def follow_in_scope(root: str, rel: str, max_hops: int = MAX_SYMLINK_HOPS) -> str:
    """``rel`` under ``root`` with every symlink resolved within ``root``; ELOOP past ``max_hops``."""
    root = os.path.abspath(root)
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            target = os.readlink(candidate)
        except OSError:  # not a symlink, or not there (yet): take it literally
            resolved.append(part)
            continue
        hops += 1
        if hops > max_hops:
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), rel)
        if target.startswith("/"):
            resolved = []
        parts[:0] = [p for p in target.split("/") if p not in ("", ".")]
    return os.path.join(root, *resolved)
