"""``/_ping``, ``/version`` and ``/info`` with dockerd 28's headers and JSON shapes (spec 6.2-6.4)."""

from __future__ import annotations

import os
import platform
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .. import API_VERSION, ENGINE_VERSION, MIN_API_VERSION, REFD_VERSION
from ..httpd import Request, Response
from ..server import json_response

if TYPE_CHECKING:
    from ..daemon import Daemon
    from ..server import Router

__all__ = ["info_document", "register", "version_document"]

_GOARCH = {
    "x86_64": "amd64",
    "aarch64": "arm64",
    "armv7l": "arm",
    "i686": "386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}


def go_arch() -> str:
    machine = platform.machine()
    return _GOARCH.get(machine, machine)


def ping_now(req: Request, daemon: Daemon) -> Response:
    headers = [
        ("Builder-Version", _builder_version(daemon)),
        ("Cache-Control", "no-cache, no-store, must-revalidate"),
        ("Pragma", "no-cache"),
        ("Swarm", "inactive"),
        ("Content-Type", "text/plain; charset=utf-8"),
    ]
    if req.method == "HEAD":
        return Response(200, b"", [*headers, ("Content-Length", "0")])
    return Response(200, b"OK", headers)


async def ping(req: Request, daemon: Daemon) -> Response:
    return ping_now(req, daemon)


def _builder_version(daemon: Daemon) -> str:
    features = daemon.config.get("features") or {}
    buildkit = features.get("buildkit") if isinstance(features, dict) else None
    return "1" if buildkit is False else "2"


def version_document(daemon: Daemon) -> dict[str, Any]:
    kernel = platform.release()
    details = {
        "ApiVersion": API_VERSION,
        "Arch": go_arch(),
        "BuildTime": daemon.build_time,
        "Experimental": "true" if daemon.config["experimental"] else "false",
        "GitCommit": "refd",
        "GoVersion": f"python{platform.python_version()}",
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


async def version(req: Request, daemon: Daemon) -> Response:
    return json_response(version_document(daemon))


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
    from ..distribution.errors import DistributionError
    from ..distribution.service import validate_mirror

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
    import ipaddress

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
        "IPv4Forwarding": True,
        "Debug": bool(cfg["debug"]),
        "NFd": daemon.open_fds(),
        "OomKillDisable": False,
        "NGoroutines": daemon.task_count(),
        "SystemTime": system_time(),
        "LoggingDriver": cfg["log-driver"],
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": daemon.cgroup_version,
        "NEventsListener": daemon.events.listener_count(),
        "KernelVersion": platform.release(),
        "OperatingSystem": os_name,
        "OSVersion": os_version,
        "OSType": "linux",
        "Architecture": platform.machine(),
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": _registry_config(daemon),
        "NCPU": os.cpu_count() or 1,
        "MemTotal": _mem_total(),
        "GenericResources": None,
        "DockerRootDir": cfg["data-root"],
        "HttpProxy": os.environ.get("HTTP_PROXY", os.environ.get("http_proxy", "")),
        "HttpsProxy": os.environ.get("HTTPS_PROXY", os.environ.get("https_proxy", "")),
        "NoProxy": os.environ.get("NO_PROXY", os.environ.get("no_proxy", "")),
        "Name": platform.node(),
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
        "SecurityOptions": ["name=seccomp,profile=builtin", "name=cgroupns"]
        if daemon.cgroup_version == "2"
        else ["name=seccomp,profile=builtin"],
        "CDISpecDirs": [],
        "Containerd": None,
        "FirewallBackend": {"Driver": "iptables"} if cfg["iptables"] else None,
        "DefaultAddressPools": [],
        "Warnings": daemon.info_warnings(),
    }


async def info(req: Request, daemon: Daemon) -> Response:
    return json_response(info_document(daemon))


def register(router: Router) -> None:
    router.add("GET", "/_ping", ping, ping_now)
    router.add("HEAD", "/_ping", ping, ping_now)
    router.add("GET", "/version", version)
    router.add("GET", "/info", info)
