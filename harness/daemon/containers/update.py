"""``docker update`` / ``POST /containers/{id}/update``: change resources and the restart policy.

Follows moby 28.5: the router's ``postContainerUpdate`` (PidsLimit dropped below API 1.40, <= 0
meaning unlimited; KernelMemory ignored from 1.42), ``verifyContainerSettings(update=true)`` (the
restart policy, then ``verifyPlatformContainerResources``: 400s with dockerd's messages, and its
warnings when the kernel lacks a controller, the setting then discarded), ``Container.UpdateContainer``
(only non-zero fields change; NanoCpus against CpuPeriod/CpuQuota and memory against the current
swap limit are 409 ``Cannot update container <id>: ...``), then for a running or paused container
the new limits are written to its cgroup, as ``runc update`` writes them. A write the kernel refuses
is a 500 with runc's text and the old HostConfig comes back. Success emits an ``update`` event and
answers ``{"Warnings": [...]}`` (``null`` when there are none).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ..errors import ApiError, conflict, invalid, system
from .restartpolicy import validate_restart_policy

if TYPE_CHECKING:
    from .lifecycle import ContainerManager
    from .model import Container

__all__ = ["SysInfo", "parse_update", "sysinfo", "update_container", "verify_update"]

_MIN_MEMORY = 6 * 1024 * 1024
_INT64 = (
    "Memory",
    "MemorySwap",
    "MemoryReservation",
    "KernelMemory",
    "KernelMemoryTCP",
    "NanoCpus",
    "CpuShares",
    "CpuPeriod",
    "CpuQuota",
    "CpuRealtimePeriod",
    "CpuRealtimeRuntime",
    "CpuCount",
    "CpuPercent",
    "PidsLimit",
    "MemorySwappiness",
)
_UINT = {
    "BlkioWeight": ("uint16", 0xFFFF),
    "IOMaximumIOps": ("uint64", 2**64 - 1),
    "IOMaximumBandwidth": ("uint64", 2**64 - 1),
}
_STRINGS = ("CpusetCpus", "CpusetMems", "CgroupParent")
_JSON_TYPES = {str: "string", bool: "bool", list: "array", dict: "object", int: "number", float: "number"}


@dataclass(frozen=True)
class SysInfo:
    """What the kernel's cgroups support (moby pkg/sysinfo), read once per daemon."""

    memory_limit: bool = True
    swap_limit: bool = True
    memory_reservation: bool = True
    oom_kill_disable: bool = True
    memory_swappiness: bool = True
    kernel_memory: bool = False
    cpu_shares: bool = True
    cpu_cfs: bool = True
    cpuset: bool = True
    cpus: str = ""
    mems: str = ""
    blkio_weight: bool = True
    pids_limit: bool = True


