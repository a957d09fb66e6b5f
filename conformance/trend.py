"""Trend: what changed between a previous parity document and this one.

``compute_trend(previous, current)`` lines two parity documents up by scenario id and target name and lists
new failures, fixed scenarios, new and resolved divergences, new and removed scenarios, target changes and,
per target, the schema findings that appeared or went away. The result is a ``Trend``, stored as the
``trend`` section of the current parity document (``harness.parity/4``) and rendered as ``trend.md`` and in
``parity.html``. Like parity itself it works from documents only, so any two reports can be compared.

This module imports nothing from ``conformance.parity`` at run time (``parity`` imports it to read the
section back); it reads the documents through their attributes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from conformance.errors import ConformanceError

if TYPE_CHECKING:
    from conformance.parity import Parity, ScenarioParity

__all__ = [
    "DIVERGENT",
    "FAILING",
    "Change",
    "FindingDelta",
    "Trend",
    "TrendError",
    "compute_trend",
    "render_trend_markdown",
]

#: outcomes that fail a scenario
FAILING = frozenset({"failed", "error"})
#: verdicts that say a target differs from the reference (explained or not)
DIVERGENT = frozenset({"diverge", "known", "missing"})
_PROBLEM = frozenset({"diverge", "missing"})  # = parity.PROBLEM_VERDICTS (not imported: see the docstring)
ABSENT = "absent"


class TrendError(ConformanceError):
    """A previous report cannot be found or read, or a trend section is malformed."""


@dataclass(frozen=True)
class Change:
    """One (scenario, target) whose outcome or verdict changed: ``before`` and ``after`` are outcomes (or
    verdicts), ``absent`` when the scenario or target was not in that report.

    ``detail`` says more about the state now: the failure message, the known-divergence reason or the first
    difference. ``expected`` marks a failure a known divergence excuses (it does not fail the run either).
    """

    scenario: str
    target: str
    before: str
    after: str
    detail: str = ""
    expected: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "target": self.target,
            "before": self.before,
            "after": self.after,
            "detail": self.detail,
            "expected": self.expected,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Change:
        obj = _obj(data, "change")
        return cls(
            scenario=_s(obj, "scenario"),
            target=_s(obj, "target"),
            before=_s(obj, "before"),
            after=_s(obj, "after"),
            detail=str(obj.get("detail", "")),
            expected=bool(obj.get("expected", False)),
        )


@dataclass(frozen=True)
class FindingDelta:
    """A target's schema findings before and after: counts, and the distinct violations (operation, status,
    API version, field, keyword) that appeared (``new``) or went away (``gone``), each with the scenarios
    that met it and, for new ones on non-reference targets, whether the reference shares it."""

    target: str
    before: dict[str, int] = field(default_factory=dict)  # checked, findings, own_findings
    after: dict[str, int] = field(default_factory=dict)
    new: tuple[dict[str, Any], ...] = ()
    gone: tuple[dict[str, Any], ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.new or self.gone or self.before != self.after)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "before": dict(self.before),
            "after": dict(self.after),
            "new": [dict(v) for v in self.new],
            "gone": [dict(v) for v in self.gone],
        }

    @classmethod
    def from_dict(cls, data: Any) -> FindingDelta:
        obj = _obj(data, "schema delta")
        return cls(
            target=_s(obj, "target"),
            before={str(k): int(v) for k, v in _obj(obj.get("before", {}), "before").items()},
            after={str(k): int(v) for k, v in _obj(obj.get("after", {}), "after").items()},
            new=tuple(dict(_obj(v, "new")) for v in obj.get("new", [])),
            gone=tuple(dict(_obj(v, "gone")) for v in obj.get("gone", [])),
        )


@dataclass(frozen=True)
class Trend:
    """The differences between the ``previous`` report and the one that holds this section."""

    previous: dict[str, Any]  # source, generated, reference, targets {name: version}
    reference: str = ""  # this report's reference (verdicts are relative to it)
    targets_added: tuple[str, ...] = ()
    targets_removed: tuple[str, ...] = ()
    versions: tuple[dict[str, str], ...] = ()  # target, before, after: the targets whose version changed
    new_failures: tuple[Change, ...] = ()
    fixed: tuple[Change, ...] = ()
    new_divergences: tuple[Change, ...] = ()
    resolved_divergences: tuple[Change, ...] = ()
    new_scenarios: tuple[str, ...] = ()
    removed_scenarios: tuple[str, ...] = ()
    schema: tuple[FindingDelta, ...] = ()
    still_failing: int = 0
    still_diverging: int = 0

    @property
    def reference_changed(self) -> bool:
        return bool(self.previous.get("reference")) and self.previous.get("reference") != self.reference

    def regressions(self) -> list[Change]:
        """New failures no known divergence excuses, and new divergences nobody explained."""
        return [c for c in self.new_failures if not c.expected] + [
            c for c in self.new_divergences if c.after in _PROBLEM
        ]

    def counts(self) -> dict[str, int]:
        return {
            "new_failures": len(self.new_failures),
            "fixed": len(self.fixed),
            "new_divergences": len(self.new_divergences),
            "resolved_divergences": len(self.resolved_divergences),
            "new_scenarios": len(self.new_scenarios),
            "removed_scenarios": len(self.removed_scenarios),
            "schema_targets_changed": sum(1 for d in self.schema if d.changed),
            "regressions": len(self.regressions()),
        }

    def headline(self) -> str:
        """One line: the counts that are not zero (or 'no changes')."""
        c = self.counts()
        parts = [
            f"{c['new_failures']} new failure(s)",
            f"{c['fixed']} fixed",
            f"{c['new_divergences']} new divergence(s)",
            f"{c['resolved_divergences']} resolved",
            f"{c['new_scenarios']} new scenario(s)",
            f"{c['removed_scenarios']} removed",
        ]
        shown = [p for p in parts if not p.startswith("0 ")]
        if self.targets_added:
            shown.append("target(s) added: " + ", ".join(self.targets_added))
        if self.targets_removed:
            shown.append("target(s) removed: " + ", ".join(self.targets_removed))
        shown += [f"{v['target']} {v['before'] or '?'}→{v['after'] or '?'}" for v in self.versions]
        findings = [
            f"{d.target} {d.before.get('findings', 0)}→{d.after.get('findings', 0)} "
            f"(+{len(d.new)}/-{len(d.gone)} distinct)"
            for d in self.schema
            if d.new or d.gone or d.before.get("findings", 0) != d.after.get("findings", 0)
        ]
        if findings:
            shown.append("schema findings " + ", ".join(findings))
        return ", ".join(shown) if shown else "no changes"

    def to_dict(self) -> dict[str, Any]:
        return {
            "previous": dict(self.previous),
            "reference": self.reference,
            "reference_changed": self.reference_changed,
            "counts": self.counts(),
            "targets_added": list(self.targets_added),
            "targets_removed": list(self.targets_removed),
            "versions": [dict(v) for v in self.versions],
            "new_failures": [c.to_dict() for c in self.new_failures],
            "fixed": [c.to_dict() for c in self.fixed],
            "new_divergences": [c.to_dict() for c in self.new_divergences],
            "resolved_divergences": [c.to_dict() for c in self.resolved_divergences],
            "new_scenarios": list(self.new_scenarios),
            "removed_scenarios": list(self.removed_scenarios),
            "schema": [d.to_dict() for d in self.schema],
            "still_failing": self.still_failing,
            "still_diverging": self.still_diverging,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Trend:
        """Read a ``trend`` section back (``counts`` and ``reference_changed`` are derived, not read)."""
        obj = _obj(data, "trend")
        try:
            return cls(
                previous=dict(_obj(obj.get("previous", {}), "previous")),
                reference=str(obj.get("reference", "")),
                targets_added=tuple(map(str, obj.get("targets_added", []))),
                targets_removed=tuple(map(str, obj.get("targets_removed", []))),
                versions=tuple(
                    {str(k): str(v) for k, v in _obj(x, "version").items()} for x in obj.get("versions", [])
                ),
                new_failures=tuple(Change.from_dict(c) for c in obj.get("new_failures", [])),
                fixed=tuple(Change.from_dict(c) for c in obj.get("fixed", [])),
                new_divergences=tuple(Change.from_dict(c) for c in obj.get("new_divergences", [])),
                resolved_divergences=tuple(Change.from_dict(c) for c in obj.get("resolved_divergences", [])),
                new_scenarios=tuple(map(str, obj.get("new_scenarios", []))),
                removed_scenarios=tuple(map(str, obj.get("removed_scenarios", []))),
                schema=tuple(FindingDelta.from_dict(d) for d in obj.get("schema", [])),
                still_failing=int(obj.get("still_failing", 0)),
                still_diverging=int(obj.get("still_diverging", 0)),
            )
        except (TypeError, ValueError) as exc:
            raise TrendError(f"malformed trend section: {exc}") from exc

    def scenario_marks(self) -> dict[str, set[str]]:
        """Per scenario id, what changed: new-failure, fixed, new-divergence, resolved, new-scenario."""
        marks: dict[str, set[str]] = {}
        for kind, changes in (
            ("new-failure", self.new_failures),
            ("fixed", self.fixed),
            ("new-divergence", self.new_divergences),
            ("resolved", self.resolved_divergences),
        ):
            for c in changes:
                marks.setdefault(c.scenario, set()).add(kind)
        for sid in self.new_scenarios:
            marks.setdefault(sid, set()).add("new-scenario")
        return marks


# -- computing


def _excused(parity: Parity, s: ScenarioParity) -> set[str]:
    """The targets whose failure of ``s`` a known divergence excuses (as ``Parity.ok`` decides)."""
    names: set[str] = set()
    for name, verdict in s.verdicts.items():
        if verdict.verdict == "known":
            names |= {name, parity.reference}
    return names


def _detail(parity: Parity, s: ScenarioParity, target: str) -> str:
    verdict = s.verdicts.get(target)
    if verdict is not None and verdict.verdict in DIVERGENT:
        if verdict.reason:
            return _first_line(verdict.reason)
        if verdict.outcome is not None:
            return f"outcome: {parity.reference}={verdict.outcome[0]} {target}={verdict.outcome[1]}"
        if verdict.diffs:
            d = verdict.diffs[0]
            more = f" (+{len(verdict.diffs) - 1} more)" if len(verdict.diffs) > 1 else ""
            ref = "(absent)" if d.kind == "added" else _short(d.reference)
            tgt = "(absent)" if d.kind == "removed" else _short(d.target)
            return f"{d.path or '/'}: {parity.reference}={ref} {target}={tgt}{more}"
    result = s.results.get(target)
    return _first_line(result.reason) if result is not None else ""


def _first_line(text: str, limit: int = 200) -> str:
    line = (text.strip().splitlines() or [""])[0]
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _schema_counts(parity: Parity, target: str) -> dict[str, int]:
    s = parity.schema_summary(target)
    return {"checked": s["checked"], "findings": s["findings"], "own_findings": s["own_findings"]}


def _violations(parity: Parity, target: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Distinct violations of ``target`` by key, with the scenarios that met them."""
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for s, f in parity.findings(target):
        entry = out.get(f.key())
        if entry is None:
            entry = {
                "method": f.method,
                "path": f.path,
                "status": f.status,
                "api_version": f.api_version,
                "field": f.field,
                "keyword": f.keyword,
                "message": f.message,
                "scenarios": [],
                **({} if f.on_reference is None else {"on_reference": f.on_reference}),
            }
            out[f.key()] = entry
        if s.id not in entry["scenarios"]:
            entry["scenarios"].append(s.id)
    return out


