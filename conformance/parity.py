"""Parity: line the targets' results up by scenario id and classify each against a reference target.

This is the product of a conformance run. It works only from ``Results`` (serialised files), never from live
daemons, so it can be rebuilt from reports gathered on other machines. The document (schema
``harness.parity/4``) keeps the raw observations of every target, the diffs computed on *normalised*
observations, the known divergences that explained some of them, the normalisation rules applied, and each
target's schema checks (findings against the Engine API swagger, each marked ``on_reference`` when the
reference target had the same one) and, when it was compared with a previous report, the ``trend`` (version 3,
``conformance.trend``), and what each daemon profile set (version 4: ``profiles``; a scenario's id in a
profile other than the default is ``<id>@<profile>``). Version 1 (no schema checks), 2 (no trend) and 3
(default profile only) documents still load.
"""

from __future__ import annotations

import fnmatch
import json
import os
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conformance.errors import ConformanceError
from conformance.normalise import RULES, Rule, normalise, rule_table
from conformance.trend import Trend
from harness.profiles import DEFAULT as DEFAULT_PROFILE
from harness.profiles import split_id
from harness.results import (
    OUTCOMES,
    Finding,
    Results,
    ResultsError,
    ScenarioResult,
    SchemaCheck,
    SchemaRun,
    TargetInfo,
)

__all__ = [
    "DEFAULT_KNOWN_PATH",
    "PROBLEM_VERDICTS",
    "READABLE_SCHEMAS",
    "SCHEMA",
    "VERDICTS",
    "Diff",
    "KnownDivergence",
    "KnownDivergenceError",
    "Parity",
    "ParityError",
    "ScenarioParity",
    "TargetOutcome",
    "TargetRun",
    "Verdict",
    "build_parity",
    "diff_observations",
    "load_known",
    "load_parity",
    "pick_reference",
]

SCHEMA = "harness.parity/4"
READABLE_SCHEMAS = ("harness.parity/1", "harness.parity/2", "harness.parity/3", SCHEMA)
VERDICTS = ("match", "diverge", "known", "missing", "skipped")
#: Verdicts that nobody explained: they make a run fail.
PROBLEM_VERDICTS = frozenset({"diverge", "missing"})
DEFAULT_KNOWN_PATH = Path(__file__).with_name("known-divergences.toml")


class ParityError(ConformanceError):
    """Parity cannot be built (duplicate targets, unknown reference) or a parity document is malformed."""


class KnownDivergenceError(ParityError):
    """The known-divergences file is malformed; the message names the file and the entry."""

    def __init__(self, source: str, problem: str) -> None:
        self.source = source
        self.problem = problem
        super().__init__(f"{source}: {problem}")


# -- known divergences


@dataclass(frozen=True)
class KnownDivergence:
    """An explained divergence: ``scenario`` (id or glob) differs on ``targets`` (names or globs), in the
    daemon ``profiles`` named (names or globs; none: in every profile)."""

    scenario: str
    targets: tuple[str, ...]
    reason: str
    link: str = ""
    profiles: tuple[str, ...] = ()

    def matches(self, scenario_id: str, target: str, reference: str, *labels: str) -> bool:
        """True when the scenario matches and the compared target or the reference matches ``targets``.

        ``scenario_id`` may carry its profile (``api/x@no-bridge``): ``scenario`` matches the id without it
        (or with it), and ``profiles``, when given, must match the profile.
        ``labels`` are extra names to match, such as ``dockerd@20.10.24+dfsg1`` (name@version), so an entry
        can name a dockerd version whatever the target was called (``dockerd@20.10*``).
        """
        base, profile = split_id(scenario_id)
        if not (fnmatch.fnmatchcase(base, self.scenario) or fnmatch.fnmatchcase(scenario_id, self.scenario)):
            return False
        if self.profiles and not any(fnmatch.fnmatchcase(profile, p) for p in self.profiles):
            return False
        return any(fnmatch.fnmatchcase(t, pat) for t in (target, reference, *labels) for pat in self.targets)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "targets": list(self.targets),
            "reason": self.reason,
            "link": self.link,
            **({"profiles": list(self.profiles)} if self.profiles else {}),
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>", where: str = "divergence") -> KnownDivergence:
        if not isinstance(data, dict):
            raise KnownDivergenceError(source, f"{where}: expected a table, got {type(data).__name__}")
        unknown = sorted(set(data) - {"scenario", "targets", "reason", "link", "matched", "profiles"})
        if unknown:
            raise KnownDivergenceError(source, f"{where}: unknown key(s) {', '.join(map(repr, unknown))}")
        scenario = data.get("scenario")
        if not isinstance(scenario, str) or not scenario:
            raise KnownDivergenceError(source, f"{where}: 'scenario' must be a non-empty string")
        targets = data.get("targets")
        if not isinstance(targets, list) or not targets or not all(isinstance(t, str) and t for t in targets):
            raise KnownDivergenceError(
                source, f"{where} ({scenario}): 'targets' must be a non-empty list of target names or globs"
            )
        reason = data.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise KnownDivergenceError(source, f"{where} ({scenario}): 'reason' must be a non-empty string")
        link = data.get("link", "")
        if not isinstance(link, str):
            raise KnownDivergenceError(source, f"{where} ({scenario}): 'link' must be a string")
        profiles = data.get("profiles", [])
        if not isinstance(profiles, list) or not all(isinstance(p, str) and p for p in profiles):
            raise KnownDivergenceError(
                source, f"{where} ({scenario}): 'profiles' must be a list of profile names or globs"
            )
        return cls(
            scenario=scenario,
            targets=tuple(targets),
            reason=reason.strip(),
            link=link,
            profiles=tuple(profiles),
        )


