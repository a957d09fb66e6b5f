"""The container's filesystem view: mounts inside its own mount namespace, /dev, pivot_root, hardening.

Called in the container's first process, after ``unshare(CLONE_NEWNS)`` and inside the new
pid namespace (so the ``proc`` mount shows the container's processes). Two phases, because
runc writes sysctls in between:

* :func:`prepare` -- make "/" ``rslave`` (nothing propagates back to the host), bind the
  rootfs onto itself (pivot_root needs a mount point), mount each :class:`Mount` in order
  (OCI-style options: ``ro``, ``nosuid``, ``rbind``, ``rprivate``, ``size=64m``...), create the
  minimal /dev right after the /dev tmpfs, bind the console, /etc/hosts, /etc/hostname and
  /etc/resolv.conf, then ``pivot_root(".", ".")`` and detach the old root.
* :func:`finalize` -- mask paths (``/dev/null`` over files, an empty read-only tmpfs over
  directories), make paths read-only, and remount "/" read-only for ``ReadonlyRootfs``.

The defaults (:func:`default_mounts`, :data:`DEFAULT_DEVICES`, :data:`DEFAULT_MASKED_PATHS`,
:data:`DEFAULT_READONLY_PATHS`) are dockerd 28's default OCI spec; a privileged container gets
no masked/read-only paths, a read-write /sys and cgroup mount, and every host device.

``cgroup`` mounts are special: on v1 a tmpfs with a read-only bind of the container's own
directory per hierarchy (runc's layout), on v2 a ``cgroup2`` mount that shows the container's
cgroup namespace (or a bind of its directory without one). ``sysfs`` falls back to a
read-only rbind of the host's /sys where the kernel refuses a fresh one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import syscalls as sc
from .defaults import DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS
from .errors import ContainerStartError, go_strerror
from .users import secure_join

__all__ = [
    "DEFAULT_DEVICES",
    "DEFAULT_MASKED_PATHS",
    "DEFAULT_READONLY_PATHS",
    "DEFAULT_SHM_SIZE",
    "Device",
    "Mount",
    "RootfsConfig",
    "default_mounts",
    "finalize",
    "host_devices",
    "merge_mounts",
    "parse_options",
    "prepare",
    "tree_key",
]

DEFAULT_SHM_SIZE = 64 * 1024 * 1024


_FLAGS: dict[str, tuple[bool, int]] = {  # option -> (clear?, flag)
    "ro": (False, sc.MS_RDONLY),
    "rro": (False, sc.MS_RDONLY),  # and recursively (mount_setattr), see _mount_one
    "rw": (True, sc.MS_RDONLY),
    "nosuid": (False, sc.MS_NOSUID),
    "suid": (True, sc.MS_NOSUID),
    "nodev": (False, sc.MS_NODEV),
    "dev": (True, sc.MS_NODEV),
    "noexec": (False, sc.MS_NOEXEC),
    "exec": (True, sc.MS_NOEXEC),
    "sync": (False, sc.MS_SYNCHRONOUS),
    "async": (True, sc.MS_SYNCHRONOUS),
    "dirsync": (False, sc.MS_DIRSYNC),
    "remount": (False, sc.MS_REMOUNT),
    "mand": (False, sc.MS_MANDLOCK),
    "nomand": (True, sc.MS_MANDLOCK),
    "noatime": (False, sc.MS_NOATIME),
    "atime": (True, sc.MS_NOATIME),
    "nodiratime": (False, sc.MS_NODIRATIME),
    "diratime": (True, sc.MS_NODIRATIME),
    "relatime": (False, sc.MS_RELATIME),
    "norelatime": (True, sc.MS_RELATIME),
    "strictatime": (False, sc.MS_STRICTATIME),
    "nostrictatime": (True, sc.MS_STRICTATIME),
    "nosymfollow": (False, sc.MS_NOSYMFOLLOW),
    "symfollow": (True, sc.MS_NOSYMFOLLOW),
    "bind": (False, sc.MS_BIND),
    "rbind": (False, sc.MS_BIND | sc.MS_REC),
}
_PROPAGATION = {
    "private": sc.MS_PRIVATE,
    "rprivate": sc.MS_PRIVATE | sc.MS_REC,
    "shared": sc.MS_SHARED,
    "rshared": sc.MS_SHARED | sc.MS_REC,
    "slave": sc.MS_SLAVE,
    "rslave": sc.MS_SLAVE | sc.MS_REC,
    "unbindable": sc.MS_UNBINDABLE,
    "runbindable": sc.MS_UNBINDABLE | sc.MS_REC,
}
#: statvfs f_flag bits -> mount flags that a bind remount must repeat (or the kernel refuses/changes them).
_ST_TO_MS = (
    (1, sc.MS_RDONLY),
    (2, sc.MS_NOSUID),
    (4, sc.MS_NODEV),
    (8, sc.MS_NOEXEC),
    (1024, sc.MS_NOATIME),
    (2048, sc.MS_NODIRATIME),
    (4096, sc.MS_RELATIME),
)


@dataclass(frozen=True)
class Mount:
    """One mount, as in an OCI spec: ``type`` ``bind``/``tmpfs``/``proc``/... and OCI option strings."""

    destination: str
    type: str = "bind"
    source: str = ""
    options: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "destination": self.destination,
            "type": self.type,
            "source": self.source,
            "options": list(self.options),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Mount:
        return cls(
            str(data["destination"]),
            str(data.get("type") or "bind"),
            str(data.get("source") or ""),
            tuple(data.get("options") or ()),
        )


@dataclass(frozen=True)
class Device:
    """A device node to create in the container's /dev."""

    path: str
    type: str  # "c", "b" or "p"
    major: int
    minor: int
    mode: int = 0o666
    uid: int = 0
    gid: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "type": self.type,
            "major": self.major,
            "minor": self.minor,
            "mode": self.mode,
            "uid": self.uid,
            "gid": self.gid,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Device:
        return cls(
            str(data["path"]),
            str(data["type"]),
            int(data["major"]),
            int(data["minor"]),
            int(data.get("mode", 0o666)),
            int(data.get("uid", 0)),
            int(data.get("gid", 0)),
        )


