"""Parsing ``/proc/<pid>/mountinfo``: the one source of truth about what is mounted where.

cgroups uses it to find the v1 hierarchies and the v2 mount; rootfs and the tests use it to
check what a container left behind. Kept apart because both need it and neither owns it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["MountInfo", "mounts_under", "read_mountinfo"]

_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as ``\\ooo``."""
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


@dataclass(frozen=True)
class MountInfo:
    """One line of mountinfo (proc(5))."""

    mount_id: int
    parent_id: int
    device: str
    root: str
    mountpoint: str
    options: frozenset[str]
    optional: tuple[str, ...]
    fstype: str
    source: str
    super_options: tuple[str, ...]


def read_mountinfo(pid: int | str = "self") -> list[MountInfo]:
    """The mount table of ``pid``'s mount namespace, in mount order."""
    out: list[MountInfo] = []
    with open(f"/proc/{pid}/mountinfo") as fh:
        for line in fh:
            fields = line.split()
            sep = fields.index("-", 6)
            out.append(
                MountInfo(
                    mount_id=int(fields[0]),
                    parent_id=int(fields[1]),
                    device=fields[2],
                    root=_unescape(fields[3]),
                    mountpoint=_unescape(fields[4]),
                    options=frozenset(fields[5].split(",")),
                    optional=tuple(fields[6:sep]),
                    fstype=fields[sep + 1],
                    source=_unescape(fields[sep + 2]) if len(fields) > sep + 2 else "",
                    super_options=tuple(fields[sep + 3].split(",")) if len(fields) > sep + 3 else (),
                )
            )
    return out


def mounts_under(prefix: str, pid: int | str = "self") -> list[MountInfo]:
    """Mounts at or below ``prefix`` (a directory path), e.g. to prove a test left nothing mounted."""
    prefix = prefix.rstrip("/") or "/"
    return [
        m
        for m in read_mountinfo(pid)
        if m.mountpoint == prefix or m.mountpoint.startswith(prefix + "/") or prefix == "/"
    ]
