"""Turn a ``POST /containers/create`` body into a Container, with dockerd 28's defaults and checks.

Mirrors moby ``daemon/create.go`` (merge with the image config, "no command specified"),
``daemon/container.go`` verifyContainerSettings and ``daemon/daemon_unix.go``
verifyPlatformContainerSettings: the same messages, raised as 400s.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from typing import Any

from ..errors import ApiError, invalid
from ..images.tarsafe import go_clean
from ..log import go_quote
from ..runtime import defaults as _defaults
from .health import merge_healthcheck, validate_healthcheck
from .restartpolicy import validate_restart_policy
from .signals import SIGNALS

__all__ = [
    "DEFAULT_MASKED_PATHS",
    "DEFAULT_READONLY_PATHS",
    "build_config",
    "build_host_config",
    "command_of",
    "merge_log_config",
    "migrate_mac_address",
    "validate_request",
    "verify_host_config",
]

DEFAULT_MASKED_PATHS = list(_defaults.DEFAULT_MASKED_PATHS)
DEFAULT_READONLY_PATHS = list(_defaults.DEFAULT_READONLY_PATHS)
_MIN_MEMORY = 6 * 1024 * 1024


def _env_key(entry: str) -> str:
    return entry.split("=", 1)[0]


def merge_env(image_env: list[str], request_env: list[str]) -> list[str]:
    """The request's entries first, then the image's it did not set (moby daemon/commit.go merge)."""
    if not request_env:
        return list(image_env)
    out = list(request_env)
    keys = {_env_key(e) for e in out}
    out += [e for e in image_env if _env_key(e) not in keys]
    return out


def _stop_signal_error(raw: str) -> str | None:
    """moby/sys/signal.ParseSignal: any non-zero number, else a known name with or without ``SIG``."""
    try:
        return None if int(raw) != 0 else f"invalid signal: {raw}"
    except ValueError:
        pass
    return None if raw.upper().removeprefix("SIG") in SIGNALS else f"invalid signal: {raw}"


def _go_ip(text: str) -> bool:
    """Go's net.ParseIP (after TrimSpace): IPv4 or IPv6, no zone."""
    text = text.strip()
    if "%" in text:
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def validate_request(request: dict[str, Any]) -> None:
    """The checks of moby's verifyContainerSettings that need no image or daemon state, in its order:
    validateContainerConfig (stop signal, ``Env`` entries with an empty name) and validateHostConfig
    (``ExtraHosts``, ``Isolation``, annotation keys). Each is a 400 with dockerd's text."""
    stop_signal = request.get("StopSignal")
    if stop_signal:
        error = _stop_signal_error(str(stop_signal))
        if error:
            raise invalid(error)
    for entry in request.get("Env") or []:
        if not str(entry).split("=", 1)[0]:
            raise invalid(f"invalid environment variable: {entry}")
    host_config = request.get("HostConfig") or {}
    for extra in host_config.get("ExtraHosts") or []:
        name, sep, ip = str(extra).partition(":")
        if not sep or not name:
            raise invalid(f"bad format for add-host: {go_quote(str(extra))}")
        if ip != "host-gateway" and not _go_ip(ip):
            raise invalid(f"invalid IP address in add-host: {go_quote(ip)}")
    isolation = str(host_config.get("Isolation") or "")
    if isolation.lower() not in ("", "default"):
        raise invalid(f"invalid isolation '{isolation}' on linux")
    if "" in (host_config.get("Annotations") or {}):
        raise invalid("invalid Annotations: the empty string is not permitted as an annotation key")


def _working_dir(requested: str) -> str:
    """moby translateWorkingDir: a requested working directory must be absolute and is kept cleaned."""
    if not requested:
        return ""
    if not requested.startswith("/"):
        raise invalid(f"the working directory '{requested}' is invalid, it needs to be an absolute path")
    return go_clean(requested)


def _default_hostname(request: dict[str, Any], container_id: str) -> str:
    """moby newContainer: the daemon's host name with ``--network host``, else the short ID."""
    host_config = request.get("HostConfig") or {}
    if isinstance(host_config, dict) and host_config.get("NetworkMode") == "host":
        return socket.gethostname()
    return container_id[:12]


