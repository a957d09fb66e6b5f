"""A running container's processes and resource counters (moby ``daemon/top_unix.go``, ``daemon/stats``):
``top`` runs the host's ``ps`` and keeps the rows whose PID is in the container's cgroup, as dockerd
does, but not refd's own processes that are starting one there; ``stats`` builds dockerd's StatsJSON
from the cgroup's counters and /proc/stat, one sample, or one per second with ``stream``."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ..errors import conflict, system

if TYPE_CHECKING:
    from ..daemon import Daemon
    from .model import Container

__all__ = ["network_stats", "refd_processes", "sample", "stats", "top"]

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _cgroup(daemon: Daemon, c: Container) -> Any:
    from ..containers.spec import cgroup_path
    from ..runtime.cgroups import Cgroup

    return Cgroup(cgroup_path(daemon, c))


async def top(daemon: Daemon, c: Container, ps_args: str) -> dict[str, Any]:
    """ContainerTopOKBody: ``Titles`` and the ``Processes`` of ``c`` in ``ps ps_args``."""
    if not c.running:
        raise conflict(f"container {c.id} is not running")
    pids = {str(p) for p in _cgroup(daemon, c).pids()}
    keep = int(c.state.get("Pid") or 0)  # a --init PID 1 is refd's own code for good: it stays listed
    starting, theirs = _classify(pids, keep)
    proc = await asyncio.create_subprocess_exec(
        "ps", *ps_args.split(" "), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )  # split on spaces as dockerd does (strings.Split): no quoting, so no quoting errors either
    out, err = await proc.communicate()
    if proc.returncode != 0:  # dockerd: "ps: " and the first line of ps's stderr
        first = err.decode(errors="replace").split("\n", 1)[0]
        raise system(f"ps: {first}" if first else f"ps: exit status {proc.returncode}")
    lines = out.decode(errors="replace").splitlines()
    if not lines:
        raise system("Error running ps: no output")
    titles = lines[0].split()
    try:
        pid_index = titles.index("PID")
    except ValueError:
        raise system("Couldn't find PID field in ps output") from None
    starting |= refd_processes(pids, keep)  # one that was refd's during ps may have exec'd since
    exiting = _exiting_names()
    processes = []
    for line in lines[1:]:
        fields = line.split(None, len(titles) - 1)
        if len(fields) <= pid_index or fields[pid_index] not in pids or fields[pid_index] in starting:
            continue
        if fields[-1] in exiting and fields[pid_index] not in theirs and int(fields[pid_index]) != keep:
            continue  # refd's interpreter on its way out, never seen as the container's own: refd's
        processes.append(fields)
    return {"Processes": processes, "Titles": titles}


def _interpreter() -> tuple[int, int] | None:
    try:
        st = os.stat("/proc/self/exe")
    except OSError:
        return None
    return st.st_dev, st.st_ino


def refd_processes(pids: set[str], keep: int = 0) -> set[str]:
    """The ``pids`` that are still refd's own code: a process the runtime forked to start a container or an
    exec (the intermediate that joins the cgroup, the process before its ``execve``) runs refd's interpreter
    with refd's command line (``python -m harness.daemon.zygote``), and would show in ``docker top`` for a
    moment (runc's shows ``runc init``). ``keep``: a pid to list all the same."""
    return _classify(pids, keep)[0]


def _classify(pids: set[str], keep: int = 0) -> tuple[set[str], set[str]]:
    """``refd_processes`` and the ``pids`` running a program that is not refd's interpreter (the container's
    own), from one look at each process."""
    mine = _interpreter()
    refds: set[str] = set()
    theirs: set[str] = set()
    for pid in pids:
        try:
            st = os.stat(f"/proc/{pid}/exe")
        except OSError:
            if _candidate(pid, keep, mine) and _exiting_interpreter(pid):
                refds.add(pid)
            continue
        if (st.st_dev, st.st_ino) != mine:
            theirs.add(pid)
            continue
        if not _candidate(pid, keep, mine):
            continue
        argv = _cmdline(pid)
        # empty: its memory went between the two reads (an intermediate exiting: ps shows ``[python]``); its
        # exe was refd's interpreter, which no container's own process runs
        if argv is not None and (argv == [b""] or any(arg.startswith(b"harness.daemon") for arg in argv)):
            refds.add(pid)
    return refds, theirs


def _candidate(pid: str, keep: int, mine: tuple[int, int] | None) -> bool:
    return pid.isdigit() and int(pid) != keep and mine is not None


def _exiting_names() -> set[str]:
    """How ps shows a process of refd's interpreter whose memory is gone (``[python]``, and as a zombie)."""
    comm = _interpreter_comm()
    return {f"[{comm}]", f"[{comm}] <defunct>"}


def _interpreter_comm() -> str:
    """The name the kernel gives a process of refd's interpreter (the runtime's intermediates are started
    with ``sys.executable``): its file name, cut to 15 bytes. Not refd's own: refd renames itself ``refd``."""
    return os.path.basename(sys.executable)[:15]


def _cmdline(pid: str) -> list[bytes] | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().split(b"\0")
    except OSError:
        return None


def _exiting_interpreter(pid: str) -> bool:
    """A process whose memory is already gone (no ``exe``, an empty command line: ps shows ``[python]``)
    and whose name is refd's interpreter's: the runtime's intermediate on its way out."""
    if _cmdline(pid) != [b""]:
        return False
    try:
        with open(f"/proc/{pid}/comm", "rb") as fh:
            return fh.read().rstrip(b"\n") == _interpreter_comm().encode()
    except OSError:
        return False


def _system_cpu_ns() -> int:
    with open("/proc/stat") as fh:
        first = fh.readline().split()
    return sum(int(x) for x in first[1:8]) * (1_000_000_000 // _CLK_TCK)


def sample(daemon: Daemon, c: Container) -> dict[str, Any]:
    stats = _cgroup(daemon, c).stats() if c.running else None
    now = time.time()
    read = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e9):09d}Z"
    online = os.cpu_count() or 1
    if stats is None:
        return {
            "read": "0001-01-01T00:00:00Z",
            "name": c.name,
            "id": c.id,
            "pids_stats": {},
            "blkio_stats": {},
            "num_procs": 0,
            "storage_stats": {},
            "cpu_stats": {
                "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
                "throttling_data": {},
            },
            "memory_stats": {},
        }
    memory = {
        "usage": stats.memory_usage,
        "stats": dict(stats.memory_stat),
        "limit": stats.memory_limit or _mem_total(),
    }
    if daemon.cgroup_version == "1":
        memory.update(max_usage=stats.memory_max_usage, failcnt=stats.memory_failcnt)
    cpu_usage: dict[str, Any] = {
        "total_usage": stats.cpu_usage_ns,
        "usage_in_kernelmode": stats.cpu_system_ns,
        "usage_in_usermode": stats.cpu_user_ns,
    }
    if stats.percpu_usage_ns and daemon.cgroup_version == "1":
        cpu_usage["percpu_usage"] = list(stats.percpu_usage_ns)
    return {
        "read": read,
        "name": c.name,
        "id": c.id,
        "pids_stats": {
            "current": stats.pids_current,
            **({"limit": stats.pids_limit} if stats.pids_limit else {}),
        },
        "blkio_stats": {
            "io_service_bytes_recursive": None,
            "io_serviced_recursive": None,
            "io_queue_recursive": None,
            "io_service_time_recursive": None,
            "io_wait_time_recursive": None,
            "io_merged_recursive": None,
            "io_time_recursive": None,
            "sectors_recursive": None,
        },
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": {
            "cpu_usage": cpu_usage,
            "system_cpu_usage": _system_cpu_ns(),
            "online_cpus": online,
            "throttling_data": {
                "periods": stats.throttling_periods,
                "throttled_periods": stats.throttled_periods,
                "throttled_time": stats.throttled_time_ns,
            },
        },
        "memory_stats": memory,
        **({"networks": networks} if (networks := network_stats(c)) else {}),
    }


