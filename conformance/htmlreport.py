"""``parity.html``: one self-contained page (inline CSS and JS, no external assets) over a parity document.

A matrix of scenario x target (targets grouped by kernel when the runs had different kernels), filtered by
area, outcome, parity verdict, schema findings, what changed since a previous report (when the document
holds a trend, shown in its own section above the matrix) and a text search. Every count in the summary
table is a button that shows only the rows it counts (that target, that outcome, verdict or schema findings),
and the lists of unexplained and stale divergences link to their rows, so any divergence is two clicks away:
the count or the link, then the cell. Each cell opens (``<details>``) to show what the target did: outcome
and reason, the verdict with the known-divergence reason (or a stale entry naming the cell), the diff
against the reference, the raw observations, and the schema checks with their findings.

Scenario output is untrusted (a daemon can put anything in an error message): every text goes through
``html.escape`` and data reaches the script only through ``data-*`` attributes, never inside ``<script>``.
"""

from __future__ import annotations

import html
import json
from typing import Any

from conformance.parity import VERDICTS, KnownUse, Parity, ScenarioParity, TargetOutcome, TargetRun, Verdict
from conformance.trend import Change, Trend
from harness.results import OUTCOMES, Finding

__all__ = ["render_html"]

_MAX_JSON = 20_000

_CSS = """
:root { --ok: #1a7f37; --bad: #cf222e; --err: #82071e; --skip: #6e7781; --div: #bc4c00; --known: #0969da;
  --miss: #8250df; --find: #9a6700; --line: #d0d7de; --bg: #f6f8fa; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5rem; color: #1f2328; }
h1 { font-size: 1.5rem; margin: 0 0 .3rem; } h2 { font-size: 1.15rem; margin: 1.5rem 0 .5rem; }
code, pre { font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; }
pre { background: var(--bg); border: 1px solid var(--line); padding: .5rem; overflow: auto; max-height: 24rem;
  white-space: pre-wrap; word-break: break-word; margin: .3rem 0; }
table { border-collapse: collapse; }
th, td { border: 1px solid var(--line); padding: .25rem .45rem; vertical-align: top; text-align: left; }
th { background: var(--bg); position: sticky; top: 0; z-index: 1; }
.meta { color: #57606a; } .ok { color: var(--ok); font-weight: 600; } .failed-run { color: var(--bad);
  font-weight: 600; }
#filters { display: flex; flex-wrap: wrap; gap: .4rem 1.5rem; margin: 1rem 0; padding: .6rem .8rem;
  background: var(--bg); border: 1px solid var(--line); border-radius: 6px; }
#filters fieldset { border: 0; margin: 0; padding: 0; } #filters legend { font-weight: 600; padding: 0; }
#filters label { margin-right: .6rem; white-space: nowrap; } #filters button { margin-left: .2rem; }
#matrix td.sc { min-width: 14rem; max-width: 30rem; } #matrix td.sc .st { color: #57606a; font-size: 12px; }
#matrix td.cell { min-width: 9rem; max-width: 40rem; }
details > summary { cursor: pointer; list-style: none; }
details > summary::-webkit-details-marker { display: none; }
details[open] > summary { margin-bottom: .3rem; }
.badge { display: inline-block; border-radius: 3px; padding: 0 .35rem; font-size: 12px; color: #fff;
  font-weight: 600; margin-right: .2rem; }
.o-passed { background: var(--ok); } .o-failed { background: var(--bad); }
.o-error { background: var(--err); }
.o-skipped, .o-absent, .v-skipped { background: var(--skip); } .v-match { background: var(--ok); }
.v-diverge { background: var(--div); } .v-known { background: var(--known); }
.v-missing { background: var(--miss); } .v-reference { background: #57606a; }
.f-own { background: var(--find); } .f-shared { background: #bf8700; opacity: .7; }
td.cell.problem { background: #fff1e5; } td.cell.failing { background: #ffebe9; }
.reason { white-space: pre-wrap; } .small { font-size: 12px; } .dim { color: #57606a; }
table.inner { margin: .3rem 0; font-size: 12px; } table.inner th { position: static; }
table.inner td { overflow-wrap: anywhere; } table.inner td.nw { white-space: nowrap; }
#count { margin-left: auto; color: #57606a; }
button.pick { font: inherit; border: 0; background: none; padding: 0; color: #0969da; cursor: pointer;
  text-decoration: underline; }
#focus { flex-basis: 100%; } #focus[hidden] { display: none; } p.stale { color: var(--known); }
.t-new-failure, .t-new-divergence { background: var(--bad); } .t-fixed, .t-resolved { background: var(--ok); }
.t-new-scenario { background: var(--known); } #trend .warn { color: var(--bad); font-weight: 600; }
"""

