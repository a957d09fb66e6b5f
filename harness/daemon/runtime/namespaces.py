"""Linux namespaces: which to create, which to join, and joining a running container's.

A container's namespaces are described per kind (``mnt``, ``uts``, ``ipc``, ``net``, ``pid``,
``cgroup``) by a *mode*: ``"new"`` (unshare a fresh one), ``"host"`` (stay in the caller's)
or an absolute path to a namespace file to join (``/proc/<pid>/ns/net`` for
``--network container:x``, or a netns bind-mounted by the networking code). ``docker exec``
joins every namespace of the container's PID 1 that differs from the caller's.

Joining order matters: namespace files are opened first (``/proc`` may vanish once the mount
namespace changes), the user namespace would come first and the mount namespace last, and a
new or joined pid namespace applies only to children, so the caller forks afterwards.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping

from . import syscalls as sc

__all__ = [
    "HOST",
    "JOIN_ORDER",
    "KINDS",
    "NEW",
    "bring_up_loopback",
    "create",
    "enter",
    "join_paths",
    "normalise_modes",
    "ns_path",
    "same_namespace",
    "unshare_flags",
]

NEW = "new"
HOST = "host"

#: Namespace kinds by their ``/proc/<pid>/ns`` names, with their CLONE_* flags.
KINDS: dict[str, int] = {
    "mnt": sc.CLONE_NEWNS,
    "uts": sc.CLONE_NEWUTS,
    "ipc": sc.CLONE_NEWIPC,
    "net": sc.CLONE_NEWNET,
    "pid": sc.CLONE_NEWPID,
    "cgroup": sc.CLONE_NEWCGROUP,
    "user": sc.CLONE_NEWUSER,
    "time": sc.CLONE_NEWTIME,
}
#: OCI spells some kinds differently; accepted as aliases.
_ALIASES = {"mount": "mnt", "network": "net"}
#: Order of setns: user first (it grants the rest), mnt last (it changes what paths mean).
JOIN_ORDER = ("user", "cgroup", "ipc", "uts", "net", "pid", "time", "mnt")


def normalise_modes(modes: Mapping[str, str]) -> dict[str, str]:
    """Validate a kind -> mode mapping; aliases resolved, unknown kinds and modes rejected."""
    out: dict[str, str] = {}
    for kind, mode in modes.items():
        kind = _ALIASES.get(kind, kind)
        if kind not in KINDS:
            raise ValueError(f"unknown namespace kind {kind!r}")
        if mode not in (NEW, HOST) and not mode.startswith("/"):
            raise ValueError(
                f"namespace {kind}: mode must be 'new', 'host' or an absolute path, not {mode!r}"
            )
        out[kind] = mode
    return out


def unshare_flags(modes: Mapping[str, str]) -> int:
    """The CLONE_* flags for every kind whose mode is ``new``."""
    flags = 0
    for kind, mode in normalise_modes(modes).items():
        if mode == NEW:
            flags |= KINDS[kind]
    return flags


def ns_path(pid: int | str, kind: str) -> str:
    """``/proc/<pid>/ns/<kind>``."""
    return f"/proc/{pid}/ns/{_ALIASES.get(kind, kind)}"


def same_namespace(path_a: str, path_b: str) -> bool:
    """Whether two namespace files name the same namespace (same nsfs inode)."""
    a, b = os.stat(path_a), os.stat(path_b)
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def join_paths(paths: Mapping[str, str]) -> None:
    """setns into each kind -> namespace file, in JOIN_ORDER; files are all opened before any join."""
    opened: list[tuple[int, int]] = []
    try:
        for kind in JOIN_ORDER:
            path = paths.get(kind)
            if path is None:
                continue
            try:
                opened.append((os.open(path, os.O_RDONLY | os.O_CLOEXEC), KINDS[kind]))
            except OSError as exc:
                raise sc.SyscallError("open", exc.errno or 0, path) from None
        for fd, flag in opened:
            sc.setns(fd, flag)
            if flag == sc.CLONE_NEWUSER:
                # become the namespace's root (the host's root is not mapped in it): files made from
                # now on belong to the remapped root, and the capabilities are the namespace's
                os.setgroups([])
                os.setresgid(0, 0, 0)
                os.setresuid(0, 0, 0)
    finally:
        for fd, _ in opened:
            with contextlib.suppress(OSError):
                os.close(fd)


def create(modes: Mapping[str, str]) -> None:
    """Join the path-mode namespaces, then unshare the new ones (the caller forks for ``pid``)."""
    modes = normalise_modes(modes)
    join_paths({kind: mode for kind, mode in modes.items() if mode not in (NEW, HOST)})
    flags = unshare_flags(modes)
    if flags:
        sc.unshare(flags)


def enter(pid: int, kinds: Iterable[str] = ("user", "cgroup", "ipc", "uts", "net", "pid", "mnt")) -> None:
    """Join ``pid``'s namespaces of the given kinds, skipping those the caller already shares."""
    paths: dict[str, str] = {}
    for kind in kinds:
        theirs = ns_path(pid, kind)
        mine = ns_path("self", kind)
        try:
            if same_namespace(theirs, mine):
                continue
        except FileNotFoundError:
            if not os.path.exists(f"/proc/{pid}"):
                raise sc.SyscallError("setns", 3, f"(process {pid} is gone)") from None
            continue  # the kernel lacks this kind
        paths[_ALIASES.get(kind, kind)] = theirs
    join_paths(paths)


def bring_up_loopback() -> None:
    """Set ``lo`` up in the caller's network namespace: a new netns starts with it down, dockerd's is up."""
    flags = sc.get_interface_flags("lo")
    if not flags & sc.IFF_UP:
        sc.set_interface_flags("lo", flags | sc.IFF_UP)
