"""Thin ctypes wrappers for the Linux syscalls the runtime needs, and their constants.

Only libc and the kernel ABI live here: no policy, no defaults, no ordering. Every wrapper
turns ``-1``/``errno`` into :class:`SyscallError`, an ``OSError`` whose text names the call
(``mount /x on /y: no such file or directory``) so a failure deep in container set-up says
which step failed. What to call, when and with what lives in ``namespaces``, ``cgroups``,
``caps``, ``rootfs`` and ``process``.

Calls the ``os`` module already offers (``setgroups``, ``setresuid``, ``mknod``, ``chroot``)
are used from ``os`` directly and not wrapped again.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import platform
import socket
import struct

__all__ = [
    "CAP_AMBIENT_RAISE",
    "CAP_LINUX_CAPABILITY_VERSION_3",
    "CLONE_NEWCGROUP",
    "CLONE_NEWIPC",
    "CLONE_NEWNET",
    "CLONE_NEWNS",
    "CLONE_NEWPID",
    "CLONE_NEWTIME",
    "CLONE_NEWUSER",
    "CLONE_NEWUTS",
    "IFF_UP",
    "MNT_DETACH",
    "MNT_FORCE",
    "MS_BIND",
    "MS_DIRSYNC",
    "MS_MANDLOCK",
    "MS_MOVE",
    "MS_NOATIME",
    "MS_NODEV",
    "MS_NODIRATIME",
    "MS_NOEXEC",
    "MS_NOSUID",
    "MS_NOSYMFOLLOW",
    "MS_PRIVATE",
    "MS_RDONLY",
    "MS_REC",
    "MS_RELATIME",
    "MS_REMOUNT",
    "MS_SHARED",
    "MS_SILENT",
    "MS_SLAVE",
    "MS_STRICTATIME",
    "MS_SYNCHRONOUS",
    "MS_UNBINDABLE",
    "PR_CAPBSET_DROP",
    "PR_CAPBSET_READ",
    "PR_CAP_AMBIENT",
    "PR_CAP_AMBIENT_CLEAR_ALL",
    "PR_SET_CHILD_SUBREAPER",
    "PR_SET_KEEPCAPS",
    "PR_SET_NAME",
    "PR_SET_NO_NEW_PRIVS",
    "PR_SET_PDEATHSIG",
    "SyscallError",
    "capget",
    "capset",
    "get_interface_flags",
    "mount",
    "mount_setattr_recursive_readonly",
    "pivot_root",
    "prctl",
    "set_interface_flags",
    "sethostname",
    "setns",
    "umount2",
    "unshare",
]

# -- clone/unshare/setns flags (linux/sched.h) -------------------------------------------------
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# -- mount(2) flags (linux/mount.h) -------------------------------------------------------------
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24

# -- umount2(2) flags ---------------------------------------------------------------------------
MNT_FORCE = 1
MNT_DETACH = 2

# -- prctl(2) options (linux/prctl.h) -------------------------------------------------------------
PR_SET_PDEATHSIG = 1
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

# -- capget/capset (linux/capability.h) ---------------------------------------------------------
CAP_LINUX_CAPABILITY_VERSION_3 = 0x20080522

# -- network interface ioctls (linux/sockios.h) --------------------------------------------------
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1

#: pivot_root has no glibc wrapper; its number per architecture (asm/unistd.h).
_SYS_PIVOT_ROOT = {
    "x86_64": 155,
    "aarch64": 41,
    "riscv64": 41,
    "loongarch64": 41,
    "ppc64le": 203,
    "ppc64": 203,
    "s390x": 217,
    "i686": 217,
    "i386": 217,
    "armv7l": 218,
    "armv6l": 218,
}

_libc = ctypes.CDLL(None, use_errno=True)

_mount = _libc.mount
_mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_mount.restype = ctypes.c_int
_umount2 = _libc.umount2
_umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_umount2.restype = ctypes.c_int
_unshare = _libc.unshare
_unshare.argtypes = [ctypes.c_int]
_unshare.restype = ctypes.c_int
_setns = _libc.setns
_setns.argtypes = [ctypes.c_int, ctypes.c_int]
_setns.restype = ctypes.c_int
_sethostname = _libc.sethostname
_sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_sethostname.restype = ctypes.c_int
_prctl = _libc.prctl
_prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_prctl.restype = ctypes.c_int
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


_capget = _libc.capget
_capget.argtypes = [ctypes.POINTER(_CapHeader), ctypes.POINTER(_CapData)]
_capget.restype = ctypes.c_int
_capset = _libc.capset
_capset.argtypes = [ctypes.POINTER(_CapHeader), ctypes.POINTER(_CapData)]
_capset.restype = ctypes.c_int


class SyscallError(OSError):
    """A failed syscall: ``errno``/``strerror`` as OSError, plus the call's name and arguments."""

    def __init__(self, call: str, errno_: int, detail: str = "") -> None:
        super().__init__(errno_, os.strerror(errno_))
        self.call = call
        self.detail = detail

    def __str__(self) -> str:
        what = f"{self.call} {self.detail}" if self.detail else self.call
        return f"{what}: {self.strerror}"


def _check(ret: int, call: str, detail: str = "") -> int:
    if ret < 0:
        raise SyscallError(call, ctypes.get_errno(), detail)
    return ret


