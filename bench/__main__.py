"""``python -m bench``: measure refd and dockerd in the same run, interleaved, and write reports/bench.*.

Every figure is taken for every target in turn (A B A B ...) so that drift on a shared machine
hits both; the report gives min, median and max per target and the ratio of the medians.
Benchmarks are not tests: nothing here asserts a timing.

Every figure names the daemon configuration it was taken in (``CONFIGS``): boot is taken in the harness's
default (a docker0 bridge and iptables rules) and in a minimal one (``--bridge=none --iptables=false``); the
throughput and container figures on daemons that also listen on loopback TCP for ``wrk``.

Figures: boot (fresh data-root to first OK /_ping), restart on an existing data-root, SIGTERM to
exit; ``GET /_ping`` and ``GET /containers/json`` (0 and 50 running containers) with 16
keep-alive connections (req/s, p50, p99), by the bench's Python client on the unix socket and by ``wrk``
over TCP, each with the client's own CPU share (``bench/clients.py``); memory (RSS and PSS of the
daemon and every helper or
shim process in its network namespace) idle and with 20 running containers; ``docker run --rm``
through the real CLI; API create + start + wait + delete and each step; 50 containers created
and started concurrently, then force-removed concurrently; ``docker exec CTR true``; a container
writing 100 MiB of log lines and ``docker logs`` reading them; ``docker pull`` of a 100 MB image
from a loopback registry (``bench/pull.py``); a 10-step Dockerfile built with the classic builder,
without and with the cache (``bench/build.py``); optionally (``--suite``) the conformance suites' wall
time per target.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from harness.backends.base import DaemonHandle, DaemonSpec
from harness.backends.local import LocalBackend
from harness.targets import Target, resolve_target
from harness.wait import ping_once

from . import clients
from . import figures as fig
from .build import BUILD_FIGURES, build_figures
from .pull import PULL_FIGURES, pull_figures

BACKEND = LocalBackend()

#: figure key -> (label, unit); the report lists figures in this order. ``/s`` figures: higher is better.
FIGURES: dict[str, tuple[str, str]] = {
    "boot_s": ("boot: fresh data-root to first OK /_ping", "s"),
    "boot_min_s": ("boot: fresh data-root to first OK /_ping", "s"),
    "boot_cpu_ms": ("  boot: CPU of the daemon and its helpers, spawn to first OK /_ping", "ms"),
    "boot_min_cpu_ms": ("  boot: CPU of the daemon and its helpers, spawn to first OK /_ping", "ms"),
    "restart_s": ("boot on an existing data-root (image loaded)", "s"),
    "stop_s": ("SIGTERM to exit", "s"),
    "cli_run_rm_s": ("`docker run --rm busybox true` (real CLI)", "s"),
    "api_lifecycle_s": ("API create + start + wait + delete", "s"),
    "api_create_s": ("  API create", "s"),
    "api_start_s": ("  API start", "s"),
    "api_wait_s": ("  API wait", "s"),
    "api_delete_s": ("  API delete", "s"),
    "exec_s": ("`docker exec CTR true` (real CLI)", "s"),
    "exec_daemon_cpu_ms": ("  the daemon's CPU per `docker exec CTR true` (its helpers included)", "ms"),
    "start50_s": ("50 containers created + started concurrently", "s"),
    "remove50_s": ("50 running containers force-removed concurrently", "s"),
    "logs_write_100mb_s": ("container writes 100 MiB of log lines (start to exit)", "s"),
    "logs_read_100mb_s": ("`docker logs` of those 100 MiB", "s"),
    "ping_req_per_s": ("`/_ping` throughput, 16 connections, Python client on the unix socket", "req/s"),
    "ping_p50_ms": ("`/_ping` p50 latency (Python client, unix)", "ms"),
    "ping_p99_ms": ("`/_ping` p99 latency (Python client, unix)", "ms"),
    "ping_client_cpu_pct": ("  the Python client's CPU during `/_ping` (% of one CPU)", "%"),
    "ping_daemon_cpu_us": ("  the daemon's CPU per `/_ping` (Python client, unix)", "us"),
    "ping_wrk_req_per_s": ("`/_ping` throughput, 16 connections, wrk (2 threads) over TCP", "req/s"),
    "ping_wrk_p50_ms": ("`/_ping` p50 latency (wrk, TCP)", "ms"),
    "ping_wrk_p99_ms": ("`/_ping` p99 latency (wrk, TCP)", "ms"),
    "ping_wrk_client_cpu_pct": ("  wrk's CPU during `/_ping` (% of one CPU, 2 threads)", "%"),
    "ping_wrk_daemon_cpu_us": ("  the daemon's CPU per `/_ping` (wrk, TCP)", "us"),
    "ps0_req_per_s": (
        "`/containers/json` (0 containers) throughput, 16 connections, Python client, unix",
        "req/s",
    ),
    "ps0_p50_ms": ("`/containers/json` (0) p50 latency (Python client, unix)", "ms"),
    "ps0_p99_ms": ("`/containers/json` (0) p99 latency (Python client, unix)", "ms"),
    "ps0_client_cpu_pct": ("  the Python client's CPU during `/containers/json` (0)", "%"),
    "ps0_daemon_cpu_us": ("  the daemon's CPU per `/containers/json` (0) (Python client, unix)", "us"),
    "ps0_wrk_req_per_s": (
        "`/containers/json` (0 containers) throughput, 16 connections, wrk over TCP",
        "req/s",
    ),
    "ps0_wrk_p50_ms": ("`/containers/json` (0) p50 latency (wrk, TCP)", "ms"),
    "ps0_wrk_p99_ms": ("`/containers/json` (0) p99 latency (wrk, TCP)", "ms"),
    "ps0_wrk_client_cpu_pct": ("  wrk's CPU during `/containers/json` (0)", "%"),
    "ps0_wrk_daemon_cpu_us": ("  the daemon's CPU per `/containers/json` (0) (wrk, TCP)", "us"),
    "ps50_req_per_s": ("`/containers/json` (50 running) throughput, 16 connections, Python client", "req/s"),
    "ps50_p50_ms": ("`/containers/json` (50) p50 latency", "ms"),
    "ps50_p99_ms": ("`/containers/json` (50) p99 latency", "ms"),
    "ps50_client_cpu_pct": ("  the Python client's CPU during `/containers/json` (50)", "%"),
    "ps50_daemon_cpu_us": ("  the daemon's CPU per `/containers/json` (50)", "us"),
    "idle_rss_mib": ("memory idle: RSS of daemon + helpers/shims", "MiB"),
    "idle_pss_mib": ("memory idle: PSS of daemon + helpers/shims", "MiB"),
    "run20_rss_mib": ("memory, 20 running containers: RSS of daemon + helpers/shims", "MiB"),
    "run20_pss_mib": ("memory, 20 running containers: PSS of daemon + helpers/shims", "MiB"),
    "idle_uss_mib": ("memory idle: USS (private pages) of daemon + helpers/shims", "MiB"),
    "run20_uss_mib": ("memory, 20 running containers: USS of daemon + helpers/shims", "MiB"),
    **PULL_FIGURES,
    **BUILD_FIGURES,
    "suite_s": ("conformance suites' wall time (--suite)", "s"),
}


#: the daemon configurations figures are taken in: (label, flags added to the backend's defaults)
DEFAULT = "default"
MINIMAL = "minimal"
LOADED = "default+tcp"
CONFIGS: dict[str, tuple[str, list[str], list[str]]] = {
    DEFAULT: ("the harness's defaults: docker0 bridge, iptables, one unix socket", [], []),
    MINIMAL: ("`--bridge=none --iptables=false`, one unix socket", ["--bridge=none", "--iptables=false"], []),
    LOADED: (
        f"defaults + `-H {clients.TCP_HOST} --tls=false` (a loopback TCP listener for wrk; no 15 s pause)",
        ["--tls=false"],
        [clients.TCP_HOST],
    ),
}
#: which configuration each figure is taken in (figures not listed: DEFAULT)
FIGURE_CONFIG = {
    "boot_min_s": MINIMAL,
    "boot_min_cpu_ms": MINIMAL,
    **{
        key: LOADED
        for key in FIGURES
        if key.startswith(
            (
                "ping_",
                "ps0_",
                "ps50_",
                "idle_",
                "run20_",
                "cli_",
                "api_",
                "exec_",
                "start50",
                "remove50",
                "logs_",
            )
        )
    },
}


def spec_for(config: str) -> DaemonSpec:
    """A DaemonSpec booting the daemon in ``config`` (a CONFIGS key)."""
    _, args, hosts = CONFIGS[config]
    return DaemonSpec(args=list(args), extra_hosts=list(hosts))


def _workdir(target: Target) -> str:
    return tempfile.mkdtemp(prefix=f"harness-bench-{target.name}-")


#: how often the boot figures poll ``/_ping``. The backend's readiness wait backs off to 200 ms between
#: attempts (0, 20, 50, 95, 162, 263, 415 ms...), so a boot was timed at the next attempt, up to 150 ms late.
BOOT_POLL_S = 0.002


def _until_ping(handle: DaemonHandle, timeout: float) -> tuple[float, float]:
    """Poll ``/_ping`` every BOOT_POLL_S; the ``perf_counter`` of the first OK and the daemon's CPU seconds
    then, or the backend's error."""
    endpoint = handle.endpoint
    deadline = time.monotonic() + timeout
    while endpoint is not None and handle.returncode is None and time.monotonic() < deadline:
        try:
            if ping_once(endpoint) == 200:
                return time.perf_counter(), fig.daemon_cpu_seconds(handle)
        except OSError:
            pass
        time.sleep(BOOT_POLL_S)
    BACKEND.wait_ready(handle, timeout=1)  # raises with the log excerpt and what to check
    return time.perf_counter(), fig.daemon_cpu_seconds(handle)