def load_known(path: str | os.PathLike[str] | None = None, missing_ok: bool = False) -> list[KnownDivergence]:
    """Parse a known-divergences TOML file (``[[divergence]]`` tables); defaults to the packaged one."""
    p = Path(path) if path is not None else DEFAULT_KNOWN_PATH
    source = os.fspath(p)
    try:
        with p.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        if missing_ok:
            return []
        raise KnownDivergenceError(source, "file does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise KnownDivergenceError(source, f"not valid TOML: {exc}") from exc
    except OSError as exc:
        raise KnownDivergenceError(source, f"cannot read: {exc.strerror or exc}") from exc
    unknown = sorted(set(data) - {"divergence"})
    if unknown:
        raise KnownDivergenceError(
            source, f"unknown top-level key(s) {', '.join(map(repr, unknown))}; expected only [[divergence]]"
        )
    entries = data.get("divergence", [])
    if not isinstance(entries, list):
        raise KnownDivergenceError(source, "'divergence' must be an array of tables ([[divergence]])")
    return [KnownDivergence.from_dict(e, source, f"divergence #{i + 1}") for i, e in enumerate(entries)]


# -- document


@dataclass(frozen=True)
class Diff:
    """One difference between normalised observations, at a JSON pointer into ``observations``.

    ``kind`` is ``changed`` (both sides have a value), ``removed`` (only the reference has it) or ``added``
    (only the target has it); the absent side is ``None``.
    """

    path: str
    kind: str
    reference: Any
    target: Any

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "reference": self.reference, "target": self.target}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Diff:
        return cls(
            path=data["path"], kind=data["kind"], reference=data.get("reference"), target=data.get("target")
        )


@dataclass(frozen=True)
class Verdict:
    """A non-reference target's parity with the reference for one scenario."""

    verdict: str
    reason: str = ""
    link: str = ""
    outcome: tuple[str, str] | None = None  # (reference outcome, target outcome) when they differ
    diffs: tuple[Diff, ...] = ()

    @property
    def problem(self) -> bool:
        return self.verdict in PROBLEM_VERDICTS

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "reason": self.reason,
            "link": self.link,
            "outcome": None
            if self.outcome is None
            else {"reference": self.outcome[0], "target": self.outcome[1]},
            "diffs": [d.to_dict() for d in self.diffs],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        verdict = data["verdict"]
        if verdict not in VERDICTS:
            raise ParityError(f"unknown verdict {verdict!r}")
        outcome = data.get("outcome")
        return cls(
            verdict=verdict,
            reason=data.get("reason", ""),
            link=data.get("link", ""),
            outcome=None if outcome is None else (outcome["reference"], outcome["target"]),
            diffs=tuple(Diff.from_dict(d) for d in data.get("diffs", [])),
        )