@lru_cache(maxsize=1)
def sysinfo() -> SysInfo:
    """Detect as dockerd does: v1 by the files at each hierarchy's mount point, v2 by the controllers."""
    from ..runtime.cgroups import CgroupFS

    try:
        fs = CgroupFS.detect()
    except Exception:
        return SysInfo(False, False, False, False, False, False, False, False, False, "", "", False, False)

    def read(path: str) -> str:
        try:
            with open(path) as fh:
                return fh.read().strip()
        except OSError:
            return ""

    if fs.version == 2:
        h = fs.hierarchies[0]
        own = fs.directory(h, fs.own_path(h))
        controllers = set(read(os.path.join(own, "cgroup.controllers")).split())
        return SysInfo(
            memory_limit="memory" in controllers,
            swap_limit=os.path.exists(os.path.join(own, "memory.swap.max")),
            memory_reservation="memory" in controllers,
            oom_kill_disable=False,
            memory_swappiness=False,
            kernel_memory=False,
            cpu_shares="cpu" in controllers,
            cpu_cfs="cpu" in controllers,
            cpuset="cpuset" in controllers,
            cpus=read(os.path.join(own, "cpuset.cpus.effective")),
            mems=read(os.path.join(own, "cpuset.mems.effective")),
            blkio_weight="io" in controllers,
            pids_limit="pids" in controllers,
        )

    def has(controller: str, name: str) -> bool:
        h = fs.hierarchy(controller)
        return h is not None and os.path.exists(os.path.join(h.mountpoint, name))

    cpuset = fs.hierarchy("cpuset")
    return SysInfo(
        memory_limit=fs.hierarchy("memory") is not None,
        swap_limit=has("memory", "memory.memsw.limit_in_bytes"),
        memory_reservation=has("memory", "memory.soft_limit_in_bytes"),
        oom_kill_disable=has("memory", "memory.oom_control"),
        memory_swappiness=has("memory", "memory.swappiness"),
        kernel_memory=has("memory", "memory.kmem.limit_in_bytes"),
        cpu_shares=has("cpu", "cpu.shares"),
        cpu_cfs=has("cpu", "cpu.cfs_quota_us"),
        cpuset=cpuset is not None,
        cpus=read(os.path.join(cpuset.mountpoint, "cpuset.cpus")) if cpuset else "",
        mems=read(os.path.join(cpuset.mountpoint, "cpuset.mems")) if cpuset else "",
        blkio_weight=has("blkio", "blkio.weight"),
        pids_limit=fs.hierarchy("pids") is not None,
    )


# -- the request -----------------------------------------------------------------------------------
def _type_error(field: str, value: Any, go_type: str) -> ApiError:
    kind = _JSON_TYPES.get(type(value), "value")
    if kind == "number":
        kind = f"number {value}"
    where = f"Go struct field UpdateConfig.{field}"
    return invalid(f"invalid JSON: json: cannot unmarshal {kind} into {where} of type {go_type}")


def parse_update(body: Any, api_version: tuple[int, int]) -> dict[str, Any]:
    """The router's decoding: Go's type errors, then the per-version adjustments."""
    if body is None:
        return {}
    if not isinstance(body, dict):
        kind = _JSON_TYPES.get(type(body), "value")
        raise invalid(
            f"invalid JSON: json: cannot unmarshal {kind} into Go value of type container.UpdateConfig"
        )
    update = {k: v for k, v in body.items() if v is not None}
    for field in _INT64:
        value = update.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise _type_error(field, value, "int64")
    for field, (go_type, top) in _UINT.items():
        value = update.get(field)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top
        ):
            raise _type_error(field, value, go_type)
    for field in _STRINGS:
        if field in update and not isinstance(update[field], str):
            raise _type_error(field, update[field], "string")
    if "OomKillDisable" in update and not isinstance(update["OomKillDisable"], bool):
        raise _type_error("OomKillDisable", update["OomKillDisable"], "bool")
    policy = update.get("RestartPolicy")
    if policy is not None:
        if not isinstance(policy, dict):
            raise _type_error("RestartPolicy", policy, "container.RestartPolicy")
        name, count = policy.get("Name", ""), policy.get("MaximumRetryCount", 0)
        if not isinstance(name, str):
            raise _type_error("RestartPolicy.Name", name, "container.RestartPolicyMode")
        if isinstance(count, bool) or not isinstance(count, int):
            raise _type_error("RestartPolicy.MaximumRetryCount", count, "int")
        update["RestartPolicy"] = {"Name": name, "MaximumRetryCount": count}
    if api_version < (1, 40):
        update.pop("PidsLimit", None)
    if api_version >= (1, 42):
        update.pop("KernelMemory", None)  # removed in API 1.42: ignored
    if update.get("PidsLimit") is not None and update["PidsLimit"] <= 0:
        update["PidsLimit"] = 0  # 0 and -1 (any negative) both mean unlimited
    return update


def _uint_list(spec: str) -> set[int] | None:
    """parsers.ParseUintList; None when malformed."""
    out: set[int] = set()
    for part in spec.split(","):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if m is None:
            return None
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            return None
        out.update(range(lo, hi + 1))
    return out