_NET_FIELDS = (
    (0, "rx_bytes"),
    (1, "rx_packets"),
    (2, "rx_errors"),
    (3, "rx_dropped"),
    (8, "tx_bytes"),
    (9, "tx_packets"),
    (10, "tx_errors"),
    (11, "tx_dropped"),
)


def network_stats(c: Container) -> dict[str, dict[str, int]]:
    """Each interface of ``c``'s network namespace but loopback, with its counters (moby
    ``getNetworkStats``: the sandbox's endpoints); nothing for host networking or a dead process."""
    pid = int(c.state.get("Pid") or 0)
    if not pid or c.host_config.get("NetworkMode") == "host":
        return {}
    try:
        with open(f"/proc/{pid}/net/dev") as fh:
            lines = fh.read().splitlines()[2:]
    except OSError:
        return {}
    networks: dict[str, dict[str, int]] = {}
    for line in lines:
        name, _, counters = line.partition(":")
        fields = counters.split()
        if name.strip() in ("", "lo") or len(fields) < 12:
            continue
        networks[name.strip()] = {key: int(fields[i]) for i, key in _NET_FIELDS}
    return dict(sorted(networks.items()))


def _mem_total() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


async def stats(daemon: Daemon, c: Container, stream: bool, one_shot: bool) -> AsyncIterator[dict[str, Any]]:
    """StatsJSON documents: each with the sample before it as ``precpu_stats``. Without ``stream`` (and
    without ``one_shot``) dockerd waits a second for a second sample, so clients can compute CPU %."""
    previous = sample(daemon, c)
    precpu: dict[str, Any] = {
        "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    }
    if not stream and not one_shot:
        await asyncio.sleep(1)
        current = sample(daemon, c)
        current.update(preread=previous["read"], precpu_stats=previous["cpu_stats"])
        yield current
        return
    current = previous
    current.update(preread="0001-01-01T00:00:00Z", precpu_stats=precpu)
    while True:
        yield current
        if not stream or not c.running:
            return
        await asyncio.sleep(1)
        following = sample(daemon, c)
        following.update(preread=current["read"], precpu_stats=current["cpu_stats"])
        current = following