def compute_trend(previous: Parity, current: Parity, source: str = "") -> Trend:
    """What changed from ``previous`` to ``current``; ``source`` names where the previous report came from."""
    before = {s.id: s for s in previous.scenarios}
    now = {s.id: s for s in current.scenarios}
    old_targets = {t.name: t.target.version for t in previous.targets}
    new_targets = {t.name: t.target.version for t in current.targets}
    new_failures: list[Change] = []
    fixed: list[Change] = []
    new_div: list[Change] = []
    resolved: list[Change] = []
    still_failing = still_diverging = 0
    for sid, s in now.items():
        old = before.get(sid)
        excused = _excused(current, s)
        for name in current.target_names:
            result = s.results.get(name)
            after = result.outcome if result is not None else ABSENT
            prior = old.results.get(name) if old is not None else None
            was = prior.outcome if prior is not None else ABSENT
            if after in FAILING and was in FAILING:
                still_failing += 1
            elif after in FAILING:
                new_failures.append(
                    Change(sid, name, was, after, _detail(current, s, name), expected=name in excused)
                )
            elif was in FAILING and after != ABSENT:
                fixed.append(Change(sid, name, was, after))
        for name, verdict in s.verdicts.items():
            after = verdict.verdict
            prior_verdict = old.verdicts.get(name) if old is not None else None
            was = prior_verdict.verdict if prior_verdict is not None else ABSENT
            if after in DIVERGENT and was in DIVERGENT and not (after in _PROBLEM and was == "known"):
                still_diverging += 1
            elif after in DIVERGENT:  # includes a known divergence that is unexplained now
                new_div.append(Change(sid, name, was, after, _detail(current, s, name)))
            elif was in DIVERGENT:
                resolved.append(Change(sid, name, was, after))
    schema: list[FindingDelta] = []
    for name in current.target_names:
        if name not in old_targets:
            continue
        old_v, new_v = _violations(previous, name), _violations(current, name)
        delta = FindingDelta(
            target=name,
            before=_schema_counts(previous, name),
            after=_schema_counts(current, name),
            new=tuple(v for k, v in new_v.items() if k not in old_v),
            gone=tuple(v for k, v in old_v.items() if k not in new_v),
        )
        schema.append(delta)
    return Trend(
        previous={
            "source": source,
            "generated": previous.generated,
            "reference": previous.reference,
            "targets": old_targets,
        },
        reference=current.reference,
        targets_added=tuple(n for n in new_targets if n not in old_targets),
        targets_removed=tuple(n for n in old_targets if n not in new_targets),
        versions=tuple(
            {"target": n, "before": old_targets[n], "after": v}
            for n, v in new_targets.items()
            if n in old_targets and old_targets[n] != v
        ),
        new_failures=tuple(new_failures),
        fixed=tuple(fixed),
        new_divergences=tuple(new_div),
        resolved_divergences=tuple(resolved),
        new_scenarios=tuple(sid for sid in now if sid not in before),
        removed_scenarios=tuple(sid for sid in before if sid not in now),
        schema=tuple(schema),
        still_failing=still_failing,
        still_diverging=still_diverging,
    )