def boot(target: Target, spec: DaemonSpec | None = None) -> tuple[DaemonHandle, float]:
    """Boot on a fresh workdir; seconds from the spawn to the first OK ``/_ping``."""
    handle, took, _ = boot_measured(target, spec)
    return handle, took


def boot_measured(target: Target, spec: DaemonSpec | None = None) -> tuple[DaemonHandle, float, float]:
    """:func:`boot`, with the CPU seconds the daemon and its helpers used until that ``/_ping``."""
    workdir = _workdir(target)
    spec = dataclasses.replace(spec or DaemonSpec(), wait=False)
    start = time.perf_counter()
    try:
        handle = BACKEND.start(target, spec, workdir)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)  # a failed start leaves its files to the caller
        raise
    try:
        ready, cpu = _until_ping(handle, spec.timeout)
        BACKEND.wait_ready(handle)  # the backend's bookkeeping (namespaces, ledger): answers at once now
    except BaseException:
        BACKEND.teardown(handle)
        raise
    return handle, ready - start, cpu


def stop_time(handle: DaemonHandle) -> float:
    """SIGTERM to exit, timed on the process's pidfd (Popen.wait(timeout) polls with sleeps up to 50 ms)."""
    proc = handle.process
    assert proc is not None
    pidfd = os.pidfd_open(proc.pid)
    try:
        start = time.perf_counter()
        handle.signal(signal.SIGTERM)
        ready, _, _ = select.select([pidfd], [], [], 60)
        took = time.perf_counter() - start
    finally:
        os.close(pidfd)
    if not ready:
        raise RuntimeError(f"{handle.target.name} did not exit within 60 s of SIGTERM")
    proc.wait()
    return took


