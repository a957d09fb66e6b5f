"""From a container record to the process description the runtime executes (dockerd's OCI spec, in short).

Kept as a plain dict so it can be written to the shim's ``spec.json``; the shim turns it
into ``runtime.process.ProcessSpec``. Defaults follow moby ``daemon/oci_linux.go`` and
``oci/defaults.go``: the default capability set, masked and read-only paths, /dev/shm,
HOSTNAME and TERM in the environment, resources as cgroup limits.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..errors import invalid

if TYPE_CHECKING:
    from ..daemon import Daemon
    from .model import Container

__all__ = ["DEFAULT_CAPS", "cgroup_for", "exec_process_spec", "process_spec"]

DEFAULT_CAPS = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
]
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _env(config: dict[str, Any], hostname: str, tty: bool) -> list[str]:
    env = list(config.get("Env") or [])
    keys = {e.split("=", 1)[0] for e in env}
    if "PATH" not in keys:
        env.insert(0, DEFAULT_PATH)
    if "HOSTNAME" not in keys:
        env.append(f"HOSTNAME={hostname}")
    if tty and "TERM" not in keys:
        env.append("TERM=xterm")
    return env


def _parse_bind(spec: str) -> dict[str, Any]:
    parts = spec.split(":")
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise invalid(f"invalid volume specification: '{spec}'")
    source, target = parts[0], parts[1]
    options = parts[2].split(",") if len(parts) > 2 else []
    if not target.startswith("/"):
        raise invalid(
            f"invalid volume specification: '{spec}': invalid mount config for type \"bind\": "
            "invalid mount path: '" + target + "' mount path must be absolute"
        )
    return {
        "type": "bind",
        "source": source,
        "target": target,
        "readonly": "ro" in options,
        "propagation": next(
            (o for o in options if o in ("rprivate", "private", "rshared", "shared", "rslave", "slave")),
            "rprivate",
        ),
    }


def _mounts(c: Container) -> list[dict[str, Any]]:
    hc = c.host_config
    mounts: list[dict[str, Any]] = []
    shm = int(hc.get("ShmSize") or 67108864)
    mounts.append(
        {"type": "tmpfs", "target": "/dev/shm", "options": f"nosuid,noexec,nodev,mode=1777,size={shm}"}
    )
    for name in ("resolv.conf", "hostname", "hosts"):
        mounts.append(
            {
                "type": "bind",
                "source": c.file(name),
                "target": f"/etc/{name}",
                "readonly": False,
                "propagation": "rprivate",
            }
        )
    for bind in hc.get("Binds") or []:
        mount = _parse_bind(bind)
        if not os.path.exists(mount["source"]):
            os.makedirs(mount["source"], exist_ok=True)  # dockerd creates a missing bind source directory
        mounts.append(mount)
    for mount in hc.get("Mounts") or []:
        kind = mount.get("Type", "volume")
        if kind == "bind":
            if not os.path.exists(mount.get("Source", "")):
                raise invalid(
                    f'invalid mount config for type "bind": bind source path does not exist: '
                    f"{mount.get('Source', '')}"
                )
            mounts.append(
                {
                    "type": "bind",
                    "source": mount["Source"],
                    "target": mount["Target"],
                    "readonly": bool(mount.get("ReadOnly")),
                    "propagation": (mount.get("BindOptions") or {}).get("Propagation") or "rprivate",
                }
            )
        elif kind == "tmpfs":
            opts = mount.get("TmpfsOptions") or {}
            extra = []
            if opts.get("SizeBytes"):
                extra.append(f"size={opts['SizeBytes']}")
            if opts.get("Mode"):
                extra.append(f"mode={opts['Mode']:o}")
            mounts.append(
                {
                    "type": "tmpfs",
                    "target": mount["Target"],
                    "options": ",".join(["nosuid", "nodev", "noexec", *extra]),
                }
            )
    for target, options in (hc.get("Tmpfs") or {}).items():
        mounts.append(
            {
                "type": "tmpfs",
                "target": target,
                "options": ",".join(o for o in ["nosuid", "nodev", "noexec", options] if o),
            }
        )
    return mounts


def _caps(hc: dict[str, Any]) -> list[str]:
    if hc.get("Privileged"):
        return ["ALL"]
    caps = list(DEFAULT_CAPS)
    add = [str(x).upper() for x in (hc.get("CapAdd") or [])]
    drop = [str(x).upper() for x in (hc.get("CapDrop") or [])]

    def norm(cap: str) -> str:
        return cap if cap == "ALL" or cap.startswith("CAP_") else f"CAP_{cap}"

    add, drop = [norm(x) for x in add], [norm(x) for x in drop]
    caps = [] if "ALL" in drop else [x for x in caps if x not in drop]
    if "ALL" in add:
        return ["ALL"]
    return caps + [x for x in add if x not in caps]


def _rlimits(daemon: Daemon, hc: dict[str, Any]) -> list[dict[str, Any]]:
    limits: dict[str, dict[str, Any]] = {}
    for name, value in (daemon.config.get("default-ulimit") or {}).items():
        if isinstance(value, dict):
            limits[name] = {
                "name": name,
                "soft": int(value.get("Soft", 0)),
                "hard": int(value.get("Hard", 0)),
            }
        else:
            soft, _, hard = str(value).partition(":")
            limits[name] = {"name": name, "soft": int(soft), "hard": int(hard or soft)}
    for item in hc.get("Ulimits") or []:
        limits[item["Name"]] = {"name": item["Name"], "soft": int(item["Soft"]), "hard": int(item["Hard"])}
    return list(limits.values())


def cgroup_for(daemon: Daemon, c: Container) -> dict[str, Any]:
    """Where the container's cgroup lives and the limits it carries."""
    hc = c.host_config
    nano = int(hc.get("NanoCpus") or 0)
    period, quota = int(hc.get("CpuPeriod") or 0), int(hc.get("CpuQuota") or 0)
    if nano:
        period, quota = 100000, nano * 100000 // 1_000_000_000
    return {
        "parent": hc.get("CgroupParent") or daemon.config.get("cgroup-parent") or "docker",
        "name": c.id,
        "memory": int(hc.get("Memory") or 0),
        "memory_swap": int(hc.get("MemorySwap") or 0),
        "memory_reservation": int(hc.get("MemoryReservation") or 0),
        "cpu_shares": int(hc.get("CpuShares") or 0),
        "cpu_period": period,
        "cpu_quota": quota,
        "cpuset_cpus": hc.get("CpusetCpus") or "",
        "cpuset_mems": hc.get("CpusetMems") or "",
        "pids_limit": int(hc.get("PidsLimit") or 0),
        "oom_kill_disable": bool(hc.get("OomKillDisable")),
    }