#: the warnings for a setting the kernel cannot apply (it is then discarded), by what is missing
_UNSUPPORTED = {
    "memory": "Your kernel does not support memory limit capabilities or the cgroup is not mounted. "
    "Limitation discarded.",
    "swap": "Your kernel does not support swap limit capabilities or the cgroup is not mounted. "
    "Memory limited without swap.",
    "swappiness": "Your kernel does not support memory swappiness capabilities or the cgroup is not mounted. "
    "Memory swappiness discarded.",
    "reservation": "Your kernel does not support memory soft limit capabilities or the cgroup is not "
    "mounted. Limitation discarded.",
    "kernel": "Your kernel does not support kernel memory limit capabilities or the cgroup is not mounted. "
    "Limitation discarded.",
    "oom": "Your kernel does not support OomKillDisable. OomKillDisable discarded.",
    "pids": "Your kernel does not support PIDs limit capabilities or the cgroup is not mounted. "
    "PIDs limit discarded.",
    "shares": "Your kernel does not support CPU shares or the cgroup is not mounted. Shares discarded.",
    "cfs": "Your kernel does not support CPU CFS scheduler. CPU period/quota discarded.",
    "percent": "linux does not support CPU percent. Percent discarded.",
    "cpuset": "Your kernel does not support cpuset or the cgroup is not mounted. Cpuset discarded.",
    "blkio": "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.",
}


def _int(update: dict[str, Any], key: str) -> int:
    return int(update.get(key) or 0)


# Each check below is one step of verifyPlatformContainerResources, in dockerd's order: a later step
# sees what an earlier one discarded. ``warn`` records a warning; the checks raise dockerd's 400s.
Check = Callable[[dict[str, Any], SysInfo, int, Callable[[str], None]], None]


def _memory(update: dict[str, Any], info: SysInfo, ncpu: int, warn: Callable[[str], None]) -> None:
    memory = _int(update, "Memory")
    if memory and memory < _MIN_MEMORY:
        raise invalid("Minimum memory limit allowed is 6MB")
    if memory > 0 and not info.memory_limit:
        warn(_UNSUPPORTED["memory"])
        update["Memory"], update["MemorySwap"] = 0, -1


def _swap(update: dict[str, Any], info: SysInfo, ncpu: int, warn: Callable[[str], None]) -> None:
    memory, swap = _int(update, "Memory"), _int(update, "MemorySwap")
    if memory > 0 and swap != -1 and not info.swap_limit:
        warn(_UNSUPPORTED["swap"])
        update["MemorySwap"] = swap = -1
    if memory > 0 and swap > 0 and swap < memory:
        raise invalid("Minimum memoryswap limit should be larger than memory limit, see usage")


def _swappiness(update: dict[str, Any], info: SysInfo, ncpu: int, warn: Callable[[str], None]) -> None:
    if update.get("MemorySwappiness") == -1:  # -1: leave it as it is
        update.pop("MemorySwappiness")
    swappiness = update.get("MemorySwappiness")
    if swappiness is None:
        return
    if not info.memory_swappiness:
        warn(_UNSUPPORTED["swappiness"])
        update.pop("MemorySwappiness")
    elif not 0 <= swappiness <= 100:
        raise invalid(f"Invalid value: {swappiness}, valid memory swappiness range is 0-100")


def _reservation(update: dict[str, Any], info: SysInfo, ncpu: int, warn: Callable[[str], None]) -> None:
    reservation = _int(update, "MemoryReservation")
    if reservation > 0 and not info.memory_reservation:
        warn(_UNSUPPORTED["reservation"])
        update["MemoryReservation"] = reservation = 0
    if reservation > 0 and reservation < _MIN_MEMORY:
        raise invalid("Minimum memory reservation allowed is 6MB")
    memory = _int(update, "Memory")
    if memory > 0 and reservation > 0 and memory < reservation:
        raise invalid("Minimum memory limit can not be less than memory reservation limit, see usage")