def build_config(request: dict[str, Any], image_config: dict[str, Any], container_id: str) -> dict[str, Any]:
    """The container ``Config`` as inspect shows it: request merged over the image's config."""
    cfg: dict[str, Any] = {
        "Hostname": request.get("Hostname") or _default_hostname(request, container_id),
        "Domainname": request.get("Domainname") or "",
        "User": request.get("User") or image_config.get("User") or "",
        "AttachStdin": bool(request.get("AttachStdin")),
        "AttachStdout": bool(request.get("AttachStdout")),
        "AttachStderr": bool(request.get("AttachStderr")),
    }
    exposed = dict(image_config.get("ExposedPorts") or {})
    exposed.update(request.get("ExposedPorts") or {})
    if exposed:
        cfg["ExposedPorts"] = exposed
    cfg.update(
        Tty=bool(request.get("Tty")),
        OpenStdin=bool(request.get("OpenStdin")),
        StdinOnce=bool(request.get("StdinOnce")),
    )
    cfg["Env"] = merge_env(list(image_config.get("Env") or []), list(request.get("Env") or []))
    entrypoint = request.get("Entrypoint")
    cmd = request.get("Cmd")
    if isinstance(entrypoint, str):
        entrypoint = [entrypoint]
    if isinstance(cmd, str):
        cmd = [cmd]
    if not entrypoint and entrypoint != [] and not cmd:
        cmd = image_config.get("Cmd")
    if entrypoint is None:
        entrypoint = image_config.get("Entrypoint")
    elif entrypoint == [] or entrypoint == [""]:
        entrypoint = None
    cfg["Cmd"] = cmd or None
    healthcheck = merge_healthcheck(request, image_config)
    if healthcheck is not None:
        cfg["Healthcheck"] = healthcheck
    cfg["Image"] = request.get("Image") or ""
    volumes = dict(image_config.get("Volumes") or {})
    volumes.update(request.get("Volumes") or {})
    cfg["Volumes"] = volumes or None
    cfg["WorkingDir"] = (
        _working_dir(str(request.get("WorkingDir") or "")) or image_config.get("WorkingDir") or ""
    )
    cfg["Entrypoint"] = entrypoint or None
    cfg["OnBuild"] = request.get("OnBuild") or image_config.get("OnBuild") or None
    labels = dict(image_config.get("Labels") or {})
    labels.update(request.get("Labels") or {})
    cfg["Labels"] = labels
    stop_signal = request.get("StopSignal") or image_config.get("StopSignal")
    if stop_signal:
        cfg["StopSignal"] = stop_signal
    if request.get("StopTimeout") is not None:
        cfg["StopTimeout"] = request["StopTimeout"]
    validate_healthcheck(request.get("Healthcheck"))
    return cfg


_MAC_DEPRECATED = (
    "The container-wide MacAddress field is now deprecated. It should be specified in EndpointsConfig "
    "instead."
)


def migrate_mac_address(body: dict[str, Any], api_version: tuple[int, ...]) -> list[str]:
    """moby's handleMACAddressBC: the container-wide ``MacAddress`` moves to the endpoint of the network
    ``NetworkMode`` names (APIs before 1.44 know only that one; 1.44+ warn that it is deprecated); before 1.44
    an endpoint's own ``MacAddress`` did not exist and is dropped. Mutates ``body``; returns the warnings."""
    mac = str(body.pop("MacAddress", "") or "")
    host_config = body.get("HostConfig") or {}
    mode = str(host_config.get("NetworkMode") or "default") if isinstance(host_config, dict) else "default"
    bridge = mode in ("default", "bridge")
    user_defined = not bridge and mode not in ("host", "none") and not mode.startswith("container:")
    networking = body.get("NetworkingConfig") if isinstance(body.get("NetworkingConfig"), dict) else None
    endpoints = (networking or {}).get("EndpointsConfig") or {}
    if not isinstance(endpoints, dict):
        return []
    net_name = "bridge" if bridge else mode
    if api_version < (1, 44):
        if not mac:
            for ep in endpoints.values():
                if isinstance(ep, dict):
                    ep.pop("MacAddress", None)
            return []
        if not (bridge or user_defined):
            raise invalid("conflicting options: mac-address and the network mode")
        if not endpoints:
            endpoints[net_name] = {}
        for ep in endpoints.values():
            if isinstance(ep, dict):
                ep["MacAddress"] = mac
        body["NetworkingConfig"] = {**(networking or {}), "EndpointsConfig": endpoints}
        return []
    if not mac:
        return []
    if bridge or user_defined:
        if not endpoints:
            endpoints[net_name] = {"MacAddress": mac}
        else:
            ep = endpoints.get(net_name)
            if not isinstance(ep, dict):
                raise invalid(
                    "if a container-wide MAC address is supplied, HostConfig.NetworkMode must match the "
                    "identity of a network in NetworkSettings.Networks"
                )
            if not ep.get("MacAddress"):
                ep["MacAddress"] = mac
            elif ep["MacAddress"] != mac:
                raise invalid(
                    "the container-wide MAC address must match the endpoint-specific MAC address for the "
                    "main network, or be left empty"
                )
        body["NetworkingConfig"] = {**(networking or {}), "EndpointsConfig": endpoints}
    return [_MAC_DEPRECATED]


