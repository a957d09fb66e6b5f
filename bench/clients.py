"""Load generators and what they cost: the bench's own unix-socket client and ``wrk`` over TCP.

A throughput figure is only as good as its client: a client that saturates its CPU measures itself, not the
daemon. Every load run here reports the client's CPU time (user + system, the kernel's accounting of the
finished process) beside the daemon's figures, as a share of one CPU over the run: a client near 100 % per
thread sets the pace itself. The daemon's CPU per request (its namespace's CPU time over the run, divided
by the requests answered) is the figure a loaded machine does not stretch.

``wrk`` (Debian's ``wrk``: C, epoll, two threads) runs inside the daemon's network namespace against the
daemon's TCP listener (``-H tcp://127.0.0.1:2375 --tls=false``), so no relay sits between them.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from harness.backends.base import DaemonHandle

from .figures import daemon_cpu_seconds

__all__ = ["TCP_HOST", "WRK_THREADS", "measured", "python_load", "wrk_load"]

TCP_HOST = "tcp://127.0.0.1:2375"
WRK_THREADS = 2
_ROOT = Path(__file__).resolve().parent.parent


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measured(argv: list[str], timeout: float) -> tuple[str, float, float]:
    """Run ``argv``: (its stdout, its CPU seconds, wall seconds). Raises with its stderr when it fails.

    The CPU time is the growth of this process's reaped-children totals over the run: the bench runs one
    load at a time and reaps nothing else meanwhile (its daemons are reaped only at teardown).
    """
    cpu0, start = _children_cpu(), time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=_ROOT)
    wall, cpu = time.perf_counter() - start, _children_cpu() - cpu0
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {result.returncode}: {result.stderr.strip()[-300:]}")
    return result.stdout, cpu, wall


def python_load(
    handle: DaemonHandle, path: str, connections: int = 16, seconds: float = 2.0
) -> dict[str, float]:
    """``bench.load`` on the unix socket: req/s, p50/p99 ms and the client's CPU share (%)."""
    argv = [sys.executable, "-m", "bench.load", handle.socket_path, path]
    daemon0 = daemon_cpu_seconds(handle)
    out, cpu, wall = measured([*argv, f"--connections={connections}", f"--seconds={seconds}"], seconds + 60)
    daemon = daemon_cpu_seconds(handle) - daemon0
    figures = {k: float(v) for k, v in json.loads(out).items()}
    figures["client_cpu_pct"] = 100 * cpu / wall
    figures["daemon_cpu_us"] = _per_request_us(daemon, figures, seconds)
    return figures


def _per_request_us(daemon_cpu: float, figures: dict[str, float], seconds: float) -> float:
    """The daemon's CPU per answered request (µs): its CPU over the load / (req/s x the load's length)."""
    requests = figures.get("req_per_s", 0.0) * seconds
    return 1e6 * daemon_cpu / requests if requests else 0.0


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    number, unit = float(text[: -2 if text[-2:] in ("us", "ms") else -1]), text[-2:]
    return number * _UNITS.get(unit, _UNITS["s"])


def parse_wrk(text: str) -> dict[str, float]:
    """req/s, p50 and p99 (ms) and non-2xx/socket errors from ``wrk --latency`` output."""
    figures: dict[str, float] = {"errors": 0.0}
    for line in text.splitlines():
        words = line.split()
        if line.startswith("Requests/sec:"):
            figures["req_per_s"] = float(words[1])
        elif len(words) == 2 and words[0] in ("50%", "99%"):
            figures[f"p{words[0][:-1]}_ms"] = _ms(words[1])
        elif line.strip().startswith(("Non-2xx", "Socket errors")):
            figures["errors"] += sum(float(w.rstrip(",")) for w in words if w.rstrip(",").isdigit())
    if "req_per_s" not in figures:
        raise RuntimeError(f"wrk printed no Requests/sec line: {text.strip()[-300:]}")
    return figures


def wrk_load(
    handle: DaemonHandle, path: str, connections: int = 16, seconds: float = 2.0
) -> dict[str, float]:
    """``wrk`` on the daemon's TCP listener, from inside its network namespace; with wrk's CPU share (%)."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk): no TCP load figures")
    url = f"http://{TCP_HOST.removeprefix('tcp://')}{path}"
    argv = ["nsenter", f"--net={handle.netns_path}", wrk, f"-t{WRK_THREADS}", f"-c{connections}"]
    daemon0 = daemon_cpu_seconds(handle)
    out, cpu, wall = measured([*argv, f"-d{seconds:g}s", "--latency", url], seconds + 60)
    daemon = daemon_cpu_seconds(handle) - daemon0
    figures = parse_wrk(out)
    figures["client_cpu_pct"] = 100 * cpu / wall
    figures["daemon_cpu_us"] = _per_request_us(daemon, figures, seconds)
    return figures