#: The devices runc creates in every container (the OCI spec's default devices).
DEFAULT_DEVICES: tuple[Device, ...] = (
    Device("/dev/null", "c", 1, 3),
    Device("/dev/zero", "c", 1, 5),
    Device("/dev/full", "c", 1, 7),
    Device("/dev/random", "c", 1, 8),
    Device("/dev/urandom", "c", 1, 9),
    Device("/dev/tty", "c", 5, 0),
)


def default_mounts(shm_size: int = DEFAULT_SHM_SIZE, privileged: bool = False) -> list[Mount]:
    """dockerd 28's default mounts, in its order (/sys and the cgroup mount read-write when privileged)."""
    ro = "rw" if privileged else "ro"
    return [
        Mount("/proc", "proc", "proc", ("nosuid", "noexec", "nodev")),
        Mount("/dev", "tmpfs", "tmpfs", ("nosuid", "strictatime", "mode=755", "size=65536k")),
        Mount(
            "/dev/pts",
            "devpts",
            "devpts",
            ("nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"),
        ),
        Mount("/sys", "sysfs", "sysfs", (ro, "nosuid", "noexec", "nodev")),
        Mount("/sys/fs/cgroup", "cgroup", "cgroup", (ro, "nosuid", "noexec", "nodev")),
        Mount("/dev/mqueue", "mqueue", "mqueue", ("nosuid", "noexec", "nodev")),
        Mount("/dev/shm", "tmpfs", "shm", ("nosuid", "noexec", "nodev", "mode=1777", f"size={shm_size}")),
    ]


def merge_mounts(defaults: Iterable[Mount], user: Iterable[Mount]) -> list[Mount]:
    """Defaults not overridden by a user mount (same or a parent destination), then user mounts by depth."""
    user = list(user)
    dests = {os.path.normpath(m.destination) for m in user}

    def covered(dest: str) -> bool:
        dest = os.path.normpath(dest)
        return any(dest == d or dest.startswith(d.rstrip("/") + "/") for d in dests)

    kept = [m for m in defaults if not covered(m.destination)]
    return kept + sorted(user, key=lambda m: len([p for p in m.destination.split("/") if p]))


def host_devices(root: str = "/dev") -> list[Device]:
    """Every device node under the host's /dev (privileged containers), minus those runc makes itself."""
    out: list[Device] = []
    skip_dirs = {"pts", "shm", "mqueue", "fd"}
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath == root:
            dirnames[:] = [d for d in dirnames if d not in skip_dirs]
        for name in filenames:
            path = os.path.join(dirpath, name)
            if path in ("/dev/console", "/dev/ptmx"):
                continue
            try:
                st = os.lstat(path)
            except OSError:
                continue
            kind = "c" if stat.S_ISCHR(st.st_mode) else "b" if stat.S_ISBLK(st.st_mode) else ""
            if kind:
                out.append(
                    Device(
                        path,
                        kind,
                        os.major(st.st_rdev),
                        os.minor(st.st_rdev),
                        stat.S_IMODE(st.st_mode),
                        st.st_uid,
                        st.st_gid,
                    )
                )
    return out


