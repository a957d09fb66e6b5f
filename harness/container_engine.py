"""The Docker API engine the container backend runs daemons on, and the widest privileges it can grant them.

Which engine (``HARNESS_CONTAINER_ENGINE``, else ``DOCKER_HOST``, else a private one):

- a URL (``unix://...``, ``tcp://...``): that engine, as the docker CLI would reach it (``DOCKER_TLS_VERIFY``
  and ``DOCKER_CERT_PATH`` apply when it is ``DOCKER_HOST``). It must run on this host: daemons share their
  work directory with the harness through a bind mount and are signalled by pid.
- a target name (``dockerd``, the default, or ``dockerd-28``, ``refd``, ...): a *private engine* the backend
  boots itself with the local backend (its own mount and network namespaces, ``--bridge=none``), shared by
  every container daemon of this process and torn down at exit. Its data-root is kept in the cache
  (``$HARNESS_CACHE/container-engine/<target>-slot<N>/data``, one slot per concurrent session, each held by a
  lock) so the imported images survive from one session to the next.

Privileges: ``privileged=True`` asks runc for every capability, which fails when this host's bounding set
lacks one (here ``CAP_SYS_RESOURCE``: ``unable to apply caps: operation not permitted``).
:func:`security_settings` reads the bounding set, asks for ``privileged`` only when nothing is missing, and
otherwise for the widest set that works: ``cap_add=ALL`` minus the missing capabilities, seccomp, AppArmor,
SELinux labels unconfined, every device allowed in the device cgroup (the ``/proc`` masks, which the API
cannot lift, are left behind by the container's entry script mounting a fresh ``/proc``). It proves the
choice with a throwaway container, falls back from ``privileged`` when that fails anyway, and logs what it
chose and why.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import logging
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from typing import IO, Any

from .cleanup import SESSION_ID, _start_time
from .errors import BackendStartError, HarnessError, TargetUnavailable

__all__ = [
    "CAP_NAMES",
    "ENGINE_ENV",
    "LABEL_PREFIX",
    "Engine",
    "SecuritySettings",
    "close_shared_engine",
    "engine_choice",
    "missing_capabilities",
    "owner_labels",
    "security_settings",
    "shared_engine",
]

log = logging.getLogger("harness.backends.container")

ENGINE_ENV = "HARNESS_CONTAINER_ENGINE"
LABEL_PREFIX = "org.docker-conformance-harness."
MAX_SLOTS = 8

#: capability numbers to names (linux/capability.h); the engine takes them without the ``CAP_`` prefix
CAP_NAMES = (
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
)


# -- which engine ------------------------------------------------------------------------------------------


def engine_choice() -> tuple[str, str]:
    """``("url", "unix:///...")`` or ``("private", "<target>")`` and where the choice came from."""
    value = os.environ.get(ENGINE_ENV, "").strip()
    if value:
        return ("url", value) if "://" in value else ("private", value)
    if os.environ.get("DOCKER_HOST"):
        return "url", os.environ["DOCKER_HOST"]
    return "private", "dockerd"


@dataclass
class SecuritySettings:
    """The container options that make a daemon inside work, and why they were chosen."""

    kwargs: dict[str, Any]
    note: str
    privileged: bool


@dataclass
class Engine:
    """A reachable engine; for a private one, the local daemon behind it and the cache slot it holds."""

    docker_host: str
    client: Any  # docker.DockerClient
    client_env: dict[str, str]  # for testcontainers' docker_client_kw={"environment": ...}
    description: str
    private: Any = None  # the private engine's DaemonHandle
    backend: Any = None  # the LocalBackend that booted it
    slot_fd: int | None = None
    security: SecuritySettings | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def alive(self) -> bool:
        return self.private is None or self.private.returncode is None

    def close(self) -> None:
        """Tear a private engine down (removing what it still runs); close the client; free the slot."""
        try:
            with contextlib.suppress(Exception):
                self.client.close()
            if self.private is not None:
                self.backend.teardown(self.private)
        finally:
            if self.slot_fd is not None:
                os.close(self.slot_fd)
                self.slot_fd = None


# -- the shared engine -------------------------------------------------------------------------------------

_lock = threading.Lock()
_engine: Engine | None = None
_atexit_registered = False


def shared_engine(out: IO[str] | None = None) -> Engine:
    """The engine of this process, reached or booted on first use (a dead private engine is replaced)."""
    global _engine, _atexit_registered
    with _lock:
        if _engine is not None and not _engine.alive():
            log.warning("the private engine %s exited; booting another", _engine.docker_host)
            dead, _engine = _engine, None
            dead.close()
        if _engine is None:
            kind, value = engine_choice()
            _engine = _connect(value, out) if kind == "url" else _boot_private(value, out)
            if not _atexit_registered:
                atexit.register(close_shared_engine)
                _atexit_registered = True
        return _engine


def close_shared_engine() -> None:
    """Tear the process's engine down now (a private one stops; a given one is only disconnected)."""
    global _engine
    with _lock:
        engine, _engine = _engine, None
    if engine is not None:
        engine.close()