def command_of(config: dict[str, Any]) -> tuple[str, list[str]]:
    """(Path, Args) from Entrypoint + Cmd, or dockerd's 400 when there is nothing to run."""
    argv = [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]
    if not argv:
        raise invalid("no command specified")
    return argv[0], argv[1:]


def merge_log_config(requested: dict[str, Any] | None, daemon_values: dict[str, Any]) -> dict[str, Any]:
    """moby mergeAndVerifyLogConfig's merge: an empty ``Type`` is the daemon's driver, and a request for
    the daemon's driver gets the daemon's ``log-opt`` values for the keys it leaves out."""
    default = str(daemon_values.get("log-driver") or "json-file")
    log_config = dict(requested or {})
    log_config["Type"] = log_config.get("Type") or default
    options = dict(log_config.get("Config") or {})
    if log_config["Type"] == default:
        for key, value in (daemon_values.get("log-opt") or {}).items():
            options.setdefault(key, value)
    log_config["Config"] = options
    return log_config


def build_host_config(
    request: dict[str, Any] | None, daemon_values: dict[str, Any], cgroup_version: str
) -> dict[str, Any]:
    """HostConfig with the daemon's defaults filled in where the request left them empty."""
    hc = dict(request or {})
    hc["LogConfig"] = merge_log_config(hc.get("LogConfig"), daemon_values)
    policy = dict(hc.get("RestartPolicy") or {})
    policy.setdefault("Name", "no")
    policy["Name"] = policy["Name"] or "no"
    policy.setdefault("MaximumRetryCount", 0)
    hc["RestartPolicy"] = policy
    # dockerd 28.5 (as Debian ships it) records the default network mode as "bridge"
    if hc.get("NetworkMode") in (None, "", "default"):
        hc["NetworkMode"] = "bridge"
    defaults: dict[str, Any] = {
        "Binds": None,
        "ContainerIDFile": "",
        "PortBindings": {},
        "AutoRemove": False,
        "VolumeDriver": "",
        "VolumesFrom": None,
        "ConsoleSize": [0, 0],
        "CapAdd": None,
        "CapDrop": None,
        "CgroupnsMode": "private" if cgroup_version == "2" else "host",
        "Dns": [],
        "DnsOptions": [],
        "DnsSearch": [],
        "ExtraHosts": None,
        "GroupAdd": None,
        "IpcMode": "private",
        "Cgroup": "",
        "Links": None,
        "OomScoreAdj": 0,
        "PidMode": "",
        "Privileged": False,
        "PublishAllPorts": False,
        "ReadonlyRootfs": False,
        "SecurityOpt": None,
        "UTSMode": "",
        "UsernsMode": "",
        "ShmSize": 67108864,
        "Runtime": "runc",
        "Isolation": "",
        "CpuShares": 0,
        "Memory": 0,
        "NanoCpus": 0,
        "CgroupParent": "",
        "BlkioWeight": 0,
        "BlkioWeightDevice": [],
        "BlkioDeviceReadBps": [],
        "BlkioDeviceWriteBps": [],
        "BlkioDeviceReadIOps": [],
        "BlkioDeviceWriteIOps": [],
        "CpuPeriod": 0,
        "CpuQuota": 0,
        "CpuRealtimePeriod": 0,
        "CpuRealtimeRuntime": 0,
        "CpusetCpus": "",
        "CpusetMems": "",
        "Devices": [],
        "DeviceCgroupRules": None,
        "DeviceRequests": None,
        "MemoryReservation": 0,
        "MemorySwap": 0,
        "MemorySwappiness": None,
        "OomKillDisable": False,
        "PidsLimit": None,
        "Ulimits": [],
        "CpuCount": 0,
        "CpuPercent": 0,
        "IOMaximumIOps": 0,
        "IOMaximumBandwidth": 0,
        "Init": None,
    }
    for key, value in defaults.items():
        if hc.get(key) is None or (
            key in ("IpcMode", "CgroupnsMode", "ShmSize", "Runtime") and not hc.get(key)
        ):
            hc[key] = value if not isinstance(value, list | dict) else type(value)(value)
    if hc.get("Ulimits") is None:
        hc["Ulimits"] = []
    if not hc.get("Privileged"):  # null from a client is unset too (Go's nil slice)
        if hc.get("MaskedPaths") is None:
            hc["MaskedPaths"] = list(DEFAULT_MASKED_PATHS)
        if hc.get("ReadonlyPaths") is None:
            hc["ReadonlyPaths"] = list(DEFAULT_READONLY_PATHS)
    if hc.get("MemorySwappiness") == -1:
        hc["MemorySwappiness"] = None  # the CLI's "unset" (-1) is stored as nil, as dockerd does
    if hc.get("Memory") and not hc.get("MemorySwap"):
        hc["MemorySwap"] = hc["Memory"] * 2  # dockerd's default: swap equal to memory
    return hc