@dataclass
class RootfsConfig:
    """Everything :func:`prepare` and :func:`finalize` need; host paths unless said otherwise."""

    rootfs: str
    mounts: list[Mount] = field(default_factory=default_mounts)
    devices: list[Device] = field(default_factory=lambda: list(DEFAULT_DEVICES))
    readonly: bool = False
    masked_paths: list[str] = field(default_factory=lambda: list(DEFAULT_MASKED_PATHS))
    readonly_paths: list[str] = field(default_factory=lambda: list(DEFAULT_READONLY_PATHS))
    #: the pty slave to bind onto /dev/console ("" without a tty)
    console: str = ""
    hosts_path: str = ""
    hostname_path: str = ""
    resolv_conf_path: str = ""
    #: cgroup mount: version 1 binds each (name, host dir) of ``cgroup_v1_dirs``; version 2 mounts cgroup2
    #: (with ``cgroupns``) or binds ``cgroup_v2_dir``
    cgroup_version: int = 1
    cgroup_v1_dirs: list[tuple[str, str]] = field(default_factory=list)
    cgroup_v2_dir: str = ""
    cgroupns: bool = False
    #: propagation of "/" in the container (runc's default when the spec says nothing: rslave)
    propagation: str = "rslave"
    #: the spec's rootfsPropagation ("" when it says nothing): "/" gets it before the mounts and again
    #: after pivot_root, and the rootfs's own mount is made private first (runc's prepareRoot)
    root_propagation: str = ""
    #: bind sources already opened as detached mount trees (``open_tree``), one per mount (:func:`tree_key`:
    #: a tree attached once is gone, so two binds of one source need two): a container in a user namespace
    #: attaches them, since its root may not reach the sources themselves
    trees: dict[str, int] = field(default_factory=dict)


def tree_key(m: Mount) -> str:
    """The key of ``m``'s detached source tree in :attr:`RootfsConfig.trees`."""
    return f"{m.destination}\0{m.source}"


def parse_options(options: Sequence[str]) -> tuple[int, int, str]:
    """OCI mount options -> (mount flags, propagation flags, filesystem data string)."""
    flags = propagation = 0
    data: list[str] = []
    for opt in options:
        if opt in _FLAGS:
            clear, flag = _FLAGS[opt]
            flags = flags & ~flag if clear else flags | flag
        elif opt in _PROPAGATION:
            propagation = _PROPAGATION[opt]
        elif opt in ("defaults", "tmpcopyup", "copy-up"):
            continue
        else:
            data.append(opt)
    return flags, propagation, ",".join(data)


def _fail(source: str, dest: str, exc: OSError) -> ContainerStartError:
    return ContainerStartError(
        f'error mounting "{source}" to rootfs at "{dest}": {_describe(exc)}', exc.errno or 0
    )


def _describe(exc: OSError) -> str:
    if isinstance(exc, sc.SyscallError):
        what = f"{exc.call} {exc.detail}" if exc.detail else exc.call
        return f"{what}: {go_strerror(exc.errno or 0)}"
    where = f" {exc.filename}" if exc.filename else ""
    return f"{exc.__class__.__name__.lower()}{where}: {go_strerror(exc.errno or 0)}"


def _current_flags(path: str) -> int:
    flags = 0
    with contextlib.suppress(OSError):
        st_flags = os.statvfs(path).f_flag
        for st_bit, ms_bit in _ST_TO_MS:
            if st_flags & st_bit:
                flags |= ms_bit
    return flags


def _make_target(path: str, directory: bool) -> None:
    if directory:
        os.makedirs(path, 0o755, exist_ok=True)
        return
    os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
    if not os.path.lexists(path):
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))


def _bind(source: str, dest: str, flags: int) -> None:
    sc.mount(source, dest, None, sc.MS_BIND | (flags & sc.MS_REC))
    extra = flags & ~(sc.MS_BIND | sc.MS_REC | sc.MS_REMOUNT)
    if extra:
        sc.mount(None, dest, None, sc.MS_BIND | sc.MS_REMOUNT | _current_flags(dest) | extra)


