"""Writers that turn a parity document into files people and CI read: JSON, Markdown, JUnit XML and HTML.

They only format; every decision (verdicts, what counts as a problem, which schema findings the reference
shares) is made in ``parity``, so the outputs can never disagree with each other. The HTML page is rendered
by ``conformance.htmlreport``.
"""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from conformance.htmlreport import render_html
from conformance.parity import Parity, ScenarioParity, Verdict
from conformance.trend import render_trend_markdown
from harness.results import OUTCOMES, Finding

__all__ = [
    "diff_text",
    "render_html",
    "render_junit",
    "render_markdown",
    "write_html",
    "write_json",
    "write_junit",
    "write_markdown",
    "write_reports",
    "write_trend",
]

_MAX_VALUE = 300
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def write_json(parity: Parity, path: str | os.PathLike[str]) -> Path:
    """Write the parity document (``harness.parity/4``) as indented JSON."""
    p = Path(path)
    _write_text(p, json.dumps(parity.to_dict(), indent=2, ensure_ascii=False) + "\n")
    return p


def write_markdown(parity: Parity, path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    _write_text(p, render_markdown(parity))
    return p


def write_junit(parity: Parity, path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    _write_text(p, render_junit(parity))
    return p


def write_html(parity: Parity, path: str | os.PathLike[str]) -> Path:
    """Write the self-contained ``parity.html`` (inline CSS and JS, everything escaped)."""
    p = Path(path)
    _write_text(p, render_html(parity))
    return p


def write_trend(parity: Parity, path: str | os.PathLike[str]) -> Path:
    """Write ``trend.md`` (the parity document must hold a trend)."""
    assert parity.trend is not None
    p = Path(path)
    _write_text(p, render_trend_markdown(parity.trend, parity.generated))
    return p


def write_reports(parity: Parity, directory: str | os.PathLike[str]) -> list[Path]:
    """Write ``parity.json``, ``parity.md``, ``junit.xml`` and ``parity.html`` into ``directory``, and
    ``trend.md`` when the document holds a trend (a ``trend.md`` left by an earlier run is removed otherwise,
    so it never describes another report)."""
    d = Path(directory)
    written = [
        write_json(parity, d / "parity.json"),
        write_markdown(parity, d / "parity.md"),
        write_junit(parity, d / "junit.xml"),
        write_html(parity, d / "parity.html"),
    ]
    if parity.trend is not None:
        written.append(write_trend(parity, d / "trend.md"))
    else:
        (d / "trend.md").unlink(missing_ok=True)
    return written


# -- text helpers


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _value(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 1] + "…"


def diff_text(verdict: Verdict, reference: str, target: str) -> str:
    """A verdict's differences as plain text lines (used in JUnit failures and the terminal)."""
    lines: list[str] = []
    if verdict.outcome is not None:
        lines.append(f"outcome: {reference}={verdict.outcome[0]} {target}={verdict.outcome[1]}")
    for d in verdict.diffs:
        ref = "(absent)" if d.kind == "added" else _value(d.reference)
        tgt = "(absent)" if d.kind == "removed" else _value(d.target)
        lines.append(f"{d.path or '/'}: {reference}={ref} {target}={tgt}")
    if verdict.reason:
        lines.append(f"reason: {verdict.reason}")
    return "\n".join(lines)


# -- markdown


def _cell(text: str) -> str:
    text = " ".join(str(text).split())
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _code(text: str) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [_row(header), _row(["---"] * len(header)), *(_row(r) for r in rows)]


def _parity_cell(parity: Parity, scenario: ScenarioParity) -> str:
    if not scenario.verdicts:
        return "—"
    if len(scenario.verdicts) == 1:
        return next(iter(scenario.verdicts.values())).verdict
    return "; ".join(f"{_cell(t)}: {v.verdict}" for t, v in scenario.verdicts.items())


def _isolation_section(parity: Parity) -> list[str]:
    """Scenarios that left state on (or removed it from) the daemon they shared: findings, not verdicts."""
    rows = [
        [_code(s.id), _cell(n), _cell("; ".join(r.left_behind))]
        for s in parity.scenarios
        for n, r in s.results.items()
        if r.left_behind
    ]
    out = ["", "## Isolation", ""]
    if not rows:
        return [*out, "Every scenario on a shared daemon left it as it found it."]
    out.append(
        f"{len(rows)} scenario run(s) left state on the daemon they shared with other scenarios (the harness "
        'removed it before the next one; see docs/guide.md, "Shared daemons"):'
    )
    return [*out, "", *_table(["scenario", "target", "what"], rows)]


def render_markdown(parity: Parity) -> str:
    names = parity.target_names
    summary = parity.summary()
    out: list[str] = ["# Conformance parity", ""]
    out.append(
        f"Reference target: **{_cell(parity.reference)}** · generated {_cell(parity.generated) or '—'} · "
        f"{len(parity.scenarios)} scenarios · result: **{_cell(summary['result'])}**"
    )
    seeds = {run.name: run.shuffle_seed for run in parity.targets if run.shuffle_seed is not None}
    if seeds:
        order = ", ".join(f"{_cell(n)} seed {s}" for n, s in seeds.items())
        out += ["", f"Scenario order: shuffled ({order}); `--shuffle SEED` repeats it."]
    out += ["", "## Summary", ""]
    rows = []
    for run in parity.targets:
        t = summary["targets"][run.name]
        v = t["verdicts"] or {}
        name = f"{run.name} (reference)" if run.name == parity.reference else run.name
        rows.append(
            [
                _cell(name),
                _cell(run.target.version),
                _cell(run.target.api_version),
                _cell(run.target.backend),
                _cell(run.target.kernel),
                _cell(run.target.docker_cli),
                str(t["scenarios"]),
                *(str(t["outcomes"][o]) for o in OUTCOMES),
                *(str(v[k]) if v else "—" for k in ("match", "diverge", "known", "missing", "skipped")),
                _schema_cell(parity, run.name, t["schema"]),
            ]
        )
    out += _table(
        [
            "Target",
            "Version",
            "API",
            "Backend",
            "Kernel",
            "Docker CLI",
            "Scenarios",
            *OUTCOMES,
            "match",
            "diverge",
            "known",
            "missing",
            "parity-skipped",
            "Schema",
        ],
        rows,
    )
    out += _profiles_section(parity, summary)
    unexplained = parity.unexplained()
    out += ["", f"Unexplained divergences: {len(unexplained)}"]
    for s, t, v in unexplained:
        out.append(f"- {_code(s.id)} on {_cell(t)}: {v.verdict}{' — ' + _cell(v.reason) if v.reason else ''}")
    if parity.trend is not None:
        prev = parity.trend.previous
        out += [
            "",
            f"Trend since the previous report (generated {_cell(prev.get('generated') or '—')}): "
            f"{_cell(parity.trend.headline())}; see `trend.md`.",
        ]
    stale = parity.stale()
    if stale:
        out += [
            "",
            "Stale known divergences (explained nothing in this run; remove them if the gap is closed):",
        ]
        for k in stale:
            out.append(
                f"- {_code(k.entry.scenario)} on {_cell(', '.join(k.entry.targets))}: {_cell(k.entry.reason)}"
            )

    out += ["", "## Scenarios", ""]
    out += _table(
        ["Scenario", "Statement", *(_cell(n) for n in names), "Parity"],
        [
            [
                _code(s.id),
                _cell(s.statement) + (f" ({_cell(s.ref)})" if s.ref else ""),
                *(_cell(s.results[n].outcome) if n in s.results else "absent" for n in names),
                _parity_cell(parity, s),
            ]
            for s in parity.scenarios
        ],
    )

    skipped = [
        (s, n, s.results[n].reason)
        for s in parity.scenarios
        for n in names
        if n in s.results and s.results[n].outcome == "skipped"
    ]
    if skipped:
        out += ["", "## Skipped", ""]
        out += _table(
            ["Scenario", "Target", "Reason"], [[_code(s.id), _cell(n), _cell(r)] for s, n, r in skipped]
        )

    failed = [
        (s, n, s.results[n])
        for s in parity.scenarios
        for n in names
        if n in s.results and s.results[n].outcome in ("failed", "error")
    ]
    if failed:
        out += ["", "## Failures", ""]
        out += _table(
            ["Scenario", "Target", "Outcome", "Message"],
            [
                [
                    _code(s.id),
                    _cell(n),
                    r.outcome,
                    _cell(
                        r.reason
                        + (f" (expected: {s.expected_failures[n]})" if n in s.expected_failures else "")
                    ),
                ]
                for s, n, r in failed
            ],
        )

    out += _isolation_section(parity)
    out += ["", "## Divergences", ""]
    divergent = [
        (s, t, v)
        for s in parity.scenarios
        for t, v in s.verdicts.items()
        if v.verdict in ("diverge", "known", "missing")
    ]
    if not divergent:
        out.append("None.")
    for s, t, v in divergent:
        out += ["", f"### {_code(s.id)}: {_cell(t)} vs {_cell(parity.reference)} ({v.verdict})", ""]
        if v.reason:
            link = f" ({_cell(v.link)})" if v.link else ""
            out += [f"{_cell(v.reason)}{link}", ""]
        rows = []
        if v.outcome is not None:
            rows.append(["outcome", _cell(v.outcome[0]), _cell(v.outcome[1])])
        for d in v.diffs:
            rows.append(
                [
                    _code(d.path or "/"),
                    "(absent)" if d.kind == "added" else _code(_value(d.reference)),
                    "(absent)" if d.kind == "removed" else _code(_value(d.target)),
                ]
            )
        if rows:
            out += _table(["Path", _cell(parity.reference), _cell(t)], rows)

    out += _schema_section(parity)

    out += [
        "",
        "## Normalisation rules",
        "",
        "Observations are normalised with these rules, in this order, before they are compared:",
        "",
    ]
    out += _table(
        ["Rule", "Description"], [[_code(r["name"]), _cell(r["description"])] for r in parity.rules]
    )
    # cells never hold newlines, so collapsing blank runs only tidies the spacing between blocks
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)) + "\n"