def _kernel_memory(update: dict[str, Any], info: SysInfo, ncpu: int, warn: Callable[[str], None]) -> None:
    if _int(update, "KernelMemory") <= 0:
        return
    if not info.kernel_memory:
        warn(_UNSUPPORTED["kernel"])
        update["KernelMemory"] = 0
    elif _int(update, "KernelMemory") < _MIN_MEMORY:
        raise invalid("Minimum kernel memory limit allowed is 6MB")


def _oom_kill_disable(update: dict[str, Any], info: SysInfo, ncpu: int, warn: Callable[[str], None]) -> None:
    oom = update.get("OomKillDisable")
    if oom is not None and not info.oom_kill_disable:
        if oom:
            warn(_UNSUPPORTED["oom"])
        update.pop("OomKillDisable")
        oom = None
    if oom and _int(update, "Memory") == 0:
        warn(
            "OOM killer is disabled for the container, but no memory limit is set, this can result in the "
            "system running out of resources."
        )


def _pids(update: dict[str, Any], info: SysInfo, ncpu: int, warn: Callable[[str], None]) -> None:
    pids = update.get("PidsLimit")
    if pids is not None and not info.pids_limit:
        if pids > 0:
            warn(_UNSUPPORTED["pids"])
        update.pop("PidsLimit")


