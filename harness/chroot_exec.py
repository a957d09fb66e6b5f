"""Exec a program with a cached rootfs as its root (pivot_root), in the local backend's own mount namespace.

    python -I -S harness/chroot_exec.py [--lock FILE] ROOTFS -- PROGRAM ARGS...

Used by the ``dockerd-20.10``/``-26``/``-28`` targets: the local backend's ``unshare --mount --net`` wrapper
runs this, which prepares the mounts and then execs PROGRAM (dockerd, or a wrapper such as setpriv that execs
dockerd) with the same pid, so the pidfile, signals and ``LISTEN_PID`` see the daemon itself.

The mounts, all private to this namespace and gone with it:

- a tmpfs on ``<cwd>/.chroot`` holding an overlay whose lower layer is ROOTFS: the cached tree is never
  written (``/etc/docker``, mount points), and the chroot's ``/`` is a mount point (dockerd's chrooted
  archive extraction remounts ``/``, which fails with ``remount /, flags: 0x84000: invalid argument``
  on a plain directory);
- ``/proc``; a fresh ``/sys`` (it shows this network namespace's devices) with the host's
  ``/sys/fs/cgroup`` bound recursively; the host's ``/dev`` bound recursively; ``/run`` a tmpfs;
- the host's ``/tmp``, the working directory (the daemon's work dir) and the directory of every absolute
  path in the arguments or in the ``--config-file`` JSON (outside ``/var``, ``/etc``, ``/usr``, ...) bound at
  the same path, so data-root, exec-root, pidfile, sockets and TLS files are the same inside and outside;
- the host's ``/lib/modules`` read-only, when present.

On a restart the local backend keeps the daemon's mount namespace on a file and names it in
``HARNESS_JOIN_MOUNT_NS``: then nothing is mounted; this process joins that namespace (setns, which puts it
at the already pivoted root) and execs PROGRAM there, so a restarted dockerd finds what the killed one
left running: containerd, the shims' sockets under ``/run/containerd/s``, the containers' overlay and
netns mounts (live-restore).

``--lock FILE`` is held shared (inherited by PROGRAM) so ``python -m harness.rootfs clean`` never removes a
rootfs a daemon runs from. Standard library only, run with ``-I -S``: it must start fast and import nothing
from the project.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import sys

__all__ = ["JOIN_ENV", "bind_candidates", "enter_root", "join_root", "main", "mount"]

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
#: top-level directories whose paths stay the rootfs's own (never bound from the host)
SYSTEM_TOP = frozenset(
    {
        "bin",
        "boot",
        "dev",
        "etc",
        "lib",
        "lib32",
        "lib64",
        "libx32",
        "proc",
        "run",
        "sbin",
        "sys",
        "usr",
        "var",
    }
)
EXIT_LAUNCHER = 125
JOIN_ENV = "HARNESS_JOIN_MOUNT_NS"
CLONE_NEWNS = 0x00020000


class LaunchError(Exception):
    pass


_libc: ctypes.CDLL | None = None


def _enc(text: str | None) -> bytes | None:
    return None if text is None else text.encode()


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.mount(_enc(source), _enc(target), _enc(fstype), ctypes.c_ulong(flags), _enc(data)) != 0:
        err = ctypes.get_errno()
        what = f"-t {fstype} " if fstype else ("--rbind " if flags & MS_REC else "--bind ")
        opts = f" -o {data}" if data else ""
        raise LaunchError(f"mount {what}{source or ''} {target}{opts}: {os.strerror(err)}")


def _path_values(value: object) -> list[str]:
    """Absolute paths in an argument or a JSON value (``--x=/p``, ``unix:///p``, lists, objects)."""
    if isinstance(value, dict):
        return [p for v in value.values() for p in _path_values(v)]
    if isinstance(value, list):
        return [p for v in value for p in _path_values(v)]
    if not isinstance(value, str):
        return []
    text = value
    if text.startswith("-") and "=" in text:
        text = text.split("=", 1)[1]
    if text.startswith("unix://"):
        text = text[len("unix://") :]
    return [os.path.normpath(text)] if text.startswith("/") else []


def bind_candidates(args: list[str], cwd: str, covered: list[str]) -> list[str]:
    """Host directories to bind at the same path for ``args`` (and the config file they name)."""
    values: list[object] = list(args)
    for i, arg in enumerate(args):
        path = ""
        if arg.startswith("--config-file="):
            path = arg.split("=", 1)[1]
        elif arg == "--config-file" and i + 1 < len(args):
            path = args[i + 1]
        if path:
            try:
                with open(os.path.join(cwd, path)) as fh:
                    values.append(json.load(fh))
            except (OSError, ValueError):
                pass  # dockerd reports an unreadable or invalid file itself
    found: list[str] = []
    for path in (p for v in values for p in _path_values(v)):
        d = path if os.path.isdir(path) else os.path.dirname(path)
        while d != "/" and not os.path.isdir(d):
            d = os.path.dirname(d)
        parts = d.strip("/").split("/")
        if d == "/" or parts[0] in SYSTEM_TOP:
            continue
        if any(d == c or d.startswith(c.rstrip("/") + "/") for c in [*covered, *found]):
            continue
        found = [f for f in found if not f.startswith(d + "/")] + [d]
    return found


def _bind(host: str, new_root: str, flags: int = 0) -> None:
    inside = os.path.join(new_root, host.lstrip("/"))
    os.makedirs(inside, exist_ok=True)
    mount(host, inside, None, MS_BIND | flags)


def _same_mount_ns_as_parent() -> bool:
    """True when this process shares its parent's mount namespace (mounts would leak to the host)."""
    try:
        return os.stat("/proc/self/ns/mnt").st_ino == os.stat(f"/proc/{os.getppid()}/ns/mnt").st_ino
    except OSError:
        return False  # the parent is gone or hidden: nothing to compare with


def prepare(rootfs: str, cwd: str, args: list[str]) -> str:
    """Mount the chroot's view under ``<cwd>/.chroot``; returns its root."""
    if os.geteuid() != 0:
        raise LaunchError("needs root (mounts and pivot_root)")
    if _same_mount_ns_as_parent():
        raise LaunchError(
            "refusing to mount in the caller's mount namespace: run under "
            "unshare --mount --propagation private (the local backend does)"
        )
    if not os.path.isfile(os.path.join(rootfs, "usr/sbin/dockerd")):
        raise LaunchError(f"{rootfs} holds no usr/sbin/dockerd: build it with python -m harness.rootfs build")
    for bad in (",", ":"):
        if bad in rootfs or bad in cwd:
            raise LaunchError(f"overlay paths must not contain {bad!r}: {rootfs}, {cwd}")
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    stage = os.path.join(cwd, ".chroot")
    os.makedirs(stage, exist_ok=True)
    mount("harness-chroot", stage, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    for d in ("upper", "work", "root"):
        os.mkdir(os.path.join(stage, d))
    new = os.path.join(stage, "root")
    mount(
        "harness-rootfs", new, "overlay", 0, f"lowerdir={rootfs},upperdir={stage}/upper,workdir={stage}/work"
    )
    mount("proc", os.path.join(new, "proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    mount("sysfs", os.path.join(new, "sys"), "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    if os.path.isdir("/sys/fs/cgroup"):
        _bind("/sys/fs/cgroup", new, MS_REC)
    _bind("/dev", new, MS_REC)
    mount("tmpfs", os.path.join(new, "run"), "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    covered = ["/tmp"] if os.path.isdir("/tmp") else []
    if covered:
        _bind("/tmp", new)
    if not any(cwd == c or cwd.startswith(c + "/") for c in covered):
        _bind(cwd, new)
        covered.append(cwd)
    for d in bind_candidates(args, cwd, covered):
        _bind(d, new)
    if os.path.isdir("/lib/modules"):
        _bind("/lib/modules", new)
        mount(None, os.path.join(new, "lib/modules"), None, MS_BIND | MS_REMOUNT | MS_RDONLY)
    return new


#: pivot_root(2) has no glibc wrapper: its syscall number per machine
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}
MNT_DETACH = 2


def enter_root(new: str) -> None:
    """Make ``new`` the root of this mount namespace (pivot_root, as runc does), not just of this process.

    A plain chroot leaves the host's ``/`` as the namespace's root mount. runc's ``exec`` joins a
    container's mount namespace with setns(2), which puts the process at that namespace's root mount:
    with a chroot that was the host's ``/``, so ``docker exec`` (and every health-check probe) ran on the
    host's files instead of the container's. After pivot_root the old root is detached and gone.
    """
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    import platform

    number = _SYS_PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise LaunchError(f"pivot_root: unknown syscall number on {platform.machine()}")
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY)
    try:
        os.chdir(new)
        if _libc.syscall(ctypes.c_long(number), b".", b".") != 0:
            raise LaunchError(f"pivot_root {new}: {os.strerror(ctypes.get_errno())}")
        os.fchdir(old_root)  # the old root now sits under the new one, at "."
    finally:
        os.close(old_root)
    mount(None, ".", None, MS_REC | MS_PRIVATE)
    if _libc.umount2(b".", MNT_DETACH) != 0:
        raise LaunchError(f"umount the old root: {os.strerror(ctypes.get_errno())}")
    os.chdir("/")


def join_root(ns_file: str) -> None:
    """Join the kept mount namespace ``ns_file`` (an earlier boot's, already pivoted into the rootfs)."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    try:
        fd = os.open(ns_file, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise LaunchError(f"open the kept mount namespace {ns_file}: {exc.strerror}") from None
    try:
        if _libc.setns(fd, CLONE_NEWNS) != 0:
            err = os.strerror(ctypes.get_errno())
            raise LaunchError(
                f"setns into the kept mount namespace {ns_file}: {err} (is it an nsfs mount? "
                f"unset {JOIN_ENV} to boot in a fresh one)"
            )
    finally:
        os.close(fd)


def main(argv: list[str]) -> int:
    lock = ""
    if argv[:1] == ["--lock"] and len(argv) >= 2:
        lock, argv = argv[1], argv[2:]
    if len(argv) < 3 or argv[1] != "--":
        sys.stderr.write("usage: chroot_exec.py [--lock FILE] ROOTFS -- PROGRAM ARGS...\n")
        return 2
    rootfs, command = os.path.abspath(argv[0]), argv[2:]
    cwd = os.getcwd()
    join = os.environ.pop(JOIN_ENV, "")
    try:
        new = "" if join else prepare(rootfs, cwd, command)
        if lock:
            fd = os.open(lock, os.O_RDONLY | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LaunchError(f"{rootfs} is being cleaned or rebuilt (lock {lock} is held)") from None
            os.set_inheritable(fd, True)
        if join:
            join_root(join)
        else:
            enter_root(new)
        os.chdir(cwd)
        os.execvp(command[0], command)
    except (LaunchError, OSError) as exc:
        sys.stderr.write(f"harness chroot_exec ({rootfs}): error: {exc}\n")
        return EXIT_LAUNCHER
    return EXIT_LAUNCHER  # not reached: execvp returns only by raising


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
