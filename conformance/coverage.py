"""Which Engine API operations the scenarios cover, and why the others are left out.

The operations are the swagger's (``harness.swagger``: moby's ``api/swagger.yaml`` from Debian's
``golang-github-docker-docker-dev``, the newest API version by default). A scenario covers an operation when

- its ``ref`` names the operation id (``ref="operation ContainerPause"``), or
- one of its responses answered it: the pytest plugin records the operation ids of every response the
  harness's clients read (``schema_check.operations`` in a results file; the docker CLI's own traffic is not
  seen, so a CLI-only scenario counts through its ``ref``).

An operation no scenario covers is listed with the reason it is out of scope when its area is one the project
leaves out on purpose (``OUT_OF_SCOPE``, by swagger tag or operation id), else as a gap to fill.

``python -m conformance.coverage RESULTS.json... [--markdown]`` prints the table; a ``parity.json`` (all
targets of a run) is read as well as ``<target>.json`` results files.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from conformance.errors import ConformanceError
from conformance.parity import Parity, load_parity
from harness.results import Results, ResultsError, ScenarioResult, SchemaCheck, load_results

__all__ = [
    "OUT_OF_SCOPE",
    "Coverage",
    "Operation",
    "compute",
    "from_parity",
    "load",
    "main",
    "operations",
    "render_markdown",
]

_SWARM = (
    "swarm mode: a node that is not a swarm manager answers 503; refd has no swarm and the scenarios "
    "check only that error (api/swarm/*)"
)

#: Why an operation may stay uncovered, by swagger tag or operation id (an id wins over its tag).
OUT_OF_SCOPE: dict[str, str] = {
    "Swarm": _SWARM,
    "Node": _SWARM,
    "Service": _SWARM,
    "Task": _SWARM,
    "Secret": _SWARM,
    "Config": _SWARM,
    "Plugin": "managed plugins (docker plugin install) need a plugin registry and root-owned plugin "
    "rootfs; refd implements none, the scenarios check the listing and the not-found errors only",
    "Session": "BuildKit's gRPC session over a hijacked connection; only BuildKit builds use it",
    "SwarmInit": "makes the daemon a swarm manager: needs swarm mode, which refd has not",
    "SwarmJoin": "joins a swarm: needs a swarm manager to join",
    "PluginPull": "needs a registry serving plugin images",
    "PluginCreate": "needs a plugin rootfs and config.json built by hand",
    "PluginPush": "needs a registry serving plugin images",
    "PluginUpgrade": "needs an installed plugin",
    "PluginEnable": "needs an installed plugin",
    "PluginDisable": "needs an installed plugin",
    "PluginSet": "needs an installed plugin",
    "GetPluginPrivileges": "needs a registry serving plugin images",
    "VolumeUpdate": "cluster volumes only (CSI in swarm mode)",
    "ImageSearch": "asks Docker Hub's search service: no network in the test environment",
}

_OPERATION_ID = re.compile(r"[A-Z][A-Za-z]+\b")
_METHODS = ("get", "put", "post", "delete", "head", "patch")


@dataclass(frozen=True)
class Operation:
    """One swagger operation: its id, method, path template and tag (area)."""

    id: str
    method: str
    path: str
    tag: str


@dataclass
class Coverage:
    """Per operation id, the scenarios covering it, and how (``ref`` or ``traffic``)."""

    operations: list[Operation]
    by_ref: dict[str, set[str]] = field(default_factory=dict)
    by_traffic: dict[str, set[str]] = field(default_factory=dict)
    unknown_refs: dict[str, set[str]] = field(default_factory=dict)  # scenario -> ids not in the swagger

    def scenarios(self, op: str) -> set[str]:
        return self.by_ref.get(op, set()) | self.by_traffic.get(op, set())

    def covered(self) -> list[Operation]:
        return [o for o in self.operations if self.scenarios(o.id)]

    def uncovered(self) -> list[Operation]:
        return [o for o in self.operations if not self.scenarios(o.id)]

    @staticmethod
    def reason(op: Operation) -> str:
        """Why ``op`` may stay uncovered, or ``""`` when it is a gap."""
        return OUT_OF_SCOPE.get(op.id) or OUT_OF_SCOPE.get(op.tag, "")

    def gaps(self) -> list[Operation]:
        """Uncovered operations with no out-of-scope reason: what scenarios should be written for."""
        return [o for o in self.uncovered() if not self.reason(o)]


def operations(doc: Mapping[str, Any]) -> list[Operation]:
    """The operations of a swagger document, in the document's order."""
    found = []
    for path, ops in (doc.get("paths") or {}).items():
        if not isinstance(ops, Mapping):
            continue
        for method, op in ops.items():
            if method.lower() in _METHODS and isinstance(op, Mapping) and op.get("operationId"):
                tags = op.get("tags") or [""]
                found.append(Operation(str(op["operationId"]), method.upper(), str(path), str(tags[0])))
    return found


def _refs_named(ref: str, known: set[str]) -> tuple[set[str], set[str]]:
    """Operation ids a ref names (known ones, unknown ones): the first word of each comma- or 'and'-separated
    item after 'operation(s)', so 'operations ContainerCreate Tty, ContainerLogs' names two operations and
    'Tty' is a field of the first."""
    named: set[str] = set()
    for part in ref.split(";"):
        m = re.search(r"\boperations?\s+(.*)", part)
        if not m:
            continue
        for item in re.split(r",|\band\b", m.group(1)):
            word = _OPERATION_ID.match(item.strip())
            if word:
                named.add(word.group(0))
    return named & known, named - known