def _network(hc: dict[str, Any]) -> str:
    mode = hc.get("NetworkMode") or "default"
    if mode == "host":
        return "host"
    if mode.startswith("container:"):
        return mode
    return "new"


def process_spec(daemon: Daemon, c: Container, rootfs: str) -> dict[str, Any]:
    """The container's init process: argv, environment, identity, mounts, namespaces and limits."""
    hc = c.host_config
    cfg = c.config
    tty = bool(cfg.get("Tty"))
    hostname = cfg.get("Hostname") or c.short_id
    security = hc.get("SecurityOpt") or []
    return {
        "args": [c.path, *c.args],
        "env": _env(cfg, hostname, tty),
        "cwd": cfg.get("WorkingDir") or "/",
        "user": cfg.get("User") or "",
        "additional_groups": list(hc.get("GroupAdd") or []),
        "tty": tty,
        "hostname": hostname,
        "domainname": cfg.get("Domainname") or "",
        "rootfs": rootfs,
        "readonly_rootfs": bool(hc.get("ReadonlyRootfs")),
        "mounts": _mounts(c),
        "caps": _caps(hc),
        "privileged": bool(hc.get("Privileged")),
        "no_new_privileges": bool(daemon.config.get("no-new-privileges"))
        or "no-new-privileges" in security
        or "no-new-privileges:true" in security,
        "masked_paths": [] if hc.get("Privileged") else list(hc.get("MaskedPaths") or []),
        "readonly_paths": [] if hc.get("Privileged") else list(hc.get("ReadonlyPaths") or []),
        "rlimits": _rlimits(daemon, hc),
        "oom_score_adj": int(hc.get("OomScoreAdj") or 0),
        "network": _network(hc),
        "pid_mode": hc.get("PidMode") or "",
        "ipc_mode": hc.get("IpcMode") or "private",
        "uts_mode": hc.get("UTSMode") or "",
        "cgroup": cgroup_for(daemon, c),
        "init": bool(hc.get("Init") if hc.get("Init") is not None else daemon.config.get("init")),
        "sysctls": dict(hc.get("Sysctls") or {}),
    }


def exec_process_spec(daemon: Daemon, c: Container, request: dict[str, Any], tty: bool) -> dict[str, Any]:
    """An exec'd process: the container's identity and environment with the exec's overrides."""
    env = _env(
        {"Env": [*(c.config.get("Env") or []), *(request.get("Env") or [])]},
        c.config.get("Hostname") or c.short_id,
        tty,
    )
    privileged = bool(request.get("Privileged")) or bool(c.host_config.get("Privileged"))
    return {
        "args": list(request["Cmd"]),
        "env": env,
        "cwd": request.get("WorkingDir") or c.config.get("WorkingDir") or "/",
        "user": request.get("User") or c.config.get("User") or "",
        "tty": tty,
        "caps": ["ALL"] if privileged else _caps(c.host_config),
        "privileged": privileged,
        "no_new_privileges": bool(daemon.config.get("no-new-privileges")),
        "rlimits": _rlimits(daemon, c.host_config),
        "cgroup": cgroup_for(daemon, c),
        "additional_groups": list(c.host_config.get("GroupAdd") or []),
    }