_JS = """
(function () {
  var form = document.getElementById('filters');
  var rows = Array.prototype.slice.call(document.querySelectorAll('#matrix > tbody > tr'));
  var focusBox = document.getElementById('focus');
  function checked(group) {
    var out = {};
    form.querySelectorAll('input[data-group="' + group + '"]').forEach(function (box) {
      if (box.checked) { out[box.value] = true; }
    });
    return out;
  }
  function any(words, set) {
    return words.split(' ').some(function (w) { return w && set[w]; });
  }
  function apply() {
    var areas = checked('area'), outcomes = checked('outcome'), verdicts = checked('verdict');
    var profiles = checked('profile');
    var byProfile = form.querySelector('input[data-group="profile"]') !== null;
    var onlyFindings = document.getElementById('only-findings').checked;
    var changedBox = document.getElementById('only-changed');
    var onlyChanged = changedBox !== null && changedBox.checked;
    var text = document.getElementById('search').value.toLowerCase();
    var focus = focusBox.dataset.focus || '';
    var shown = 0;
    rows.forEach(function (row) {
      var ok = areas[row.dataset.area] && any(row.dataset.outcomes, outcomes) &&
        (!byProfile || profiles[row.dataset.profile]) &&
        (!row.dataset.verdicts || any(row.dataset.verdicts, verdicts)) &&
        (!onlyFindings || row.dataset.findings !== '0') &&
        (!onlyChanged || row.dataset.trend) &&
        (!text || row.dataset.text.indexOf(text) !== -1) &&
        (!focus || row.dataset.cells.split(' ').indexOf(focus) !== -1);
      row.hidden = !ok;
      if (ok) { shown += 1; }
    });
    document.getElementById('count').textContent = shown + ' of ' + rows.length + ' scenarios';
  }
  form.addEventListener('input', apply);
  form.addEventListener('change', apply);
  form.querySelectorAll('button[data-set]').forEach(function (button) {
    button.addEventListener('click', function (event) {
      event.preventDefault();
      var on = button.dataset.set === 'all';
      form.querySelectorAll('input[data-group="' + button.dataset.group + '"]').forEach(function (box) {
        box.checked = on;
      });
      apply();
    });
  });
  // show every row again: all boxes checked, no search, no "only" boxes, no focus
  function reset() {
    form.querySelectorAll('input[type="checkbox"]').forEach(function (box) {
      box.checked = !!box.dataset.group;
    });
    document.getElementById('search').value = '';
    focusBox.dataset.focus = '';
    focusBox.hidden = true;
  }
  // a count in the summary table: only the rows it counts, then the matrix
  document.querySelectorAll('button.pick').forEach(function (button) {
    button.addEventListener('click', function (event) {
      event.preventDefault();
      reset();
      focusBox.dataset.focus = button.dataset.focus;
      document.getElementById('focus-text').textContent = button.title;
      focusBox.hidden = false;
      apply();
      document.getElementById('scenarios').scrollIntoView();
    });
  });
  document.getElementById('focus-clear').addEventListener('click', function (event) {
    event.preventDefault();
    reset();
    apply();
  });
  // a link to a row (divergence lists, trend): make sure the row is not filtered out, then follow it
  document.querySelectorAll('a[data-row]').forEach(function (link) {
    link.addEventListener('click', function () {
      var row = document.getElementById(link.dataset.row);
      if (row !== null && row.hidden) { reset(); apply(); }
    });
  });
  document.getElementById('expand').addEventListener('click', function (event) {
    event.preventDefault();
    var open = this.dataset.open !== '1';
    this.dataset.open = open ? '1' : '0';
    this.textContent = open ? 'collapse all' : 'expand all';
    rows.forEach(function (row) {
      if (!row.hidden) { row.querySelectorAll('details').forEach(function (d) { d.open = open; }); }
    });
  });
  apply();
})();
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _json(value: Any) -> str:
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
    if len(text) > _MAX_JSON:
        text = text[:_MAX_JSON] + f"\n… ({len(text) - _MAX_JSON} more characters in parity.json)"
    return _e(text)


def _short_json(value: Any, limit: int = 200) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _badge(kind: str, text: str, title: str = "") -> str:
    t = f' title="{_e(title)}"' if title else ""
    return f'<span class="badge {_e(kind)}"{t}>{_e(text)}</span>'


def _link(url: str) -> str:
    if url.startswith(("https://", "http://")):
        return f'<a href="{_e(url)}" rel="noopener noreferrer">{_e(url)}</a>'
    return _e(url)


def _diff_table(parity: Parity, target: str, verdict: Verdict) -> str:
    rows = []
    if verdict.outcome is not None:
        rows.append(
            f"<tr><td>outcome</td><td>{_e(verdict.outcome[0])}</td><td>{_e(verdict.outcome[1])}</td></tr>"
        )
    for d in verdict.diffs:
        ref = "(absent)" if d.kind == "added" else _short_json(d.reference)
        tgt = "(absent)" if d.kind == "removed" else _short_json(d.target)
        rows.append(
            f"<tr><td><code>{_e(d.path or '/')}</code></td><td><code>{_e(ref)}</code></td>"
            f"<td><code>{_e(tgt)}</code></td></tr>"
        )
    if not rows:
        return ""
    return (
        f'<table class="inner"><thead><tr><th>path (normalised)</th><th>{_e(parity.reference)}</th>'
        f"<th>{_e(target)}</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _findings_table(findings: tuple[Finding, ...], is_reference: bool) -> str:
    rows = []
    for f in findings:
        shared = "" if is_reference else ("yes" if f.on_reference else "no")
        rows.append(
            "<tr>"
            f'<td><code title="first request: {_e(f.url)}">{_e(f.method)} {_e(f.path)}</code></td>'
            f'<td class="nw">{_e(f.status)}</td><td class="nw">{_e(f.api_version)}</td>'
            f"<td><code>{_e(f.field or '/')}</code></td>"
            f"<td>{_e(f.message)}{' (x' + _e(f.count) + ')' if f.count > 1 else ''}</td>"
            + ("" if is_reference else f"<td>{shared}</td>")
            + "</tr>"
        )
    head = "<th>operation</th><th>status</th><th>API</th><th>field</th><th>message</th>" + (
        "" if is_reference else "<th>on reference</th>"
    )
    return (
        f'<table class="inner findings"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


def _cell(
    parity: Parity, scenario: ScenarioParity, run: TargetRun, stale: tuple[KnownUse, ...] = ()
) -> tuple[str, set[str], set[str], int]:
    """The ``<td>`` for one target of one scenario, plus its outcome, verdict words and finding count."""
    name = run.name
    result: TargetOutcome | None = scenario.results.get(name)
    verdict = scenario.verdicts.get(name)
    is_ref = name == parity.reference
    outcome = result.outcome if result is not None else "absent"
    words = {outcome}
    verdict_words = {verdict.verdict} if verdict is not None else set()
    findings = result.schema_check.findings if result is not None else ()
    own = [f for f in findings if not f.on_reference]
    summary = [_badge(f"o-{outcome}", outcome)]
    if verdict is not None:
        summary.append(_badge(f"v-{verdict.verdict}", verdict.verdict, f"parity with {parity.reference}"))
    elif is_ref and len(parity.targets) > 1:
        summary.append(_badge("v-reference", "reference"))
    if findings:
        kind = "f-own" if own or is_ref else "f-shared"
        label = f"schema {len(findings)}" if is_ref or not own else f"schema {len(own)}/{len(findings)}"
        title = "schema findings" if is_ref else "schema findings not on the reference / all"
        summary.append(_badge(kind, label, title))
    body: list[str] = []
    if result is None:
        body.append(f"<p>The scenario is absent from {_e(name)}'s results.</p>")
    else:
        meta = f"{result.duration:.3f} s"
        if result.nodeid:
            meta += f" · <code>{_e(result.nodeid)}</code>"
        body.append(f'<p class="small dim">{meta}</p>')
        if result.reason:
            body.append(f'<p class="reason"><b>{_e(outcome)}:</b> {_e(result.reason)}</p>')
    if verdict is not None:
        text = f"<p><b>parity vs {_e(parity.reference)}: {_e(verdict.verdict)}</b>"
        if verdict.reason:
            label = "known divergence" if verdict.verdict == "known" else "why"
            text += f'<br><span class="reason">{label}: {_e(verdict.reason)}</span>'
        if verdict.link:
            text += f"<br>{_link(verdict.link)}"
        body.append(text + "</p>")
        body.append(_diff_table(parity, name, verdict))
    for use in _stale_for(parity, scenario.id, run, stale):
        link = f"<br>{_link(use.entry.link)}" if use.entry.link else ""
        body.append(
            f'<p class="stale"><b>stale known divergence</b> (it explained nothing in this run): '
            f'<span class="reason">{_e(use.entry.reason)}</span>{link}</p>'
        )
    if result is not None:
        if result.observations:
            body.append(f"<p><b>observations</b> (raw)</p><pre>{_json(result.observations)}</pre>")
        check = result.schema_check
        if check.checked or check.skipped or check.findings:
            skipped = ", ".join(f"{_e(k)} {_e(v)}" for k, v in sorted(check.skipped.items()))
            body.append(
                f"<p><b>schema</b>: {_e(check.checked)} response(s) checked"
                + (f"; skipped: {skipped}" if skipped else "")
                + (f"; {len(check.findings)} finding(s)" if check.findings else "; no findings")
                + "</p>"
            )
            if check.findings:
                body.append(_findings_table(check.findings, is_ref))
    classes = ["cell"]
    if outcome in ("failed", "error"):
        classes.append("failing")
    elif verdict is not None and verdict.problem:
        classes.append("problem")
    td = (
        f'<td class="{" ".join(classes)}" data-target="{_e(name)}">'
        f"<details><summary>{''.join(summary)}</summary>{''.join(body)}</details></td>"
    )
    return td, words, verdict_words, len(findings)


def _stale_for(
    parity: Parity, scenario_id: str, run: TargetRun, stale: tuple[KnownUse, ...]
) -> list[KnownUse]:
    """The stale known-divergence entries that name this scenario on this (non-reference) target."""
    if run.name == parity.reference or not stale:
        return []
    ref = next((r for r in parity.targets if r.name == parity.reference), None)
    labels = [f"{run.name}@{run.target.version}"]
    if ref is not None:
        labels.append(f"{ref.name}@{ref.target.version}")
    return [k for k in stale if k.entry.matches(scenario_id, run.name, parity.reference, *labels)]


def _pick(target: str, group: str, value: str, count: Any, title: str) -> str:
    """A count in the summary table; when non-zero, a button showing only the rows it counts."""
    if not isinstance(count, int) or count <= 0:
        return _e(count)
    focus = f"{target}:{group}:{value}" if value else f"{target}:{group}"
    return f'<button type="button" class="pick" data-focus="{_e(focus)}" title="{_e(title)}">{count}</button>'


def _cell_tokens(target: str, outcomes: set[str], verdicts: set[str], findings: int) -> list[str]:
    """What a summary count matches in a row: ``T:outcome:X``, ``T:verdict:X``, ``T:schema`` (findings)."""
    out = [f"{target}:outcome:{o}" for o in sorted(outcomes)]
    out += [f"{target}:verdict:{v}" for v in sorted(verdicts)]
    if findings:
        out.append(f"{target}:schema")
    return out


def _kernels(parity: Parity) -> list[tuple[str, list[TargetRun]]]:
    groups: dict[str, list[TargetRun]] = {}
    for run in parity.targets:
        groups.setdefault(run.target.kernel, []).append(run)
    return list(groups.items())


def _summary_table(parity: Parity) -> str:
    summary = parity.summary()
    rows = []
    for run in parity.targets:
        t = summary["targets"][run.name]
        v = t["verdicts"] or {}
        s = t["schema"]
        name = f"{run.name} (reference)" if run.name == parity.reference else run.name
        if s["error"]:
            schema = f'<span title="{_e(s["error"])}">off: swagger unavailable</span>'
        elif s["mode"] in ("", "off"):
            schema = _e(s["mode"] or "not recorded")
        else:
            own = "" if run.name == parity.reference else f" ({_e(s['own_findings'])} not on the reference)"
            shown = _pick(
                run.name, "schema", "", s["findings"], f"{run.name}: scenarios with schema findings"
            )
            schema = f"{_e(s['mode'])}: {_e(s['checked'])} checked, {shown} finding(s){own}"
        swaggers = ", ".join(f"{_e(w.get('api_version', ''))}" for w in run.schema_check.swaggers)
        rows.append(
            "<tr>"
            f"<td>{_e(name)}</td><td>{_e(run.target.version)}</td><td>{_e(run.target.api_version)}</td>"
            f"<td>{_e(run.target.backend)}</td><td>{_e(run.target.kernel)}</td>"
            f"<td>{_e(run.target.docker_cli)}</td><td>{_e(t['scenarios'])}</td>"
            + "".join(
                f"<td>{_pick(run.name, 'outcome', o, t['outcomes'][o], f'{run.name}: {o}')}</td>"
                for o in OUTCOMES
            )
            + "".join(
                f"<td>{_pick(run.name, 'verdict', k, v[k], f'{run.name}: {k} vs {parity.reference}')}</td>"
                if v
                else "<td>—</td>"
                for k in VERDICTS
            )
            + f"<td>{schema}{' · swaggers ' + swaggers if swaggers else ''}</td>"
            "</tr>"
        )
    head = (
        '<tr><th rowspan="2">target</th><th rowspan="2">version</th><th rowspan="2">API</th>'
        '<th rowspan="2">backend</th><th rowspan="2">kernel</th><th rowspan="2">docker CLI</th>'
        '<th rowspan="2">scenarios</th>'
        f'<th colspan="{len(OUTCOMES)}">outcomes</th>'
        f'<th colspan="{len(VERDICTS)}">parity with {_e(parity.reference)}</th>'
        '<th rowspan="2">schema checks</th></tr><tr>'
        + "".join(f"<th>{_e(o)}</th>" for o in OUTCOMES)
        + "".join(f"<th>{_e(v)}</th>" for v in VERDICTS)
        + "</tr>"
    )
    return f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def _profiles_html(parity: Parity, summary: dict[str, Any]) -> str:
    """What each daemon profile sets and each target's outcomes and parity in it (when there is more than
    the default profile)."""
    if parity.profile_names() in ([], ["default"]):
        return ""
    defs = "".join(
        f"<tr><td><code>{_e(r['name'])}</code></td><td>{_e(r['description'])}</td>"
        + "".join(
            f"<td>{'<code>' + _e(r[k]) + '</code>' if r[k] else ''}</td>"
            for k in ("args", "daemon_json", "netns_setup")
        )
        + f"<td>{_e(r['dropped'])}</td></tr>"
        for r in parity.profile_rows()
    )
    rows = []
    for profile, per_target in summary["profiles"].items():
        for name in parity.target_names:
            t = per_target[name]
            v = t["verdicts"] or {}
            ref = " (reference)" if name == parity.reference else ""
            rows.append(
                f"<tr><td><code>{_e(profile)}</code></td><td>{_e(name + ref)}</td>"
                f"<td>{_e(t['scenarios'])}</td>"
                + "".join(f"<td>{_e(t['outcomes'][o])}</td>" for o in OUTCOMES)
                + "".join(f"<td>{_e(v[k]) if v else '—'}</td>" for k in VERDICTS)
                + "</tr>"
            )
    head = (
        "<tr><th>profile</th><th>target</th><th>scenarios</th>"
        + "".join(f"<th>{_e(o)}</th>" for o in OUTCOMES)
        + "".join(f"<th>{_e(v)}</th>" for v in VERDICTS)
        + "</tr>"
    )
    return (
        '<h2 id="profiles">Daemon profiles</h2>'
        "<table><thead><tr><th>profile</th><th>description</th><th>flags</th><th>daemon.json</th>"
        f"<th>netns set-up</th><th>left out</th></tr></thead><tbody>{defs}</tbody></table>"
        f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _filters(areas: list[str], with_trend: bool = False, profiles: list[str] | None = None) -> str:
    def group(name: str, legend: str, values: list[str]) -> str:
        boxes = "".join(
            f'<label><input type="checkbox" data-group="{_e(name)}" value="{_e(v)}" checked> {_e(v)}</label>'
            for v in values
        )
        buttons = (
            f'<button type="button" data-group="{_e(name)}" data-set="all">all</button>'
            f'<button type="button" data-group="{_e(name)}" data-set="none">none</button>'
        )
        return f"<fieldset><legend>{_e(legend)} {buttons}</legend>{boxes}</fieldset>"

    return (
        '<form id="filters" onsubmit="return false">'
        + group("area", "Area", areas)
        + (group("profile", "Daemon profile", profiles) if profiles and len(profiles) > 1 else "")
        + group("outcome", "Outcome (any target)", [*OUTCOMES, "absent"])
        + group("verdict", "Parity (any target)", list(VERDICTS))
        + "<fieldset><legend>Schema</legend>"
        '<label><input type="checkbox" id="only-findings"> only scenarios with findings</label></fieldset>'
        + (
            '<fieldset><legend>Trend</legend><label><input type="checkbox" id="only-changed"> only scenarios '
            "that changed since the previous report</label></fieldset>"
            if with_trend
            else ""
        )
        + '<fieldset><legend>Search</legend><input type="search" id="search" '
        'placeholder="scenario id or text"></fieldset>'
        '<fieldset><legend>Cells</legend><button type="button" id="expand">expand all</button></fieldset>'
        '<span id="count"></span>'
        '<p id="focus" data-focus="" hidden>showing only <b id="focus-text"></b> '
        '<button type="button" id="focus-clear">show all</button></p></form>'
    )


def _listing(title: str, items: str, count: int) -> str:
    """A list under a summary line, open when it is short."""
    if not items:
        return f"<p>{_e(title)}</p>"
    return (
        f"<details{' open' if count <= 10 else ''}><summary>{_e(title)}</summary><ul>{items}</ul></details>"
    )


_TREND_LABELS = {
    "new-failure": "new failure",
    "fixed": "fixed",
    "new-divergence": "new divergence",
    "resolved": "resolved",
    "new-scenario": "new scenario",
}


def _row_id(scenario_id: str) -> str:
    return f"sc-{scenario_id}"


def _code(text: str) -> str:
    return f"<code>{_e(text)}</code>"


def _row_link(scenario_id: str) -> str:
    """A link to a scenario's row in the matrix (the script clears the filters that would hide it)."""
    row = _e(_row_id(scenario_id))
    return f'<a href="#{row}" data-row="{row}"><code>{_e(scenario_id)}</code></a>'