def _client(docker_host: str, env: dict[str, str]) -> Any:
    import docker

    # negotiated after construction: a failed negotiation inside the constructor would leak its socket
    client = docker.from_env(environment=env, version=docker.constants.MINIMUM_DOCKER_API_VERSION)
    client.api.trust_env = False
    try:
        client.api._version = client.api._retrieve_server_version()
    except BaseException:
        client.close()
        raise
    return client


def _reachable(url: str) -> None:
    """Connect once with a plain socket (docker-py leaks the socket of a refused connection)."""
    import socket
    from urllib.parse import urlsplit

    if url.startswith("unix://"):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(url.removeprefix("unix://"))
    elif url.startswith(("tcp://", "http://", "https://")):
        parts = urlsplit(url)
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 2375), timeout=5):
            pass


def _connect(url: str, out: IO[str] | None) -> Engine:
    env = {"DOCKER_HOST": url}
    if url == os.environ.get("DOCKER_HOST"):
        for key in ("DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
            if os.environ.get(key):
                env[key] = os.environ[key]
    try:
        _reachable(url)
        client = _client(url, env)
    except Exception as exc:
        raise TargetUnavailable(
            "container backend",
            f"the engine {url} does not answer: {exc}",
            f"start it, or unset {ENGINE_ENV}/DOCKER_HOST to let the backend boot a private engine",
        ) from None
    engine = Engine(url, client, env, f"the engine at {url}")
    _reap_containers(engine, everything=False)
    return engine


# -- the private engine ------------------------------------------------------------------------------------


def _cache_base() -> str:
    from .rootfs import cache_root

    return os.path.join(os.path.dirname(cache_root()), "container-engine")


def _data_root_in_use(data_root: str) -> bool:
    """True when a live process was started with ``--data-root=<data_root>`` (an orphaned engine)."""
    needle = f"--data-root={data_root}".encode()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{entry}/cmdline", "rb") as fh:
                if needle in fh.read().split(b"\0"):
                    return True
    return False


def _take_slot(target_name: str) -> tuple[str, int] | None:
    """A cached data-root nobody else uses, locked for this process; None when every slot is busy."""
    base = _cache_base()
    os.makedirs(base, exist_ok=True)
    for n in range(MAX_SLOTS):
        slot = os.path.join(base, f"{target_name}-slot{n}")
        fd = os.open(slot + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        data = os.path.join(slot, "data")
        if _data_root_in_use(data):  # its session died but the ledger has not reaped it yet
            os.close(fd)
            continue
        os.makedirs(data, exist_ok=True)
        return data, fd
    return None


def _engine_args(target_name: str) -> list[str]:
    # no bridge, no iptables: every container gets network "none"; the daemons inside make their own
    return ["--bridge=none", "--iptables=false", "--log-level=warn"]


def _boot_private(target_name: str, out: IO[str] | None) -> Engine:
    from .backends.base import DaemonSpec
    from .backends.local import LocalBackend
    from .targets import resolve_target

    target = resolve_target(target_name)
    if target.kind == "external":
        raise TargetUnavailable(
            "container backend", f"{ENGINE_ENV}={target_name} names no daemon to boot", "set a URL instead"
        )
    target.check_available()
    target.prepare(out)
    slot = _take_slot(target_name)
    args = _engine_args(target_name)
    if slot is not None:
        args.insert(0, f"--data-root={slot[0]}")
    else:
        log.warning("every cached engine slot is busy: this engine starts empty (images are imported again)")
    # not under /tmp: the daemons' containers bind /tmp, which must not carry this engine's own mounts
    workdir = tempfile.mkdtemp(prefix=f"harness-engine-{target_name}-", dir="/run")
    os.chmod(workdir, 0o755)
    backend = LocalBackend()
    try:
        handle = backend.start(target, DaemonSpec(args=args, graceful_teardown=True), workdir)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        if slot is not None:
            os.close(slot[1])
        raise
    assert handle.endpoint is not None
    url = handle.endpoint.docker_host
    env = {"DOCKER_HOST": url}
    engine = Engine(
        url,
        _client(url, env),
        env,
        f"a private {target_name} engine (pid {handle.pid}, {url}"
        + (f", data-root {slot[0]})" if slot else ")"),
        private=handle,
        backend=backend,
        slot_fd=slot[1] if slot else None,
    )
    try:
        _reap_containers(engine, everything=True)
        _drop_stale_images(engine)
    except BaseException:
        engine.close()
        raise
    log.info("container backend: booted %s", engine.description)
    return engine


# -- ownership and leftovers -------------------------------------------------------------------------------


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def owner_labels(workdir: str, target: str) -> dict[str, str]:
    """Labels naming the session and process that own a container (a later session reaps it by them)."""
    return {
        LABEL_PREFIX + "session": SESSION_ID,
        LABEL_PREFIX + "owner": f"{os.getpid()}:{_start_time(os.getpid())}",
        LABEL_PREFIX + "boot": _boot_id(),
        LABEL_PREFIX + "workdir": workdir,
        LABEL_PREFIX + "target": target,
    }


def _owner_gone(labels: dict[str, str]) -> bool:
    if labels.get(LABEL_PREFIX + "boot") != _boot_id():
        return False  # another machine's (or an earlier boot's) container: not ours to judge
    pid, _, start = labels.get(LABEL_PREFIX + "owner", "").partition(":")
    return not (pid.isdigit() and start and _start_time(int(pid)) == start)


def _reap_containers(engine: Engine, everything: bool) -> list[str]:
    """Remove harness containers left by dead sessions (every one of them on a private engine)."""
    removed = []
    containers = engine.client.containers.list(all=True, filters={"label": LABEL_PREFIX + "session"})
    for container in containers:
        if everything or _owner_gone(container.labels):
            with contextlib.suppress(Exception):
                container.remove(force=True, v=True)
                removed.append(container.name)
                workdir = container.labels.get(LABEL_PREFIX + "workdir", "")
                if os.path.basename(workdir).startswith("harness-"):
                    shutil.rmtree(workdir, ignore_errors=True)
    if removed:
        log.warning("container backend: removed containers left by dead sessions: %s", ", ".join(removed))
    return removed


def _drop_stale_images(engine: Engine) -> None:
    """On a private engine, remove images of rootfs entries that are no longer in the cache."""
    from .container_images import LABEL_ROOTFS
    from .rootfs import cache_root

    for image in engine.client.images.list(filters={"label": LABEL_ROOTFS}):
        entry = image.labels.get(LABEL_ROOTFS, "")
        if entry and not os.path.isdir(os.path.join(cache_root(), entry)):
            with contextlib.suppress(Exception):
                engine.client.images.remove(image.id, force=True)


# -- privileges --------------------------------------------------------------------------------------------


def _bounding_set() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("CapBnd:"):
                return int(line.split()[1], 16)
    return (1 << len(CAP_NAMES)) - 1


def _last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as fh:
            return int(fh.read())
    except (OSError, ValueError):
        return len(CAP_NAMES) - 1


def missing_capabilities(bounding: int | None = None, last_cap: int | None = None) -> list[str]:
    """Capabilities the kernel has but this host's bounding set lacks (runc cannot grant them)."""
    bounding = _bounding_set() if bounding is None else bounding
    last_cap = _last_cap() if last_cap is None else last_cap
    missing = []
    for n in range(last_cap + 1):
        if not bounding & (1 << n):
            missing.append(CAP_NAMES[n] if n < len(CAP_NAMES) else f"CAP_{n}")
    return missing


def _near_privileged(drop: list[str]) -> dict[str, Any]:
    return {
        "cap_add": ["ALL"],
        "cap_drop": list(drop),
        "security_opt": [
            "seccomp=unconfined",
            "apparmor=unconfined",
            "label=disable",
        ],
        "device_cgroup_rules": ["a *:* rwm"],
    }


#: an engine that does not know a capability (older than it), or (dockerd 26) will not drop one its own
#: bounding set lacks: "capability not supported by your kernel or not available in the current environment"
_UNKNOWN_CAP = re.compile(
    r"(?:unknown capability|not available in the current environment):? \"?(?:CAP_)?([A-Z_]+)", re.I
)


def security_settings(engine: Engine, image: str, probe_kwargs: dict[str, Any]) -> SecuritySettings:
    """The widest privileges ``engine`` grants here, proven with a throwaway container of ``image``."""
    with engine.lock:
        if engine.security is None:
            engine.security = _probe(engine, image, probe_kwargs)
            (log.info if engine.security.privileged else log.warning)(
                "container backend: %s", engine.security.note
            )
        return engine.security


def _probe(engine: Engine, image: str, probe_kwargs: dict[str, Any]) -> SecuritySettings:
    missing = missing_capabilities()
    tried: list[str] = []
    if not missing:
        error = _try(engine, image, {"privileged": True}, probe_kwargs)
        if error is None:
            return SecuritySettings({"privileged": True}, "daemons run in privileged containers", True)
        tried.append(f"privileged: {error}")
        why = f"privileged containers fail on {engine.description} ({error})"
    else:
        names = ", ".join(f"CAP_{m}" for m in missing)
        why = (
            f"privileged containers cannot start here: this host's capability bounding set lacks {names}, "
            "which runc would have to grant"
        )
    drop = [m for m in missing if not m.startswith("CAP_")]  # numbers only this kernel knows: no name
    for _ in range(len(CAP_NAMES)):
        kwargs = _near_privileged(drop)
        error = _try(engine, image, kwargs, probe_kwargs)
        if error is None:
            dropped = f" minus {', '.join('CAP_' + d for d in drop)}" if drop else ""
            note = (
                f"{why}; using the widest set that works: cap_add=ALL{dropped}, seccomp, AppArmor and "
                "SELinux labels unconfined, every device allowed, a fresh /proc (no masks, /proc/sys "
                "writable), /sys remounted read-write and the host's /sys/fs/cgroup bound read-write"
            )
            return SecuritySettings(kwargs, note, False)
        tried.append(f"cap_add=ALL cap_drop={drop}: {error}")
        unknown = _UNKNOWN_CAP.search(error)
        if unknown and unknown.group(1).upper() in drop:
            drop.remove(unknown.group(1).upper())  # an engine older than the capability: ALL lacks it anyway
            continue
        break
    raise BackendStartError(
        "container backend",
        ["docker", "run", image, "true"],
        None,
        f"no privilege set lets a container start on {engine.description}:\n" + "\n".join(tried),
    )


def _try(engine: Engine, image: str, kwargs: dict[str, Any], probe_kwargs: dict[str, Any]) -> str | None:
    """None when a container with ``kwargs`` starts and exits 0 (``true``), else the engine's complaint."""
    import docker.errors

    container = None
    try:
        container = engine.client.containers.create(
            image,
            ["true"],
            labels={LABEL_PREFIX + "probe": SESSION_ID},
            **{**probe_kwargs, **kwargs},
        )
        container.start()
        status = container.wait(timeout=30)
        if status.get("StatusCode") != 0:
            return f"exit {status.get('StatusCode')}: {container.logs().decode(errors='replace').strip()}"
        return None
    except docker.errors.APIError as exc:
        return str(exc.explanation or exc)
    except Exception as exc:
        raise HarnessError(f"probing privileges on {engine.description} failed: {exc}") from exc
    finally:
        if container is not None:
            with contextlib.suppress(Exception):
                container.remove(force=True)