def restart_time(handle: DaemonHandle) -> float:
    """Boot again on the (stopped) daemon's data-root, to first OK /_ping."""
    start = time.perf_counter()
    BACKEND.restart(handle)  # the handle's spec has wait=False (boot): the spawn only
    ready, _ = _until_ping(handle, handle.spec.timeout)
    BACKEND.wait_ready(handle)
    return ready - start


def summarize(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values), "n": len(values)}


class Recorder:
    def __init__(self, targets: list[Target]) -> None:
        self.values: dict[str, dict[str, list[float]]] = {t.name: {} for t in targets}
        self.errors: dict[str, list[str]] = {t.name: [] for t in targets}

    def add(self, target: Target, key: str, value: float) -> None:
        self.values[target.name].setdefault(key, []).append(value)

    def attempt(self, target: Target, what: str, func: Callable[[], None]) -> None:
        """Run one measurement; a failure is recorded (and printed), not fatal."""
        try:
            func()
        except Exception as exc:
            message = f"{what}: {type(exc).__name__}: {exc}"
            self.errors[target.name].append(message)
            print(f"bench: {target.name}: {message}", file=sys.stderr)


def _progress(text: str) -> None:
    print(f"bench: {time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


def daemon_figures(targets: list[Target], rec: Recorder, repeat: int) -> None:
    from harness.testimage import load_test_image

    for rep in range(repeat):  # interleaved: A B A B
        _progress(f"boot/restart/stop, repetition {rep + 1}/{repeat}")
        for target in targets:
            minimal, took, cpu = boot_measured(target, spec_for(MINIMAL))
            BACKEND.teardown(minimal)
            rec.add(target, "boot_min_s", took)
            rec.add(target, "boot_min_cpu_ms", 1000 * cpu)
        for target in targets:
            handle, took, cpu = boot_measured(target)
            rec.add(target, "boot_s", took)
            rec.add(target, "boot_cpu_ms", 1000 * cpu)
            try:

                def cycle(handle: DaemonHandle = handle, target: Target = target) -> None:
                    assert handle.endpoint is not None
                    load_test_image(handle.endpoint)
                    rec.add(target, "stop_s", stop_time(handle))
                    rec.add(target, "restart_s", restart_time(handle))

                rec.attempt(target, "restart", cycle)
            finally:
                BACKEND.teardown(handle)


def container_figures(
    targets: list[Target], rec: Recorder, repeat: int, logs_repeat: int, skip_containers: bool
) -> None:
    from harness.testimage import load_test_image

    handles: dict[str, DaemonHandle] = {}
    sleepers: dict[str, str] = {}
    image = "busybox:latest"
    try:
        for target in targets:
            handles[target.name], _ = boot(target, spec_for(LOADED))
            if not skip_containers:
                endpoint = handles[target.name].endpoint
                assert endpoint is not None
                load_test_image(endpoint, image)
        for rep in range(repeat):
            _progress(f"daemon figures, repetition {rep + 1}/{repeat}")
            for target in targets:
                handle = handles[target.name]
                mem = fig.memory(handle)
                rec.add(target, "idle_rss_mib", mem["rss_mib"])
                rec.add(target, "idle_pss_mib", mem["pss_mib"])
                rec.add(target, "idle_uss_mib", mem["uss_mib"])
            for prefix, path in (("ping", "/_ping"), ("ps0", "/containers/json")):
                for client, suffix in ((clients.python_load, ""), (clients.wrk_load, "_wrk")):
                    for target in targets:

                        def throughput(
                            target: Target = target,
                            key: str = prefix + suffix,
                            path: str = path,
                            load: Any = client,
                        ) -> None:
                            for name, value in load(handles[target.name], path).items():
                                if name != "errors":
                                    rec.add(target, f"{key}_{name}", value)

                        rec.attempt(target, f"load {path} ({client.__name__})", throughput)
        if skip_containers:
            return
        for target in targets:

            def sleeper(target: Target = target) -> None:
                sleepers[target.name] = fig.run_detached(handles[target.name], image, ["sleep", "3600"])

            rec.attempt(target, "exec target", sleeper)
        for rep in range(repeat):
            _progress(f"container figures, repetition {rep + 1}/{repeat}")
            for target in targets:
                handle = handles[target.name]

                def run_rm(handle: DaemonHandle = handle, target: Target = target) -> None:
                    rec.add(target, "cli_run_rm_s", fig.cli_run_rm(handle, image))

                def lifecycle(handle: DaemonHandle = handle, target: Target = target) -> None:
                    steps = fig.api_lifecycle(handle, image)
                    rec.add(target, "api_lifecycle_s", steps["total"])
                    for step in ("create", "start", "wait", "delete"):
                        rec.add(target, f"api_{step}_s", steps[step])

                def exec_true(handle: DaemonHandle = handle, target: Target = target) -> None:
                    cpu0 = fig.daemon_cpu_seconds(handle)
                    rec.add(target, "exec_s", fig.exec_latency(handle, sleepers[target.name]))
                    rec.add(target, "exec_daemon_cpu_ms", 1000 * (fig.daemon_cpu_seconds(handle) - cpu0))

                rec.attempt(target, "run --rm", run_rm)
                rec.attempt(target, "api lifecycle", lifecycle)
                if target.name in sleepers:
                    rec.attempt(target, "exec", exec_true)
            for target in targets:
                handle = handles[target.name]

                def twenty(handle: DaemonHandle = handle, target: Target = target) -> None:
                    _, ids = fig.concurrent_starts(handle, image, 20)
                    time.sleep(1)  # let start-up allocations settle
                    mem = fig.memory(handle)
                    rec.add(target, "run20_rss_mib", mem["rss_mib"])
                    rec.add(target, "run20_pss_mib", mem["pss_mib"])
                    rec.add(target, "run20_uss_mib", mem["uss_mib"])
                    fig.remove_all(handle, ids)

                rec.attempt(target, "memory with 20 containers", twenty)
            for target in targets:
                handle = handles[target.name]

                def fifty(handle: DaemonHandle = handle, target: Target = target) -> None:
                    took, ids = fig.concurrent_starts(handle, image, 50)
                    rec.add(target, "start50_s", took)
                    try:
                        for key, value in clients.python_load(handle, "/containers/json").items():
                            if key != "errors":
                                rec.add(target, f"ps50_{key}", value)
                    finally:
                        rec.add(target, "remove50_s", fig.remove_all(handle, ids))

                rec.attempt(target, "50 concurrent starts", fifty)
            if rep < logs_repeat:
                for target in targets:
                    handle = handles[target.name]

                    def logs(handle: DaemonHandle = handle, target: Target = target) -> None:
                        took = fig.logs_100mb(handle, image)
                        rec.add(target, "logs_write_100mb_s", took["write"])
                        rec.add(target, "logs_read_100mb_s", took["read"])

                    rec.attempt(target, "logs 100 MiB", logs)
    finally:
        for handle in handles.values():
            BACKEND.teardown(handle)


def suite_figures(targets: list[Target], rec: Recorder, suite_args: list[str]) -> None:
    """The conformance suites' wall time per target (pytest in a child process, one target at a time)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for target in targets:
        _progress(f"conformance suites on {target.name}")
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "pytest", *suite_args, f"--targets={target.name}", "-q"],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        rec.add(target, "suite_s", time.perf_counter() - start)
        tail = result.stdout.strip().splitlines()[-1:] or [""]
        _progress(f"suites on {target.name}: exit {result.returncode}, {tail[0]}")
        if result.returncode not in (0, 1):
            rec.errors[target.name].append(f"suites: pytest exit {result.returncode}: {tail[0]}")


def machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo") as fh:
            model = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "")
    except OSError:
        pass
    mem_gib = 0.0
    try:
        with open("/proc/meminfo") as fh:
            mem_gib = int(fh.readline().split()[1]) / (1 << 20)
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_gib, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_at_start": os.getloadavg()[0],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="refd,dockerd", help="comma-separated; first is the numerator")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--logs-repeat", type=int, default=3, help="repetitions of the 100 MiB logs figure")
    parser.add_argument("--reports", default="reports")
    parser.add_argument("--skip-containers", action="store_true", help="only daemon-level figures")
    parser.add_argument("--skip-boot", action="store_true", help="no boot/restart/stop figures")
    parser.add_argument(
        "--boot-only", action="store_true", help="only the boot, restart and SIGTERM-to-exit figures"
    )
    parser.add_argument("--pull-repeat", type=int, default=3, help="repetitions of the 100 MB pull (0: none)")
    parser.add_argument(
        "--build-repeat", type=int, default=3, help="repetitions of the 10-step Dockerfile build (0: none)"
    )
    parser.add_argument(
        "--suite",
        nargs="?",
        const="suites",
        default=None,
        help="also time the conformance suites (default path: suites) once per target; long",
    )
    opts = parser.parse_args(argv)
    targets = [resolve_target(t) for t in opts.targets.split(",") if t]
    for target in targets:
        target.check_available()
        target.prepare()
    rec = Recorder(targets)
    info = machine()
    if not opts.skip_boot:
        daemon_figures(targets, rec, opts.repeat)
    if not opts.boot_only:
        container_figures(targets, rec, opts.repeat, opts.logs_repeat, opts.skip_containers)
    if opts.pull_repeat > 0 and not opts.boot_only:
        pull_figures(targets, rec, opts.pull_repeat, boot, BACKEND.teardown, _progress)
    if opts.build_repeat > 0 and not opts.boot_only:
        build_figures(targets, rec, opts.build_repeat, boot, BACKEND.teardown, _progress)
    if opts.suite and not opts.boot_only:
        suite_figures(targets, rec, opts.suite.split())
    info["loadavg_at_end"] = os.getloadavg()[0]
    report = {
        "schema": "harness.bench/3",
        "machine": info,
        "configs": {name: label for name, (label, _, _) in CONFIGS.items()},
        "figure_config": {key: FIGURE_CONFIG.get(key, DEFAULT) for key in FIGURES},
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "repeat": opts.repeat,
        "targets": {t.name: {"version": t.version} for t in targets},
        "figures": {name: {k: summarize(v) for k, v in figs.items()} for name, figs in rec.values.items()},
        "errors": rec.errors,
    }
    os.makedirs(opts.reports, exist_ok=True)
    with open(os.path.join(opts.reports, "bench.json"), "w") as fh:
        json.dump(report, fh, indent=1)
    md = markdown(report, [t.name for t in targets])
    with open(os.path.join(opts.reports, "bench.md"), "w") as fh:
        fh.write(md)
    print(md)
    return 0


def _fmt(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    return f"{value:.3g}"


def markdown(report: dict[str, Any], names: list[str]) -> str:
    figs = report["figures"]
    m = report["machine"]
    versions = ", ".join(f"{n} {report['targets'].get(n, {}).get('version', '')}".strip() for n in names)
    configs = report.get("configs", {})
    where = report.get("figure_config", {})
    lines = [
        f"# Benchmarks ({report['generated']})",
        "",
        f"Machine: {m['cpus']} CPUs ({m.get('cpu_model') or 'unknown model'}), "
        f"{m.get('memory_gib', '?')} GiB, kernel {m['kernel']}, Python {m['python']}, "
        f"load average {m.get('loadavg_at_start', 0):.2f} at start"
        + (f", {m['loadavg_at_end']:.2f} at the end" if "loadavg_at_end" in m else "")
        + f". Targets: {versions}. {report.get('repeat', '?')} interleaved repetitions; median (min to max).",
        "",
        "Daemon configurations (every figure names the one it was taken in):",
        "",
        *(f"- `{name}`: {label}" for name, label in configs.items()),
        "",
        "| figure | config | unit | "
        + " | ".join(names)
        + (f" | {names[0]}/{names[1]}" if len(names) > 1 else "")
        + " |",
        "|---|---|---|" + "---|" * (len(names) + (1 if len(names) > 1 else 0)),
    ]
    keys = [k for k in FIGURES if any(k in figs.get(n, {}) for n in names)]
    keys += sorted({k for n in names for k in figs.get(n, {})} - set(keys))
    for key in keys:
        label, unit = FIGURES.get(key, (key, ""))
        cells = []
        for n in names:
            s = figs.get(n, {}).get(key)
            cells.append(f"{_fmt(s['median'])} ({_fmt(s['min'])} to {_fmt(s['max'])})" if s else "—")
        ratio = ""
        if len(names) > 1:
            a, b = figs.get(names[0], {}).get(key), figs.get(names[1], {}).get(key)
            ratio = f" | {a['median'] / b['median']:.2f}" if a and b and b["median"] else " | —"
        config = where.get(key, DEFAULT) if configs else "?"
        lines.append(f"| {label} | {config} | {unit} | " + " | ".join(cells) + ratio + " |")
    errors = {n: e for n, e in report.get("errors", {}).items() if e}
    if errors:
        lines += ["", "Errors:"]
        lines += [f"- {n}: {e}" for n, errs in errors.items() for e in errs]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
