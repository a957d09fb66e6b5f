"""The per-target results file (``reports/<target>.json``, schema ``harness.results/3``).

The pytest plugin writes one of these per target, so the format lives here, with its writer; the runner
(``conformance``), parity and the reports only ever read them.
Keeping results as plain data with ``to_dict``/``from_dict`` is what lets parity run from serialised files and
lets shards from several machines be merged.

Version 2 added the schema checks: ``schema_check`` at the top (mode, swaggers used, why checks were off) and
per scenario (responses checked, skipped by reason, findings). Version 3 added the daemon profiles:
``profiles`` at the top (what each profile of the run set) and scenario ids ``<id>@<profile>`` outside the
default profile. Version 1 and 2 files still load (default profile only; version 1 with no checks).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import HarnessError
from .profiles import split_id

__all__ = [
    "OUTCOMES",
    "READABLE_SCHEMAS",
    "SCHEMA",
    "Finding",
    "Results",
    "ResultsError",
    "ScenarioResult",
    "SchemaCheck",
    "SchemaRun",
    "TargetInfo",
    "dump_results",
    "load_results",
    "merge_results",
]

SCHEMA = "harness.results/3"
READABLE_SCHEMAS = ("harness.results/1", "harness.results/2", SCHEMA)
OUTCOMES = ("passed", "failed", "skipped", "error")


class ResultsError(HarnessError):
    """A results file (or dict) is not a valid ``harness.results/3`` (or ``/2``, ``/1``) document.

    ``source`` names the file (or ``<dict>``), ``where`` the offending field, ``problem`` what is wrong.
    """

    def __init__(self, source: str, problem: str, where: str = "") -> None:
        self.source = source
        self.where = where
        self.problem = problem
        at = f" at {where}" if where else ""
        super().__init__(f"{source}: invalid results file{at}: {problem}")


@dataclass(frozen=True)
class TargetInfo:
    """Which daemon a results file describes, as the plugin resolved it."""

    name: str
    version: str = ""
    api_version: str = ""
    backend: str = ""
    kernel: str = ""
    docker_cli: str = ""  # the CLI the scenarios drove: "28.5.2+dfsg4 (Debian sid docker-cli 28.5.2+dfsg4-5)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "api_version": self.api_version,
            "backend": self.backend,
            "kernel": self.kernel,
            "docker_cli": self.docker_cli,
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>", where: str = "target") -> TargetInfo:
        obj = _mapping(data, source, where)
        _no_unknown(obj, {"name", "version", "api_version", "backend", "kernel", "docker_cli"}, source, where)
        name = _str(obj, "name", source, where, required=True)
        if not name:
            raise ResultsError(source, "target name must not be empty", f"{where}.name")
        return cls(
            name=name,
            version=_str(obj, "version", source, where),
            api_version=_str(obj, "api_version", source, where),
            backend=_str(obj, "backend", source, where),
            kernel=_str(obj, "kernel", source, where),
            docker_cli=_str(obj, "docker_cli", source, where),
        )


@dataclass(frozen=True)
class Finding:
    """One schema violation in a response a scenario observed (see ``harness.swagger``).

    ``path`` is the swagger's path template, ``url`` the request path of the first occurrence, ``field`` a
    JSON pointer into the body with array indices as ``*``, ``count`` how often the scenario hit it.
    ``on_reference`` is set by parity for the targets compared with the reference: True when the reference
    target answered with the same violation (same operation, status, API version, field and keyword), so the
    gap is the swagger's or shared with dockerd rather than this target's own.
    """

    method: str
    path: str
    status: int
    api_version: str
    field: str
    keyword: str
    message: str
    url: str = ""
    count: int = 1
    on_reference: bool | None = None

    def key(self) -> tuple[str, str, int, str, str, str]:
        return (self.method, self.path, self.status, self.api_version, self.field, self.keyword)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "api_version": self.api_version,
            "field": self.field,
            "keyword": self.keyword,
            "message": self.message,
            "url": self.url,
            "count": self.count,
            **({} if self.on_reference is None else {"on_reference": self.on_reference}),
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>", where: str = "finding") -> Finding:
        obj = _mapping(data, source, where)
        keys = {"method", "path", "status", "api_version", "field", "keyword", "message", "url", "count"}
        _no_unknown(obj, keys | {"on_reference"}, source, where)
        on_reference = obj.get("on_reference")
        if on_reference is not None and not isinstance(on_reference, bool):
            raise ResultsError(source, "expected a boolean", f"{where}.on_reference")
        return cls(
            method=_str(obj, "method", source, where, required=True),
            path=_str(obj, "path", source, where, required=True),
            status=int(_number(obj, "status", source, where)),
            api_version=_str(obj, "api_version", source, where),
            field=_str(obj, "field", source, where),
            keyword=_str(obj, "keyword", source, where),
            message=_str(obj, "message", source, where),
            url=_str(obj, "url", source, where),
            count=int(_number(obj, "count", source, where) or 1),
            on_reference=on_reference,
        )

    def summary(self) -> str:
        times = f" (x{self.count})" if self.count > 1 else ""
        return (
            f"{self.method} {self.path} {self.status} [API {self.api_version}] {self.field or '/'}: "
            f"{self.message}{times}"
        )


def merge_findings(*groups: Sequence[Finding]) -> list[Finding]:
    """Merge finding lists, adding up the counts of equal ones (same operation, status, field, keyword)."""
    merged: dict[tuple[str, str, int, str, str, str], Finding] = {}
    for group in groups:
        for f in group:
            old = merged.get(f.key())
            merged[f.key()] = f if old is None else replace(old, count=old.count + f.count)
    return list(merged.values())


@dataclass(frozen=True)
class SchemaCheck:
    """A scenario's schema checks on one target: responses checked, skipped (by reason), findings, and the
    swagger operation ids its responses answered (``operations``: what ``conformance.coverage`` counts)."""

    checked: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()
    operations: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "skipped": dict(self.skipped),
            "findings": [f.to_dict() for f in self.findings],
            "operations": list(self.operations),
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>", where: str = "schema_check") -> SchemaCheck:
        if data is None:
            return cls()
        obj = _mapping(data, source, where)
        _no_unknown(obj, {"checked", "skipped", "findings", "operations"}, source, where)
        skipped = obj.get("skipped") or {}
        if not isinstance(skipped, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in skipped.values()
        ):
            raise ResultsError(source, "expected an object of counts", f"{where}.skipped")
        raw = obj.get("findings") or []
        if not isinstance(raw, list):
            raise ResultsError(source, f"expected a list, got {type(raw).__name__}", f"{where}.findings")
        operations = obj.get("operations") or []
        if not isinstance(operations, list) or not all(isinstance(o, str) for o in operations):
            raise ResultsError(source, "expected a list of operation ids", f"{where}.operations")
        return cls(
            checked=int(_number(obj, "checked", source, where)),
            skipped={str(k): int(v) for k, v in skipped.items()},
            findings=tuple(Finding.from_dict(f, source, f"{where}.findings[{i}]") for i, f in enumerate(raw)),
            operations=tuple(sorted(set(operations))),
        )

    def merge(self, other: SchemaCheck) -> SchemaCheck:
        skipped = dict(self.skipped)
        for k, v in other.skipped.items():
            skipped[k] = skipped.get(k, 0) + v
        return SchemaCheck(
            checked=self.checked + other.checked,
            skipped=dict(sorted(skipped.items())),
            findings=tuple(merge_findings(self.findings, other.findings)),
            operations=tuple(sorted(set(self.operations) | set(other.operations))),
        )


@dataclass(frozen=True)
class SchemaRun:
    """How a target's run checked schemas: ``mode`` (strict, report, off; ``""`` when not recorded), the
    swaggers loaded (``api_version``, ``source``, ``suite``, ``package_version``), and ``error`` when the
    swaggers were unavailable and the checks did not run."""

    mode: str = ""
    swaggers: tuple[dict[str, str], ...] = ()
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "swaggers": [dict(s) for s in self.swaggers], "error": self.error}

    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>", where: str = "schema_check") -> SchemaRun:
        if data is None:
            return cls()
        obj = _mapping(data, source, where)
        _no_unknown(obj, {"mode", "swaggers", "error"}, source, where)
        swaggers = obj.get("swaggers") or []
        if not isinstance(swaggers, list) or not all(isinstance(s, dict) for s in swaggers):
            raise ResultsError(source, "expected a list of objects", f"{where}.swaggers")
        return cls(
            mode=_str(obj, "mode", source, where),
            swaggers=tuple({str(k): str(v) for k, v in s.items()} for s in swaggers),
            error=_str(obj, "error", source, where),
        )


@dataclass(frozen=True)
class ScenarioResult:
    """One scenario's outcome on one target, with the observations it recorded (raw, not normalised)."""

    id: str
    outcome: str
    nodeid: str = ""
    area: str = ""
    statement: str = ""
    ref: str = ""
    reason: str = ""
    duration: float = 0.0
    observations: dict[str, Any] = field(default_factory=dict)
    schema_check: SchemaCheck = field(default_factory=SchemaCheck)
    #: what the scenario left on (or removed from) the daemon it shared with others (harness.isolation)
    left_behind: tuple[str, ...] = ()

    @property
    def profile(self) -> str:
        """The daemon profile this result is from (the id's ``@<profile>`` suffix; none: default)."""
        return split_id(self.id)[1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "nodeid": self.nodeid,
            "area": self.area,
            "statement": self.statement,
            "ref": self.ref,
            "outcome": self.outcome,
            "reason": self.reason,
            "duration": self.duration,
            "observations": self.observations,
            "schema_check": self.schema_check.to_dict(),
            **({"left_behind": list(self.left_behind)} if self.left_behind else {}),
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>", where: str = "scenario") -> ScenarioResult:
        obj = _mapping(data, source, where)
        known = {
            "id",
            "nodeid",
            "area",
            "statement",
            "ref",
            "outcome",
            "reason",
            "duration",
            "observations",
            "schema_check",
            "left_behind",
        }
        _no_unknown(obj, known, source, where)
        sid = _str(obj, "id", source, where, required=True)
        if not sid:
            raise ResultsError(source, "scenario id must not be empty", f"{where}.id")
        outcome = _str(obj, "outcome", source, where, required=True)
        if outcome not in OUTCOMES:
            raise ResultsError(
                source, f"outcome {outcome!r} is not one of {', '.join(OUTCOMES)}", f"{where}.outcome"
            )
        observations = obj.get("observations", {})
        if observations is None:
            observations = {}
        if not isinstance(observations, dict):
            raise ResultsError(
                source, f"expected an object, got {type(observations).__name__}", f"{where}.observations"
            )
        return cls(
            id=sid,
            outcome=outcome,
            nodeid=_str(obj, "nodeid", source, where),
            area=_str(obj, "area", source, where) or sid.split("/", 1)[0],
            statement=_str(obj, "statement", source, where),
            ref=_str(obj, "ref", source, where),
            reason=_str(obj, "reason", source, where),
            duration=_number(obj, "duration", source, where),
            observations=observations,
            schema_check=SchemaCheck.from_dict(obj.get("schema_check"), source, f"{where}.schema_check"),
            left_behind=_strings(obj, "left_behind", source, where),
        )


def _strings(obj: Mapping[str, Any], key: str, source: str, where: str) -> tuple[str, ...]:
    value = obj.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ResultsError(source, "expected a list of strings", f"{where}.{key}")
    return tuple(value)


@dataclass(frozen=True)
class Results:
    """Everything one pytest run recorded for one target."""

    target: TargetInfo
    scenarios: tuple[ScenarioResult, ...] = ()
    started: str = ""
    duration: float = 0.0
    schema_check: SchemaRun = field(default_factory=SchemaRun)
    #: what each daemon profile of the run set (``harness.profiles.Profile.to_dict``), by name
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    shuffle_seed: int | None = None  # the scenario order was drawn from this seed (None: collection order)

    def by_id(self) -> dict[str, ScenarioResult]:
        return {s.id: s for s in self.scenarios}

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "target": self.target.to_dict(),
            "started": self.started,
            "duration": self.duration,
            "schema_check": self.schema_check.to_dict(),
            "profiles": {k: dict(v) for k, v in self.profiles.items()},
            **({"shuffle_seed": self.shuffle_seed} if self.shuffle_seed is not None else {}),
            "scenarios": [s.to_dict() for s in self.scenarios],
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>") -> Results:
        obj = _mapping(data, source, "")
        schema = obj.get("schema")
        if schema not in READABLE_SCHEMAS:
            raise ResultsError(
                source, f"schema is {schema!r}, expected {SCHEMA!r} (or {READABLE_SCHEMAS[0]!r})", "schema"
            )
        keys = {"schema", "target", "started", "duration", "scenarios"}
        if schema != READABLE_SCHEMAS[0]:
            keys.add("schema_check")
        if schema == SCHEMA:
            keys.add("profiles")
            keys |= {"schema_check", "shuffle_seed"}
        _no_unknown(obj, keys, source, "")
        if "target" not in obj:
            raise ResultsError(source, "missing required field", "target")
        target = TargetInfo.from_dict(obj["target"], source)
        raw = obj.get("scenarios", [])
        if not isinstance(raw, list):
            raise ResultsError(source, f"expected a list, got {type(raw).__name__}", "scenarios")
        scenarios: list[ScenarioResult] = []
        seen: dict[str, int] = {}
        for i, item in enumerate(raw):
            scenario = ScenarioResult.from_dict(item, source, f"scenarios[{i}]")
            if scenario.id in seen:
                raise ResultsError(
                    source,
                    f"duplicate scenario id {scenario.id!r} (also scenarios[{seen[scenario.id]}])",
                    f"scenarios[{i}].id",
                )
            seen[scenario.id] = i
            scenarios.append(scenario)
        return cls(
            target=target,
            scenarios=tuple(scenarios),
            started=_str(obj, "started", source, ""),
            duration=_number(obj, "duration", source, ""),
            schema_check=SchemaRun.from_dict(obj.get("schema_check"), source),
            profiles=_profiles(obj.get("profiles"), source),
            shuffle_seed=_seed(obj, source),
        )


def _profiles(data: Any, source: str) -> dict[str, dict[str, Any]]:
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ResultsError(source, "expected an object of profile definitions", "profiles")
    return {str(k): dict(v) for k, v in data.items()}


def _seed(obj: Mapping[str, Any], source: str) -> int | None:
    value = obj.get("shuffle_seed")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ResultsError(source, f"expected an integer, got {type(value).__name__}", "shuffle_seed")
    return value


def load_results(path: str | os.PathLike[str]) -> Results:
    """Read and validate a results file; any problem is a ``ResultsError`` naming the file."""
    source = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsError(source, "file does not exist") from None
    except OSError as exc:
        raise ResultsError(source, f"cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ResultsError(source, f"not UTF-8 text: {exc.reason}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(source, f"not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from exc
    return Results.from_dict(data, source)


def dump_results(results: Results, path: str | os.PathLike[str]) -> None:
    """Write ``results`` atomically (a reader never sees half a file)."""
    _atomic_write_json(Path(path), results.to_dict())


def merge_results(parts: Sequence[Results], source: str = "<merge>") -> Results:
    """Merge results of the *same* target (shards) into one; scenarios must not overlap.

    The merged ``started`` is the earliest, ``duration`` the sum (time spent, not wall clock).
    """
    if not parts:
        raise ResultsError(source, "nothing to merge")
    # a shard that made no API request learnt no api_version: it still merges with the others
    api = next((p.target.api_version for p in parts if p.target.api_version), "")
    first = replace(parts[0].target, api_version=api)
    for part in parts[1:]:
        mine = replace(part.target, api_version=part.target.api_version or api)
        if mine != first:
            fields = [
                f"{k}: {v!r} != {mine.to_dict()[k]!r}"
                for k, v in first.to_dict().items()
                if mine.to_dict()[k] != v
            ]
            raise ResultsError(
                source, "cannot merge results of different targets (" + "; ".join(fields) + ")"
            )
    merged: dict[str, ScenarioResult] = {}
    for part in parts:
        for scenario in part.scenarios:
            if scenario.id in merged:
                if merged[scenario.id] == scenario:
                    continue
                raise ResultsError(
                    source, f"scenario {scenario.id!r} appears in two shards of target {first.name!r}"
                )
            merged[scenario.id] = scenario
    profiles: dict[str, dict[str, Any]] = {}
    for part in parts:
        for name, definition in part.profiles.items():
            if profiles.setdefault(name, definition) != definition:
                raise ResultsError(
                    source, f"profile {name!r} is defined differently in two parts of target {first.name!r}"
                )
    starts = [p.started for p in parts if p.started]
    seeds = {p.shuffle_seed for p in parts}  # parts shuffled with different seeds keep none
    runs = [p.schema_check for p in parts]
    swaggers = {json.dumps(s, sort_keys=True): s for r in runs for s in r.swaggers}
    return Results(
        target=first,
        scenarios=tuple(merged[k] for k in sorted(merged)),
        started=min(starts) if starts else "",
        duration=round(sum(p.duration for p in parts), 6),
        schema_check=SchemaRun(
            mode=next((r.mode for r in runs if r.mode), ""),
            swaggers=tuple(swaggers.values()),
            error="; ".join(dict.fromkeys(r.error for r in runs if r.error)),
        ),
        profiles=profiles,
        shuffle_seed=seeds.pop() if len(seeds) == 1 else None,
    )


# -- helpers


def _atomic_write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, ensure_ascii=False)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _mapping(data: Any, source: str, where: str) -> Mapping[str, Any]:
    if not isinstance(data, dict):
        raise ResultsError(source, f"expected an object, got {type(data).__name__}", where)
    return data


def _no_unknown(obj: Mapping[str, Any], known: set[str], source: str, where: str) -> None:
    unknown = sorted(set(obj) - known)
    if unknown:
        raise ResultsError(source, f"unknown field(s) {', '.join(map(repr, unknown))}", where)


def _str(obj: Mapping[str, Any], key: str, source: str, where: str, required: bool = False) -> str:
    if key not in obj:
        if required:
            raise ResultsError(source, "missing required field", _join(where, key))
        return ""
    value = obj[key]
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise ResultsError(source, f"expected a string, got {type(value).__name__}", _join(where, key))
    return value


def _number(obj: Mapping[str, Any], key: str, source: str, where: str) -> float:
    value = obj.get(key, 0.0)
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ResultsError(source, f"expected a number, got {type(value).__name__}", _join(where, key))
    return float(value)