def _changes_table(changes: tuple[Change, ...], what: str, with_detail: bool, known: set[str]) -> str:
    rows = []
    for c in changes:
        sid = _row_link(c.scenario) if c.scenario in known else f"<code>{_e(c.scenario)}</code>"
        detail = ""
        if with_detail:
            text = ("(excused by a known divergence) " if c.expected else "") + c.detail
            detail = f'<td class="reason">{_e(text) or "—"}</td>'
        rows.append(
            f"<tr><td>{sid}</td><td>{_e(c.target)}</td><td>{_e(c.before)}</td><td>{_e(c.after)}</td>{detail}</tr>"
        )
    head = f"<th>scenario</th><th>target</th><th>{what} before</th><th>{what} now</th>" + (
        "<th>detail</th>" if with_detail else ""
    )
    return f'<table class="inner"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _trend_section(parity: Parity, trend: Trend) -> str:
    """What changed since the previous report: counts, then each kind of change (ids link to their rows)."""
    prev = trend.previous
    known = {s.id for s in parity.scenarios}
    parts = [
        '<section id="trend"><h2>Trend since the previous report</h2>',
        f'<p class="meta">previous: <code>{_e(prev.get("source") or "?")}</code> · generated '
        f"{_e(prev.get('generated') or '—')} · reference {_e(prev.get('reference') or '?')} — "
        f"<b>{_e(trend.headline())}</b></p>",
    ]
    if trend.reference_changed:
        parts.append(
            f'<p class="warn">The reference target changed ({_e(prev.get("reference"))} → '
            f"{_e(trend.reference)}): verdicts before and now are against different daemons.</p>"
        )
    targets = [f"<li>added: {_e(n)}</li>" for n in trend.targets_added]
    targets += [f"<li>removed: {_e(n)}</li>" for n in trend.targets_removed]
    targets += [
        f"<li>{_e(v['target'])}: version {_e(v['before'] or '?')} → {_e(v['after'] or '?')}</li>"
        for v in trend.versions
    ]
    if targets:
        parts.append(f"<p>Targets:</p><ul>{''.join(targets)}</ul>")
    for title, changes, what, detail in (
        ("New failures", trend.new_failures, "outcome", True),
        ("Fixed", trend.fixed, "outcome", False),
        ("New divergences", trend.new_divergences, "verdict", True),
        ("Resolved divergences", trend.resolved_divergences, "verdict", False),
    ):
        if changes:
            parts.append(
                f"<details{' open' if len(changes) <= 10 else ''}>"
                f"<summary>{_e(title)}: {len(changes)}</summary>"
                + _changes_table(changes, what, detail, known)
                + "</details>"
            )
    for title, ids in (
        ("New scenarios", trend.new_scenarios),
        ("Removed scenarios", trend.removed_scenarios),
    ):
        if ids:
            items = "".join(
                f"<li>{_row_link(sid)}</li>" if sid in known else f"<li><code>{_e(sid)}</code></li>"
                for sid in ids
            )
            parts.append(_listing(f"{title}: {len(ids)}", items, len(ids)))
    schema_rows = "".join(
        f"<tr><td>{_e(d.target)}</td>"
        f"<td>{_e(d.before.get('checked', 0))} → {_e(d.after.get('checked', 0))}</td>"
        f"<td>{_e(d.before.get('findings', 0))} → {_e(d.after.get('findings', 0))}</td>"
        f"<td>{_e(d.before.get('own_findings', 0))} → {_e(d.after.get('own_findings', 0))}</td>"
        f"<td>{len(d.new)} / {len(d.gone)}"
        + "".join(
            f'<br><span class="small">{label}: <code>{_e(v.get("method"))} {_e(v.get("path"))}</code> '
            f"{_e(v.get('status'))} <code>{_e(v.get('field') or '/')}</code> {_e(v.get('message'))}</span>"
            for label, items in (("new", d.new), ("gone", d.gone))
            for v in items[:20]
        )
        + "</td></tr>"
        for d in trend.schema
        if d.changed
    )
    if schema_rows:
        parts.append(
            '<p>Schema findings that changed:</p><table class="inner"><thead><tr><th>target</th>'
            "<th>responses checked</th><th>findings</th><th>not on the reference</th>"
            f"<th>violations new / gone</th></tr></thead><tbody>{schema_rows}</tbody></table>"
        )
    parts.append("</section>")
    return "".join(parts)


