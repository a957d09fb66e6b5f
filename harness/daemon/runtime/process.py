"""Starting a container's process (``spawn``) and a process inside a running container (``exec_in``).

Meant for the per-container supervisor (the shim): a single-threaded Python process, so
``fork()`` is safe. The shape is runc's, in Python:

    caller ── fork ──▶ intermediate: join cgroup, oom_score_adj, setns/unshare namespaces
                            └── fork ──▶ container process (PID 1 of a new pid namespace):
                                         stdio, setsid, rootfs + pivot_root, hostname, sysctls,
                                         rlimits, capabilities, user, no_new_privs, chdir, execve

The intermediate reports the container's host pid on a pipe and exits; the caller reaps it,
and the container process is re-parented to the caller because :func:`spawn` makes the caller
a *child subreaper* (``PR_SET_CHILD_SUBREAPER``; the shim sets it too). So the returned
:class:`ContainerProcess` is the caller's own child: ``waitpid`` and pidfds work on it.

Everything that fails before ``execve`` is written to a close-on-exec pipe and raised in the
caller as :class:`~.errors.ContainerStartError` with runc's text (``exec: "nosuchcmd":
executable file not found in $PATH``); a successful ``execve`` closes the pipe, which is how
the caller knows the start succeeded. Nothing after ``pivot_root`` may import a module (the
Python standard library is not inside the container), so all imports are at the top.

``init=True`` (``docker run --init``) keeps a forked Python process as PID 1: it forwards
signals to the real process, reaps orphans and exits with the child's status (128+signal
when killed), like docker-init/tini. Its cost is a resident Python interpreter (about 10 MB
RSS) per container and a ``ps`` that shows the shim's command line for PID 1.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import resource
import select
import signal
import socket
import stat
import struct
import termios
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, NoReturn

from . import caps as capmod
from . import namespaces as ns
from . import rootfs as rfs
from . import seccomp as seccomp_filter
from . import syscalls as sc
from .cgroups import Cgroup, CgroupFS, Resources, enter_cgroups_of
from .errors import CgroupError, ContainerStartError, go_strerror
from .users import ExecUser, UserLookupError, lookup_additional_groups, lookup_user

__all__ = [
    "DEFAULT_NAMESPACES",
    "RLIMITS",
    "ContainerProcess",
    "ProcessSpec",
    "exec_in",
    "exit_code",
    "spawn",
]

#: dockerd's default namespaces (cgroup: host on v1, dockerd picks private on v2).
DEFAULT_NAMESPACES: dict[str, str] = {"mnt": "new", "uts": "new", "ipc": "new", "pid": "new", "net": "new"}

#: Docker ulimit names -> RLIMIT_* numbers.
RLIMITS: dict[str, int] = {
    "core": resource.RLIMIT_CORE,
    "cpu": resource.RLIMIT_CPU,
    "data": resource.RLIMIT_DATA,
    "fsize": resource.RLIMIT_FSIZE,
    "locks": getattr(resource, "RLIMIT_LOCKS", 10),
    "memlock": resource.RLIMIT_MEMLOCK,
    "msgqueue": resource.RLIMIT_MSGQUEUE,
    "nice": resource.RLIMIT_NICE,
    "nofile": resource.RLIMIT_NOFILE,
    "nproc": resource.RLIMIT_NPROC,
    "rss": resource.RLIMIT_RSS,
    "rtprio": resource.RLIMIT_RTPRIO,
    "rttime": resource.RLIMIT_RTTIME,
    "sigpending": resource.RLIMIT_SIGPENDING,
    "stack": resource.RLIMIT_STACK,
    "as": resource.RLIMIT_AS,
}
#: Signals an init must not forward: synchronous faults and the ones it cannot catch.
_NOT_FORWARDED = {
    signal.SIGKILL,
    signal.SIGSTOP,
    signal.SIGCHLD,
    signal.SIGFPE,
    signal.SIGILL,
    signal.SIGSEGV,
    signal.SIGBUS,
    signal.SIGABRT,
    signal.SIGTRAP,
    signal.SIGSYS,
    signal.SIGTTIN,
    signal.SIGTTOU,
}
_MAX_ERROR = 64 * 1024


@dataclass
class ProcessSpec:
    """What to run and how; JSON-friendly through :meth:`to_dict`/:meth:`from_dict` (the shim's spec file).

    ``user`` (a Docker ``User`` string), when set, is resolved inside the container and wins over
    ``uid``/``gid``; ``additional_gids`` (numbers, or group names resolved inside, as ``--group-add``) are
    added either way. ``capabilities`` ``None`` means
    dockerd's defaults (every host capability when ``privileged``). ``mounts`` are the user's
    mounts, merged over dockerd's default mounts. Namespace modes are ``new``, ``host`` or a
    path to join (see :mod:`.namespaces`). ``cgroup`` is a :class:`~.cgroups.Cgroup` path,
    created (with ``resources``) if missing. ``rootfs`` and the mount/namespace fields are
    ignored by :func:`exec_in`.
    """

    args: list[str]
    env: list[str] = field(default_factory=list)
    cwd: str = "/"
    user: str = ""
    uid: int = 0
    gid: int = 0
    additional_gids: list[int | str] = field(default_factory=list)
    umask: int | None = 0o022
    tty: bool = False
    no_new_privileges: bool = False
    privileged: bool = False
    #: the cgroup mount read-write (None: only when ``privileged``, dockerd's default)
    writable_cgroups: bool | None = None
    capabilities: list[str] | None = None
    ambient_capabilities: bool = False
    rlimits: dict[str, tuple[int, int]] = field(default_factory=dict)
    hostname: str = ""
    rootfs: str = ""
    readonly_rootfs: bool = False
    #: the OCI spec's rootfsPropagation ("": runc's default, rslave)
    rootfs_propagation: str = ""
    mounts: list[rfs.Mount] = field(default_factory=list)
    devices: list[rfs.Device] = field(default_factory=list)
    masked_paths: list[str] | None = None
    readonly_paths: list[str] | None = None
    hosts_path: str = ""
    hostname_path: str = ""
    resolv_conf_path: str = ""
    shm_size: int = rfs.DEFAULT_SHM_SIZE
    #: mount a /dev/shm tmpfs of its own (false: ``mounts`` brings one, or --ipc none has none)
    private_shm: bool = True
    sysctls: dict[str, str] = field(default_factory=dict)
    namespaces: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_NAMESPACES))
    cgroup: str = ""
    resources: Resources | None = None
    oom_score_adj: int | None = None
    init: bool = False
    #: a unix socket fd: allocate the pty inside the container's own devpts (so ``tty`` names
    #: /dev/pts/0, as under runc) and send its master back over this socket (SCM_RIGHTS)
    console_socket: int = -1
    #: the pty's first size, (rows, columns); () or zeros: the kernel's default
    console_size: tuple[int, ...] = ()
    #: a compiled seccomp filter (``seccomp.compile_profile``'s instructions), loaded before the execve
    seccomp: list[list[int]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["mounts"] = [m.to_dict() for m in self.mounts]
        out["devices"] = [d.to_dict() for d in self.devices]
        out["resources"] = None if self.resources is None else self.resources.to_dict()
        out["rlimits"] = {k: list(v) for k, v in self.rlimits.items()}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProcessSpec:
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown process settings: {sorted(unknown)}")
        values = dict(data)
        values["mounts"] = [
            m if isinstance(m, rfs.Mount) else rfs.Mount.from_dict(m) for m in values.get("mounts") or ()
        ]
        values["devices"] = [
            d if isinstance(d, rfs.Device) else rfs.Device.from_dict(d) for d in values.get("devices") or ()
        ]
        res = values.get("resources")
        values["resources"] = res if res is None or isinstance(res, Resources) else Resources.from_dict(res)
        values["rlimits"] = {k: (int(v[0]), int(v[1])) for k, v in (values.get("rlimits") or {}).items()}
        values["console_size"] = tuple(int(x) for x in values.get("console_size") or ())
        if values.get("namespaces") is None:
            values.pop("namespaces", None)
        return cls(**values)


def exit_code(status: int) -> int:
    """A wait status as Docker reports it: the exit code, or 128+signal."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


class ContainerProcess:
    """A started container (or exec) process, a child of the caller."""

    def __init__(self, pid: int, cgroup: Cgroup | None = None) -> None:
        self.pid = pid
        self.cgroup = cgroup
        self.returncode: int | None = None

    def __repr__(self) -> str:
        return f"ContainerProcess(pid={self.pid}, returncode={self.returncode})"

    def poll(self) -> int | None:
        """The exit code if the process has exited (reaping it), else None."""
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = exit_code(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the exit and return the exit code (128+signal if killed); TimeoutError on ``timeout``."""
        if self.returncode is not None:
            return self.returncode
        if timeout is not None:
            fd = os.pidfd_open(self.pid)
            try:
                ready, _, _ = select.select([fd], [], [], timeout)
            finally:
                os.close(fd)
            if not ready:
                raise TimeoutError(f"process {self.pid} still running after {timeout:g}s")
        _, status = os.waitpid(self.pid, 0)
        self.returncode = exit_code(status)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        """Signal the process unless it has already been reaped (its pid could be reused)."""
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


# -- what the children do -----------------------------------------------------------------------
@dataclass
class _Plan:
    """Everything the children need, computed in the caller (where /proc, /sys and modules are the host's)."""

    spec: ProcessSpec
    stdio: tuple[int, int, int]
    capset: capmod.CapabilitySet
    exec_into: int = 0
    cgroup: Cgroup | None = None
    modes: dict[str, str] = field(default_factory=dict)
    rootfs: rfs.RootfsConfig | None = None
    #: mount sources opened before a user namespace is joined (``/proc/self/fd`` paths in ``rootfs``)
    pinned: list[int] = field(default_factory=list)


def _report(fd: int, exc: BaseException) -> None:
    """Send a failure to the caller; never raises (the child is about to _exit)."""
    if isinstance(exc, ContainerStartError | UserLookupError):
        message, code = str(exc), getattr(exc, "errno", 0) or 0
    elif isinstance(exc, sc.SyscallError):
        what = f"{exc.call} {exc.detail}" if exc.detail else exc.call
        message, code = f"{what}: {go_strerror(exc.errno or 0)}", exc.errno or 0
    elif isinstance(exc, OSError):
        message, code = f"{exc.filename or 'error'}: {go_strerror(exc.errno or 0)}", exc.errno or 0
    else:
        message, code = f"{type(exc).__name__}: {exc}", 0
    with contextlib.suppress(BaseException):
        os.write(fd, json.dumps({"message": message, "errno": code}).encode()[:_MAX_ERROR])


def _reset_signals() -> None:
    """Default dispositions and an empty mask: Python ignores SIGPIPE, exec keeps it ignored."""
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def _setup_stdio(stdio: tuple[int, int, int], keep: int, also: int = -1, *pinned: int) -> None:
    """stdin/stdout/stderr onto 0/1/2 (-1: /dev/null); other inherited fds but ``keep``/``also`` (and the
    ``pinned`` mount sources) closed."""
    sources = []
    for fd in stdio:
        if fd < 0:
            fd = os.open("/dev/null", os.O_RDWR)
        sources.append(os.dup(fd))
    for target, fd in enumerate(sources):
        os.dup2(fd, target)
    for target in range(3):
        os.set_inheritable(target, True)
    start = 3
    for fd in sorted(x for x in (keep, also, *pinned) if x >= 3):
        os.closerange(start, fd)
        start = fd + 1
    os.closerange(start, max(start + 1, os.sysconf("SC_OPEN_MAX")))


def _console_in_container(sock_fd: int, size: Sequence[int] = ()) -> int:
    """Open a pty in the container's devpts, make it stdio and the controlling tty, send the master back.
    ``size``: its first (rows, columns), before the process runs (runc's ConsoleSize)."""
    master, slave = os.openpty()  # after pivot_root: /dev/ptmx is the container's own devpts
    if len(size) == 2 and any(size):
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
    for target in range(3):
        os.dup2(slave, target)
    os.close(slave)
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    _send_fd(sock_fd, master)
    os.close(master)
    os.close(sock_fd)
    return 0


def _controlling_tty() -> int:
    for fd in (0, 1, 2):
        if os.isatty(fd):
            return fd
    return -1


def _intermediate(plan: _Plan) -> None:
    """In the caller's namespaces: cgroup (so every descendant is accounted), OOM score, namespaces."""
    if plan.exec_into:
        enter_cgroups_of(plan.exec_into, single_threaded=True)  # this forked child has one thread
    elif plan.cgroup is not None:
        try:
            plan.cgroup.join_single_threaded()  # this forked child has one thread
        except CgroupError as exc:
            raise ContainerStartError(f"unable to join cgroup: {exc}") from None
    if plan.spec.oom_score_adj is not None:
        try:
            with open("/proc/self/oom_score_adj") as fh:
                current = int(fh.read())
            if current != plan.spec.oom_score_adj:
                with open("/proc/self/oom_score_adj", "w") as fh:
                    fh.write(str(plan.spec.oom_score_adj))
        except OSError as exc:
            raise ContainerStartError(
                f"write /proc/self/oom_score_adj: {go_strerror(exc.errno or 0)}"
            ) from None
    joins_user = plan.modes.get("user", ns.HOST) not in (ns.HOST, ns.NEW)
    if joins_user and plan.rootfs is not None and not plan.exec_into:
        plan.rootfs = _pin_bind_sources(plan.rootfs, plan.pinned)
    try:
        if plan.exec_into:
            ns.enter(plan.exec_into)
        else:
            ns.create(plan.modes)
    except OSError as exc:
        what = f"{exc.call} {exc.detail}" if isinstance(exc, sc.SyscallError) else "setns"
        raise ContainerStartError(
            f"failed to set up namespaces: {what}: {go_strerror(exc.errno or 0)}"
        ) from None


def _pin_bind_sources(cfg: rfs.RootfsConfig, pinned: list[int]) -> rfs.RootfsConfig:
    """Bind sources taken as detached mount trees while still the host's root in its mount namespace, as
    runc's mount source descriptors: the remapped root of a user namespace may not traverse to them (a bind
    from a 0700 directory, say). A source that cannot be taken is left for the mount to report."""
    trees: dict[str, int] = {}
    binds = [
        m
        for m in cfg.mounts
        if m.source and (m.type == "bind" or "bind" in m.options or "rbind" in m.options)
    ]
    binds += [
        rfs.Mount(dest, "bind", source, ("rbind", "rprivate"))
        for dest, source in (
            ("/etc/hosts", cfg.hosts_path),
            ("/etc/hostname", cfg.hostname_path),
            ("/etc/resolv.conf", cfg.resolv_conf_path),
        )
        if source
    ]
    for m in binds:
        key = rfs.tree_key(m)
        if key in trees:
            continue
        try:
            trees[key] = sc.open_tree(m.source, "rbind" in m.options)
        except OSError:
            continue
        pinned.append(trees[key])
    return replace(cfg, trees=trees)


def _send_fd(sock_fd: int, fd: int) -> None:
    """SCM_RIGHTS on a raw fd (``socket`` is imported at the top: nothing may load after pivot_root)."""
    sock = socket.socket(fileno=sock_fd)
    try:
        socket.send_fds(sock, [b"pty"], [fd])
    finally:
        sock.detach()


def _container(plan: _Plan, err_w: int) -> NoReturn:
    """The container's first process: never returns (execs, becomes init, or raises to be reported)."""
    spec = plan.spec
    _reset_signals()
    console = spec.console_socket if spec.tty else -1
    _setup_stdio(plan.stdio, err_w, console, *plan.pinned)
    os.setsid()
    tty = _controlling_tty() if spec.tty and console < 0 else -1
    if tty >= 0:
        fcntl.ioctl(tty, termios.TIOCSCTTY, 0)
    if not plan.exec_into:
        if plan.modes.get("net") == ns.NEW:
            ns.bring_up_loopback()
        if spec.hostname:
            sc.sethostname(spec.hostname)
        if plan.rootfs is None:
            raise ContainerStartError("no rootfs configuration")
        rfs.prepare(plan.rootfs)
        for key, value in spec.sysctls.items():
            try:
                with open("/proc/sys/" + key.replace(".", "/"), "w") as fh:
                    fh.write(value)
            except OSError as exc:
                raise ContainerStartError(f"write sysctl key {key}: {go_strerror(exc.errno or 0)}") from None
        rfs.finalize(plan.rootfs)
        if console >= 0:
            tty = _console_in_container(console, spec.console_size)
    elif console >= 0:  # an exec with a TTY: its pty comes from the container's devpts too (runc does)
        tty = _console_in_container(console, spec.console_size)
    if spec.init and not plan.exec_into:
        _become_init(plan, err_w)
    _exec(plan, tty)


def _become_init(plan: _Plan, err_w: int) -> NoReturn:
    """Fork the real process and stay as a reaping, signal-forwarding PID 1."""
    signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    child = os.fork()
    if child == 0:
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, [])
            _exec(plan, _controlling_tty() if plan.spec.tty else -1, own_group=True)
        except BaseException as exc:
            _report(err_w, exc)
        os._exit(127)
    os.close(err_w)

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signum)

    for sig in range(1, 32):
        if sig in (signal.SIGTTIN, signal.SIGTTOU):
            signal.signal(sig, signal.SIG_IGN)
        elif sig not in _NOT_FORWARDED:
            signal.signal(sig, forward)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            os._exit(0)
        if pid == child:
            os._exit(exit_code(status))


def _find_executable(path: str) -> tuple[str, int] | None:
    """Go's findExecutable: None if runnable, else (the reason as Go prints it, errno)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return f"stat {path}: {go_strerror(exc.errno or 0)}", exc.errno or errno.ENOENT
    if stat.S_ISDIR(st.st_mode):
        return go_strerror(errno.EISDIR), errno.EISDIR
    if st.st_mode & 0o111 and os.access(path, os.X_OK, effective_ids=True):
        return None
    return go_strerror(errno.EACCES), errno.EACCES


def _look_path(name: str, env: Sequence[str]) -> str:
    """Go's exec.LookPath with the container's PATH, as runc's init does it."""
    if "/" in name:
        problem = _find_executable(name)
        if problem is not None:
            raise ContainerStartError(f'exec: "{name}": {problem[0]}', problem[1])
        return name
    path_env = ""
    for item in env:
        if item.startswith("PATH="):
            path_env = item[5:]
    for directory in path_env.split(":"):
        candidate = os.path.join(directory or ".", name)
        if _find_executable(candidate) is None:
            return candidate
    raise ContainerStartError(f'exec: "{name}": executable file not found in $PATH', errno.ENOENT)


def _resolve_user(spec: ProcessSpec) -> ExecUser:
    if spec.user:
        who = lookup_user("/", spec.user)
    else:
        home = "/"
        with contextlib.suppress(UserLookupError, OSError):
            home = lookup_user("/", str(spec.uid)).home
        who = ExecUser(spec.uid, spec.gid, (), home)
    extra = tuple(g for g in lookup_additional_groups("/", spec.additional_gids) if g not in who.sgids)
    # dockerd's getUser: AdditionalGids = [gid] + the user's memberships + GroupAdd (``id`` lists the gid)
    return ExecUser(who.uid, who.gid, (who.gid, *who.sgids, *extra), who.home)


def _exec(plan: _Plan, tty: int, own_group: bool = False) -> NoReturn:
    """Inside the container's root: rlimits, user, capabilities, cwd, then execve."""
    spec = plan.spec
    if not spec.args:
        raise ContainerStartError("args must not be empty")
    who = _resolve_user(spec)
    env = list(spec.env)
    if not any(e.startswith("HOME=") for e in env):
        env.append(f"HOME={who.home}")
    limits = dict(spec.rlimits)
    for name, (soft, hard) in limits.items():
        number = RLIMITS.get(name)
        if number is None:
            raise ContainerStartError(f"unknown rlimit type {name!r}")
        try:
            resource.setrlimit(number, (_rlim(soft), _rlim(hard)))
        except (OSError, ValueError) as exc:
            code = getattr(exc, "errno", None) or errno.EPERM
            raise ContainerStartError(f"error setting rlimit type {number}: {go_strerror(code)}") from None
    if spec.umask is not None:
        os.umask(spec.umask)
    if own_group:
        os.setpgid(0, 0)
        if tty >= 0:
            old = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
            with contextlib.suppress(OSError):
                os.tcsetpgrp(tty, os.getpgrp())
            signal.signal(signal.SIGTTOU, old)
    if spec.seccomp and not spec.no_new_privileges:  # runc: while CAP_SYS_ADMIN still allows it
        _seccomp(spec)
    try:
        capmod.before_user_switch(plan.capset)
    except OSError as exc:
        raise ContainerStartError(f"unable to apply caps: {go_strerror(exc.errno or 0)}") from None
    chdir_done = _chdir(spec.cwd, early=True)
    try:
        os.setgroups(list(who.sgids))
        os.setresgid(who.gid, who.gid, who.gid)
        os.setresuid(who.uid, who.uid, who.uid)
    except OSError as exc:
        raise ContainerStartError(
            f"failed to set user {who.uid}:{who.gid}: {go_strerror(exc.errno or 0)}"
        ) from None
    try:
        capmod.after_user_switch(plan.capset)
    except OSError as exc:
        raise ContainerStartError(f"unable to apply caps: {go_strerror(exc.errno or 0)}") from None
    if not chdir_done:
        _chdir(spec.cwd, early=False)
    if spec.no_new_privileges:
        sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
        if spec.seccomp:  # runc: last, once no_new_privs lets an unprivileged process load it
            _seccomp(spec)
    path = _look_path(spec.args[0], env)
    try:
        os.execve(path, spec.args, _env_map(env))
    except OSError as exc:
        raise ContainerStartError(f"exec {path}: {go_strerror(exc.errno or 0)}", exc.errno or 0) from None


def _seccomp(spec: ProcessSpec) -> None:
    try:
        seccomp_filter.install(spec.seccomp)
    except OSError as exc:
        raise ContainerStartError(f"error loading seccomp filter into kernel: {exc}") from None


def _env_map(env: Sequence[str]) -> dict[str, str]:
    """``KEY=value`` strings to execve's mapping (a later duplicate wins, as in a shell)."""
    out: dict[str, str] = {}
    for item in env:
        key, _, value = item.partition("=")
        if key:
            out[key] = value
    return out


def _rlim(value: int) -> int:
    return resource.RLIM_INFINITY if value < 0 else value


def _chdir(cwd: str, early: bool) -> bool:
    """runc tries the cwd before switching user and after if the user lacked access; False: retry."""
    try:
        os.chdir(cwd or "/")
        return True
    except PermissionError:
        if early:
            return False
        exc_errno = errno.EACCES
    except OSError as exc:
        exc_errno = exc.errno or 0
    raise ContainerStartError(
        f'chdir to cwd ("{cwd}") set in config.json failed: {go_strerror(exc_errno)}', exc_errno
    )


# -- the caller's side --------------------------------------------------------------------------
def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    while True:
        try:
            data = os.read(fd, 65536)
        except InterruptedError:
            continue
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def _launch(plan: _Plan) -> int:
    """Fork the intermediate and the container process; return the latter's host pid or raise its error."""
    with contextlib.suppress(OSError):
        sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    pid_r, pid_w = os.pipe2(os.O_CLOEXEC)
    try:
        middle = os.fork()
    except OSError as exc:
        for fd in (err_r, err_w, pid_r, pid_w):
            os.close(fd)
        raise ContainerStartError(f"fork: {go_strerror(exc.errno or 0)}", exc.errno or 0) from None
    if middle == 0:  # pragma: no cover - runs in the forked child
        code = 1
        try:
            os.close(err_r)
            os.close(pid_r)
            _intermediate(plan)
            child = os.fork()
            if child == 0:
                try:
                    os.close(pid_w)
                    _container(plan, err_w)
                except BaseException as exc:
                    _report(err_w, exc)
                os._exit(127)
            os.write(pid_w, struct.pack("=i", child))
            code = 0
        except BaseException as exc:
            _report(err_w, exc)
        os._exit(code)
    os.close(err_w)
    os.close(pid_w)
    try:
        raw = _read_all(pid_r)
        os.waitpid(middle, 0)
        error = _read_all(err_r)
    finally:
        os.close(pid_r)
        os.close(err_r)
    child = struct.unpack("=i", raw)[0] if len(raw) == 4 else 0
    if error:
        if child:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(child, 0)
        try:
            info = json.loads(error)
            raise ContainerStartError(str(info["message"]), int(info.get("errno") or 0))
        except (ValueError, KeyError):
            raise ContainerStartError(error.decode(errors="replace")) from None
    if not child:
        raise ContainerStartError("container init exited before reporting its pid")
    return child


def _capabilities(spec: ProcessSpec) -> capmod.CapabilitySet:
    """The process's capabilities; raises ContainerStartError for an unknown name.

    ``None``: dockerd's defaults, or the host's bounding set when privileged. A list is taken as
    the final set (names with or without ``CAP_``); ``ALL`` in it stands for the host's bounding set.
    """
    if spec.capabilities is None:
        names = capmod.tweak(capmod.DEFAULT_CAPABILITIES, privileged=spec.privileged)
    else:
        try:
            names = capmod.normalise(spec.capabilities)
        except capmod.CapabilityError as exc:
            raise ContainerStartError(str(exc)) from None
        if capmod.ALL in names:
            names = capmod.tweak((), privileged=True)
    return capmod.CapabilitySet.docker(names, ambient=spec.ambient_capabilities)


def _default_mounts(spec: ProcessSpec) -> list[rfs.Mount]:
    mounts = rfs.default_mounts(spec.shm_size, spec.privileged)
    if not spec.private_shm:
        mounts = [m for m in mounts if m.destination != "/dev/shm"]
    if spec.writable_cgroups is not None:
        access = "rw" if spec.writable_cgroups else "ro"
        mounts = [replace(m, options=(access, *m.options[1:])) if m.type == "cgroup" else m for m in mounts]
    return mounts


def _rootfs_config(
    spec: ProcessSpec, cgroup: Cgroup | None, modes: Mapping[str, str], stdio: tuple[int, int, int]
) -> rfs.RootfsConfig:
    fs = cgroup.fs if cgroup is not None else CgroupFS.detect()
    if cgroup is not None:
        v1_dirs = cgroup.mount_sources() if fs.version == 1 else []
        v2_dir = cgroup.dirs.get("", "")
    else:
        v1_dirs = [(os.path.basename(h.mountpoint), fs.directory(h, fs.own_path(h))) for h in fs.hierarchies]
        v2_dir = fs.directory(fs.hierarchies[0], fs.own_path(fs.hierarchies[0])) if fs.version == 2 else ""
    console = ""
    if spec.tty and spec.console_socket < 0:
        for fd in stdio:
            if fd >= 0 and os.isatty(fd):
                console = os.ttyname(fd)
                break
    devices = rfs.host_devices() if spec.privileged else list(rfs.DEFAULT_DEVICES)
    known = {d.path for d in devices}
    devices += [d for d in spec.devices if d.path not in known]
    return rfs.RootfsConfig(
        rootfs=spec.rootfs,
        mounts=rfs.merge_mounts(_default_mounts(spec), spec.mounts),
        devices=devices,
        readonly=spec.readonly_rootfs,
        root_propagation=spec.rootfs_propagation,
        masked_paths=[]
        if spec.privileged
        else list(rfs.DEFAULT_MASKED_PATHS if spec.masked_paths is None else spec.masked_paths),
        readonly_paths=[]
        if spec.privileged
        else list(rfs.DEFAULT_READONLY_PATHS if spec.readonly_paths is None else spec.readonly_paths),
        console=console,
        hosts_path=spec.hosts_path,
        hostname_path=spec.hostname_path,
        resolv_conf_path=spec.resolv_conf_path,
        cgroup_version=fs.version,
        cgroup_v1_dirs=v1_dirs,
        cgroup_v2_dir=v2_dir,
        cgroupns=modes.get("cgroup") == ns.NEW,
    )


def spawn(
    spec: ProcessSpec, stdin: int = -1, stdout: int = -1, stderr: int = -1, *, cgroup: Cgroup | None = None
) -> ContainerProcess:
    """Start a container: new namespaces, the rootfs, limits, then ``spec.args``; raises ContainerStartError.

    ``stdin``/``stdout``/``stderr`` are the caller's descriptors for the container's 0/1/2 (-1:
    /dev/null; with ``spec.tty`` all three are usually the pty slave). ``cgroup`` overrides
    ``spec.cgroup`` (e.g. a v2 :class:`~.cgroups.Cgroup` on a private mount). A cgroup that did
    not exist is created with ``spec.resources`` and removed again if the start fails; deleting
    it after the container exits is the caller's job (``proc.cgroup.delete()``).
    """
    if not spec.args:
        raise ContainerStartError("args must not be empty")
    if not spec.rootfs or not os.path.isdir(spec.rootfs):
        raise ContainerStartError(f"rootfs ({spec.rootfs}) does not exist", errno.ENOENT)
    try:
        modes = ns.normalise_modes({**spec.namespaces, "mnt": ns.NEW})
    except ValueError as exc:
        raise ContainerStartError(str(exc)) from None
    if spec.hostname and modes.get("uts", ns.HOST) != ns.NEW:
        raise ContainerStartError("unable to set hostname without a private UTS namespace")
    capset = _capabilities(spec)
    if cgroup is None and spec.cgroup:
        cgroup = Cgroup(spec.cgroup)
    created = False
    if cgroup is not None:
        created = not cgroup.exists()
        try:
            cgroup.create(spec.resources)
        except CgroupError as exc:
            if created:
                with contextlib.suppress(CgroupError):
                    cgroup.delete()
            raise ContainerStartError(f"unable to apply cgroup configuration: {exc}") from None
    stdio = (stdin, stdout, stderr)
    try:
        plan = _Plan(
            spec, stdio, capset, cgroup=cgroup, modes=modes, rootfs=_rootfs_config(spec, cgroup, modes, stdio)
        )
        pid = _launch(plan)
    except BaseException:
        if created and cgroup is not None:
            with contextlib.suppress(CgroupError):
                cgroup.delete()
        raise
    return ContainerProcess(pid, cgroup)


def exec_in(
    container_pid: int, spec: ProcessSpec, stdin: int = -1, stdout: int = -1, stderr: int = -1
) -> ContainerProcess:
    """Start ``spec.args`` inside a running container (``docker exec``): its cgroups, namespaces and root.

    Namespaces and cgroups are those of ``container_pid`` (the container's PID 1 on the host);
    without ``spec.rlimits`` the process gets PID 1's limits.
    """
    if not os.path.exists(f"/proc/{container_pid}"):
        raise ContainerStartError(f"container process {container_pid} is not running", errno.ESRCH)
    if not spec.rlimits:
        limits: dict[str, tuple[int, int]] = {}
        for name, number in RLIMITS.items():
            with contextlib.suppress(OSError):
                soft, hard = resource.prlimit(container_pid, number)
                limits[name] = (
                    -1 if soft == resource.RLIM_INFINITY else soft,
                    -1 if hard == resource.RLIM_INFINITY else hard,
                )
        spec = ProcessSpec.from_dict({**spec.to_dict(), "rlimits": limits})
    plan = _Plan(spec, (stdin, stdout, stderr), _capabilities(spec), exec_into=container_pid)
    return ContainerProcess(_launch(plan))