def compute(
    doc: Mapping[str, Any], results: Iterable[Results | ScenarioResult | list[ScenarioResult]]
) -> Coverage:
    """Coverage of ``doc``'s operations by the scenarios in ``results`` (several targets may repeat ids)."""
    cov = Coverage(operations(doc))
    known = {o.id for o in cov.operations}
    for item in results:
        if isinstance(item, Results):
            scenarios: Sequence[ScenarioResult] = item.scenarios
        else:
            scenarios = item if isinstance(item, list) else [item]
        for sc in scenarios:
            named, unknown = _refs_named(sc.ref, known)
            for op in named:
                cov.by_ref.setdefault(op, set()).add(sc.id)
            if unknown:
                cov.unknown_refs.setdefault(sc.id, set()).update(unknown)
            for op in sc.schema_check.operations:
                if op in known:
                    cov.by_traffic.setdefault(op, set()).add(sc.id)
    return cov


def from_parity(parity: Parity) -> list[ScenarioResult]:
    """A parity document's scenarios as results whose traffic is every target's, merged."""
    out = []
    for sc in parity.scenarios:
        ops = sorted({op for r in sc.results.values() for op in r.schema_check.operations})
        check = SchemaCheck(operations=tuple(ops))
        out.append(ScenarioResult(sc.id, "passed", area=sc.area, ref=sc.ref, schema_check=check))
    return out


def load(path: str) -> Results | list[ScenarioResult]:
    """A results file, or a parity document (``harness.parity/*``) as its scenarios."""
    try:
        with open(path, encoding="utf-8") as f:
            kind = str(json.load(f).get("schema", ""))
    except (OSError, ValueError, AttributeError) as exc:
        raise ConformanceError(f"{path}: not a readable results or parity JSON file: {exc}") from None
    return from_parity(load_parity(path)) if kind.startswith("harness.parity/") else load_results(path)


def render_markdown(cov: Coverage, api_version: str = "") -> str:
    """The coverage as Markdown: counts, then uncovered operations with reasons, then the covered ones."""
    total, covered = len(cov.operations), len(cov.covered())
    scope = [o for o in cov.uncovered() if cov.reason(o)]
    api = f"Engine API {api_version}" if api_version else "Engine API"
    lines = [
        f"{api} operations: {total}; covered by at least one scenario: {covered}; "
        f"out of scope: {len(scope)}; gaps: {len(cov.gaps())}.",
        "",
        "| Uncovered operation | Method and path | Why |",
        "|---|---|---|",
    ]
    for op in cov.uncovered():
        why = cov.reason(op) or "**gap**: no scenario yet"
        lines.append(f"| {op.id} | `{op.method} {op.path}` | {why} |")
    lines += ["", "| Covered operation | Scenarios |", "|---|---|"]
    for op in cov.covered():
        ids = sorted(cov.scenarios(op.id))
        shown = ", ".join(f"`{i}`" for i in ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
        lines.append(f"| {op.id} | {shown} |")
    if cov.unknown_refs:
        lines += ["", "Refs naming no operation of this swagger:", ""]
        lines += [f"- `{sc}`: {', '.join(sorted(ops))}" for sc, ops in sorted(cov.unknown_refs.items())]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m conformance.coverage",
        description="Which Engine API operations the scenarios of these results files cover.",
    )
    p.add_argument(
        "results", nargs="+", help="results files (<target>.json) or parity.json of a conformance run"
    )
    p.add_argument(
        "--swagger",
        default="sid",
        help="Debian suite or API version of the swagger (default: sid; HARNESS_SWAGGER_DIR applies)",
    )
    p.add_argument("--markdown", action="store_true", help="print the Markdown table (default: a summary)")
    p.add_argument(
        "--fail-on-gaps", action="store_true", help="exit 1 when an in-scope operation is uncovered"
    )
    args = p.parse_args(argv)
    from harness.swagger import SOURCES, SchemaUnavailable, SwaggerStore

    try:
        source = next((s for s in SOURCES if args.swagger in (s.suite, s.api, s.dockerd)), None)
        if source is None and not re.fullmatch(r"1\.\d+", args.swagger):
            raise ConformanceError(
                f"unknown swagger {args.swagger!r}: name a Debian suite "
                f"({', '.join(s.suite for s in SOURCES)}) or an API version like 1.51"
            )
        spec = SwaggerStore().for_version(source.api if source else args.swagger)
        cov = compute(spec.doc, [load(r) for r in args.results])
    except (ConformanceError, ResultsError, SchemaUnavailable) as exc:
        print(f"coverage: {exc}", file=sys.stderr)
        return 2
    if args.markdown:
        sys.stdout.write(render_markdown(cov, spec.api_version))
    else:
        print(
            f"API {spec.api_version}: {len(cov.covered())}/{len(cov.operations)} operations covered; "
            f"gaps: {', '.join(o.id for o in cov.gaps()) or 'none'}"
        )
    return 1 if args.fail_on_gaps and cov.gaps() else 0


if __name__ == "__main__":
    raise SystemExit(main())
