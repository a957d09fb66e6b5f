"""The measurements themselves: each takes a booted daemon's handle and returns seconds (or a dict).

Every figure goes through the same client for every target: a raw ``http.client`` connection on
the daemon's unix socket for the API figures (no client library in the timing), the real ``docker``
CLI for the CLI figures, ``bench.load`` in a child process for throughput.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from harness.backends.base import DaemonHandle

__all__ = [
    "Api",
    "api_lifecycle",
    "cli",
    "cli_run_rm",
    "concurrent_starts",
    "daemon_cpu_seconds",
    "exec_latency",
    "logs_100mb",
    "memory",
    "remove_all",
    "run_detached",
]

API = "/v1.41"


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 120) -> None:
        super().__init__("docker", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class Api:
    """One keep-alive connection to a daemon's unix socket."""

    def __init__(self, handle: DaemonHandle) -> None:
        self.conn = _UnixHTTPConnection(handle.socket_path)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        self.conn.request(method, API + path, body=data, headers=headers)
        resp = self.conn.getresponse()
        raw = resp.read()
        try:
            return resp.status, json.loads(raw) if raw.strip() else None
        except ValueError:
            return resp.status, raw.decode(errors="replace")

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, out = self.call(method, path, body)
        if status >= 300:
            raise RuntimeError(f"{method} {path}: {status} {out}")
        return out

    def close(self) -> None:
        self.conn.close()


def daemon_cpu_seconds(handle: DaemonHandle) -> float:
    """CPU time (user + system) used so far by every process in the daemon's network namespace, with
    the children they reaped (runc, iptables, an exec's process): the load-independent figure beside
    the wall-clock ones, which a shared machine's load stretches.

    Live threads from ``/proc/PID/task/TID/schedstat`` (nanoseconds); reaped children from ``stat``'s
    cutime + cstime (clock ticks). The namespace's processes, as :func:`memory` counts them.
    """
    try:
        ino = os.stat(f"/proc/{handle.pid}/ns/net").st_ino
    except OSError:
        return 0.0
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}/ns/net").st_ino != ino:
                continue
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += (int(fields[13]) + int(fields[14])) / tick  # cutime, cstime
            for tid in os.listdir(f"/proc/{entry}/task"):
                with open(f"/proc/{entry}/task/{tid}/schedstat") as fh:
                    total += int(fh.read().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):
            continue
    return total


def memory(handle: DaemonHandle) -> dict[str, float]:
    """RSS, PSS and USS (MiB) summed over every process in the daemon's network namespace.

    RSS counts a page shared by N of them N times; PSS counts 1/N of it per process, where N
    includes processes outside the daemon (another engineer's dockerd shares dockerd's text), so
    it moves with what else runs; USS counts only pages no other process maps (it leaves out
    pages shared inside the daemon too, such as refd's zygote heap in its shims).

    That is the daemon and every helper it owns (containerd, containerd-shim, docker-proxy for
    dockerd; the shims for refd), and not the containers' own processes (their own netns).
    """
    try:
        ino = os.stat(f"/proc/{handle.pid}/ns/net").st_ino
    except OSError:
        return {"rss_mib": 0.0, "pss_mib": 0.0, "uss_mib": 0.0, "processes": 0.0}
    rss = pss = uss = count = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}/ns/net").st_ino != ino:
                continue
            with open(f"/proc/{entry}/smaps_rollup") as fh:
                for line in fh:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
                    elif line.startswith(("Private_Clean:", "Private_Dirty:")):
                        uss += int(line.split()[1])
            count += 1
        except (OSError, ValueError, IndexError):
            continue
    return {"rss_mib": rss / 1024, "pss_mib": pss / 1024, "uss_mib": uss / 1024, "processes": float(count)}


def _cli_env(handle: DaemonHandle) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": handle.workdir,
        "DOCKER_HOST": f"unix://{handle.socket_path}",
    }


def _docker() -> str:
    """The harness's pinned docker CLI (``HARNESS_DOCKER_CLI``, else Debian sid's 28.5), as scenarios use."""
    from harness.dockercli import resolve, selected

    return resolve(selected()).path


