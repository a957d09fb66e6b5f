"""reports/reliability.md from the figures the reliability tests recorded (reports/reliability.json).

``python -m tests.reliability.report [figures.json] [out.md]``; the reliability session's conftest calls
``write`` at the end of every run that sets ``HARNESS_RELIABILITY_REPORT``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

__all__ = ["render", "write"]


def _table(rows: list[list[Any]], head: list[str]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return [*out, ""]


def render(data: dict[str, Any]) -> str:
    lines = [
        "# Reliability report",
        "",
        "Written by `nox -s reliability` (tests/reliability, long variants; `nox -s tests` runs the same",
        "tests at a smaller scale). What each figure means: docs/reliability.md.",
        "",
        f"Variant: **{data.get('_variant', '?')}**; recorded {data.get('_when', '?')} at commit "
        f"`{data.get('_commit', '?')}`; pytest exit status {data.get('_exitstatus', '?')}.",
        "",
    ]
    fuzz = data.get("fuzz")
    if fuzz:
        lines += ["## Fuzzing every swagger operation (refd)", ""]
        lines += _table(
            [
                ["operations (moby swagger, API 1.51)", fuzz.get("operations")],
                ["requests sent", fuzz.get("requests")],
                ["5xx answers", fuzz.get("5xx")],
                [
                    "… of which dockerd 28.5 answers the same 5xx (remote unreachable, its own 500s)",
                    fuzz.get("5xx_server_side"),
                ],
                ["failures (5xx for a client mistake, no answer, hang)", fuzz.get("failures")],
                ["crashes (refd gone after an operation)", fuzz.get("crashes", "?")],
                ["hangs (no response head within 20 s)", fuzz.get("hangs", "?")],
                ["slowest response head (s)", fuzz.get("slowest_head_s")],
                ["seconds", fuzz.get("seconds")],
            ],
            ["figure", "value"],
        )
        lines += ["Statuses: " + ", ".join(f"{k}: {v}" for k, v in fuzz.get("statuses", {}).items()), ""]
    http = data.get("http")
    if http:
        lines += ["## Malformed HTTP (refd)", ""]
        slow = http.get("slowloris", {})
        lines += _table(
            [
                ["slowloris clients held open", slow.get("slow_clients")],
                ["worst /_ping meanwhile (s)", slow.get("worst_ping_s")],
                ["refd RSS growth over the module (MiB)", http.get("rss_growth_mib")],
            ],
            ["figure", "value"],
        )
    arch = data.get("archives")
    if arch:
        lines += ["## Hostile archives (refd)", ""]
        rows = [[f"PUT /archive {k}", v] for k, v in sorted(arch.get("put_archive", {}).items())]
        rows += [[f"import {k}", v] for k, v in sorted(arch.get("import", {}).items())]
        rows += [[f"load {k}", v] for k, v in sorted(arch.get("load", {}).items())]
        lines += [
            "Every case: nothing written outside the target (a host directory snapshot is unchanged).",
            "",
        ]
        lines += _table(rows, ["archive", "answer"])
        if "bomb" in arch:
            b = arch["bomb"]
            lines += [
                f"Decompression bomb: {b['compressed_kib']} KiB gzip -> {b['expanded_mib']} MiB imported, "
                f"refd RSS grew {b['rss_growth_mib']} MiB. Device nodes: {arch.get('device_nodes', '?')}. "
                "A 1 TiB sparse entry is written with its holes.",
                "",
            ]
    config = data.get("config")
    if config:
        lines += ["## Hostile daemon.json and flags", ""]
        lines += [
            f"Fuzzed configurations (main --validate, in-process): {config.get('fuzzed_examples')}; "
            "never a traceback, exit 0 or 1 with one line.",
            "",
        ]
        rows = []
        for case, out in sorted(config.get("boot", {}).items()):
            rows.append(
                [case, out.get("refd"), out.get("dockerd-28", "not booted"), out.get("divergence", "")]
            )
        lines += _table(rows, ["configuration", "refd", "dockerd 28.5", "known divergence"])
    faults = data.get("faults")
    if faults:
        lines += ["## Faults (refd)", ""]
        rows = [
            [
                f"kill -9 during {k}",
                v.get("survived"),
                v.get("containers"),
                v.get("running"),
                v.get("images"),
                v.get("log_lines_intact", ""),
            ]
            for k, v in sorted(faults.get("kill9", {}).items())
        ]
        lines += _table(
            rows,
            ["point", "survived", "containers after", "running after", "images after", "log lines intact"],
        )
        for key in ("disk_full", "read_only_data_root", "missing_pids_controller", "oom", "fork_bomb"):
            if key in faults:
                lines.append(f"- {key.replace('_', ' ')}: `{json.dumps(faults[key])}`")
        lines.append("")
    leaks = data.get("leaks")
    if leaks:
        lines += ["## Leaks (refd)", ""]
        lines += _table([[k, v] for k, v in sorted(leaks.items())], ["after the lifecycles", "left over"])
    load = data.get("load")
    if load:
        lines += ["## Load", ""]
        keys = [
            "clients",
            "requests_per_client",
            "requests",
            "errors",
            "hung_clients",
            "wall_s",
            "throughput_rps",
            "p50_ms",
            "p99_ms",
            "max_ms",
            "rss_start_mib",
            "rss_peak_mib",
            "containers_left",
        ]
        targets = sorted(load)
        lines += _table([[k, *(load[t].get(k) for t in targets)] for k in keys], ["figure", *targets])
    access = data.get("access")
    if access:
        lines += ["## Access", ""]
        tls = access.get("tls", {})
        if tls:
            rows = []
            for mode, cases in tls.get("refd", {}).items():
                for case, verdict in cases.items():
                    rows.append([mode, case, verdict, tls.get("dockerd-28", {}).get(mode, {}).get(case, "?")])
            lines += _table(rows, ["listener", "client", "refd", "dockerd 28.5"])
        if "unix_socket" in access:
            u = access["unix_socket"]
            lines.append(
                f"- unix socket: a user outside the group gets `{u['outsider']}`, a member "
                f"`{u['group_member']}`; modes seen while refd started: {', '.join(u['modes_seen'])}"
            )
        if "host_paths" in access:
            lines.append(
                "- host paths (no host file read or written; answers): `"
                + json.dumps(access["host_paths"], sort_keys=True)
                + "`"
            )
        if "capabilities" in access:
            lines.append("- CapEff: `" + json.dumps(access["capabilities"], sort_keys=True) + "`")
        lines.append("")
    return "\n".join(lines)


def write(data: dict[str, Any], path: str) -> None:
    with open(path, "w") as fh:
        fh.write(render(data))


def main(argv: list[str]) -> int:
    src = argv[0] if argv else "reports/reliability.json"
    out = argv[1] if len(argv) > 1 else "reports/reliability.md"
    with open(src) as fh:
        write(json.load(fh), out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