def _profiles_section(parity: Parity, summary: dict[str, Any]) -> list[str]:
    """Per daemon profile: what it sets, and each target's outcomes and parity in it (only when the report
    has a profile besides the default)."""
    if parity.profile_names() in ([], ["default"]):
        return []
    out = ["", "## Profiles", ""]
    out += _table(
        ["Profile", "Description", "Flags", "daemon.json", "netns set-up", "Left out"],
        [
            [
                _code(r["name"]),
                _cell(r["description"]),
                *(_code(r[k]) if r[k] else "" for k in ("args", "daemon_json", "netns_setup")),
                _cell(r["dropped"]),
            ]
            for r in parity.profile_rows()
        ],
    )
    rows = []
    for profile, per_target in summary["profiles"].items():
        for name in parity.target_names:
            t = per_target[name]
            v = t["verdicts"] or {}
            rows.append(
                [
                    _code(profile),
                    _cell(f"{name} (reference)" if name == parity.reference else name),
                    str(t["scenarios"]),
                    *(str(t["outcomes"][o]) for o in OUTCOMES),
                    *(str(v[k]) if v else "—" for k in ("match", "diverge", "known", "missing", "skipped")),
                ]
            )
    out += [""]
    out += _table(
        [
            "Profile",
            "Target",
            "Scenarios",
            *OUTCOMES,
            "match",
            "diverge",
            "known",
            "missing",
            "parity-skipped",
        ],
        rows,
    )
    return out