@dataclass(frozen=True)
class TargetOutcome:
    """What one target did for one scenario (observations raw, as recorded)."""

    outcome: str
    reason: str = ""
    duration: float = 0.0
    nodeid: str = ""
    observations: dict[str, Any] = field(default_factory=dict)
    schema_check: SchemaCheck = field(default_factory=SchemaCheck)
    left_behind: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "reason": self.reason,
            "duration": self.duration,
            "nodeid": self.nodeid,
            "observations": self.observations,
            "schema_check": self.schema_check.to_dict(),
            **({"left_behind": list(self.left_behind)} if self.left_behind else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TargetOutcome:
        return cls(
            outcome=data["outcome"],
            reason=data.get("reason", ""),
            duration=float(data.get("duration", 0.0)),
            nodeid=data.get("nodeid", ""),
            observations=dict(data.get("observations") or {}),
            schema_check=SchemaCheck.from_dict(data.get("schema_check"), "<parity>"),
            left_behind=tuple(data.get("left_behind") or ()),
        )


@dataclass(frozen=True)
class ScenarioParity:
    """One scenario across all targets: per-target outcomes and per non-reference target verdicts."""

    id: str
    area: str = ""
    statement: str = ""
    ref: str = ""
    results: dict[str, TargetOutcome] = field(default_factory=dict)
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    #: target -> reason, for targets whose failure a known-divergence entry names though nothing diverged
    #: (the reference fails too: an upstream test that needs what no target has here, a registry say)
    expected_failures: dict[str, str] = field(default_factory=dict)

    @property
    def profile(self) -> str:
        """The daemon profile of this scenario run (the id's ``@<profile>`` suffix; none: default)."""
        return split_id(self.id)[1]

    @property
    def base_id(self) -> str:
        """The scenario's id without its profile."""
        return split_id(self.id)[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "area": self.area,
            "statement": self.statement,
            "ref": self.ref,
            "results": {k: v.to_dict() for k, v in self.results.items()},
            "verdicts": {k: v.to_dict() for k, v in self.verdicts.items()},
            **({"expected_failures": dict(self.expected_failures)} if self.expected_failures else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScenarioParity:
        return cls(
            id=data["id"],
            area=data.get("area", ""),
            statement=data.get("statement", ""),
            ref=data.get("ref", ""),
            results={k: TargetOutcome.from_dict(v) for k, v in data.get("results", {}).items()},
            verdicts={k: Verdict.from_dict(v) for k, v in data.get("verdicts", {}).items()},
            expected_failures={str(k): str(v) for k, v in (data.get("expected_failures") or {}).items()},
        )


@dataclass(frozen=True)
class TargetRun:
    """A target as it appears in the parity document: its identity plus when/how long it ran."""

    target: TargetInfo
    started: str = ""
    duration: float = 0.0
    schema_check: SchemaRun = field(default_factory=SchemaRun)
    shuffle_seed: int | None = None

    @property
    def name(self) -> str:
        return self.target.name

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.target.to_dict(),
            "started": self.started,
            "duration": self.duration,
            "schema_check": self.schema_check.to_dict(),
            **({"shuffle_seed": self.shuffle_seed} if self.shuffle_seed is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TargetRun:
        run_keys = ("started", "duration", "schema_check", "shuffle_seed")
        info = {k: v for k, v in data.items() if k not in run_keys}
        seed = data.get("shuffle_seed")
        return cls(
            target=TargetInfo.from_dict(info, "<parity>", "targets[]"),
            started=data.get("started", ""),
            duration=float(data.get("duration", 0.0)),
            schema_check=SchemaRun.from_dict(data.get("schema_check"), "<parity>"),
            shuffle_seed=int(seed) if isinstance(seed, int) else None,
        )


@dataclass(frozen=True)
class KnownUse:
    """A known-divergence entry and how many divergences it explained in this document."""

    entry: KnownDivergence
    matched: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {**self.entry.to_dict(), "matched": self.matched}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KnownUse:
        return cls(
            entry=KnownDivergence.from_dict(dict(data), "<parity>"), matched=int(data.get("matched", 0))
        )


@dataclass(frozen=True)
class Parity:
    """The parity document. ``summary()`` is derived, so it is written out but never read back."""

    reference: str
    targets: tuple[TargetRun, ...]
    scenarios: tuple[ScenarioParity, ...]
    known: tuple[KnownUse, ...] = ()
    rules: tuple[dict[str, str], ...] = ()
    generated: str = ""
    trend: Trend | None = None  # set when compared with a previous report (conformance.trend)
    #: what each daemon profile set (from the results files), by name
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def target_names(self) -> list[str]:
        return [t.name for t in self.targets]

    def unexplained(self) -> list[tuple[ScenarioParity, str, Verdict]]:
        """Every (scenario, target, verdict) that is a divergence or a missing scenario nobody explained."""
        return [(s, t, v) for s in self.scenarios for t, v in s.verdicts.items() if v.problem]

    def stale(self) -> list[KnownUse]:
        """Known-divergence entries that explained nothing in this run."""
        return [k for k in self.known if k.matched == 0]

    def findings(self, target: str) -> list[tuple[ScenarioParity, Finding]]:
        """Every schema finding of ``target``, with its scenario, in scenario order."""
        return [
            (s, f)
            for s in self.scenarios
            if target in s.results
            for f in s.results[target].schema_check.findings
        ]

    def own_findings(self, target: str) -> list[tuple[ScenarioParity, Finding]]:
        """The findings of ``target`` the reference target did not have (all of them for the reference)."""
        return [(s, f) for s, f in self.findings(target) if not f.on_reference]

    def schema_summary(self, target: str) -> dict[str, Any]:
        run = next((t.schema_check for t in self.targets if t.name == target), SchemaRun())
        findings = self.findings(target)
        return {
            "mode": run.mode,
            "error": run.error,
            "checked": sum(
                s.results[target].schema_check.checked for s in self.scenarios if target in s.results
            ),
            "findings": len(findings),
            "own_findings": len(self.own_findings(target)),
            "scenarios_with_findings": len({s.id for s, _ in findings}),
        }

    def profile_names(self) -> list[str]:
        """The daemon profiles the scenarios ran in: the default first, then in the order they were run."""
        seen = dict.fromkeys(s.profile for s in self.scenarios)
        ordered = [DEFAULT_PROFILE] if DEFAULT_PROFILE in seen else []
        return list(dict.fromkeys([*ordered, *(p for p in (*self.profiles, *seen) if p in seen)]))

    def profile_rows(self) -> list[dict[str, str]]:
        """Each daemon profile as the reports show it: name, description, flags, daemon.json keys, network
        namespace set-up, and the keys the harness left out."""
        rows = []
        for name in self.profile_names():
            d = self.profiles.get(name, {})
            config = d.get("daemon_json") or {}
            rows.append(
                {
                    "name": name,
                    "description": str(d.get("description", "")),
                    "args": " ".join(d.get("args", [])),
                    "daemon_json": json.dumps(config, sort_keys=True) if config else "",
                    "netns_setup": "; ".join(d.get("netns_setup", [])),
                    "dropped": ", ".join(d.get("dropped", [])),
                }
            )
        return rows

    def _counts(self, name: str, scenarios: Iterable[ScenarioParity]) -> dict[str, Any]:
        outcomes = dict.fromkeys(OUTCOMES, 0)
        verdicts: dict[str, int] | None = None if name == self.reference else dict.fromkeys(VERDICTS, 0)
        count = 0
        for s in scenarios:
            if name in s.results:
                count += 1
                outcomes[s.results[name].outcome] = outcomes.get(s.results[name].outcome, 0) + 1
            if verdicts is not None and name in s.verdicts:
                verdicts[s.verdicts[name].verdict] += 1
        return {"scenarios": count, "outcomes": outcomes, "verdicts": verdicts}

    def summary(self) -> dict[str, Any]:
        per_target: dict[str, Any] = {
            name: {**self._counts(name, self.scenarios), "schema": self.schema_summary(name)}
            for name in self.target_names
        }
        per_profile: dict[str, Any] = {}
        for profile in self.profile_names():
            mine = [s for s in self.scenarios if s.profile == profile]
            per_profile[profile] = {name: self._counts(name, mine) for name in self.target_names}
        return {
            "reference": self.reference,
            "targets": per_target,
            "profiles": per_profile,
            "unexplained": [
                {"scenario": s.id, "target": t, "verdict": v.verdict} for s, t, v in self.unexplained()
            ],
            "stale": [k.entry.to_dict() for k in self.stale()],
            "failures": self.failures(),
            "ok": self.ok(),
            "result": self.result_line(),
        }

    def failures(self) -> dict[str, int]:
        """The failed (or errored) results by how they are excused: ``expected`` (an entry names a failure the
        reference shares), ``known`` (a known divergence's target or its reference), ``unexcused``."""
        counts = dict.fromkeys(("expected", "known", "unexcused"), 0)
        for s in self.scenarios:
            known = {n for n, v in s.verdicts.items() if v.verdict == "known"}
            if known:
                known.add(self.reference)
            for n, r in s.results.items():
                if r.outcome in ("failed", "error"):
                    kind = "expected" if n in s.expected_failures else "known" if n in known else "unexcused"
                    counts[kind] += 1
        return counts

    def ok(self) -> bool:
        """True when every scenario passed or was skipped everywhere and nothing diverged unexplained.

        A failure on a target that a *known* divergence names (the compared target or the reference of a
        ``known`` verdict) is expected: the scenario encodes the newest dockerd and that target differs. So is
        a failure an entry names where nothing diverged (``expected_failures``: the reference fails too).
        """
        return self.failures()["unexcused"] == 0 and not self.unexplained()

    def result_line(self) -> str:
        """The run's verdict with what it rests on: ``OK``, ``OK (all 18 failures excused: ...)``, or
        ``FAILED (2 failures nobody excused, ...)``."""
        counts, unexplained = self.failures(), len(self.unexplained())
        if counts["unexcused"] or unexplained:
            why = [f"{counts['unexcused']} failure(s) no entry excuses"] if counts["unexcused"] else []
            why += [f"{unexplained} unexplained divergence(s)"] if unexplained else []
            return f"FAILED ({', '.join(why)})"
        excused = counts["expected"] + counts["known"]
        if not excused:
            return "OK"
        return (
            f"OK (all {excused} failure(s) excused: {counts['expected']} expected, the reference failing "
            f"too; {counts['known']} by known divergences)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "generated": self.generated,
            "reference": self.reference,
            "targets": [t.to_dict() for t in self.targets],
            "normalisation": [dict(r) for r in self.rules],
            "known_divergences": [k.to_dict() for k in self.known],
            "profiles": {k: dict(v) for k, v in self.profiles.items()},
            "summary": self.summary(),
            "trend": None if self.trend is None else self.trend.to_dict(),
            "scenarios": [s.to_dict() for s in self.scenarios],
        }

    @classmethod
    def from_dict(cls, data: Any) -> Parity:
        if not isinstance(data, dict) or data.get("schema") not in READABLE_SCHEMAS:
            got = data.get("schema") if isinstance(data, dict) else type(data).__name__
            raise ParityError(f"not a parity document: schema is {got!r}, expected {SCHEMA!r}")
        try:
            return cls(
                reference=data["reference"],
                targets=tuple(TargetRun.from_dict(t) for t in data["targets"]),
                scenarios=tuple(ScenarioParity.from_dict(s) for s in data["scenarios"]),
                known=tuple(KnownUse.from_dict(k) for k in data.get("known_divergences", [])),
                rules=tuple(
                    {"name": r["name"], "description": r["description"]}
                    for r in data.get("normalisation", [])
                ),
                generated=data.get("generated", ""),
                trend=None if data.get("trend") is None else Trend.from_dict(data["trend"]),
                profiles={str(k): dict(v) for k, v in (data.get("profiles") or {}).items()},
            )
        except (KeyError, TypeError, ValueError, ConformanceError, ResultsError) as exc:
            raise ParityError(f"malformed parity document: {type(exc).__name__}: {exc}") from exc


def load_parity(path: str | os.PathLike[str]) -> Parity:
    """A parity document from ``parity.json`` or from a directory holding one (a reports directory)."""
    p = Path(path)
    if p.is_dir():
        p = p / "parity.json"
    source = os.fspath(p)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParityError(f"{source}: no parity document there (does not exist)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ParityError(f"{source}: cannot read: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ParityError(f"{source}: not JSON: {exc.msg} (line {exc.lineno})") from exc
    try:
        return Parity.from_dict(data)
    except ParityError as exc:
        raise ParityError(f"{source}: {exc}") from exc


# -- building


def _version_key(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.replace("+", ".").replace("-", ".").split("."):
        if not piece.isdigit():
            break
        parts.append(int(piece))
    return tuple(parts)


def pick_reference(
    names: Sequence[str], reference: str | None = None, versions: Mapping[str, str] | None = None
) -> str:
    """The explicit ``reference`` if given (must be a target), else the newest ``dockerd*`` (refd follows the
    newest dockerd), else the first ``dockerd*``, else the first target."""
    if not names:
        raise ParityError("no targets to compare")
    if reference is not None:
        if reference not in names:
            raise ParityError(f"reference target {reference!r} is not among the targets ({', '.join(names)})")
        return reference
    dockerds = [n for n in names if n.startswith("dockerd")]
    if dockerds and versions:
        return max(dockerds, key=lambda n: (_version_key(versions.get(n, "")), -dockerds.index(n)))
    return dockerds[0] if dockerds else names[0]


def _pointer_token(key: Any) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


def _same(a: Any, b: Any) -> bool:
    # bool/int/float are distinct on the wire (true vs 1 vs 1.0): compare types as well as values.
    return type(a) is type(b) and a == b


def diff_observations(reference: Any, target: Any, path: str = "") -> list[Diff]:
    """Structural diff of two (already normalised) JSON values, as JSON-pointer ``Diff`` entries."""
    if isinstance(reference, dict) and isinstance(target, dict):
        diffs: list[Diff] = []
        keys = list(reference) + [k for k in target if k not in reference]
        for key in keys:
            sub = f"{path}/{_pointer_token(key)}"
            if key not in target:
                diffs.append(Diff(sub, "removed", reference[key], None))
            elif key not in reference:
                diffs.append(Diff(sub, "added", None, target[key]))
            else:
                diffs.extend(diff_observations(reference[key], target[key], sub))
        return diffs
    if isinstance(reference, list) and isinstance(target, list):
        diffs = []
        for i in range(max(len(reference), len(target))):
            sub = f"{path}/{i}"
            if i >= len(target):
                diffs.append(Diff(sub, "removed", reference[i], None))
            elif i >= len(reference):
                diffs.append(Diff(sub, "added", None, target[i]))
            else:
                diffs.extend(diff_observations(reference[i], target[i], sub))
        return diffs
    if isinstance(reference, dict | list) or isinstance(target, dict | list) or not _same(reference, target):
        return [Diff(path, "changed", reference, target)]
    return []


def _skip_reason(ref_name: str, ref: TargetOutcome, name: str, tgt: TargetOutcome) -> str:
    parts = [
        f"{n}: {o.reason or 'skipped'}" for n, o in ((ref_name, ref), (name, tgt)) if o.outcome == "skipped"
    ]
    return "; ".join(parts)


def _not_reached(
    sid: str, by_target: Mapping[str, Mapping[str, ScenarioResult]], reference: str, name: str
) -> Verdict | None:
    """A subtest absent on one side whose parent test is there and did not pass (upstream suites' results
    are a tree: ``upstream/moby/image/TestX/sub``): it was never reached, so it is skipped, not missing."""
    parent = sid.rsplit("/", 1)[0]
    while parent.count("/") >= 2:
        for side in (reference, name):
            if sid in by_target[side]:
                continue
            above = by_target[side].get(parent)
            if above is not None and above.outcome != "passed":
                return Verdict("skipped", reason=f"{side}: not reached, {parent} {above.outcome} before it")
        parent = parent.rsplit("/", 1)[0]
    return None


def _compare(
    scenario_id: str,
    reference: str,
    ref: TargetOutcome | None,
    name: str,
    tgt: TargetOutcome | None,
    known: Sequence[KnownDivergence],
    used: list[int],
    rules: Sequence[Rule],
    labels: Sequence[str] = (),
) -> Verdict:
    if ref is None:
        return Verdict("missing", reason=f"absent from reference {reference} results")
    if tgt is None:
        return Verdict("missing", reason=f"absent from {name} results")
    if "skipped" in (ref.outcome, tgt.outcome):
        return Verdict("skipped", reason=_skip_reason(reference, ref, name, tgt))
    outcome = None if ref.outcome == tgt.outcome else (ref.outcome, tgt.outcome)
    diffs = tuple(diff_observations(normalise(ref.observations, rules), normalise(tgt.observations, rules)))
    if outcome is None and not diffs:
        return Verdict("match")
    matching = [i for i, entry in enumerate(known) if entry.matches(scenario_id, name, reference, *labels)]
    if not matching:
        return Verdict("diverge", outcome=outcome, diffs=diffs)
    # every entry that matches explains part of the difference (so none of them is stale); the verdict
    # quotes the most specific: an exact scenario id before a glob, a longer glob before a shorter one
    for i in matching:
        used[i] += 1
    entry = known[min(matching, key=lambda i: _specificity(known[i], i))]
    return Verdict("known", reason=entry.reason, link=entry.link, outcome=outcome, diffs=diffs)


def _specificity(entry: KnownDivergence, index: int) -> tuple[bool, bool, int, int]:
    """Sort key: an exact scenario id before a glob, an entry naming profiles before one for all of them, a
    longer glob before a shorter one, then file order."""
    return (_is_glob(entry.scenario), not entry.profiles, -len(entry.scenario), index)


def _is_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


def _mark_findings(check: SchemaCheck, reference_keys: set[Any] | None) -> SchemaCheck:
    """Set ``on_reference`` on each finding (left None on the reference target itself)."""
    if reference_keys is None or not check.findings:
        return check
    return replace(
        check, findings=tuple(replace(f, on_reference=f.key() in reference_keys) for f in check.findings)
    )


def build_parity(
    results: Sequence[Results],
    known: Iterable[KnownDivergence] = (),
    reference: str | None = None,
    rules: Sequence[Rule] = RULES,
    generated: str | None = None,
) -> Parity:
    """Compare every target with the reference target, scenario by scenario (union of ids, sorted)."""
    names = [r.target.name for r in results]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ParityError(
            f"target(s) {', '.join(dupes)} appear in more than one results file; merge shards first"
        )
    ref_name = pick_reference(names, reference, {r.target.name: r.target.version for r in results})
    known = list(known)
    used = [0] * len(known)
    by_target = {r.target.name: r.by_id() for r in results}
    versions = {r.target.name: r.target.version for r in results}
    ids = sorted({sid for r in results for sid in (s.id for s in r.scenarios)})
    # the reference's violations, whichever scenario met them: the same on another target is shared
    ref_keys = {f.key() for s in by_target[ref_name].values() for f in s.schema_check.findings}
    scenarios: list[ScenarioParity] = []
    for sid in ids:
        present = [by_target[n][sid] for n in [ref_name, *names] if sid in by_target[n]]
        meta = present[0]
        outcomes = {
            n: TargetOutcome(
                outcome=s.outcome,
                reason=s.reason,
                duration=s.duration,
                nodeid=s.nodeid,
                observations=s.observations,
                schema_check=_mark_findings(s.schema_check, None if n == ref_name else ref_keys),
                left_behind=s.left_behind,
            )
            for n in names
            if (s := by_target[n].get(sid)) is not None
        }
        verdicts = {
            n: _compare(
                sid,
                ref_name,
                outcomes.get(ref_name),
                n,
                outcomes.get(n),
                known,
                used,
                rules,
                (f"{n}@{versions[n]}", f"{ref_name}@{versions[ref_name]}"),
            )
            for n in names
            if n != ref_name
        }
        for n, verdict in list(verdicts.items()):
            if verdict.verdict == "missing":
                verdicts[n] = _not_reached(sid, by_target, ref_name, n) or verdict
        expected = {}
        for n, out in outcomes.items():
            if out.outcome not in ("failed", "error") or verdicts.get(n, Verdict("match")).verdict != "match":
                continue
            if n == ref_name and any(v.verdict not in ("match", "skipped") for v in verdicts.values()):
                continue  # the reference's failure is part of a divergence: its verdict says why
            labels = (f"{n}@{versions[n]}", f"{ref_name}@{versions[ref_name]}")
            matching = [i for i, entry in enumerate(known) if entry.matches(sid, n, ref_name, *labels)]
            for i in matching:
                used[i] += 1
            if matching:
                expected[n] = known[min(matching, key=lambda i: (_is_glob(known[i].scenario), i))].reason
        scenarios.append(
            ScenarioParity(
                id=sid,
                area=meta.area,
                statement=next((s.statement for s in present if s.statement), ""),
                ref=next((s.ref for s in present if s.ref), ""),
                results=outcomes,
                verdicts=verdicts,
                expected_failures=expected,
            )
        )
    return Parity(
        reference=ref_name,
        targets=tuple(
            TargetRun(r.target, r.started, r.duration, r.schema_check, r.shuffle_seed) for r in results
        ),
        scenarios=tuple(scenarios),
        known=tuple(KnownUse(k, n) for k, n in zip(known, used, strict=True)),
        profiles={name: d for r in results for name, d in r.profiles.items()},
        rules=tuple(rule_table(rules)),
        generated=generated if generated is not None else datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
