"""``python -m bench``: measure refd and dockerd in the same run, interleaved, and write reports/bench.*.

Figures (each for every target, repetitions interleaved A B A B so drift hits both):
boot (fresh data-root to first OK /_ping), SIGTERM to exit, /_ping throughput and latency with
16 keep-alive connections, idle memory (RSS and PSS of the daemon and every process in its
namespace), `docker run --rm IMAGE true` through the real CLI, and API create+start+wait+delete.
Benchmarks are not tests: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from harness.backends.base import DaemonHandle, DaemonSpec
from harness.backends.local import LocalBackend
from harness.targets import Target, resolve_target

BACKEND = LocalBackend()


def boot(target: Target, spec: DaemonSpec | None = None) -> tuple[DaemonHandle, float]:
    workdir = tempfile.mkdtemp(prefix=f"harness-bench-{target.name}-")
    start = time.perf_counter()
    handle = BACKEND.start(target, spec or DaemonSpec(), workdir)
    return handle, time.perf_counter() - start


def stop_time(handle: DaemonHandle) -> float:
    start = time.perf_counter()
    handle.stop(60)
    return time.perf_counter() - start


def _ping_worker(path: str, deadline: float, latencies: list[float]) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    request = b"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n"
    buf = b""
    try:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            sock.sendall(request)
            while True:
                head_end = buf.find(b"\r\n\r\n")
                if head_end >= 0:
                    head = buf[:head_end].lower()
                    length = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
                    total = head_end + 4 + length
                    if len(buf) >= total:
                        buf = buf[total:]
                        break
                chunk = sock.recv(65536)
                if not chunk:
                    return
                buf += chunk
            latencies.append(time.perf_counter() - t0)
    finally:
        sock.close()


def ping_load(handle: DaemonHandle, connections: int = 16, seconds: float = 3.0) -> dict[str, float]:
    lists: list[list[float]] = [[] for _ in range(connections)]
    deadline = time.perf_counter() + seconds
    threads = [
        threading.Thread(target=_ping_worker, args=(handle.socket_path, deadline, lst)) for lst in lists
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    all_lat = sorted(x for lst in lists for x in lst)
    if not all_lat:
        return {"req_per_s": 0.0, "p50_ms": 0.0, "p99_ms": 0.0}
    return {
        "req_per_s": len(all_lat) / seconds,
        "p50_ms": all_lat[len(all_lat) // 2] * 1000,
        "p99_ms": all_lat[int(len(all_lat) * 0.99) - 1] * 1000,
    }


def memory(handle: DaemonHandle) -> dict[str, float]:
    """RSS and PSS (MiB) of every process in the daemon's network namespace (daemon, containerd, shims)."""
    try:
        ino = os.stat(f"/proc/{handle.pid}/ns/net").st_ino
    except OSError:
        return {"rss_mib": 0.0, "pss_mib": 0.0}
    rss = pss = 0
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
        except OSError:
            continue
    return {"rss_mib": rss / 1024, "pss_mib": pss / 1024}


def cli_run_rm(handle: DaemonHandle, image: str) -> float:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": handle.workdir,
        "DOCKER_HOST": f"unix://{handle.socket_path}",
    }
    start = time.perf_counter()
    result = subprocess.run(
        ["docker", "run", "--rm", image, "true"], env=env, capture_output=True, timeout=120
    )
    took = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"docker run failed on {handle.target.name}: {result.stderr.decode()[-500:]}")
    return took


def api_lifecycle(handle: DaemonHandle, image: str) -> float:
    from harness.client import EngineClient

    assert handle.endpoint is not None
    client = EngineClient(handle.endpoint)
    try:
        start = time.perf_counter()
        cid = client.post("/v1.41/containers/create", json={"Image": image, "Cmd": ["true"]}).json()["Id"]
        client.post(f"/v1.41/containers/{cid}/start")
        client.post(f"/v1.41/containers/{cid}/wait")
        client.delete(f"/v1.41/containers/{cid}")
        return time.perf_counter() - start
    finally:
        client.close()