def _schema_cell(parity: Parity, name: str, s: dict[str, Any]) -> str:
    if s["error"]:
        return "off (swagger unavailable)"
    if s["mode"] in ("", "off"):
        return _cell(s["mode"] or "—")
    own = "" if name == parity.reference else f", {s['own_findings']} not on the reference"
    return _cell(f"{s['mode']}: {s['checked']} checked, {s['findings']} finding(s){own}")


def _finding_rows(findings: list[tuple[ScenarioParity, Finding]], with_reference: bool) -> list[list[str]]:
    """One row per distinct violation (operation, status, API, field, keyword) with the scenarios that met it;
    the target's own (not on the reference) first."""
    groups: dict[tuple[str, str, int, str, str, str], tuple[Finding, list[str], int]] = {}
    for scenario, f in findings:
        first, sids, count = groups.get(f.key(), (f, [], 0))
        groups[f.key()] = (first, [*sids, scenario.id], count + f.count)
    ordered = sorted(groups.values(), key=lambda g: bool(g[0].on_reference))
    rows = []
    for f, sids, count in ordered:
        shown = ", ".join(_code(sid) for sid in sids[:3]) + (
            f" (+{len(sids) - 3} more)" if len(sids) > 3 else ""
        )
        row = [
            _code(f"{f.method} {f.path}"),
            str(f.status),
            _cell(f.api_version),
            _code(f.field or "/"),
            _cell(f.message),
            f"{count} in {len(sids)}: {shown}",
        ]
        rows.append([*row, "yes" if f.on_reference else "no"] if with_reference else row)
    return rows