def _mount_one(root: str, m: Mount, cfg: RootfsConfig) -> None:
    dest = secure_join(root, m.destination)
    flags, propagation, data = parse_options(m.options)
    try:
        if (m.type == "bind" or flags & sc.MS_BIND) and tree_key(m) in cfg.trees:
            tree = cfg.trees[tree_key(m)]
            _make_target(dest, stat.S_ISDIR(os.fstat(tree).st_mode))
            sc.move_mount(tree, dest)
            extra = flags & ~(sc.MS_BIND | sc.MS_REC | sc.MS_REMOUNT)
            if extra:
                sc.mount(None, dest, None, sc.MS_BIND | sc.MS_REMOUNT | _current_flags(dest) | extra)
            if "rro" in m.options:
                sc.mount_setattr_recursive_readonly(dest)
        elif m.type == "bind" or flags & sc.MS_BIND:
            try:
                is_dir = stat.S_ISDIR(os.stat(m.source).st_mode)
            except OSError as exc:
                raise sc.SyscallError("stat", exc.errno or 0, m.source) from None
            _make_target(dest, is_dir)
            _bind(m.source, dest, flags | sc.MS_BIND)
            if "rro" in m.options:
                sc.mount_setattr_recursive_readonly(dest)
        elif m.type == "cgroup":
            _mount_cgroup(dest, cfg, flags)
        elif m.type == "sysfs":
            _make_target(dest, True)
            try:
                sc.mount(m.source or "sysfs", dest, "sysfs", flags, data or None)
            except sc.SyscallError as exc:
                if exc.errno != errno.EPERM:
                    raise
                _bind(
                    "/sys", dest, flags | sc.MS_BIND | sc.MS_REC
                )  # host netns: rbind the host's /sys instead
        else:
            _make_target(dest, True)
            sc.mount(m.source or m.type, dest, m.type, flags, data or None)
        if propagation:
            sc.mount(None, dest, None, propagation)
    except OSError as exc:
        raise _fail(m.source or m.type, m.destination, exc) from None
    if os.path.normpath(m.destination) == "/dev" and m.type == "tmpfs":
        _setup_dev(root, cfg)


def _mount_cgroup(dest: str, cfg: RootfsConfig, flags: int) -> None:
    _make_target(dest, True)
    if cfg.cgroup_version == 2:
        if cfg.cgroupns:
            try:
                sc.mount("cgroup2", dest, "cgroup2", flags)
                return
            except sc.SyscallError as exc:
                if exc.errno not in (errno.EPERM, errno.EBUSY) or not cfg.cgroup_v2_dir:
                    raise
        if cfg.cgroup_v2_dir:
            _bind(cfg.cgroup_v2_dir, dest, flags | sc.MS_BIND | sc.MS_REC)
        return
    sc.mount("tmpfs", dest, "tmpfs", flags & ~sc.MS_RDONLY, "mode=755")
    for name, host_dir in cfg.cgroup_v1_dirs:
        if not os.path.isdir(host_dir):
            continue
        sub = os.path.join(dest, name)
        os.makedirs(sub, 0o755, exist_ok=True)
        _bind(host_dir, sub, flags | sc.MS_BIND)
        if "," in name:  # co-mounted controllers: cpu -> cpu,cpuacct, as on the host
            for part in name.split(","):
                link = os.path.join(dest, part.removeprefix("name="))
                if not os.path.lexists(link):
                    os.symlink(name, link)
    if flags & sc.MS_RDONLY:
        sc.mount(None, dest, None, sc.MS_REMOUNT | flags)


