"""What ``/version`` and ``/info`` report about the daemon and the host (moby ``daemon/info.go``).

The system handlers answer with these documents; they live below the API layer because they read the
daemon's services and the host, not the request.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import API_VERSION, ENGINE_VERSION, MIN_API_VERSION, REFD_VERSION
from .goformat import go_arch

if TYPE_CHECKING:
    from .daemon import Daemon

__all__ = ["builder_version", "info_document", "info_for_version", "system_time", "version_document"]


def builder_version(daemon: Daemon) -> str:
    """The ``Builder-Version`` /_ping announces: 1 (classic) when ``features.buildkit`` is false, else 2."""
    features = daemon.config.get("features") or {}
    buildkit = features.get("buildkit") if isinstance(features, dict) else None
    return "1" if buildkit is False else "2"


def python_version() -> str:
    """``platform.python_version()`` without importing platform (its import compiles ~10 regexes)."""
    return sys.version.split()[0]


def version_document(daemon: Daemon) -> dict[str, Any]:
    """``GET /version``'s body, as dockerd 28 answers it (refd's own component beside the Engine)."""
    kernel = os.uname().release  # platform.release() without importing platform (boot cost)
    details = {
        "ApiVersion": API_VERSION,
        "Arch": go_arch(),
        "BuildTime": daemon.build_time,
        "Experimental": "true" if daemon.config["experimental"] else "false",
        "GitCommit": "refd",
        "GoVersion": f"python{python_version()}",
        "KernelVersion": kernel,
        "MinAPIVersion": MIN_API_VERSION,
        "Os": "linux",
    }
    return {
        "Platform": {"Name": ""},
        "Components": [
            {"Name": "Engine", "Version": ENGINE_VERSION, "Details": details},
            {"Name": "refd", "Version": REFD_VERSION, "Details": {"GitCommit": "refd"}},
        ],
        "Version": ENGINE_VERSION,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "refd",
        "GoVersion": details["GoVersion"],
        "Os": "linux",
        "Arch": go_arch(),
        "KernelVersion": kernel,
        "BuildTime": daemon.build_time,
    }


def system_time() -> str:
    """Local time in Go's RFC3339Nano (trailing zeros trimmed, ``Z`` for UTC)."""
    now = datetime.now().astimezone()
    frac = f"{now.microsecond:06d}".rstrip("0")
    offset = now.strftime("%z")
    zone = "Z" if offset in ("+0000", "") else f"{offset[:3]}:{offset[3:]}"
    return now.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + zone


def _mem_total() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _os_release() -> tuple[str, str]:
    fields: dict[str, str] = {}
    try:
        with open("/etc/os-release") as fh:
            for line in fh:
                key, _, value = line.strip().partition("=")
                fields[key] = value.strip('"')
    except OSError:
        pass
    return fields.get("PRETTY_NAME", "Linux"), fields.get("VERSION_ID", "")


def _mirrors(daemon: Daemon) -> list[str]:
    """registry-mirrors as dockerd keeps them: validated, one trailing slash, duplicates dropped."""
    from .distribution.errors import DistributionError
    from .distribution.service import validate_mirror

    out: list[str] = []
    for mirror in daemon.config["registry-mirror"]:
        try:
            value = validate_mirror(mirror)
        except DistributionError:
            value = mirror
        if value not in out:
            out.append(value)
    return out


def _registry_config(daemon: Daemon) -> dict[str, Any]:
    cidrs: list[str] = []
    index = {
        "docker.io": {
            "Name": "docker.io",
            "Mirrors": _mirrors(daemon),
            "Secure": True,
            "Official": True,
        }
    }
    import ipaddress  # not at boot: /info is rarely the first request

    # dockerd 28 appends the loopback defaults after the configured entries (registry/config.go)
    for entry in [*daemon.config["insecure-registry"], "::1/128", "127.0.0.0/8"]:
        try:
            network = ipaddress.ip_network(entry, strict=False) if "/" in entry else None
        except ValueError:
            network = None
        if network is not None:
            if str(network) not in cidrs:
                cidrs.append(str(network))
        else:
            index[entry] = {"Name": entry, "Mirrors": [], "Secure": False, "Official": False}
    return {
        "AllowNondistributableArtifactsCIDRs": None,
        "AllowNondistributableArtifactsHostnames": None,
        "InsecureRegistryCIDRs": cidrs,
        "IndexConfigs": index,
        "Mirrors": _mirrors(daemon),
    }


