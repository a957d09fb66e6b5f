"""``--userns-remap``: the remapped user, its subordinate id ranges, and the id mapping they make.

As moby's ``daemon.setupRemappedRoot`` and ``pkg/idtools``: ``default`` names the ``dockremap`` user,
created on first use (``adduser --system ... --group dockremap``, else ``useradd -r``), with a range of
65536 subordinate ids from the first free one at or above 100000 added to ``/etc/subuid`` and
``/etc/subgid`` (``usermod -v``/``-w``) when the user has none. Any other value is ``user[:group]``
(names or numbers) whose ranges must exist. The ranges, in order, map container ids 0, 1, ... to host
ids; the remapped root is the host pair that container root (0:0) becomes, and the daemon keeps its
state under ``<data-root>/<uid>.<gid>``.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass

__all__ = ["DEFAULT_USER", "IdMapping", "RemapError", "setup_remap"]

DEFAULT_USER = "dockremap"
_RANGE_START, _RANGE_LEN = 100000, 65536


class RemapError(Exception):
    """The remapped user or its ranges cannot be set up; the message is dockerd's start-up error."""


@dataclass(frozen=True)
class IdMapping:
    """Container-to-host id ranges: ``(container id, host id, size)`` for users and for groups."""

    uids: tuple[tuple[int, int, int], ...]
    gids: tuple[tuple[int, int, int], ...]

    @property
    def root(self) -> tuple[int, int]:
        """The host uid and gid of container root."""
        return self.to_host(0, 0)

    @staticmethod
    def _shift(ranges: tuple[tuple[int, int, int], ...], value: int, forward: bool) -> int:
        for inside, outside, size in ranges:
            first = inside if forward else outside
            if first <= value < first + size:
                return value - first + (outside if forward else inside)
        raise ValueError(f"id {value} is not mapped")

    def to_host(self, uid: int, gid: int) -> tuple[int, int]:
        """The host ids of a container's uid and gid (ValueError when out of the ranges)."""
        return self._shift(self.uids, uid, True), self._shift(self.gids, gid, True)

    def to_container(self, uid: int, gid: int) -> tuple[int, int]:
        """The container ids of host ids; ids outside the ranges become 0, as moby's archive code does."""
        try:
            cuid = self._shift(self.uids, uid, False)
        except ValueError:
            cuid = 0
        try:
            cgid = self._shift(self.gids, gid, False)
        except ValueError:
            cgid = 0
        return cuid, cgid

    def map_lines(self, which: str) -> str:
        """``/proc/<pid>/uid_map`` (``which`` ``uid``) or ``gid_map`` text."""
        ranges = self.uids if which == "uid" else self.gids
        return "".join(f"{inside} {outside} {size}\n" for inside, outside, size in ranges)

    def to_dict(self) -> dict[str, list[list[int]]]:
        return {"uids": [list(r) for r in self.uids], "gids": [list(r) for r in self.gids]}


def _parse_ranges(path: str, names: set[str]) -> list[tuple[int, int]]:
    """``name:start:length`` lines of a subordinate id file for any of ``names`` (``ALL``: every line)."""
    out = []
    try:
        with open(path) as fh:
            lines = fh.read().splitlines()
    except FileNotFoundError:
        return []
    for line in lines:
        parts = line.strip().split(":")
        if len(parts) != 3 or line.lstrip().startswith("#"):
            continue
        if "ALL" in names or parts[0] in names:
            try:
                out.append((int(parts[1]), int(parts[2])))
            except ValueError:
                continue
    return out


def _next_range_start(path: str) -> int:
    """moby findNextRangeStart: past every range overlapping the candidate, in start order."""
    start = _RANGE_START
    for first, length in sorted(_parse_ranges(path, {"ALL"})):
        if first < start + _RANGE_LEN and start < first + length:
            start = first + length
    return start


