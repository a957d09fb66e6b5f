"""Which processes on this host belong to a daemon: the ones in its network namespace (the daemon itself,
dockerd's containerd and shims, refd's zygote and shim hosts) and the ones in its containers' cgroup
parent.

A daemon that exits cleanly leaves none of them. The check is the same for every target because it looks at
the namespace and the cgroups the backend gave the daemon, not at process names.
"""

from __future__ import annotations

import contextlib
import os

__all__ = ["describe", "in_cgroup_parent", "in_netns"]


def describe(pid: int) -> str:
    """``pid: command line`` (``pid: ?`` for a process that just ended)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = fh.read().rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        argv = "?"
    return f"{pid}: {argv}"


def in_netns(ino: int) -> set[int]:
    """The processes whose network namespace has inode ``ino`` (none for 0 or this process's own)."""
    if not ino or ino == os.stat("/proc/self/ns/net").st_ino:
        return set()  # never the host's own namespace: that would be every process here
    found: set[int] = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{entry}/ns/net").st_ino == ino:
                    found.add(int(entry))
    return found


def in_cgroup_parent(parent: str) -> set[int]:
    """The processes in ``parent`` (``/harness-...``) or below it, in any cgroup hierarchy of this host."""
    name = parent.strip("/")
    if not name:
        return set()  # never the root cgroup
    try:
        hierarchies = [os.path.join("/sys/fs/cgroup", h) for h in os.listdir("/sys/fs/cgroup")]
    except OSError:
        return set()
    hierarchies.append("/sys/fs/cgroup")  # a pure cgroup2 host mounts the hierarchy right there
    found: set[int] = set()
    for base in hierarchies:
        for dirpath, _, files in os.walk(os.path.join(base, name)):
            if "cgroup.procs" in files:
                with contextlib.suppress(OSError), open(os.path.join(dirpath, "cgroup.procs")) as fh:
                    found.update(int(p) for p in fh.read().split())
    return found