def _nano_cpus(update: dict[str, Any], info: SysInfo, ncpu: int, warn: Callable[[str], None]) -> None:
    nano, period, quota = (_int(update, k) for k in ("NanoCpus", "CpuPeriod", "CpuQuota"))
    if nano > 0 and period > 0:
        raise invalid("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if nano > 0 and quota > 0:
        raise invalid("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    if nano > 0 and not info.cpu_cfs:
        raise invalid(
            "NanoCPUs can not be set, as your kernel does not support CPU CFS scheduler or the cgroup is "
            "not mounted"
        )
    if nano and (nano < 0 or nano > ncpu * 1_000_000_000):
        raise invalid(f"range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available")


def _cpu_shares(update: dict[str, Any], info: SysInfo, ncpu: int, warn: Callable[[str], None]) -> None:
    if _int(update, "CpuShares") > 0 and not info.cpu_shares:
        warn(_UNSUPPORTED["shares"])
        update["CpuShares"] = 0


def _cfs(update: dict[str, Any], info: SysInfo, ncpu: int, warn: Callable[[str], None]) -> None:
    period, quota = _int(update, "CpuPeriod"), _int(update, "CpuQuota")
    if (period or quota) and not info.cpu_cfs:
        warn(_UNSUPPORTED["cfs"])
        update["CpuPeriod"] = update["CpuQuota"] = period = quota = 0
    if period and not 1000 <= period <= 1_000_000:
        raise invalid("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
    if 0 < quota < 1000:
        raise invalid("CPU cfs quota can not be less than 1ms (i.e. 1000)")


def _cpu_percent(update: dict[str, Any], info: SysInfo, ncpu: int, warn: Callable[[str], None]) -> None:
    if _int(update, "CpuPercent") > 0:
        warn(_UNSUPPORTED["percent"])
        update["CpuPercent"] = 0


def _cpuset(update: dict[str, Any], info: SysInfo, ncpu: int, warn: Callable[[str], None]) -> None:
    cpus, mems = str(update.get("CpusetCpus") or ""), str(update.get("CpusetMems") or "")
    if (cpus or mems) and not info.cpuset:
        warn(_UNSUPPORTED["cpuset"])
        update["CpusetCpus"] = update["CpusetMems"] = ""
        return
    for value, kind, available, what in (
        (cpus, "cpus", info.cpus, "CPUs"),
        (mems, "mems", info.mems, "memory nodes"),
    ):
        if not value:
            continue
        wanted = _uint_list(value)
        if wanted is None:
            raise invalid(f"Invalid value {value} for cpuset {kind}: invalid format: {value}")
        have = _uint_list(available) if available else set(range(ncpu)) if kind == "cpus" else {0}
        if not wanted <= (have or set()):
            raise invalid(f"Requested {what} are not available - requested {value}, available: {available}")


def _blkio_weight(update: dict[str, Any], info: SysInfo, ncpu: int, warn: Callable[[str], None]) -> None:
    weight = _int(update, "BlkioWeight")
    if weight > 0 and not info.blkio_weight:
        warn(_UNSUPPORTED["blkio"])
        update["BlkioWeight"] = 0
    elif weight > 0 and not 10 <= weight <= 1000:
        raise invalid("Range of blkio weight is from 10 to 1000")


def _io_maximum(update: dict[str, Any], info: SysInfo, ncpu: int, warn: Callable[[str], None]) -> None:
    if update.get("IOMaximumBandwidth") or update.get("IOMaximumIOps"):
        raise invalid("Invalid QoS settings: linux does not support Maximum IO Bandwidth or Maximum IO IOps")


_RESOURCE_CHECKS: tuple[Check, ...] = (
    _memory,
    _swap,
    _swappiness,
    _reservation,
    _kernel_memory,
    _oom_kill_disable,
    _pids,
    _nano_cpus,
    _cpu_shares,
    _cfs,
    _cpu_percent,
    _cpuset,
    _blkio_weight,
    _io_maximum,
)


def verify_update(update: dict[str, Any], info: SysInfo, ncpu: int | None = None) -> list[str]:
    """verifyContainerSettings(update=true): the restart policy, then the resources; returns warnings.

    Settings the kernel cannot apply are discarded from ``update`` with a warning, as dockerd does.
    """
    validate_restart_policy(update.get("RestartPolicy") or {})
    warnings: list[str] = []
    for check in _RESOURCE_CHECKS:
        check(update, info, ncpu or os.cpu_count() or 1, warnings.append)
    return warnings


# -- applying it -----------------------------------------------------------------------------------
def _merge(c: Container, update: dict[str, Any]) -> dict[str, Any]:
    """Container.UpdateContainer on a copy of the HostConfig; 409s name the conflict."""
    hc = dict(c.host_config)

    def refuse(message: str) -> ApiError:
        return conflict(f"Cannot update container {c.id}: {message}")

    nano, period, quota = (int(update.get(k) or 0) for k in ("NanoCpus", "CpuPeriod", "CpuQuota"))
    if nano > 0 and int(hc.get("CpuPeriod") or 0) > 0:
        raise refuse("Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set")
    if nano > 0 and int(hc.get("CpuQuota") or 0) > 0:
        raise refuse("Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set")
    if period > 0 and int(hc.get("NanoCpus") or 0) > 0:
        raise refuse("Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set")
    if quota > 0 and int(hc.get("NanoCpus") or 0) > 0:
        raise refuse("Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set")
    for key in ("BlkioWeight", "CpuShares", "NanoCpus", "CpuPeriod", "CpuQuota", "CpusetCpus", "CpusetMems"):
        if update.get(key):
            hc[key] = update[key]
    memory = int(update.get("Memory") or 0)
    if memory:
        if memory > int(hc.get("MemorySwap") or 0) and not update.get("MemorySwap"):
            raise refuse(
                "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at "
                "the same time"
            )
        hc["Memory"] = memory
    for key in ("MemorySwap", "MemoryReservation", "KernelMemory", "CpuRealtimePeriod", "CpuRealtimeRuntime"):
        if update.get(key):
            hc[key] = update[key]
    if update.get("PidsLimit") is not None:
        hc["PidsLimit"] = update["PidsLimit"]
    policy = update.get("RestartPolicy") or {}
    if policy.get("Name"):
        if hc.get("AutoRemove") and policy["Name"] != "no":
            raise refuse("Restart policy cannot be updated because AutoRemove is enabled for the container")
        hc["RestartPolicy"] = dict(policy)
    return hc


def _runc_error(c: Container, text: str) -> ApiError:
    return system(
        f"Cannot update container {c.id}: runc did not terminate successfully: exit status 1: {text}\n"
    )


def _apply(manager: ContainerManager, c: Container, update: dict[str, Any], hc: dict[str, Any]) -> None:
    """``runc update``: only what the request set, into the running container's cgroup."""
    from ..runtime.cgroups import Cgroup, Resources
    from ..runtime.errors import CgroupError
    from .spec import cgroup_path

    cgroup = Cgroup(cgroup_path(manager.daemon, c))
    nano = int(hc.get("NanoCpus") or 0)
    cpu_changed = any(update.get(k) for k in ("NanoCpus", "CpuPeriod", "CpuQuota"))
    period = quota = None
    if cpu_changed:
        period = 100_000 if nano else int(hc.get("CpuPeriod") or 0) or None
        quota = nano * 100_000 // 1_000_000_000 if nano else int(hc.get("CpuQuota") or 0) or None
    shares = int(update.get("CpuShares") or 0)
    resources = Resources(
        memory=int(update.get("Memory") or 0) or None,
        memory_swap=int(update.get("MemorySwap") or 0) or None,
        memory_reservation=int(update.get("MemoryReservation") or 0) or None,
        cpu_shares=shares if shares and cgroup.version == 2 else None,
        cpu_quota=quota,
        cpu_period=period,
        cpuset_cpus=update.get("CpusetCpus") or None,
        cpuset_mems=update.get("CpusetMems") or None,
        pids_limit=update.get("PidsLimit"),
    )
    try:
        cgroup.apply(resources)
        if shares and cgroup.version == 1:
            _set_shares_v1(cgroup, shares)
        weight = int(update.get("BlkioWeight") or 0)
        if weight:
            _set_blkio_weight(cgroup, weight)
    except CgroupError as exc:
        text = exc.message
        if exc.errno == errno.EBUSY and "memory.limit_in_bytes" in text and resources.memory:
            stats = cgroup.stats()
            text = (
                f"unable to set memory limit to {resources.memory} (current usage: {stats.memory_usage}, "
                f"peak usage: {stats.memory_max_usage})"
            )
        raise _runc_error(c, text) from None


def _set_shares_v1(cgroup: Any, shares: int) -> None:
    """runc writes the shares as unsigned and reads them back: the kernel clamps to [2, 262144]."""
    from ..runtime.cgroups import _write

    path = cgroup._file("cpu", "cpu.shares")
    value = shares & (2**64 - 1)
    _write(path, str(value))
    with open(path) as fh:
        got = int(fh.read().strip())
    if value > got:
        from ..runtime.errors import CgroupError

        raise CgroupError(f"the maximum allowed cpu-shares is {got}")
    if value < got:
        from ..runtime.errors import CgroupError

        raise CgroupError(f"the minimum allowed cpu-shares is {got}")


def _set_blkio_weight(cgroup: Any, weight: int) -> None:
    from ..runtime.cgroups import _write

    if cgroup.version == 2:
        _write(cgroup._file("io", "io.bfq.weight"), str(weight))  # runc: BFQ's weight takes BlkioWeight as is
    else:
        _write(cgroup._file("blkio", "blkio.weight"), str(weight))


async def update_container(
    manager: ContainerManager, c: Container, update: dict[str, Any], warnings: list[str]
) -> list[str]:
    """dockerd's daemon.update: merge, persist, event, then the cgroup of a running container."""
    async with manager.lock(c.id):
        if c.status in ("removing", "dead"):
            raise system(
                f'Cannot update container {c.id}: container is marked for removal and cannot be "update"'
            )
        backup = c.host_config
        c.host_config = _merge(c, update)
        try:
            c.save()
        except OSError as exc:
            c.host_config = backup
            raise system(f"Cannot update container {c.id}: {exc}") from None
        try:
            if c.running and c.status != "restarting":
                _apply(manager, c, update, c.host_config)
        except ApiError:
            c.host_config = backup
            with contextlib.suppress(OSError):
                c.save()
            raise
        finally:
            manager.emit(c, "update")
    return warnings