def _schema_section(parity: Parity) -> list[str]:
    """Per target: why checks were off, or the findings (the reference's own, the others' with a mark for
    those the reference shares)."""
    out = ["", "## Schema findings", ""]
    out.append(
        "JSON response bodies the scenarios received, checked against the Engine API swagger of the "
        "request's API version (moby's `api/swagger.yaml` from Debian's golang-github-docker-docker-dev). "
        "*On reference*: the reference target answered with the same violation."
    )
    for run in parity.targets:
        s = parity.schema_summary(run.name)
        out += ["", f"### {_cell(run.name)}", ""]
        if s["error"]:
            out.append(f"Schema checks did not run: {_cell(s['error'])}")
            continue
        if s["mode"] in ("", "off"):
            out.append("Schema checks were off." if s["mode"] == "off" else "No schema checks recorded.")
            continue
        swaggers = ", ".join(
            f"{w.get('api_version', '?')} ({w.get('source', '?')})" for w in run.schema_check.swaggers
        )
        out.append(
            f"Mode {s['mode']}; {s['checked']} response(s) checked; {s['findings']} finding(s) in "
            f"{s['scenarios_with_findings']} scenario(s)"
            + ("" if run.name == parity.reference else f", {s['own_findings']} not on the reference")
            + (f"; swaggers: {_cell(swaggers)}" if swaggers else "")
            + "."
        )
        findings = parity.findings(run.name)
        if not findings:
            continue
        is_ref = run.name == parity.reference
        header = ["Operation", "Status", "API", "Field", "Message", "Responses in scenarios"]
        out += [""]
        out += _table(
            [*header, "On reference"] if not is_ref else header, _finding_rows(findings, not is_ref)
        )
    return out


# -- junit


def _x(text: str) -> str:
    return _XML_INVALID.sub("\ufffd", text)


def render_junit(parity: Parity) -> str:
    """One ``<testsuite>`` per target, one ``<testcase>`` per scenario (the union over targets)."""
    root = ET.Element("testsuites", name="conformance")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for run in parity.targets:
        name = run.name
        suite = ET.SubElement(root, "testsuite", name=_x(name))
        props = ET.SubElement(suite, "properties")
        for key, value in (
            *run.target.to_dict().items(),
            ("reference", parity.reference),
            ("started", run.started),
        ):
            ET.SubElement(props, "property", name=_x(key), value=_x(str(value)))
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        time = 0.0
        for s in parity.scenarios:
            case = ET.SubElement(
                suite, "testcase", classname=_x(f"{name}.{s.area or 'scenario'}"), name=_x(s.id)
            )
            counts["tests"] += 1
            result = s.results.get(name)
            verdict = s.verdicts.get(name)
            if result is None:
                message = f"scenario absent from {name} results"
                ET.SubElement(case, "failure", type="missing", message=_x(message)).text = _x(message)
                counts["failures"] += 1
                continue
            case.set("time", f"{result.duration:.3f}")
            time += result.duration
            texts: list[str] = []
            if result.outcome in ("failed", "error"):
                texts.append(result.reason or result.outcome)
            if verdict is not None and verdict.problem:
                texts.append(
                    f"{verdict.verdict} vs reference {parity.reference}:\n"
                    + diff_text(verdict, parity.reference, name)
                )
            if texts:
                tag = "error" if result.outcome == "error" else "failure"
                kind = result.outcome if result.outcome in ("failed", "error") else "parity"
                message = texts[0].splitlines()[0] if texts[0] else kind
                ET.SubElement(case, tag, type=kind, message=_x(message)).text = _x("\n\n".join(texts))
                counts["errors" if tag == "error" else "failures"] += 1
            elif result.outcome == "skipped":
                ET.SubElement(case, "skipped", message=_x(result.reason))
                counts["skipped"] += 1
            out: list[str] = []
            if verdict is not None and verdict.verdict == "known":
                out.append(
                    f"known divergence vs {parity.reference}: {verdict.reason}"
                    + (f" ({verdict.link})" if verdict.link else "")
                    + "\n"
                    + diff_text(verdict, parity.reference, name)
                )
            findings = result.schema_check.findings
            if findings:
                out.append(
                    f"schema findings ({len(findings)}):\n"
                    + "\n".join(
                        f"  {f.summary()}" + (" [also on the reference]" if f.on_reference else "")
                        for f in findings
                    )
                )
            if out:
                ET.SubElement(case, "system-out").text = _x("\n\n".join(out))
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
        suite.set("time", f"{time:.3f}")
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