def render_html(parity: Parity) -> str:
    summary = parity.summary()
    areas = sorted({s.area or s.id.split("/", 1)[0] for s in parity.scenarios})
    kernels = _kernels(parity)
    runs = [run for _k, group in kernels for run in group]
    head_rows = []
    if len(kernels) > 1:
        head_rows.append(
            '<tr><th rowspan="2">scenario</th>'
            + "".join(f'<th colspan="{len(g)}">kernel {_e(k or "?")}</th>' for k, g in kernels)
            + "</tr><tr>"
        )
    else:
        head_rows.append("<tr><th>scenario</th>")
    for run in runs:
        ref = " (reference)" if run.name == parity.reference else ""
        detail = " · ".join(
            x for x in (run.target.version, run.target.kernel if len(kernels) == 1 else "") if x
        )
        head_rows.append(f'<th>{_e(run.name)}{_e(ref)}<br><span class="small dim">{_e(detail)}</span></th>')
    head_rows.append("</tr>")
    body_rows = []
    marks = parity.trend.scenario_marks() if parity.trend is not None else {}
    stale_uses = tuple(parity.stale())
    for s in parity.scenarios:
        cells, outcomes, verdicts, findings = [], set(), set(), 0
        tokens: list[str] = []
        for run in runs:
            td, o, v, n = _cell(parity, s, run, stale_uses)
            cells.append(td)
            tokens += _cell_tokens(run.name, o, v, n)
            outcomes |= o
            verdicts |= v
            findings += n
        area = s.area or s.id.split("/", 1)[0]
        text = " ".join((s.id, s.statement, s.ref)).lower()
        ref = f' <span class="dim">({_e(s.ref)})</span>' if s.ref else ""
        changed = sorted(marks.get(s.id, ()))
        badges = "".join(_badge(f"t-{m}", _TREND_LABELS[m], "since the previous report") for m in changed)
        body_rows.append(
            f'<tr data-area="{_e(area)}" data-profile="{_e(s.profile)}" '
            f'data-outcomes="{_e(" ".join(sorted(outcomes)))}" '
            f'data-verdicts="{_e(" ".join(sorted(verdicts)))}" data-findings="{findings}" '
            f'data-trend="{_e(" ".join(changed))}" id="{_e(_row_id(s.id))}" data-text="{_e(text)}" '
            f'data-cells="{_e(" ".join(tokens))}">'
            f'<td class="sc"><code>{_e(s.id)}</code>{" " + badges if badges else ""}'
            f'<div class="st">{_e(s.statement)}{ref}</div></td>' + "".join(cells) + "</tr>"
        )
    unexplained = parity.unexplained()
    ids = {s.id for s in parity.scenarios}
    problems = "".join(f"<li>{_row_link(s.id)} on {_e(t)}: {_e(v.verdict)}</li>" for s, t, v in unexplained)
    stale = "".join(
        f"<li>{_row_link(k.entry.scenario) if k.entry.scenario in ids else _code(k.entry.scenario)}"
        f" on {_e(', '.join(k.entry.targets))}: {_e(k.entry.reason)}</li>"
        for k in stale_uses
    )
    rules = "".join(
        f"<tr><td><code>{_e(r['name'])}</code></td><td>{_e(r['description'])}</td></tr>" for r in parity.rules
    )
    ok = summary["ok"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>Conformance parity</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Conformance parity</h1>",
        f'<p class="meta">reference target <b>{_e(parity.reference)}</b> · '
        f"generated {_e(parity.generated or '—')}"
        f" · {len(parity.scenarios)} scenarios · result: "
        f'<span class="{"ok" if ok else "failed-run"}">{_e(summary["result"])}</span></p>',
        "<h2>Summary</h2>",
        _summary_table(parity),
        _profiles_html(parity, summary),
        _listing(f"Unexplained divergences: {len(unexplained)}", problems, len(unexplained)),
        _listing(
            f"Stale known divergences (explained nothing in this run): {len(parity.stale())}",
            stale,
            len(parity.stale()),
        )
        if stale
        else "",
        _trend_section(parity, parity.trend) if parity.trend is not None else "",
        '<h2 id="scenarios">Scenarios</h2>',
        '<p class="small dim">Click a cell for what the target did: outcome, parity with the reference '
        "and the known-divergence reason, the diff (on normalised observations), the raw observations and "
        "the schema findings (responses checked against the Engine API swagger; <i>on reference</i> means "
        "the reference target answered with the same violation).</p>",
        _filters(areas, with_trend=parity.trend is not None, profiles=parity.profile_names()),
        f'<table id="matrix"><thead>{"".join(head_rows)}</thead><tbody>{"".join(body_rows)}</tbody></table>',
        "<h2>Normalisation rules</h2>",
        "<p>Observations are normalised with these rules, in this order, before they are compared:</p>",
        f"<table><thead><tr><th>rule</th><th>description</th></tr></thead><tbody>{rules}</tbody></table>",
        f"<script>{_JS}</script>",
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"
