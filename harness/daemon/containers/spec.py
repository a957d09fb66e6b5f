"""From a container record to the runtime's ``ProcessSpec`` (dockerd's OCI spec, in short).

Kept as a plain dict (``ProcessSpec.to_dict`` shape) so it can be written to the shim's
``spec.json``. Defaults follow moby ``daemon/oci_linux.go`` and ``oci/defaults.go``: the
default capability set adjusted by CapAdd/CapDrop, masked and read-only paths, /dev/shm,
HOSTNAME and TERM in the environment, HostConfig resources as cgroup limits.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..errors import ApiError, invalid, system
from ..runtime import defaults as _defaults
from .security import security_options

if TYPE_CHECKING:
    from ..daemon import Daemon
    from .model import Container

__all__ = ["DEFAULT_CAPS", "cgroup_path", "exec_process_spec", "process_spec"]

DEFAULT_CAPS = list(_defaults.DEFAULT_CAPABILITIES)
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_PROPAGATIONS = ("rprivate", "private", "rshared", "shared", "rslave", "slave")


def _env(env_in: list[str], hostname: str, tty: bool) -> list[str]:
    env = list(env_in)
    keys = {e.split("=", 1)[0] for e in env}
    if "PATH" not in keys:
        env.insert(0, DEFAULT_PATH)
    if "HOSTNAME" not in keys:
        env.insert(1, f"HOSTNAME={hostname}")
    if tty and "TERM" not in keys:
        env.append("TERM=xterm")
    return env


def _tmpfs(target: str, data: str) -> dict[str, Any]:
    """moby withMounts for a tmpfs: noexec, nosuid, nodev, rprivate, then the mount's own options (a
    later ``exec`` undoes ``noexec``)."""
    return {
        "destination": target,
        "type": "tmpfs",
        "source": "tmpfs",
        "options": ["noexec", "nosuid", "nodev", "rprivate", *[o for o in data.split(",") if o]],
    }


def kernel_supports_rro(release: str | None = None) -> bool:
    """Recursively read-only mounts (mount_setattr with AT_RECURSIVE) need Linux 5.12 (moby's check)."""
    text = release if release is not None else os.uname().release
    numbers = []
    for part in text.split(".")[:2]:
        digits = "".join(ch for ch in part if ch.isdigit()) if part[:1].isdigit() else ""
        numbers.append(int(digits.split()[0]) if digits else 0)
    while len(numbers) < 2:
        numbers.append(0)
    return (numbers[0], numbers[1]) >= (5, 12)


def _bind_options(point: dict[str, Any]) -> list[str]:
    """The OCI options of a bind or volume (moby setupMounts' conflicts, withMounts' choices): ``rbind``
    unless NonRecursive, read-only recursively (``rro``) unless ReadOnlyNonRecursive or the kernel cannot,
    and the propagation when the mount point has one."""
    spec = point.get("Spec") or {}
    bind_options = (spec.get("BindOptions") or {}) if spec.get("Type") == "bind" else {}
    writable = bool(point.get("RW", True))
    non_recursive_ro = bool(bind_options.get("ReadOnlyNonRecursive"))
    force_recursive_ro = bool(bind_options.get("ReadOnlyForceRecursive"))
    if not spec.get("ReadOnly") and spec.get("Type") == "bind":
        if non_recursive_ro:
            raise ApiError(500, "mount options conflict: !ReadOnly && BindOptions.ReadOnlyNonRecursive")
        if force_recursive_ro:
            raise ApiError(500, "mount options conflict: !ReadOnly && BindOptions.ReadOnlyForceRecursive")
    if non_recursive_ro and force_recursive_ro:
        raise ApiError(
            500, "mount options conflict: ReadOnlyNonRecursive && BindOptions.ReadOnlyForceRecursive"
        )
    options = ["bind" if bind_options.get("NonRecursive") else "rbind"]
    if not writable:
        recursive = not non_recursive_ro
        if not kernel_supports_rro():
            if force_recursive_ro:
                raise ApiError(500, "recursively read-only mounts need Linux 5.12 or later")
            recursive = False
        options.append("rro" if recursive else "ro")
    else:
        options.append("rw")
    propagation = str(point.get("Propagation") or "")
    if propagation in _PROPAGATIONS:
        options.append(propagation)
    return options


def _depth(point: dict[str, Any]) -> int:
    """moby sortMounts: by the number of separators of the cleaned destination (parents first)."""
    return os.path.normpath(str(point["Destination"])).count("/")


def _mounts(c: Container, sources: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Runtime mounts: binds, volumes and image mounts from the container's mount points (at the sources
    the mount wiring resolved), then tmpfs mounts (``--tmpfs`` and ``Mounts`` of type tmpfs)."""
    from .mountparse import tmpfs_options

    hc = c.host_config
    sources = sources or {}
    tmpfs = dict(hc.get("Tmpfs") or {})
    for point in c.mounts:
        if point.get("Type") == "tmpfs":
            spec = point.get("Spec") or {}
            try:
                tmpfs[str(point["Destination"])] = tmpfs_options(
                    spec.get("TmpfsOptions"), bool(spec.get("ReadOnly"))
                )
            except ValueError as exc:
                raise invalid(str(exc)) from None
    mounts: list[dict[str, Any]] = []
    for point in sorted(c.mounts, key=_depth):
        dest = str(point["Destination"])
        if point.get("Type") == "tmpfs" or dest in tmpfs:
            continue  # tmpfs mounts take the place of anything else at their destination
        source = sources.get(dest) or str(point.get("Source") or "")
        if point.get("Type") == "bind":
            if not source.startswith("/"):
                raise invalid(f"invalid mount config for type \"bind\": invalid mount path: '{source}'")
            if not os.path.lexists(source):
                raise invalid(
                    f'invalid mount config for type "bind": bind source path does not exist: {source}'
                )
        mounts.append(
            {"destination": dest, "type": "bind", "source": source, "options": _bind_options(point)}
        )
    for target, data in tmpfs.items():
        mounts.append(_tmpfs(target, str(data or "")))
    return mounts


def capabilities(hc: dict[str, Any]) -> list[str] | None:
    """The container's capability list (moby TweakCapabilities), or None for the host's set (Privileged)."""
    if hc.get("Privileged"):
        return None
    from ..runtime import caps

    adds = [str(x) for x in (hc.get("CapAdd") or [])]
    drops = [str(x) for x in (hc.get("CapDrop") or [])]
    try:
        return caps.tweak(DEFAULT_CAPS, adds, drops)
    except ValueError as exc:
        raise invalid(str(exc)) from None


def _rlimits(daemon: Daemon, hc: dict[str, Any]) -> dict[str, list[int]]:
    limits: dict[str, list[int]] = {}
    for name, value in (daemon.config.get("default-ulimit") or {}).items():
        if isinstance(value, dict):
            limits[name] = [int(value.get("Soft", 0)), int(value.get("Hard", 0))]
        else:
            soft, _, hard = str(value).partition(":")
            limits[name] = [int(soft), int(hard or soft)]
    for item in hc.get("Ulimits") or []:
        limits[item["Name"]] = [int(item["Soft"]), int(item["Hard"])]
    return limits


def cgroup_path(daemon: Daemon, c: Container) -> str:
    """``/<cgroup-parent>/<id>`` like dockerd's cgroupfs driver."""
    parent = c.host_config.get("CgroupParent") or daemon.config.get("cgroup-parent") or "docker"
    return "/" + "/".join(p for p in (parent.strip("/"), c.id) if p)


def _gids(groups: list[Any]) -> list[int | str]:
    """``HostConfig.GroupAdd`` as the runtime takes it: names are resolved inside the container."""
    return [int(g) if str(g).isdigit() else str(g) for g in groups]


def _seccomp_filter(profile: str, hc: dict[str, Any]) -> list[list[int]]:
    """``seccomp=<profile JSON>`` compiled for the runtime (kept when privileged, as dockerd 28 does);
    none for ``unconfined`` or no profile. A profile refd cannot use fails the start (500), as dockerd's
    createSpec errors do."""
    if not profile or profile == "unconfined":
        return []
    from ..runtime.seccomp import SeccompError, compile_profile

    try:
        program = compile_profile(profile, capabilities(hc))
    except SeccompError as exc:
        raise system(str(exc)) from None
    return [list(ins) for ins in program]


def _sysctls(daemon: Daemon, c: Container) -> dict[str, str]:
    """moby's spec sysctls: the NIS domain name; in a network namespace of its own, unprivileged ping
    (unless user namespaces are remapped) and low ports for everyone; then the container's own."""
    out: dict[str, str] = {}
    mode = str(c.host_config.get("NetworkMode") or "")
    own_uts = mode != "host" and c.host_config.get("UTSMode") != "host"
    if c.config.get("Domainname") and own_uts:  # never the host's own (runc refuses it there)
        out["kernel.domainname"] = str(c.config["Domainname"])
    if mode != "host" and not mode.startswith("container:"):
        remapped = bool(daemon.config.get("userns-remap")) and c.host_config.get("UsernsMode") != "host"
        if not remapped and os.path.exists("/proc/sys/net/ipv4/ping_group_range"):
            out["net.ipv4.ping_group_range"] = "0 2147483647"
        if os.path.exists("/proc/sys/net/ipv4/ip_unprivileged_port_start"):
            out["net.ipv4.ip_unprivileged_port_start"] = "0"
    out.update({str(k): str(v) for k, v in (c.host_config.get("Sysctls") or {}).items()})
    return out


def _pid_donor(daemon: Daemon, ref: str) -> Container:
    """moby getPIDContainer, its errors as createSpec's (500s): the container runs and is not restarting."""
    from .ipc import namespace_donor

    return namespace_donor(daemon.containers.store, ref, "PID", system, system)


def _namespaces(hc: dict[str, Any], daemon: Daemon) -> dict[str, str]:
    modes = {"mnt": "new", "uts": "new", "ipc": "new", "pid": "new", "net": "new"}
    network = hc.get("NetworkMode") or "default"
    if network == "host":
        modes["net"] = "host"
        modes["uts"] = "host"
    elif network.startswith("container:"):
        other = daemon.containers.get(network.split(":", 1)[1])
        modes["net"] = f"/proc/{other.state['Pid']}/ns/net"
    pid_mode = str(hc.get("PidMode") or "")
    if pid_mode == "host":
        modes["pid"] = "host"
    elif pid_mode.startswith("container:"):
        modes["pid"] = f"/proc/{_pid_donor(daemon, pid_mode.split(':', 1)[1]).state['Pid']}/ns/pid"
    if hc.get("UTSMode") == "host":
        modes["uts"] = "host"
    return modes


def process_spec(
    daemon: Daemon, c: Container, rootfs: str, sources: dict[str, str] | None = None
) -> dict[str, Any]:
    """The container's init process for ``runtime.process.spawn`` (``sources``: where the mount wiring
    put each mount point's data)."""
    from ..runtime.cgroups import resources_from_host_config

    hc = c.host_config
    cfg = c.config
    tty = bool(cfg.get("Tty"))
    namespaces = _namespaces(hc, daemon)
    hostname = (cfg.get("Hostname") or c.short_id) if namespaces["uts"] == "new" else ""
    security = security_options(hc, bool(daemon.config.get("no-new-privileges")))
    privileged = bool(hc.get("Privileged"))
    init = hc.get("Init")
    return {
        "args": [c.path, *c.args],
        "env": _env(list(cfg.get("Env") or []), cfg.get("Hostname") or c.short_id, tty),
        "cwd": cfg.get("WorkingDir") or "/",
        "user": cfg.get("User") or "",
        "additional_gids": _gids(list(hc.get("GroupAdd") or [])),
        "tty": tty,
        "console_size": list(hc.get("ConsoleSize") or []) if tty else [],
        "no_new_privileges": security.no_new_privileges,
        "privileged": privileged,
        "writable_cgroups": privileged if security.writable_cgroups is None else security.writable_cgroups,
        "seccomp": _seccomp_filter(security.seccomp, hc),
        "capabilities": capabilities(hc),
        "rlimits": _rlimits(daemon, hc),
        "hostname": hostname,
        "rootfs": rootfs,
        "readonly_rootfs": bool(hc.get("ReadonlyRootfs")),
        "mounts": _mounts(c, sources),
        "masked_paths": [] if privileged else list(hc.get("MaskedPaths") or []),
        "readonly_paths": [] if privileged else list(hc.get("ReadonlyPaths") or []),
        "hosts_path": c.file("hosts"),
        "hostname_path": c.file("hostname"),
        "resolv_conf_path": c.file("resolv.conf"),
        "shm_size": int(hc.get("ShmSize") or 67108864),
        "sysctls": _sysctls(daemon, c),
        "namespaces": namespaces,
        "cgroup": cgroup_path(daemon, c),
        "resources": resources_from_host_config(hc).to_dict(),
        "oom_score_adj": int(hc.get("OomScoreAdj") or 0) or None,
        "init": bool(init if init is not None else daemon.config.get("init")),
    }


def exec_process_spec(daemon: Daemon, c: Container, request: dict[str, Any], tty: bool) -> dict[str, Any]:
    """An exec'd process: the container's identity and environment with the exec's overrides."""
    from .create import merge_env

    env = _env(
        merge_env(list(c.config.get("Env") or []), list(request.get("Env") or [])),
        c.config.get("Hostname") or c.short_id,
        tty,
    )
    privileged = bool(request.get("Privileged")) or bool(c.host_config.get("Privileged"))
    security = security_options(c.host_config, bool(daemon.config.get("no-new-privileges")))
    return {
        "args": list(request["Cmd"]),
        "env": env,
        "cwd": request.get("WorkingDir") or c.config.get("WorkingDir") or "/",
        "user": request.get("User") or c.config.get("User") or "",
        "tty": tty,
        "privileged": privileged,
        "capabilities": None if privileged else capabilities(c.host_config),
        "no_new_privileges": security.no_new_privileges,
        "seccomp": _seccomp_filter(security.seccomp, c.host_config),
        "additional_gids": _gids(list(c.host_config.get("GroupAdd") or [])),
    }


def check_exec_user(daemon: Daemon, c: Container, user: str) -> None:
    """dockerd's ContainerExecCreate looks ``User`` (and the container's ``--group-add``) up in the
    container's /etc/passwd and /etc/group before the exec exists: an unknown one is a 400 with
    moby/sys/user's words (``unable to find user nosuch: no matching entries in passwd file``)."""
    from ..runtime.users import UserLookupError, lookup_additional_groups, lookup_user

    service = getattr(daemon, "images", None)
    if service is None:
        return
    layers = service.layers
    rootfs = layers.mount_rootfs(c.id)
    try:
        lookup_user(rootfs, user)
        lookup_additional_groups(rootfs, _gids(list(c.host_config.get("GroupAdd") or [])))
    except UserLookupError as exc:
        raise invalid(str(exc)) from None
    finally:
        layers.unmount_rootfs(c.id)