def _setup_dev(root: str, cfg: RootfsConfig) -> None:
    """Device nodes and /dev symlinks, right after the /dev tmpfs is mounted."""
    old = os.umask(0)
    try:
        for dev in cfg.devices:
            path = secure_join(root, dev.path)
            os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
            kind = {"c": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[dev.type]
            try:
                os.mknod(path, kind | (dev.mode & 0o7777), os.makedev(dev.major, dev.minor))
                os.chown(path, dev.uid, dev.gid)
            except FileExistsError:
                continue
            except PermissionError:  # no CAP_MKNOD (user namespace): bind the host's node instead
                _make_target(path, False)
                try:
                    sc.mount(dev.path, path, None, sc.MS_BIND)
                except OSError as exc:
                    raise _fail(dev.path, dev.path, exc) from None
        links = [
            ("/proc/self/fd", "fd"),
            ("/proc/self/fd/0", "stdin"),
            ("/proc/self/fd/1", "stdout"),
            ("/proc/self/fd/2", "stderr"),
            ("pts/ptmx", "ptmx"),
        ]
        if os.path.exists("/proc/kcore"):
            links.append(("/proc/kcore", "core"))
        dev_dir = secure_join(root, "/dev")
        for target, name in links:
            path = os.path.join(dev_dir, name)
            with contextlib.suppress(FileExistsError):
                os.symlink(target, path)
    finally:
        os.umask(old)


def prepare(cfg: RootfsConfig) -> None:
    """Mount everything under the rootfs and pivot into it; the caller must be in a new mount namespace."""
    root = os.path.realpath(cfg.rootfs)
    if not os.path.isdir(root):
        raise ContainerStartError(f"rootfs ({cfg.rootfs}) does not exist", errno.ENOENT)
    propagation = cfg.root_propagation or cfg.propagation
    try:
        sc.mount(None, "/", None, _PROPAGATION.get(propagation, sc.MS_SLAVE | sc.MS_REC))
        if cfg.root_propagation:
            _make_parent_mount_private(root)
        sc.mount(root, root, None, sc.MS_BIND | sc.MS_REC)
    except OSError as exc:
        raise ContainerStartError(f"error preparing rootfs: {_describe(exc)}", exc.errno or 0) from None
    for m in cfg.mounts:
        _mount_one(root, m, cfg)
    extra = [
        ("/etc/hosts", cfg.hosts_path),
        ("/etc/hostname", cfg.hostname_path),
        ("/etc/resolv.conf", cfg.resolv_conf_path),
    ]
    for dest, source in extra:
        if source:
            _mount_one(root, Mount(dest, "bind", source, ("rbind", "rprivate")), cfg)
    if cfg.console:
        dest = secure_join(root, "/dev/console")
        try:
            _make_target(dest, False)
            sc.mount(cfg.console, dest, None, sc.MS_BIND)
        except OSError as exc:
            raise _fail(cfg.console, "/dev/console", exc) from None
    _pivot(root)
    if cfg.root_propagation:
        try:
            sc.mount(None, "/", None, _PROPAGATION[cfg.root_propagation])
        except OSError as exc:
            raise ContainerStartError(
                f"error setting rootfs propagation: {_describe(exc)}", exc.errno or 0
            ) from None


def _make_parent_mount_private(path: str) -> None:
    """runc's rootfsParentMountPrivate: the mount holding the rootfs is made private (pivot_root refuses a
    shared one), walking up from ``path`` to the first mount point."""
    while True:
        try:
            sc.mount(None, path, None, sc.MS_PRIVATE)
            return
        except sc.SyscallError as exc:
            if exc.errno != errno.EINVAL or path == "/":
                raise
            path = os.path.dirname(path)


def _pivot(root: str) -> None:
    """runc's pivot_root(".", ".") trick: no put_old directory needed, the old root is detached."""
    old = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    new = os.open(root, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fchdir(new)
        sc.pivot_root(".", ".")
        os.fchdir(old)
        sc.mount(None, ".", None, sc.MS_SLAVE | sc.MS_REC)  # never propagate the unmount to the host
        sc.umount2(".", sc.MNT_DETACH)
        os.chdir("/")
    except OSError as exc:
        raise ContainerStartError(
            f"error jailing process inside rootfs: {_describe(exc)}", exc.errno or 0
        ) from None
    finally:
        os.close(old)
        os.close(new)


def _mask(path: str) -> None:
    try:
        is_dir = stat.S_ISDIR(os.stat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return
    if is_dir:
        sc.mount("tmpfs", path, "tmpfs", sc.MS_RDONLY, "size=0,mode=755")
    else:
        sc.mount("/dev/null", path, None, sc.MS_BIND)


def _readonly(path: str) -> None:
    try:
        sc.mount(path, path, None, sc.MS_BIND | sc.MS_REC)
    except sc.SyscallError as exc:
        if exc.errno == errno.ENOENT:
            return
        raise
    sc.mount(path, path, None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | sc.MS_REC | _current_flags(path))


def finalize(cfg: RootfsConfig) -> None:
    """After pivot_root (and sysctls): read-only paths, masked paths, read-only "/"."""
    try:
        for path in cfg.readonly_paths:
            _readonly(path)
        for path in cfg.masked_paths:
            _mask(path)
        if cfg.readonly:
            sc.mount(None, "/", None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | _current_flags("/"))
    except OSError as exc:
        raise ContainerStartError(f"error finalizing rootfs: {_describe(exc)}", exc.errno or 0) from None