def cli(handle: DaemonHandle, *args: str, timeout: float = 300) -> float:
    """Seconds one ``docker ARGS`` takes (its output is discarded); raises when it fails."""
    start = time.perf_counter()
    result = subprocess.run(
        [_docker(), *args],
        env=_cli_env(handle),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=timeout,
    )
    took = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(
            f"docker {' '.join(args)} failed on {handle.target.name}: {result.stderr.decode()[-500:]}"
        )
    return took


def cli_run_rm(handle: DaemonHandle, image: str) -> float:
    return cli(handle, "run", "--rm", image, "true")


def api_lifecycle(handle: DaemonHandle, image: str) -> dict[str, float]:
    """create + start + wait + delete on one keep-alive connection: the total and each step."""
    api = Api(handle)
    try:
        clock = time.perf_counter
        t0 = clock()
        cid = api.ok("POST", "/containers/create", {"Image": image, "Cmd": ["true"]})["Id"]
        t1 = clock()
        api.ok("POST", f"/containers/{cid}/start")
        t2 = clock()
        api.ok("POST", f"/containers/{cid}/wait")
        t3 = clock()
        api.ok("DELETE", f"/containers/{cid}")
        t4 = clock()
    finally:
        api.close()
    return {"total": t4 - t0, "create": t1 - t0, "start": t2 - t1, "wait": t3 - t2, "delete": t4 - t3}


def run_detached(handle: DaemonHandle, image: str, cmd: list[str], name: str = "") -> str:
    api = Api(handle)
    try:
        query = f"?name={name}" if name else ""
        cid = str(api.ok("POST", f"/containers/create{query}", {"Image": image, "Cmd": cmd})["Id"])
        api.ok("POST", f"/containers/{cid}/start")
    finally:
        api.close()
    return cid


def remove_all(handle: DaemonHandle, ids: list[str], workers: int = 50) -> float:
    """Force-remove ``ids`` concurrently (one connection each); seconds until all are gone."""

    def remove(cid: str) -> None:
        api = Api(handle)
        try:
            api.ok("DELETE", f"/containers/{cid}?force=1")
        finally:
            api.close()

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(ids)))) as pool:
        list(pool.map(remove, ids))
    return time.perf_counter() - start


def concurrent_starts(handle: DaemonHandle, image: str, count: int = 50) -> tuple[float, list[str]]:
    """``count`` clients each create and start a long-running container at once; seconds until all run."""

    def one(_: int) -> str:
        api = Api(handle)
        try:
            cid = str(api.ok("POST", "/containers/create", {"Image": image, "Cmd": ["sleep", "3600"]})["Id"])
            api.ok("POST", f"/containers/{cid}/start")
            return cid
        finally:
            api.close()

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=count) as pool:
        ids = list(pool.map(one, range(count)))
    return time.perf_counter() - start, ids


def exec_latency(handle: DaemonHandle, cid: str) -> float:
    return cli(handle, "exec", cid, "true")


def logs_100mb(handle: DaemonHandle, image: str, megabytes: int = 100) -> dict[str, float]:
    """A container writes ``megabytes`` MiB of 100-byte lines; then ``docker logs`` reads them all.

    ``write``: create to exit (the logging path: shim or containerd-shim, json-file encoding);
    ``read``: ``docker logs`` to its end, output discarded.
    """
    size = megabytes << 20
    line = "x" * 99
    api = Api(handle)
    try:
        start = time.perf_counter()
        cid = str(
            api.ok(
                "POST",
                "/containers/create",
                {"Image": image, "Cmd": ["sh", "-c", f"yes {line} | head -c {size}"]},
            )["Id"]
        )
        api.ok("POST", f"/containers/{cid}/start")
        api.ok("POST", f"/containers/{cid}/wait")
        wrote = time.perf_counter() - start
        read = cli(handle, "logs", cid)
        api.ok("DELETE", f"/containers/{cid}?force=1")
    finally:
        api.close()
    return {"write": wrote, "read": read}