# -- trend.md


def _cell(value: Any) -> str:
    text = " ".join(str(value).split())
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _code(text: str) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    def row(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    return [row(header), row(["---"] * len(header)), *(row(r) for r in rows)]


def _changes(title: str, changes: Sequence[Change], what: str, with_detail: bool) -> list[str]:
    out = ["", f"## {title} ({len(changes)})", ""]
    if not changes:
        return [*out, "None."]
    header = ["Scenario", "Target", f"{what} before", f"{what} now"] + (["Detail"] if with_detail else [])
    rows = []
    for c in changes:
        row = [_code(c.scenario), _cell(c.target), _cell(c.before), _cell(c.after)]
        if with_detail:
            row.append(_cell(("(excused by a known divergence) " if c.expected else "") + c.detail) or "—")
        rows.append(row)
    return out + _table(header, rows)


def _violation_rows(items: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    rows = []
    for v in items:
        sids = list(v.get("scenarios", []))
        shown = ", ".join(_code(x) for x in sids[:3]) + (f" (+{len(sids) - 3} more)" if len(sids) > 3 else "")
        shared = v.get("on_reference")
        rows.append(
            [
                _code(f"{v.get('method', '')} {v.get('path', '')}"),
                _cell(v.get("status", "")),
                _cell(v.get("api_version", "")),
                _code(str(v.get("field") or "/")),
                _cell(v.get("message", "")),
                shown or "—",
                "—" if shared is None else ("yes" if shared else "no"),
            ]
        )
    return rows


def render_trend_markdown(trend: Trend, generated: str = "") -> str:
    """``trend.md``: the summary counts, then a section per kind of change."""
    prev = trend.previous
    out = ["# Conformance trend", ""]
    out.append(
        f"This report (generated {_cell(generated) or '—'}, reference **{_cell(trend.reference)}**) "
        f"compared with the previous one ({_code(str(prev.get('source') or '?'))}, generated "
        f"{_cell(prev.get('generated') or '—')}, reference **{_cell(prev.get('reference') or '?')}**)."
    )
    if trend.reference_changed:
        out += [
            "",
            f"**The reference target changed** ({_cell(prev.get('reference'))} → {_cell(trend.reference)}): "
            "verdicts before and now are against different daemons.",
        ]
    c = trend.counts()
    out += ["", f"Summary: {_cell(trend.headline())}.", ""]
    out += _table(
        ["Change", "Count"],
        [
            ["new failures", str(c["new_failures"])],
            ["fixed", str(c["fixed"])],
            ["new divergences", str(c["new_divergences"])],
            ["resolved divergences", str(c["resolved_divergences"])],
            ["new scenarios", str(c["new_scenarios"])],
            ["removed scenarios", str(c["removed_scenarios"])],
            ["regressions (new failures no known divergence excuses, new unexplained divergences)",
             str(c["regressions"])],
            ["still failing (unchanged)", str(trend.still_failing)],
            ["still diverging (unchanged)", str(trend.still_diverging)],
        ],
    )  # fmt: skip
    if trend.targets_added or trend.targets_removed or trend.versions:
        out += ["", "## Targets", ""]
        for name in trend.targets_added:
            out.append(f"- added: {_cell(name)}")
        for name in trend.targets_removed:
            out.append(f"- removed: {_cell(name)}")
        for v in trend.versions:
            out.append(
                f"- {_cell(v['target'])}: version {_cell(v['before'] or '?')} → {_cell(v['after'] or '?')}"
            )
    out += _changes("New failures", trend.new_failures, "outcome", True)
    out += _changes("Fixed", trend.fixed, "outcome", False)
    out += _changes("New divergences", trend.new_divergences, "verdict", True)
    out += _changes("Resolved divergences", trend.resolved_divergences, "verdict", False)
    for title, ids in (
        ("New scenarios", trend.new_scenarios),
        ("Removed scenarios", trend.removed_scenarios),
    ):
        out += ["", f"## {title} ({len(ids)})", ""]
        out += [f"- {_code(sid)}" for sid in ids] if ids else ["None."]
    out += ["", "## Schema findings", ""]
    if not trend.schema:
        out.append("No target is in both reports.")
    else:
        out += _table(
            ["Target", "Responses checked", "Findings", "Not on the reference", "Violations new / gone"],
            [
                [
                    _cell(d.target),
                    f"{d.before.get('checked', 0)} → {d.after.get('checked', 0)}",
                    f"{d.before.get('findings', 0)} → {d.after.get('findings', 0)}",
                    f"{d.before.get('own_findings', 0)} → {d.after.get('own_findings', 0)}",
                    f"{len(d.new)} / {len(d.gone)}",
                ]
                for d in trend.schema
            ],
        )
        header = ["Operation", "Status", "API", "Field", "Message", "Scenarios", "On reference"]
        for d in trend.schema:
            for label, items in (("new", d.new), ("gone", d.gone)):
                if items:
                    out += ["", f"### {_cell(d.target)}: {label} violations ({len(items)})", ""]
                    out += _table(header, _violation_rows(items))
    return "\n".join(out) + "\n"


# -- helpers


def _obj(data: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(data, dict):
        raise TrendError(f"malformed trend section: {what} is not an object")
    return data


def _s(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise TrendError(f"malformed trend section: {key!r} is not a string")
    return value