def _run(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RemapError(
            f"Can't create ID mappings: failed to run {' '.join(argv)}: "
            f"{(proc.stderr or proc.stdout).strip() or f'exit status {proc.returncode}'}"
        )


def _add_user(name: str) -> None:
    adduser, useradd = shutil.which("adduser"), shutil.which("useradd")
    if adduser:
        _run(
            [
                adduser,
                "--system",
                "--shell",
                "/bin/false",
                "--no-create-home",
                "--disabled-login",
                "--disabled-password",
                "--group",
                name,
            ]
        )
    elif useradd:
        _run([useradd, "-r", "-s", "/bin/false", name])
    else:
        raise RemapError(
            "Can't create ID mappings: cannot add user; no useradd/adduser binary found "
            "(install passwd or adduser)"
        )


def _ensure_ranges(name: str, names: set[str]) -> None:
    usermod = shutil.which("usermod")
    for path, flag in (("/etc/subuid", "-v"), ("/etc/subgid", "-w")):
        if _parse_ranges(path, names):
            continue
        if not usermod:
            raise RemapError("Can't create ID mappings: no usermod binary found (install passwd)")
        start = _next_range_start(path)
        _run([usermod, flag, f"{start}-{start + _RANGE_LEN - 1}", name])


def _mapping(ranges: list[tuple[int, int]], path: str, who: str) -> tuple[tuple[int, int, int], ...]:
    if not ranges:
        raise RemapError(f"Can't create ID mappings: no subuid ranges found for user {who!r} in {path}")
    out, inside = [], 0
    for start, length in ranges:
        out.append((inside, start, length))
        inside += length
    return tuple(out)


def remap_notice(value: str) -> tuple[str, str] | None:
    """The (level, message) dockerd logs as it resolves ``--userns-remap=value`` (moby setupRemappedRoot):
    the user whose ranges map container ids, or that root cannot be remapped; None without the option."""
    user = value.partition(":")[0]
    if not user:
        return None
    if user == "default":
        user = DEFAULT_USER
    elif user.isdigit():
        with contextlib.suppress(KeyError):
            user = pwd.getpwuid(int(user)).pw_name
    if user == "root":
        return "warning", "User namespaces: root cannot be remapped with itself; user namespaces are OFF"
    return "info", f"User namespaces: ID ranges will be mapped to subuid/subgid ranges of: {user}"


def setup_remap(value: str) -> IdMapping:
    """The mapping ``--userns-remap=value`` asks for (``default``: ``dockremap``, made with its ranges)."""
    user, _, group = value.partition(":")
    if user == "default":
        user = group = DEFAULT_USER
        try:
            pwd.getpwnam(user)
        except KeyError:
            _add_user(user)
    try:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except KeyError:
        raise RemapError(f"Can't create ID mappings: user {user!r} not found") from None
    user_names = {entry.pw_name, str(entry.pw_uid)}
    group = group or entry.pw_name
    try:
        gentry = grp.getgrgid(int(group)) if group.isdigit() else grp.getgrnam(group)
        group_names = {gentry.gr_name, str(gentry.gr_gid)}
    except KeyError:
        group_names = {group}
    if value.partition(":")[0] == "default":
        _ensure_ranges(entry.pw_name, user_names)
    return IdMapping(
        uids=_mapping(_parse_ranges("/etc/subuid", user_names), "/etc/subuid", entry.pw_name),
        gids=_mapping(_parse_ranges("/etc/subgid", group_names), "/etc/subgid", group),
    )


def remapped_root(data_root: str, mapping: IdMapping) -> str:
    """``<data-root>/<uid>.<gid>``, made with moby's modes: both directories 0710, group the remapped root's
    gid (it traverses them; nobody else does)."""
    uid, gid = mapping.root
    path = os.path.join(data_root, f"{uid}.{gid}")
    for directory in (data_root, path):
        os.makedirs(directory, mode=0o710, exist_ok=True)
        os.chown(directory, 0, gid)
        os.chmod(directory, 0o710)
    return path
