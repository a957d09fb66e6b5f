"""Fill ``docs/tutorial.md``'s result blocks from a parity report: each step's verdicts and what was seen.

The prose of ``docs/tutorial.md`` is written by hand; between the markers

    <!-- tutorial:summary -->          ...  <!-- /tutorial:summary -->
    <!-- tutorial:result SCENARIO-ID --> ... <!-- /tutorial:result -->

the text is generated from ``reports/parity.json`` (``python -m conformance run --suite tutorial,systemd``
writes it): a table of every target's outcome and parity, and the reference target's observations. A
scenario the report does not hold keeps a note saying so. Run::

    python -m conformance.tutorial [--parity reports/parity.json] [--doc docs/tutorial.md] [--check]

``--check`` exits 1 when the doc is not what the report gives (for CI), without writing it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from conformance.errors import ConformanceError
from conformance.parity import Parity, ScenarioParity, load_parity

__all__ = ["main", "render_doc", "render_result", "render_summary"]

_RESULT = re.compile(
    r"(<!-- tutorial:result (?P<id>[^ ]+) -->\n)(?P<body>.*?)(<!-- /tutorial:result -->)", re.S
)
_SUMMARY = re.compile(r"(<!-- tutorial:summary -->\n)(?P<body>.*?)(<!-- /tutorial:summary -->)", re.S)
_ICONS = {"match": "match", "known": "known divergence", "diverge": "DIVERGES", "missing": "missing"}


def _version(parity: Parity, name: str) -> str:
    for run in parity.targets:
        if run.name == name:
            return run.target.version or "?"
    return "?"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _parity_cell(parity: Parity, scenario: ScenarioParity, name: str) -> str:
    if name == parity.reference:
        return "reference"
    verdict = scenario.verdicts.get(name)
    if verdict is None:
        return ""
    label = _ICONS.get(verdict.verdict, verdict.verdict)
    if verdict.verdict in ("known", "diverge") and verdict.diffs:
        paths = ", ".join(sorted({d.path or "/" for d in verdict.diffs})[:4])
        label += f" (`{paths}`)"
    if verdict.reason:
        label += f": {verdict.reason}"
    return _cell(label)


def _order(parity: Parity) -> list[str]:
    names = parity.target_names
    return [parity.reference, *[n for n in names if n != parity.reference]]


def render_result(parity: Parity, scenario: ScenarioParity, doc_dir: Path, root: Path) -> str:
    """The generated block of one step: statement, per-target table, the reference's observations."""
    nodeid = next((r.nodeid for r in scenario.results.values() if r.nodeid), "")
    source = nodeid.split("::")[0]
    link = f" ([scenario]({_relative(root / source, doc_dir)}))" if source else ""
    lines = [
        f"*{scenario.statement}*{link}",
        "",
        "| target | version | outcome | parity |",
        "|---|---|---|---|",
    ]
    for name in _order(parity):
        result = scenario.results.get(name)
        outcome = result.outcome if result else "not run"
        if result and result.outcome in ("failed", "error", "skipped") and result.reason:
            outcome += f": {result.reason.splitlines()[-1][:160]}"
        verdict = _parity_cell(parity, scenario, name)
        lines.append(f"| {name} | {_version(parity, name)} | {_cell(outcome)} | {verdict} |")
    ref = scenario.results.get(parity.reference)
    shown = (
        ref
        if ref and ref.observations
        else next((r for r in scenario.results.values() if r.observations), None)
    )
    if shown is not None:
        who = parity.reference if shown is ref else "a target"
        lines += ["", f"Seen on {who}:", "", "```json", json.dumps(shown.observations, indent=1), "```"]
    return "\n".join(lines) + "\n"


def render_summary(parity: Parity, ids: list[str]) -> str:
    """One row per step: each target's outcome and parity."""
    order = _order(parity)
    head = "| step | " + " | ".join(f"{n} {_version(parity, n)}" for n in order) + " |"
    lines = [head, "|---" * (len(order) + 1) + "|"]
    by_id = {s.id: s for s in parity.scenarios}
    for sid in ids:
        scenario = by_id.get(sid)
        cells = []
        for name in order:
            result = scenario.results.get(name) if scenario else None
            if result is None:
                cells.append("not run")
                continue
            cell = result.outcome
            verdict = scenario.verdicts.get(name) if scenario else None
            if verdict is not None and verdict.verdict != "match":
                cell += f", {_ICONS.get(verdict.verdict, verdict.verdict)}"
            cells.append(cell)
        lines.append(f"| [`{sid}`](#{_anchor(sid)}) | " + " | ".join(cells) + " |")
    generated = parity.generated or "?"
    lines += ["", f"Generated from the parity report of {generated} (reference: {parity.reference})."]
    return "\n".join(lines) + "\n"


def _anchor(scenario_id: str) -> str:
    return "result-" + re.sub(r"[^a-z0-9]+", "-", scenario_id.lower()).strip("-")


def _relative(path: Path, start: Path) -> str:
    import os

    return os.path.relpath(path, start)


def render_doc(text: str, parity: Parity, doc_dir: Path, root: Path) -> str:
    """``text`` with every marker block regenerated from ``parity``."""
    by_id = {s.id: s for s in parity.scenarios}
    ids = [m.group("id") for m in _RESULT.finditer(text)]

    def result(match: re.Match[str]) -> str:
        sid = match.group("id")
        scenario = by_id.get(sid)
        if scenario is None:
            body = f"*Not in this report: run `python -m conformance --suite tutorial` to see `{sid}`.*\n"
        else:
            body = render_result(parity, scenario, doc_dir, root)
        anchor = f'<a id="{_anchor(sid)}"></a>\n'
        return match.group(1) + anchor + body + match.group(4)

    text = _RESULT.sub(result, text)
    return _SUMMARY.sub(lambda m: m.group(1) + render_summary(parity, ids) + m.group(3), text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m conformance.tutorial", description=__doc__.split("\n")[0])
    p.add_argument("--parity", default="reports/parity.json", help="the parity report (default %(default)s)")
    p.add_argument("--doc", default="docs/tutorial.md", help="the doc to fill (default %(default)s)")
    p.add_argument(
        "--check", action="store_true", help="exit 1 if the doc differs from what the report gives"
    )
    args = p.parse_args(argv)
    doc = Path(args.doc)
    try:
        parity = load_parity(args.parity)
        text = doc.read_text()
    except (OSError, ValueError, ConformanceError) as exc:
        sys.stderr.write(f"conformance.tutorial: {exc}\n")
        return 2
    root = Path(__file__).resolve().parent.parent
    new = render_doc(text, parity, doc.resolve().parent, root)
    if args.check:
        if new != text:
            sys.stderr.write(f"{doc} is not what {args.parity} gives: run python -m conformance.tutorial\n")
            return 1
        return 0
    if new != text:
        doc.write_text(new)
        print(f"updated {doc} from {args.parity}")
    else:
        print(f"{doc} is up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
