"""Control groups for containers, v1 (one directory per hierarchy) and v2 (one directory), found at run time.

A :class:`Cgroup` is named by a path, as runc's ``cgroupsPath``: an absolute path
(``/docker/<id>``, dockerd's default with the cgroupfs driver) is taken from each hierarchy's
root; a relative one is taken from the *calling process's own* cgroup in each hierarchy (which
keeps a test's containers inside the test's cgroup). Which filesystem to use is a
:class:`CgroupFS`: :meth:`CgroupFS.detect` reads ``/proc/self/mountinfo`` (v2 when
``/sys/fs/cgroup`` is cgroup2, otherwise every mounted v1 hierarchy, named ones included);
:meth:`CgroupFS.v2` points at any cgroup2 mount, e.g. a private one on a hybrid host.

What it does: create (initialising v1 cpuset levels, enabling v2 controllers in ancestors),
join, apply :class:`Resources`, freeze/thaw (waiting until the kernel reports frozen), read
:class:`CgroupStats` for ``docker stats``, count OOM kills for ``State.OOMKilled``, and delete
(killing what is left on EBUSY and retrying, then removing the empty parents it created).
The module-level helpers (:func:`freeze`, :func:`thaw`, :func:`oom_killed`, :func:`stats`,
:func:`remove_container_cgroup`) accept a :class:`Cgroup` or its path, for callers that keep
only the path.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import signal
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .errors import CgroupError, go_strerror
from .mountinfo import read_mountinfo

__all__ = [
    "DEFAULT_DEVICE_RULES",
    "DEFAULT_PARENT",
    "DEFAULT_V2_CONTROLLERS",
    "Cgroup",
    "CgroupFS",
    "CgroupStats",
    "Hierarchy",
    "Resources",
    "container_cgroup_path",
    "enter_cgroups_of",
    "freeze",
    "oom_killed",
    "remove_container_cgroup",
    "resources_from_host_config",
    "stats",
    "thaw",
]

#: dockerd's default ``--cgroup-parent`` with the cgroupfs driver.
DEFAULT_PARENT = "docker"
#: Controllers a container cgroup gets on v2 when available (docker stats needs cpu, memory, pids).
DEFAULT_V2_CONTROLLERS = ("cpuset", "cpu", "io", "memory", "pids")
#: dockerd's (runc's) default device allow-list for the v1 devices controller; all else is denied.
DEFAULT_DEVICE_RULES: tuple[str, ...] = (
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:0 rwm",
    "c 5:1 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
    "c 10:200 rwm",
)
_UNLIMITED_V1 = 1 << 62  # v1 reports "no limit" as PAGE_COUNTER_MAX pages, about 2**63
_V1_MOUNT_OPTIONS = frozenset(
    {"rw", "ro", "xattr", "noprefix", "clone_children", "cpuset_v2_mode", "favordynmods", "nofavordynmods"}
)
_CLK_TCK = os.sysconf("SC_CLK_TCK") if "SC_CLK_TCK" in os.sysconf_names else 100


# -- file helpers --------------------------------------------------------------------------------
def _write(path: str, value: str) -> None:
    """Write one value the way the kernel wants it (a single write), with runc's error text."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)
    except OSError as exc:
        raise CgroupError(
            f'failed to write "{value}": write {path}: {go_strerror(exc.errno or 0)}', exc.errno or 0
        ) from None


