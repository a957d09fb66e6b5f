"""``python -m bench.lease``: how long ``POST /leases`` takes with and without the service's warm pool.

For each target a service is started in this process on a free loopback port, once with ``pool_size=0``
(every lease boots a fresh daemon) and once with ``pool_size=1`` (the pool is filled first, and again before
every round, so each lease is a pool hit). Each round is one ``POST /leases`` (a default lease, measured on
the client side until the answer is read) and the ``DELETE`` of it. Prints min, median and max per target
and mode. A benchmark, not a test: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from typing import Any

from harness.serve import _request, make_server

__all__ = ["main", "measure"]


def _wait_ready(server: Any, key: str, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = server.service.pool_status().get(key, {})
        if status.get("ready", 0) >= 1:
            return
        if status.get("last_error"):
            raise SystemExit(f"bench.lease: the pool {key} cannot boot: {status['last_error']}")
        time.sleep(0.05)
    raise SystemExit(f"bench.lease: the pool {key} was not filled within {timeout:.0f} s")


def measure(target: str, backend: str, pooled: bool, rounds: int) -> list[float]:
    """Seconds per ``POST /leases`` for ``rounds`` default leases of ``target``."""
    server = make_server(
        port=0, backend=backend, pool_size=1 if pooled else 0, warm=(target,) if pooled else ()
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = "http://{}:{}".format(*server.server_address[:2])
    times: list[float] = []
    try:
        for _ in range(rounds):
            if pooled:
                _wait_ready(server, f"{target}/{backend}")
            start = time.perf_counter()
            status, lease = _request("POST", "/leases", {"target": target}, url=url)
            times.append(time.perf_counter() - start)
            if status != 201:
                raise SystemExit(f"bench.lease: POST /leases for {target} answered {status}: {lease}")
            if lease["pooled"] != pooled:
                raise SystemExit(f"bench.lease: expected pooled={pooled}, got a lease with {lease['pooled']}")
            _request("DELETE", f"/leases/{lease['id']}", url=url)
    finally:
        server.shutdown()
        server.service.close()
        server.server_close()
    return times


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.lease", description=__doc__.splitlines()[0])
    p.add_argument("--targets", default="refd,dockerd-28")
    p.add_argument("--backend", default="local")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    print(f"{'target':<14} {'pool':<5} {'min':>8} {'median':>8} {'max':>8}  (seconds per POST /leases)")
    for target in args.targets.split(","):
        for pooled in (False, True):
            t = measure(target, args.backend, pooled, args.rounds)
            print(
                f"{target:<14} {'yes' if pooled else 'no':<5} {min(t):8.3f} {statistics.median(t):8.3f} "
                f"{max(t):8.3f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