def verify_host_config(hc: dict[str, Any], ncpu: int | None = None) -> None:
    """dockerd's create-time checks, same wording."""
    policy = hc.get("RestartPolicy") or {}
    if hc.get("AutoRemove") and policy.get("Name") not in ("no", "", None):  # moby checks this one first
        raise invalid("can't create 'AutoRemove' container with restart policy")
    validate_restart_policy(policy)
    memory = int(hc.get("Memory") or 0)
    swap = int(hc.get("MemorySwap") or 0)
    if memory and memory < _MIN_MEMORY:
        raise invalid("Minimum memory limit allowed is 6MB")
    if memory and swap > 0 and swap < memory:
        raise invalid("Minimum memoryswap limit should be larger than memory limit, see usage")
    if not memory and swap > 0:
        raise invalid("You should always set the Memory limit when using Memoryswap limit, see usage")
    reservation = int(hc.get("MemoryReservation") or 0)
    if reservation and reservation < _MIN_MEMORY:
        raise invalid("Minimum memory reservation allowed is 6MB")
    if memory and reservation and memory < reservation:
        raise invalid("Minimum memory limit can not be less than memory reservation limit, see usage")
    swappiness = hc.get("MemorySwappiness")
    if swappiness is not None and swappiness != -1 and not 0 <= swappiness <= 100:
        raise invalid(f"Invalid value: {swappiness}, valid memory swappiness range is 0-100")
    nano = int(hc.get("NanoCpus") or 0)
    if nano and hc.get("CpuPeriod"):
        raise invalid("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if nano and hc.get("CpuQuota"):
        raise invalid("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    ncpu = ncpu or os.cpu_count() or 1
    if nano and not 0.01 <= nano / 1e9 <= ncpu:
        raise invalid(f"range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available")
    period = int(hc.get("CpuPeriod") or 0)
    if period and not 1000 <= period <= 1_000_000:
        raise invalid("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
    quota = int(hc.get("CpuQuota") or 0)
    if quota and quota > 0 and quota < 1000:
        raise invalid("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    if int(hc.get("CpuShares") or 0) < 0:
        raise invalid(f"invalid CPU shares ({hc['CpuShares']}): value must be a positive integer")
    cpus = hc.get("CpusetCpus") or ""
    if cpus and not _cpuset_ok(cpus, ncpu):
        raise invalid(f"Requested CPUs are not available - requested {cpus}, available: 0-{ncpu - 1}")
    if int(hc.get("ShmSize") or 0) < 0:
        raise invalid("SHM size can not be less than 0")
    oom = int(hc.get("OomScoreAdj") or 0)
    if not -1000 <= oom <= 1000:
        raise invalid(f"Invalid value {oom}, range for oom score adj is [-1000, 1000]")
    ipc = hc.get("IpcMode") or "private"
    if ipc not in ("private", "shareable", "host", "none", "") and not ipc.startswith("container:"):
        raise invalid(f"invalid IPC mode: {ipc}")
    pid_mode = hc.get("PidMode") or ""
    if pid_mode not in ("", "host") and not pid_mode.startswith("container:"):
        raise invalid(f"invalid PID mode: {pid_mode}")
    uts = hc.get("UTSMode") or ""
    if uts not in ("", "host"):
        raise invalid(f"invalid UTS mode: {uts}")
    cgns = hc.get("CgroupnsMode") or ""
    if cgns not in ("", "host", "private"):
        raise invalid(f"invalid cgroup namespace mode: {cgns}")
    for spec in hc.get("PortBindings") or {}:
        if not re.match(r"^\d+(-\d+)?(/(tcp|udp|sctp))?$", spec):
            raise invalid(f'invalid port specification: "{spec}"')


def _cpuset_ok(spec: str, ncpu: int) -> bool:
    try:
        for part in spec.split(","):
            lo, _, hi = part.partition("-")
            if int(lo) >= ncpu or (hi and (int(hi) >= ncpu or int(hi) < int(lo))):
                return False
    except ValueError:
        raise ApiError(400, f"invalid value {spec} for cpuset cpus") from None
    return True