def _read(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno in (errno.ENODEV, errno.EOPNOTSUPP):
            return None
        raise


def _read_int(path: str) -> int | None:
    text = _read(path)
    if text is None:
        return None
    text = text.strip()
    if text in ("", "max"):
        return None
    return int(text)


def _read_keyed(path: str) -> dict[str, int]:
    """A flat-keyed file (``key value`` lines): memory.stat, cpu.stat, memory.events, memory.oom_control."""
    out: dict[str, int] = {}
    for line in (_read(path) or "").splitlines():
        parts = line.split()
        if len(parts) == 2:
            with contextlib.suppress(ValueError):
                out[parts[0]] = int(parts[1])
    return out


def _read_pids(path: str) -> list[int]:
    return [int(p) for p in (_read(path) or "").split()]


# -- hierarchies ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Hierarchy:
    """A mounted hierarchy: v1 (``name``: ``memory``, ``cpu,cpuacct``, ``name=systemd``) or v2 (``""``)."""

    name: str
    controllers: frozenset[str]
    mountpoint: str
    root: str = "/"  # the cgroup path the mount shows at its top (not "/" for bind mounts)


@dataclass(frozen=True)
class CgroupFS:
    """The cgroup filesystem to use: version and the hierarchies (one for v2)."""

    version: int
    hierarchies: tuple[Hierarchy, ...]

    @classmethod
    def detect(cls) -> CgroupFS:
        """The host's layout: v2 if /sys/fs/cgroup is cgroup2, else v1 hierarchies (hybrid's v2 ignored)."""
        mounts = read_mountinfo()
        for m in mounts:
            if m.fstype == "cgroup2" and m.mountpoint == "/sys/fs/cgroup":
                return cls(2, (Hierarchy("", frozenset(), m.mountpoint, m.root),))
        known = _kernel_controllers()
        seen: dict[frozenset[str], Hierarchy] = {}
        for m in mounts:
            if m.fstype != "cgroup":
                continue
            ctrls = frozenset(
                o
                for o in m.super_options
                if o.startswith("name=") or (o in known and o not in _V1_MOUNT_OPTIONS)
            )
            if not ctrls:
                continue
            old = seen.get(ctrls)
            if old is None or (old.root != "/" and m.root == "/"):
                name = ",".join(
                    sorted(c for c in ctrls if not c.startswith("name="))
                    + sorted(c for c in ctrls if c.startswith("name="))
                )
                seen[ctrls] = Hierarchy(name, ctrls, m.mountpoint, m.root)
        if seen:
            return cls(1, tuple(seen.values()))
        for m in mounts:
            if m.fstype == "cgroup2":
                return cls(2, (Hierarchy("", frozenset(), m.mountpoint, m.root),))
        raise CgroupError("no cgroup filesystem is mounted")

    @classmethod
    def v2(cls, mountpoint: str) -> CgroupFS:
        """A v2 layout at ``mountpoint`` (e.g. a private ``mount -t cgroup2`` on a hybrid host)."""
        return cls(2, (Hierarchy("", frozenset(), mountpoint, "/"),))

    def hierarchy(self, controller: str) -> Hierarchy | None:
        """The v1 hierarchy holding ``controller`` (the only one on v2)."""
        if self.version == 2:
            return self.hierarchies[0]
        for h in self.hierarchies:
            if controller in h.controllers:
                return h
        return None

    def available_controllers(self) -> frozenset[str]:
        """Controllers usable for containers: v1 mounted ones; v2 the root's cgroup.controllers."""
        if self.version == 1:
            return frozenset(c for h in self.hierarchies for c in h.controllers if not c.startswith("name="))
        return frozenset(
            (_read(os.path.join(self.hierarchies[0].mountpoint, "cgroup.controllers")) or "").split()
        )

    def own_path(self, h: Hierarchy, pid: int | str = "self") -> str:
        """``pid``'s cgroup path in hierarchy ``h`` (from /proc/<pid>/cgroup), "/" if not listed."""
        for line in (_read(f"/proc/{pid}/cgroup") or "").splitlines():
            hid, ctrls, path = line.split(":", 2)
            if self.version == 2 and hid == "0" and ctrls == "":
                return path
            if self.version == 1 and ctrls and frozenset(ctrls.split(",")) == h.controllers:
                return path
        return "/"

    def directory(self, h: Hierarchy, cgroup_path: str) -> str:
        """The host directory of an absolute cgroup path in ``h``."""
        rel = cgroup_path
        if h.root != "/" and (rel == h.root or rel.startswith(h.root.rstrip("/") + "/")):
            rel = rel[len(h.root.rstrip("/")) :]
        return os.path.normpath(os.path.join(h.mountpoint, rel.lstrip("/")))


def _kernel_controllers() -> frozenset[str]:
    names: set[str] = set()
    for line in (_read("/proc/cgroups") or "").splitlines():
        if line and not line.startswith("#"):
            names.add(line.split()[0])
    return frozenset(names)


# -- resources and stats -------------------------------------------------------------------------
@dataclass(frozen=True)
class Resources:
    """Limits in dockerd's units; ``None`` leaves a setting alone.

    ``memory_swap`` is memory plus swap, as Docker's ``MemorySwap`` (-1: unlimited swap); memory,
    CPU quota and pids limits of 0 or -1 mean unlimited; ``devices`` is the v1 allow-list (every
    other device denied), ignored on v2 where device control needs eBPF.
    """

    memory: int | None = None
    memory_swap: int | None = None
    memory_reservation: int | None = None
    oom_kill_disable: bool | None = None
    cpu_shares: int | None = None
    cpu_quota: int | None = None
    cpu_period: int | None = None
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None
    pids_limit: int | None = None
    devices: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.devices is not None:
            out["devices"] = list(self.devices)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Resources:
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown resource settings: {sorted(unknown)}")
        values = dict(data)
        if values.get("devices") is not None:
            values["devices"] = tuple(values["devices"])
        return cls(**values)


def resources_from_host_config(host_config: Mapping[str, Any]) -> Resources:
    """dockerd's mapping of HostConfig to cgroup limits (NanoCpus -> quota, swap 2x memory)."""
    hc = host_config

    def num(key: str) -> int | None:
        value = hc.get(key)
        return int(value) if value else None

    memory = num("Memory")
    swap = num("MemorySwap")
    if memory and memory > 0 and not swap:
        swap = memory * 2  # daemon/daemon_unix.go: swap defaults to twice the memory limit
    period, quota = num("CpuPeriod"), num("CpuQuota")
    nano = num("NanoCpus")
    if nano:
        period = 100_000
        quota = nano * period // 1_000_000_000
    devices: tuple[str, ...]
    if hc.get("Privileged"):
        devices = ("a *:* rwm",)
    else:
        devices = DEFAULT_DEVICE_RULES + tuple(hc.get("DeviceCgroupRules") or ())
    pids = hc.get("PidsLimit")
    return Resources(
        memory=memory,
        memory_swap=swap if memory or swap else None,
        memory_reservation=num("MemoryReservation"),
        oom_kill_disable=True if hc.get("OomKillDisable") else None,
        cpu_shares=num("CpuShares"),
        cpu_quota=quota,
        cpu_period=period,
        cpuset_cpus=hc.get("CpusetCpus") or None,
        cpuset_mems=hc.get("CpusetMems") or None,
        pids_limit=int(pids) if pids else None,
        devices=devices,
    )


@dataclass(frozen=True)
class CgroupStats:
    """What ``docker stats`` needs, in bytes and nanoseconds; ``None`` limits mean unlimited."""

    memory_usage: int = 0
    memory_max_usage: int = 0
    memory_limit: int | None = None
    memory_failcnt: int = 0
    memory_stat: dict[str, int] = field(default_factory=dict)
    cpu_usage_ns: int = 0
    cpu_user_ns: int = 0
    cpu_system_ns: int = 0
    percpu_usage_ns: tuple[int, ...] = ()
    throttling_periods: int = 0
    throttled_periods: int = 0
    throttled_time_ns: int = 0
    pids_current: int = 0
    pids_limit: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["percpu_usage_ns"] = list(self.percpu_usage_ns)
        return out


# -- the cgroup ----------------------------------------------------------------------------------
class Cgroup:
    """One container's cgroup across every hierarchy of ``fs``."""

    def __init__(self, path: str, fs: CgroupFS | None = None) -> None:
        if not path or path.strip("/") == "" or ".." in path.split("/"):
            raise ValueError(f"invalid cgroup path {path!r}")
        self.path = path
        self.fs = fs if fs is not None else CgroupFS.detect()
        self.dirs: dict[str, str] = {}
        for h in self.fs.hierarchies:
            full = path if path.startswith("/") else os.path.join(self.fs.own_path(h), path)
            self.dirs[h.name] = self.fs.directory(h, full)
        #: Directories this object created, deepest last; :meth:`delete` prunes them when empty.
        self.created: list[str] = []

    def __repr__(self) -> str:
        return f"Cgroup({self.path!r}, v{self.fs.version})"

    @property
    def version(self) -> int:
        return self.fs.version

    def dir_for(self, controller: str) -> str | None:
        """This cgroup's directory in the hierarchy holding ``controller``."""
        h = self.fs.hierarchy(controller)
        return None if h is None else self.dirs[h.name]

    def _file(self, controller: str, name: str) -> str:
        d = self.dir_for(controller)
        if d is None or not os.path.exists(os.path.join(d, name)):
            where = d or f"any {controller} hierarchy"
            raise CgroupError(
                f'cgroup controller "{controller}" is not available ({name} missing in {where})', errno.ENOENT
            )
        return os.path.join(d, name)

    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self.dirs.values())

    # -- lifecycle -------------------------------------------------------------------------------
    def create(
        self, resources: Resources | None = None, controllers: Iterable[str] = DEFAULT_V2_CONTROLLERS
    ) -> Cgroup:
        """Make the directories (and missing parents), ready to take processes; apply ``resources`` if given.

        v1: each cpuset level with empty cpus/mems gets its parent's, or joining fails with ENOSPC.
        v2: ``controllers`` that are available are enabled in every ancestor's subtree_control.
        """
        for h in self.fs.hierarchies:
            leaf = self.dirs[h.name]
            levels = self._levels(h, leaf)
            for level in levels:
                try:
                    os.mkdir(level, 0o755)
                except FileExistsError:
                    pass
                except OSError as exc:
                    raise CgroupError(
                        f"mkdir {level}: {go_strerror(exc.errno or 0)}", exc.errno or 0
                    ) from None
                else:
                    self.created.append(level)
                if "cpuset" in h.controllers:
                    _init_cpuset(level)
            if self.fs.version == 2:
                self._enable_controllers(h, leaf, set(controllers))
        if resources is not None:
            self.apply(resources)
        return self

    def _levels(self, h: Hierarchy, leaf: str) -> list[str]:
        """Directories from just below the mount point down to ``leaf``."""
        rel = os.path.relpath(leaf, h.mountpoint)
        out: list[str] = []
        cur = h.mountpoint
        for part in rel.split("/"):
            cur = os.path.join(cur, part)
            out.append(cur)
        return out

    def _enable_controllers(self, h: Hierarchy, leaf: str, wanted: set[str]) -> None:
        cur = h.mountpoint
        for level in [h.mountpoint, *self._levels(h, leaf)[:-1]]:
            cur = level
            available = set((_read(os.path.join(cur, "cgroup.controllers")) or "").split())
            enabled = set((_read(os.path.join(cur, "cgroup.subtree_control")) or "").split())
            missing = sorted((wanted & available) - enabled)
            if missing:
                # best effort: a level with processes of its own cannot delegate; apply() will say so
                with contextlib.suppress(CgroupError):
                    _write(os.path.join(cur, "cgroup.subtree_control"), " ".join("+" + c for c in missing))

    def add(self, pid: int) -> None:
        """Move ``pid`` (0: the caller) into this cgroup in every hierarchy."""
        value = str(pid or os.getpid())
        for d in self.dirs.values():
            _write(os.path.join(d, "cgroup.procs"), value)

    def join_single_threaded(self) -> None:
        """Move the caller, which must have one thread (a freshly forked child), into this cgroup.

        On v1 hierarchies it writes ``0`` to ``tasks``: moving the current thread skips the
        kernel's global threadgroup lock, whose first write-lock waits out an RCU grace period
        (5-15 ms on a busy machine), which ``cgroup.procs`` takes. With one thread the result is
        the same. The v2 hierarchy has no such file: ``cgroup.procs`` there.
        """
        value = str(os.getpid())
        for key, d in self.dirs.items():
            tasks = os.path.join(d, "tasks")
            if key and os.path.exists(tasks):
                _write(tasks, "0")
            else:
                _write(os.path.join(d, "cgroup.procs"), value)

    def pids(self, recursive: bool = True) -> list[int]:
        """Processes in this cgroup (and its children), over every hierarchy."""
        out: set[int] = set()
        for d in self.dirs.values():
            for sub in _walk(d) if recursive else [d]:
                out.update(_read_pids(os.path.join(sub, "cgroup.procs")))
        return sorted(out)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal every process in the cgroup (v2 with cgroup.kill for SIGKILL: atomically)."""
        if self.fs.version == 2 and sig == signal.SIGKILL:
            d = self.dirs[""]
            if os.path.exists(os.path.join(d, "cgroup.kill")):
                with contextlib.suppress(CgroupError):
                    _write(os.path.join(d, "cgroup.kill"), "1")
                    return
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def delete(self, timeout: float = 10.0) -> None:
        """Remove the cgroup everywhere: on EBUSY thaw, kill and retry; prune created parents."""
        deadline = time.monotonic() + timeout
        self._thaw_tree()  # frozen tasks cannot die: thaw before anything is killed
        for h in self.fs.hierarchies:
            self._remove_tree(h, self.dirs[h.name], deadline)
        leaves = set(self.dirs.values())
        for d in sorted(self.created, key=lambda p: p.count("/"), reverse=True):
            if d in leaves:
                continue
            with contextlib.suppress(OSError):
                os.rmdir(d)
        self.created = []

    def _remove_tree(self, h: Hierarchy, d: str, deadline: float) -> None:
        if not os.path.isdir(d):
            return
        for sub in _walk(d, include_self=False, bottom_up=True):
            self._remove_one(h, sub, deadline)
        self._remove_one(h, d, deadline)

    def _remove_one(self, h: Hierarchy, d: str, deadline: float) -> None:
        delay = 0.005
        while True:
            try:
                os.rmdir(d)
                return
            except FileNotFoundError:
                return
            except OSError as exc:
                if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                    pids = _read_pids(os.path.join(d, "cgroup.procs"))
                    raise CgroupError(
                        f"unable to remove cgroup {d}: {go_strerror(exc.errno or 0)}"
                        + (f" (processes left: {pids})" if pids else ""),
                        exc.errno or 0,
                    ) from None
            self._thaw_tree()
            if self.fs.version == 2 and os.path.exists(os.path.join(d, "cgroup.kill")):
                with contextlib.suppress(CgroupError):
                    _write(os.path.join(d, "cgroup.kill"), "1")
            for pid in _read_pids(os.path.join(d, "cgroup.procs")):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _thaw_tree(self) -> None:
        """Thaw this cgroup and every cgroup below it (best effort)."""
        top = self.dirs[""] if self.fs.version == 2 else self.dir_for("freezer")
        if top is None:
            return
        for d in _walk(top):
            with contextlib.suppress(CgroupError, OSError):
                if self.fs.version == 2:
                    if (_read(os.path.join(d, "cgroup.freeze")) or "0").strip() == "1":
                        _write(os.path.join(d, "cgroup.freeze"), "0")
                elif (_read(os.path.join(d, "freezer.state")) or "THAWED").strip() != "THAWED":
                    _write(os.path.join(d, "freezer.state"), "THAWED")

    # -- resources -------------------------------------------------------------------------------
    def apply(self, r: Resources) -> None:
        """Write the limits in ``r``; a limit whose controller is missing raises :class:`CgroupError`."""
        if self.fs.version == 1:
            self._apply_v1(r)
        else:
            self._apply_v2(r)

    def _apply_v1(self, r: Resources) -> None:
        if r.memory_reservation is not None:
            _write(self._file("memory", "memory.soft_limit_in_bytes"), _v1_limit(r.memory_reservation))
        if r.memory is not None or r.memory_swap is not None:
            mem_file = self._file("memory", "memory.limit_in_bytes")
            d = self.dir_for("memory") or ""
            swap_file = os.path.join(d, "memory.memsw.limit_in_bytes")
            has_swap = r.memory_swap is not None and os.path.exists(swap_file)
            if has_swap and r.memory_swap is not None:
                current = _read_int(swap_file) or 0
                # memory.limit_in_bytes may never exceed memory.memsw.limit_in_bytes: order the writes
                if r.memory_swap <= 0 or r.memory_swap > current:
                    _write(swap_file, _v1_limit(r.memory_swap))
                    if r.memory is not None:
                        _write(mem_file, _v1_limit(r.memory))
                else:
                    if r.memory is not None:
                        _write(mem_file, _v1_limit(r.memory))
                    _write(swap_file, _v1_limit(r.memory_swap))
            elif r.memory is not None:
                _write(mem_file, _v1_limit(r.memory))
        if r.oom_kill_disable is not None:
            _write(self._file("memory", "memory.oom_control"), "1" if r.oom_kill_disable else "0")
        if r.cpu_shares:
            _write(self._file("cpu", "cpu.shares"), str(r.cpu_shares))
        if r.cpu_period:
            _write(self._file("cpu", "cpu.cfs_period_us"), str(r.cpu_period))
        if r.cpu_quota is not None:
            _write(self._file("cpu", "cpu.cfs_quota_us"), str(r.cpu_quota) if r.cpu_quota > 0 else "-1")
        if r.cpuset_cpus:
            _write(self._file("cpuset", "cpuset.cpus"), r.cpuset_cpus)
        if r.cpuset_mems:
            _write(self._file("cpuset", "cpuset.mems"), r.cpuset_mems)
        if r.pids_limit is not None:
            _write(self._file("pids", "pids.max"), str(r.pids_limit) if r.pids_limit > 0 else "max")
        if r.devices is not None and self.dir_for("devices") is not None:
            _write(self._file("devices", "devices.deny"), "a")
            for rule in r.devices:
                _write(self._file("devices", "devices.allow"), rule)

    def _apply_v2(self, r: Resources) -> None:
        if r.memory_reservation is not None:
            _write(self._file("memory", "memory.low"), _v2_limit(r.memory_reservation))
        if r.memory is not None:
            _write(self._file("memory", "memory.max"), _v2_limit(r.memory))
        if r.memory_swap is not None:
            swap_file = os.path.join(self.dirs[""], "memory.swap.max")
            if os.path.exists(swap_file):
                if r.memory_swap <= 0:
                    value = "max"
                elif r.memory and r.memory > 0:
                    value = str(max(r.memory_swap - r.memory, 0))  # v2 limits swap alone, Docker memory+swap
                else:
                    value = str(r.memory_swap)
                _write(swap_file, value)
        if r.cpu_shares:
            _write(self._file("cpu", "cpu.weight"), str(cpu_shares_to_weight(r.cpu_shares)))
        if r.cpu_quota is not None or r.cpu_period:
            period = r.cpu_period or 100_000
            quota = "max" if r.cpu_quota is None or r.cpu_quota <= 0 else str(r.cpu_quota)
            _write(self._file("cpu", "cpu.max"), f"{quota} {period}")
        if r.cpuset_cpus:
            _write(self._file("cpuset", "cpuset.cpus"), r.cpuset_cpus)
        if r.cpuset_mems:
            _write(self._file("cpuset", "cpuset.mems"), r.cpuset_mems)
        if r.pids_limit is not None:
            _write(self._file("pids", "pids.max"), str(r.pids_limit) if r.pids_limit > 0 else "max")

    # -- freezer ---------------------------------------------------------------------------------
    def state(self) -> str:
        """``FROZEN``, ``FREEZING`` or ``THAWED``."""
        if self.fs.version == 2:
            events = _read_keyed(os.path.join(self.dirs[""], "cgroup.events"))
            wanted = (_read(os.path.join(self.dirs[""], "cgroup.freeze")) or "0").strip() == "1"
            if events.get("frozen") == 1:
                return "FROZEN"
            return "FREEZING" if wanted else "THAWED"
        return (_read(self._file("freezer", "freezer.state")) or "THAWED").strip()

    def freeze(self, timeout: float = 10.0) -> None:
        """Freeze every process and wait until the kernel reports FROZEN; on timeout thaw and raise."""
        if self.fs.version == 2:
            _write(self._file("", "cgroup.freeze"), "1")
        else:
            state_file = self._file("freezer", "freezer.state")
            _write(state_file, "FROZEN")
        deadline = time.monotonic() + timeout
        tick = 0
        while self.state() != "FROZEN":
            if time.monotonic() > deadline:
                self.thaw()
                raise CgroupError(
                    f"timeout after {timeout:g}s waiting for {self.path} to freeze", errno.ETIMEDOUT
                )
            tick += 1
            if self.fs.version == 1 and tick % 20 == 0:
                _write(state_file, "FROZEN")  # runc re-writes: a fork in flight can leave it FREEZING
            time.sleep(0.005 if tick < 20 else 0.02)

    def thaw(self) -> None:
        """Let the processes run again."""
        if self.fs.version == 2:
            _write(self._file("", "cgroup.freeze"), "0")
        else:
            _write(self._file("freezer", "freezer.state"), "THAWED")

    # -- observation -----------------------------------------------------------------------------
    def oom_kill_count(self) -> int:
        """OOM kills in this cgroup since it was created (v1 memory.oom_control, v2 memory.events)."""
        d = self.dir_for("memory")
        if d is None:
            return 0
        if self.fs.version == 2:
            return _read_keyed(os.path.join(d, "memory.events")).get("oom_kill", 0)
        return _read_keyed(os.path.join(d, "memory.oom_control")).get("oom_kill", 0)

    def under_oom(self) -> bool:
        """v1: the cgroup is out of memory right now (only possible with the OOM killer disabled)."""
        d = self.dir_for("memory")
        if d is None or self.fs.version == 2:
            return False
        return _read_keyed(os.path.join(d, "memory.oom_control")).get("under_oom", 0) == 1

    def oom_killed(self) -> bool:
        """Whether the kernel OOM-killed a process here (dockerd's State.OOMKilled)."""
        return self.oom_kill_count() > 0

    def stats(self) -> CgroupStats:
        """Memory, CPU and pids counters (missing controllers read as zero)."""
        if self.fs.version == 2:
            return self._stats_v2()
        mem = self.dir_for("memory")
        acct = self.dir_for("cpuacct")
        cpu = self.dir_for("cpu")
        pids = self.dir_for("pids")
        limit = _read_int(os.path.join(mem, "memory.limit_in_bytes")) if mem else None
        cpu_stat = _read_keyed(os.path.join(cpu, "cpu.stat")) if cpu else {}
        acct_stat = _read_keyed(os.path.join(acct, "cpuacct.stat")) if acct else {}
        tick_ns = 1_000_000_000 // _CLK_TCK
        return CgroupStats(
            memory_usage=(_read_int(os.path.join(mem, "memory.usage_in_bytes")) or 0) if mem else 0,
            memory_max_usage=(_read_int(os.path.join(mem, "memory.max_usage_in_bytes")) or 0) if mem else 0,
            memory_limit=None if limit is None or limit >= _UNLIMITED_V1 else limit,
            memory_failcnt=(_read_int(os.path.join(mem, "memory.failcnt")) or 0) if mem else 0,
            memory_stat=_read_keyed(os.path.join(mem, "memory.stat")) if mem else {},
            cpu_usage_ns=(_read_int(os.path.join(acct, "cpuacct.usage")) or 0) if acct else 0,
            cpu_user_ns=acct_stat.get("user", 0) * tick_ns,
            cpu_system_ns=acct_stat.get("system", 0) * tick_ns,
            percpu_usage_ns=tuple(
                int(x) for x in (_read(os.path.join(acct, "cpuacct.usage_percpu")) or "").split()
            )
            if acct
            else (),
            throttling_periods=cpu_stat.get("nr_periods", 0),
            throttled_periods=cpu_stat.get("nr_throttled", 0),
            throttled_time_ns=cpu_stat.get("throttled_time", 0),
            pids_current=(_read_int(os.path.join(pids, "pids.current")) or 0) if pids else 0,
            pids_limit=_read_int(os.path.join(pids, "pids.max")) if pids else None,
        )

    def _stats_v2(self) -> CgroupStats:
        d = self.dirs[""]
        cpu_stat = _read_keyed(os.path.join(d, "cpu.stat"))
        return CgroupStats(
            memory_usage=_read_int(os.path.join(d, "memory.current")) or 0,
            memory_max_usage=_read_int(os.path.join(d, "memory.peak")) or 0,
            memory_limit=_read_int(os.path.join(d, "memory.max")),
            memory_failcnt=_read_keyed(os.path.join(d, "memory.events")).get("max", 0),
            memory_stat=_read_keyed(os.path.join(d, "memory.stat")),
            cpu_usage_ns=cpu_stat.get("usage_usec", 0) * 1000,
            cpu_user_ns=cpu_stat.get("user_usec", 0) * 1000,
            cpu_system_ns=cpu_stat.get("system_usec", 0) * 1000,
            throttling_periods=cpu_stat.get("nr_periods", 0),
            throttled_periods=cpu_stat.get("nr_throttled", 0),
            throttled_time_ns=cpu_stat.get("throttled_usec", 0) * 1000,
            pids_current=_read_int(os.path.join(d, "pids.current")) or 0,
            pids_limit=_read_int(os.path.join(d, "pids.max")),
        )

    def mount_sources(self) -> list[tuple[str, str]]:
        """(name under /sys/fs/cgroup, host directory) for a v1 container's read-only cgroup mounts."""
        return [(os.path.basename(h.mountpoint), self.dirs[h.name]) for h in self.fs.hierarchies]


def _v1_limit(value: int) -> str:
    return str(value) if value > 0 else "-1"


def _v2_limit(value: int) -> str:
    return str(value) if value > 0 else "max"


def _init_cpuset(level: str) -> None:
    parent = os.path.dirname(level)
    for name in ("cpuset.cpus", "cpuset.mems"):
        mine = os.path.join(level, name)
        current = _read(mine)
        if current is not None and not current.strip():
            _write(mine, (_read(os.path.join(parent, name)) or "").strip())


def _walk(d: str, include_self: bool = True, bottom_up: bool = False) -> list[str]:
    """Cgroup directories below ``d`` (cgroupfs has no symlinks), top-down or bottom-up."""
    out: list[str] = []
    try:
        entries = [e.path for e in os.scandir(d) if e.is_dir(follow_symlinks=False)]
    except (FileNotFoundError, NotADirectoryError):
        return [d] if include_self and os.path.isdir(d) else []
    for sub in entries:
        out.extend(_walk(sub, include_self=True, bottom_up=bottom_up))
    if include_self:
        out = [*out, d] if bottom_up else [d, *out]
    return out


# -- helpers for callers that keep only a path ---------------------------------------------------
def cpu_shares_to_weight(shares: int) -> int:
    """cgroup v1 ``cpu.shares`` as v2 ``cpu.weight``, as runc >= 1.3 (opencontainers/cgroups) converts it:
    a quadratic in log2(shares) through (2, 1), (1024, 100) and (262144, 10000), so the default 1024 is the
    default weight 100 (the older linear formula gave 39; dockerd 28.5 with sid's runc 1.3 writes 59 for 512).
    """
    if shares <= 0:
        return 0
    if shares <= 2:
        return 1
    if shares >= 262144:
        return 10000
    log2 = math.log2(shares)
    return math.ceil(10 ** ((log2 * log2 + 125 * log2) / 612.0 - 7.0 / 34.0))


def container_cgroup_path(container_id: str, parent: str = DEFAULT_PARENT) -> str:
    """dockerd's cgroupfs-driver path for a container: ``/<parent>/<id>`` (``/docker/<id>`` by default)."""
    return "/" + "/".join(p for p in (parent.strip("/"), container_id) if p)


def _as_cgroup(target: Cgroup | str) -> Cgroup:
    return target if isinstance(target, Cgroup) else Cgroup(target)


def freeze(target: Cgroup | str, timeout: float = 10.0) -> None:
    """Freeze a container's cgroup (``docker pause``)."""
    _as_cgroup(target).freeze(timeout)


def thaw(target: Cgroup | str) -> None:
    """Thaw a container's cgroup (``docker unpause``)."""
    _as_cgroup(target).thaw()


def oom_killed(target: Cgroup | str) -> bool:
    """Whether the kernel OOM-killed a process in the cgroup; False if it is gone."""
    cg = _as_cgroup(target)
    return cg.exists() and cg.oom_killed()


def stats(target: Cgroup | str) -> CgroupStats:
    """A container's counters for ``docker stats``."""
    return _as_cgroup(target).stats()


def remove_container_cgroup(parent: str, container_id: str, timeout: float = 10.0) -> None:
    """Delete ``/<parent>/<id>`` everywhere (the shared parent stays), killing leftovers first."""
    Cgroup(container_cgroup_path(container_id, parent)).delete(timeout)


def enter_cgroups_of(pid: int, target: int = 0, single_threaded: bool = False) -> None:
    """Move ``target`` (0: the caller) into every cgroup ``pid`` is in (``docker exec``), v1 and v2 alike.

    ``single_threaded``: the caller (target 0) has one thread, so v1 hierarchies are joined through
    ``tasks`` without the kernel's global lock (see :meth:`Cgroup.join_single_threaded`).
    """
    mounts = read_mountinfo()
    me = str(target or os.getpid())
    own_thread = single_threaded and not target
    for line in (_read(f"/proc/{pid}/cgroup") or "").splitlines():
        hid, ctrls, path = line.split(":", 2)
        want = frozenset(ctrls.split(",")) if ctrls else frozenset()
        if hid == "0" and not ctrls:
            candidates = [m for m in mounts if m.fstype == "cgroup2"]
        else:
            candidates = [m for m in mounts if m.fstype == "cgroup" and want <= frozenset(m.super_options)]
        candidates.sort(key=lambda m: m.root != "/")
        for m in candidates:
            h = Hierarchy(ctrls, want, m.mountpoint, m.root)
            d = CgroupFS(1, (h,)).directory(h, path)
            if os.path.isdir(d):
                tasks = os.path.join(d, "tasks")
                if own_thread and m.fstype == "cgroup" and os.path.exists(tasks):
                    _write(tasks, "0")
                else:
                    _write(os.path.join(d, "cgroup.procs"), me)
                break