def info_document(daemon: Daemon) -> dict[str, Any]:
    """``GET /info``'s body (moby ``daemon/info.go``), from the daemon's services and the host."""
    cfg = daemon.config
    os_name, os_version = _os_release()
    counts = daemon.container_counts()
    return {
        "ID": daemon.engine_id,
        "Containers": counts["total"],
        "ContainersRunning": counts["running"],
        "ContainersPaused": counts["paused"],
        "ContainersStopped": counts["stopped"],
        "Images": daemon.image_count(),
        "Driver": daemon.storage_driver,
        "DriverStatus": daemon.driver_status(),
        "Plugins": {
            "Volume": ["local"],
            "Network": ["bridge", "host", "null"],
            "Authorization": None,
            "Log": ["json-file", "local", "none"],
        },
        "MemoryLimit": True,
        "SwapLimit": True,
        "CpuCfsPeriod": True,
        "CpuCfsQuota": True,
        "CPUShares": True,
        "CPUSet": True,
        "PidsLimit": True,
        "IPv4Forwarding": daemon.networks.ipv4_forwarding() if daemon.networks is not None else True,
        "Debug": bool(cfg["debug"]),
        "NFd": daemon.open_fds(),
        "OomKillDisable": False,
        "NGoroutines": daemon.task_count(),
        "SystemTime": system_time(),
        "LoggingDriver": cfg["log-driver"],
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": daemon.cgroup_version,
        "NEventsListener": daemon.events.listener_count(),
        "KernelVersion": os.uname().release,
        "OperatingSystem": os_name,
        "OSVersion": os_version,
        "OSType": "linux",
        "Architecture": os.uname().machine,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": _registry_config(daemon),
        "NCPU": os.cpu_count() or 1,
        "MemTotal": _mem_total(),
        "GenericResources": None,
        "DockerRootDir": cfg["data-root"],
        "HttpProxy": os.environ.get("HTTP_PROXY", os.environ.get("http_proxy", "")),
        "HttpsProxy": os.environ.get("HTTPS_PROXY", os.environ.get("https_proxy", "")),
        "NoProxy": os.environ.get("NO_PROXY", os.environ.get("no_proxy", "")),
        "Name": os.uname().nodename,
        "Labels": list(cfg["label"]),
        "ExperimentalBuild": bool(cfg["experimental"]),
        "ServerVersion": ENGINE_VERSION,
        "Runtimes": {"runc": {"path": "refd"}},
        "DefaultRuntime": "runc",
        "Swarm": {
            "NodeID": "",
            "NodeAddr": "",
            "LocalNodeState": "inactive",
            "ControlAvailable": False,
            "Error": "",
            "RemoteManagers": None,
        },
        "LiveRestoreEnabled": bool(cfg["live-restore"]),
        "Isolation": "",
        "InitBinary": "docker-init",
        "ContainerdCommit": {"ID": ""},
        "RuncCommit": {"ID": ""},
        "InitCommit": {"ID": ""},
        "SecurityOptions": [  # moby's order: seccomp, userns (--userns-remap), cgroupns (cgroup v2)
            "name=seccomp,profile=builtin",
            *(["name=userns"] if getattr(daemon, "idmap", None) is not None else []),
            *(["name=cgroupns"] if daemon.cgroup_version == "2" else []),
        ],
        "CDISpecDirs": [],
        "Containerd": None,
        "FirewallBackend": {"Driver": "iptables"} if cfg["iptables"] else None,
        "DefaultAddressPools": _default_address_pools(cfg.get("default-address-pool")),
        "Warnings": daemon.info_warnings(),
    }


def _sorted_keys(value: Any) -> Any:
    """A JSON value with every object's keys in Go's map order (sorted), as re-marshalling a map gives."""
    if isinstance(value, dict):
        return {key: _sorted_keys(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted_keys(item) for item in value]
    return value


def info_for_version(doc: dict[str, Any], version: tuple[int, ...]) -> dict[str, Any]:
    """moby's getInfo for older API versions: no ``FirewallBackend`` before 1.49 (and each commit's
    ``Expected``), and before 1.50 the always-false ``BridgeNfIptables``/``BridgeNfIp6tables`` merged in,
    which re-marshals the whole document as a map (its keys sorted, nested ones too)."""
    doc = dict(doc)
    if version < (1, 49):
        doc.pop("FirewallBackend", None)
        for key in ("ContainerdCommit", "RuncCommit", "InitCommit"):
            commit = dict(doc.get(key) or {})
            if commit.get("ID"):
                commit["Expected"] = commit["ID"]
            doc[key] = commit
    if version < (1, 50):
        doc.update(BridgeNfIptables=False, BridgeNfIp6tables=False)
        return dict(_sorted_keys(doc))
    return doc


def _default_address_pools(pools: list[dict[str, Any] | None] | None) -> list[dict[str, Any]]:
    """The configured pools in their order, each base masked as libnetwork left it (fillDefaultAddressPools
    reads the pools after the allocator normalised them in place)."""
    import ipaddress

    from .netip import parse_prefix

    shown = []
    for pool in pools or []:
        if pool is None or not pool["base"]:
            continue
        base = parse_prefix(pool["base"])
        network = ipaddress.ip_network((ipaddress.ip_address(base.addr.raw), base.bits), strict=False)
        shown.append({"Base": str(network), "Size": int(pool["size"])})
    return shown