def _b(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def mount(
    source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None
) -> None:
    """mount(2)."""
    _check(
        _mount(_b(source), os.fsencode(target), _b(fstype), flags, _b(data)),
        "mount",
        f"{source or 'none'} on {target}",
    )


#: mount_setattr(2) (Linux 5.12): the same number on every architecture (the generic syscall table)
_SYS_MOUNT_SETATTR = 442
_AT_FDCWD = -100
_AT_RECURSIVE = 0x8000
_MOUNT_ATTR_RDONLY = 0x1


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def mount_setattr_recursive_readonly(target: str) -> None:
    """mount_setattr(AT_FDCWD, target, AT_RECURSIVE, {attr_set: MOUNT_ATTR_RDONLY}): ``target`` and every
    mount under it read-only (runc's ``rro``), retried on EINTR."""
    attr = _MountAttr(_MOUNT_ATTR_RDONLY, 0, 0, 0)
    while True:
        ret = _syscall(
            ctypes.c_long(_SYS_MOUNT_SETATTR),
            ctypes.c_int(_AT_FDCWD),
            ctypes.c_char_p(os.fsencode(target)),
            ctypes.c_uint(_AT_RECURSIVE),
            ctypes.byref(attr),
            ctypes.c_size_t(ctypes.sizeof(attr)),
        )
        if int(ret) >= 0 or ctypes.get_errno() != 4:  # EINTR
            break
    _check(int(ret), "mount_setattr", f"{target} MOUNT_ATTR_RDONLY AT_RECURSIVE")


def umount2(target: str, flags: int = 0) -> None:
    """umount2(2)."""
    _check(_umount2(os.fsencode(target), flags), "umount2", target)


def unshare(flags: int) -> None:
    """unshare(2)."""
    _check(_unshare(flags), "unshare", hex(flags))


def setns(fd: int, nstype: int = 0) -> None:
    """setns(2) on an open namespace file (``/proc/<pid>/ns/<kind>`` or a bind-mounted netns)."""
    _check(_setns(fd, nstype), "setns", hex(nstype))


def sethostname(name: str) -> None:
    """sethostname(2) in the calling process's UTS namespace."""
    raw = name.encode()
    _check(_sethostname(raw, len(raw)), "sethostname", repr(name))


#: open_tree(2) and move_mount(2) (Linux 5.2): one number on every architecture
_SYS_OPEN_TREE, _SYS_MOVE_MOUNT = 428, 429
_OPEN_TREE_CLONE, _AT_RECURSIVE, _MOVE_MOUNT_F_EMPTY_PATH, _AT_FDCWD = 1, 0x8000, 0x4, -100


def open_tree(path: str, recursive: bool) -> int:
    """A detached copy of the mount at ``path`` (``recursive``: with the mounts below it), as a close-on-exec
    descriptor that ``move_mount`` attaches elsewhere, in another mount namespace too."""
    flags = _OPEN_TREE_CLONE | os.O_CLOEXEC | (_AT_RECURSIVE if recursive else 0)
    ret = _syscall(
        ctypes.c_long(_SYS_OPEN_TREE),
        ctypes.c_int(_AT_FDCWD),
        ctypes.c_char_p(os.fsencode(path)),
        ctypes.c_uint(flags),
    )
    return _check(int(ret), "open_tree", path)


def move_mount(fd: int, dest: str) -> None:
    """Attach the detached tree ``fd`` (from ``open_tree``) at ``dest``."""
    ret = _syscall(
        ctypes.c_long(_SYS_MOVE_MOUNT),
        ctypes.c_int(fd),
        ctypes.c_char_p(b""),
        ctypes.c_int(_AT_FDCWD),
        ctypes.c_char_p(os.fsencode(dest)),
        ctypes.c_uint(_MOVE_MOUNT_F_EMPTY_PATH),
    )
    _check(int(ret), "move_mount", dest)


def pivot_root(new_root: str, put_old: str) -> None:
    """pivot_root(2), through syscall(2) since glibc has no wrapper."""
    number = _SYS_PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise SyscallError("pivot_root", 38, f"(no syscall number known for {platform.machine()})")
    ret = _syscall(
        ctypes.c_long(number), ctypes.c_char_p(os.fsencode(new_root)), ctypes.c_char_p(os.fsencode(put_old))
    )
    _check(int(ret), "pivot_root", f"{new_root} {put_old}")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """prctl(2); returns the call's non-negative result (some options, like PR_CAPBSET_READ, answer)."""
    return _check(_prctl(option, arg2, arg3, arg4, arg5), "prctl", str(option))


def capget(pid: int = 0) -> tuple[int, int, int]:
    """capget(2): the (effective, permitted, inheritable) 64-bit masks of ``pid`` (0: the caller)."""
    header = _CapHeader(CAP_LINUX_CAPABILITY_VERSION_3, pid)
    data = (_CapData * 2)()
    _check(_capget(ctypes.byref(header), data), "capget", str(pid))
    return (
        data[0].effective | data[1].effective << 32,
        data[0].permitted | data[1].permitted << 32,
        data[0].inheritable | data[1].inheritable << 32,
    )


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """capset(2) for the calling thread, from 64-bit masks."""
    header = _CapHeader(CAP_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i, shift in enumerate((0, 32)):
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_capset(ctypes.byref(header), data), "capset")


def _ifreq_flags(sock: socket.socket, name: str, request: int, flags: int = 0) -> int:
    req = struct.pack("16sH14x", name.encode(), flags)
    try:
        out = fcntl.ioctl(sock.fileno(), request, req)
    except OSError as exc:
        raise SyscallError("ioctl", exc.errno or 0, f"{name} {hex(request)}") from None
    return int(struct.unpack("16sH14x", out)[1])


def get_interface_flags(name: str) -> int:
    """SIOCGIFFLAGS: an interface's flags in the caller's network namespace."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        return _ifreq_flags(sock, name, _SIOCGIFFLAGS)


def set_interface_flags(name: str, flags: int) -> None:
    """SIOCSIFFLAGS: set an interface's flags in the caller's network namespace."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        _ifreq_flags(sock, name, _SIOCSIFFLAGS, flags)