def summarize(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values), "n": len(values)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="refd,dockerd")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--reports", default="reports")
    parser.add_argument("--skip-containers", action="store_true", help="only daemon-level figures")
    opts = parser.parse_args(argv)
    targets = [resolve_target(t) for t in opts.targets.split(",") if t]
    for target in targets:
        target.check_available()
    figures: dict[str, dict[str, list[float]]] = {t.name: {} for t in targets}

    def record(target: Target, name: str, value: float) -> None:
        figures[target.name].setdefault(name, []).append(value)

    for _ in range(opts.repeat):  # interleaved: A B A B
        for target in targets:
            handle, took = boot(target)
            record(target, "boot_s", took)
            try:
                record(target, "stop_s", stop_time(handle))
            finally:
                BACKEND.teardown(handle)
    image = ""
    for target in targets:
        handle, _ = boot(target)
        try:
            mem = memory(handle)
            record(target, "idle_rss_mib", mem["rss_mib"])
            record(target, "idle_pss_mib", mem["pss_mib"])
            load = ping_load(handle)
            for key, value in load.items():
                record(target, f"ping_{key}", value)
            if not opts.skip_containers:
                from harness.testimage import load_test_image

                try:
                    assert handle.endpoint is not None
                    image = load_test_image(handle.endpoint)
                    for _ in range(opts.repeat):
                        record(target, "cli_run_rm_s", cli_run_rm(handle, image))
                        record(target, "api_create_start_wait_delete_s", api_lifecycle(handle, image))
                except Exception as exc:
                    figures[target.name].setdefault("errors", []).append(0.0)
                    print(f"bench: container figures failed on {target.name}: {exc}", file=sys.stderr)
        finally:
            BACKEND.teardown(handle)
    report = {
        "schema": "harness.bench/1",
        "machine": {
            "cpus": os.cpu_count(),
            "kernel": platform.release(),
            "python": platform.python_version(),
        },
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "targets": {t.name: {"version": t.version} for t in targets},
        "figures": {
            name: {k: summarize(v) for k, v in figs.items() if k != "errors"}
            for name, figs in figures.items()
        },
    }
    os.makedirs(opts.reports, exist_ok=True)
    with open(os.path.join(opts.reports, "bench.json"), "w") as fh:
        json.dump(report, fh, indent=1)
    md = _markdown(report, [t.name for t in targets])
    with open(os.path.join(opts.reports, "bench.md"), "w") as fh:
        fh.write(md)
    print(md)
    return 0


def _markdown(report: dict[str, Any], names: list[str]) -> str:
    figs = report["figures"]
    keys = sorted({k for n in names for k in figs.get(n, {})})
    lines = [
        f"# Benchmarks ({report['generated']}, {report['machine']['cpus']} CPUs, kernel "
        f"{report['machine']['kernel']})",
        "",
        "| figure | "
        + " | ".join(f"{n} median (min to max)" for n in names)
        + (f" | ratio {names[0]}/{names[1]}" if len(names) > 1 else "")
        + " |",
        "|---|" + "---|" * (len(names) + (1 if len(names) > 1 else 0)),
    ]
    fmt: Callable[[dict[str, float]], str] = lambda s: f"{s['median']:.4g} ({s['min']:.3g} to {s['max']:.3g})"  # noqa: E731
    for key in keys:
        cells = [fmt(figs[n][key]) if key in figs.get(n, {}) else "—" for n in names]
        ratio = ""
        if (
            len(names) > 1
            and all(key in figs.get(n, {}) for n in names[:2])
            and figs[names[1]][key]["median"]
        ):
            ratio = f" | {figs[names[0]][key]['median'] / figs[names[1]][key]['median']:.2f}"
        elif len(names) > 1:
            ratio = " | —"
        lines.append(f"| {key} | " + " | ".join(cells) + ratio + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
