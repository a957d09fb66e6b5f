"""Exec a program with private, writable views of ``/etc`` and ``/var/log`` in its own mount namespace.

    python -I -S harness/private_accounts.py STATE_DIR -- PROGRAM ARGS...

dockerd started with ``--userns-remap=default`` creates the ``dockremap`` user on first boot
(``adduser --system ...`` or ``useradd -r``, then ``usermod -v/-w`` for its subordinate ranges): it
writes ``/etc/passwd``, ``/etc/group``, ``/etc/shadow``, ``/etc/gshadow``, ``/etc/subuid`` and
``/etc/subgid``, and the shadow tools touch ``/var/log/faillog`` and ``/var/log/lastlog``. On a real
host that is the point; on a machine running the harness it would change the host's account database.
The local backend runs this launcher, in the daemon's private mount namespace, for every daemon whose
flags or ``daemon.json`` remap users and whose target has no rootfs of its own (refd and the host's
dockerd; a ``dockerd-N`` target already runs on its rootfs's own ``/etc``):

- ``/etc`` and ``/var/log`` become overlays whose lower layer is the host's directory and whose upper
  layer is ``STATE_DIR/<name>/upper`` (on disk, so a restarted daemon finds the user it made before; a
  tmpfs in this namespace when the state directory's filesystem cannot hold an overlay's upper layer);
- mounts below them (``/etc/resolv.conf`` bound in by a container engine, say) are bound again on top;
- when this namespace already has them (a dockerd's kept mount namespace, entered again on a restart)
  nothing is mounted.

The host's files are never written: the overlays live only in this mount namespace and vanish with it.
Standard library only, run with ``-I -S``: it must start fast and import nothing from the project.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import sys

__all__ = ["CALLER_ENV", "PRIVATE_DIRS", "SOURCE_PREFIX", "main", "overlay_private", "refuse_reason"]

#: the directories made private, and the name of each one's state directory
PRIVATE_DIRS = (("/etc", "etc"), ("/var/log", "varlog"))
#: the overlays' source names (``harness-etc``, ``harness-varlog``): how a kept namespace is recognised
SOURCE_PREFIX = "harness-"
#: the launching process's mount namespace inode: the launcher never mounts there
CALLER_ENV = "HARNESS_CALLER_MNT_NS"
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
MNT_DETACH = 2
EXIT_LAUNCHER = 125


class LaunchError(Exception):
    pass


_libc = ctypes.CDLL(None, use_errno=True)


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = [None if v is None else v.encode() for v in (source, target, fstype, data)]
    if _libc.mount(enc[0], enc[1], enc[2], ctypes.c_ulong(flags), enc[3]) != 0:
        err = ctypes.get_errno()
        what = f"-t {fstype} " if fstype else "--bind "
        opts = f" -o {data}" if data else ""
        raise LaunchError(f"mount {what}{source or ''} {target}{opts}: {os.strerror(err)}") from OSError(
            err, ""
        )


def _umount(target: str) -> None:
    _libc.umount2(target.encode(), MNT_DETACH)


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts() -> list[tuple[str, str, str]]:
    """(mount point, source, super options) of every mount in this namespace, in mount order."""
    found = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            fields = line.split()
            if " - " not in line or len(fields) < 5:
                continue
            after = line.split(" - ", 1)[1].split()
            found.append(
                (_unescape(fields[4]), after[1] if len(after) > 1 else "", after[2] if len(after) > 2 else "")
            )
    return found


def refuse_reason() -> str:
    """Why mounting here would touch a namespace other processes use ("" when it is safe).

    The caller (the local backend) names its own mount namespace in ``HARNESS_CALLER_MNT_NS``: the
    launcher must run in another one, made for the daemon (``unshare --mount``). PID 1's, when visible,
    is refused too.
    """
    mine = os.stat("/proc/self/ns/mnt").st_ino
    caller = os.environ.get(CALLER_ENV, "")
    if not caller.isdigit():
        return f"{CALLER_ENV} is not set to the caller's mount namespace inode"
    if int(caller) == mine:
        return "this is the caller's own mount namespace"
    try:
        if os.stat("/proc/1/ns/mnt").st_ino == mine:
            return "this is PID 1's mount namespace"
    except OSError:
        pass  # PID 1 is not visible here (a sandbox): the caller's namespace was the check that counts
    return ""


def overlay_private(directory: str, state: str, source: str) -> bool:
    """Overlay ``directory`` with an upper layer under ``state``; False when it already was (kept ns)."""
    table = mounts()
    ours = (f"upperdir={os.path.join(state, 'upper')},", f"upperdir={os.path.join(state, 'tmpfs', 'upper')},")
    if any(
        point == directory and src == source and any(o in opts for o in ours) for point, src, opts in table
    ):
        return False  # this namespace has it already (a dockerd's kept one, entered again)
    if not os.path.isdir(directory):
        return False  # nothing to protect (a minimal root without /var/log)
    below = [point for point, _, _ in table if point.startswith(directory.rstrip("/") + "/")]
    os.makedirs(state, exist_ok=True)
    stash = os.path.join(state, "stash")
    os.makedirs(stash, exist_ok=True)
    kept = []
    for i, point in enumerate(
        dict.fromkeys(below)
    ):  # binds of what is mounted below, kept across the overlay
        holder = os.path.join(stash, str(i))
        if os.path.isdir(point):
            os.makedirs(holder, exist_ok=True)
        elif not os.path.exists(holder):
            open(holder, "w").close()
        _mount(point, holder, None, MS_BIND | MS_REC)
        kept.append((point, holder))
    upper, work = os.path.join(state, "upper"), os.path.join(state, "work")
    for d in (upper, work):
        os.makedirs(d, exist_ok=True)
    data = f"lowerdir={directory},upperdir={upper},workdir={work}"
    try:
        _mount(source, directory, "overlay", 0, data)
    except LaunchError as exc:
        cause = exc.__cause__
        if not isinstance(cause, OSError) or cause.errno not in (errno.EINVAL, errno.EOPNOTSUPP):
            raise
        # the state directory's filesystem cannot hold an upper layer (an overlay itself): a tmpfs in
        # this namespace holds it instead, for this boot only
        scratch = os.path.join(state, "tmpfs")
        os.makedirs(scratch, exist_ok=True)
        _mount(f"{source}-state", scratch, "tmpfs", 0, "mode=0755")
        upper, work = os.path.join(scratch, "upper"), os.path.join(scratch, "work")
        os.makedirs(upper)
        os.makedirs(work)
        _mount(source, directory, "overlay", 0, f"lowerdir={directory},upperdir={upper},workdir={work}")
    for point, holder in kept:
        if not os.path.exists(point):
            if os.path.isdir(holder):
                os.makedirs(point, exist_ok=True)
            else:
                open(point, "w").close()
        _mount(holder, point, None, MS_BIND | MS_REC)
        _umount(holder)
    return True


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        sys.stderr.write("usage: private_accounts.py STATE_DIR -- PROGRAM ARGS...\n")
        return 2
    state, command = os.path.abspath(argv[0]), argv[2:]
    try:
        if os.geteuid() != 0:
            raise LaunchError("needs root (overlay mounts)")
        why = refuse_reason()
        if why:
            raise LaunchError(
                f"refusing to mount: {why}; run it under unshare --mount --propagation private with "
                f"{CALLER_ENV}=<the inode of the caller's /proc/self/ns/mnt> (the local backend does)"
            )
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        for directory, name in PRIVATE_DIRS:
            overlay_private(directory, os.path.join(state, name), SOURCE_PREFIX + name)
        os.environ.pop(CALLER_ENV, None)
        os.execvp(command[0], command)
    except (LaunchError, OSError) as exc:
        sys.stderr.write(f"harness private_accounts: error: {exc}\n")
        return EXIT_LAUNCHER
    return EXIT_LAUNCHER  # not reached: execvp returns only by raising


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
