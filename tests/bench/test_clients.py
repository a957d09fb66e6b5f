"""The bench's load clients: wrk's report is read right, a client's CPU time is its own, and a daemon's
CPU is its namespace's."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from types import SimpleNamespace
from typing import cast

import pytest

from bench.clients import measured, parse_wrk
from bench.figures import daemon_cpu_seconds
from harness.backends.base import DaemonHandle

WRK_OUTPUT = """Running 2s test @ http://127.0.0.1:2375/_ping
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   612.53us  301.12us   9.87ms   88.01%
    Req/Sec    13.21k     1.02k   15.01k    70.00%
  Latency Distribution
     50%  560.00us
     75%  701.00us
     90%    0.90ms
     99%    1.52ms
  52601 requests in 2.00s, 7.68MB read
  Non-2xx or 3xx responses: 3
Requests/sec:  26300.50
Transfer/sec:      3.84MB
"""


def test_parse_wrk_reads_rate_percentiles_and_errors() -> None:
    figures = parse_wrk(WRK_OUTPUT)
    assert figures == {"req_per_s": 26300.5, "p50_ms": pytest.approx(0.56), "p99_ms": 1.52, "errors": 3.0}
    with pytest.raises(RuntimeError, match="no Requests/sec line"):
        parse_wrk("unable to connect to 127.0.0.1:2375 Connection refused\n")


def test_measured_counts_the_childs_cpu_not_its_wall_time() -> None:
    busy = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\nprint('ok')"
    out, cpu, wall = measured([sys.executable, "-c", busy], 30)
    assert out == "ok\n" and 0.3 <= cpu <= wall
    _, idle_cpu, idle_wall = measured([sys.executable, "-c", "import time; time.sleep(0.3)"], 30)
    assert idle_cpu < 0.25 <= idle_wall
    with pytest.raises(RuntimeError, match="exited 3"):
        measured([sys.executable, "-c", "raise SystemExit(3)"], 30)


@pytest.mark.skipif(os.geteuid() != 0, reason="a network namespace of its own needs root")
def test_daemon_cpu_counts_its_namespace_and_reaped_children_only() -> None:
    # a "daemon" in its own netns burns 0.3 s itself and reaps a child that burned 0.3 s
    burn = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"
    code = (
        f"import subprocess, sys\n{burn}"
        f"subprocess.run([sys.executable, '-c', {burn!r}], check=True)\n"
        "print('done', flush=True)\nsys.stdin.read()\n"
    )
    proc = subprocess.Popen(
        ["unshare", "--net", "--", sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "done\n"
        end = time.process_time() + 0.3  # this process's own CPU is outside the namespace
        while time.process_time() < end:
            pass
        cpu = daemon_cpu_seconds(cast(DaemonHandle, SimpleNamespace(pid=proc.pid)))
        assert 0.6 <= cpu < 0.9
    finally:
        proc.communicate("")
