"""The trend view: a report compared with a previous one (conformance.trend, compare, --previous)."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

import pytest
from cf_factories import checked, finding, results, scenario

from conformance.parity import KnownDivergence, Parity, ParityError, build_parity, load_parity
from conformance.report import render_html, render_markdown, write_reports
from conformance.runner import RUN_STEPS, PytestRun, Run, main, parse_options, run_pipeline
from conformance.trend import Trend, compute_trend, render_trend_markdown
from harness.results import dump_results

HOSTILE = "<script>alert('x')</script>"
OLD_FINDING = finding("/Options")
NEW_FINDING = finding("/Scope", HOSTILE, keyword="enum")
KNOWN = [KnownDivergence("api/new-known", ("refd",), "refd is younger", "https://example.test/k")]


def _old() -> Parity:
    ref = results(
        "dockerd",
        scenario("api/ok"),
        scenario("api/breaks", status=200),
        scenario("api/fixed", status=200),
        scenario("api/still", "failed", "always"),
        scenario("api/removed"),
        checked(scenario("api/schema")),
        version="28.5.1",
    )
    tgt = results(
        "refd",
        scenario("api/ok"),
        scenario("api/breaks", status=200),
        scenario("api/fixed", "failed", "was broken", status=500),
        scenario("api/still", "failed", "always"),
        scenario("api/removed"),
        checked(scenario("api/schema"), OLD_FINDING),
        schema="report",
    )
    old26 = results("dockerd-26", scenario("api/ok"), version="26.1.5")
    return build_parity([ref, tgt, old26], generated="2026-11-01T00:00:00Z")


def _new() -> Parity:
    ref = results(
        "dockerd",
        scenario("api/ok"),
        scenario("api/breaks", status=200),
        scenario("api/fixed", status=200),
        scenario("api/still", "failed", "always"),
        scenario("api/new-known", v=1),
        checked(scenario("api/schema")),
        version="28.5.2",
    )
    tgt = results(
        "refd",
        scenario("api/ok"),
        scenario("api/breaks", "failed", f"assert 404 == 200 {HOSTILE}\nmore", status=404),
        scenario("api/fixed", status=200),
        scenario("api/still", "failed", "always"),
        scenario("api/new-known", "failed", "refd says 2", v=2),
        checked(scenario("api/schema"), NEW_FINDING),
        schema="report",
    )
    return build_parity([ref, tgt], KNOWN, generated="2026-11-27T00:00:00Z")


@pytest.fixture
def trend() -> Trend:
    return compute_trend(_old(), _new(), "old/parity.json")


def _pairs(changes: Sequence[object]) -> list[tuple[str, str, str, str]]:
    return [(c.scenario, c.target, c.before, c.after) for c in changes]  # type: ignore[attr-defined]


def test_trend_lists_every_kind_of_change(trend: Trend) -> None:
    assert _pairs(trend.new_failures) == [
        ("api/breaks", "refd", "passed", "failed"),
        ("api/new-known", "refd", "absent", "failed"),
    ]
    breaks, new_known = trend.new_failures
    assert breaks.detail == "outcome: dockerd=passed refd=failed" and not breaks.expected
    assert new_known.expected and new_known.detail == "refd is younger"  # a known divergence excuses it
    assert _pairs(trend.fixed) == [("api/fixed", "refd", "failed", "passed")]
    assert _pairs(trend.new_divergences) == [
        ("api/breaks", "refd", "match", "diverge"),
        ("api/new-known", "refd", "absent", "known"),
    ]
    assert _pairs(trend.resolved_divergences) == [("api/fixed", "refd", "diverge", "match")]
    assert trend.new_scenarios == ("api/new-known",)
    assert trend.removed_scenarios == ("api/removed",)
    assert trend.targets_removed == ("dockerd-26",) and trend.targets_added == ()
    assert trend.versions == ({"target": "dockerd", "before": "28.5.1", "after": "28.5.2"},)
    assert trend.still_failing == 2  # api/still on both targets
    assert trend.previous["source"] == "old/parity.json"
    assert trend.previous["generated"] == "2026-11-01T00:00:00Z"
    assert not trend.reference_changed


def test_regressions_leave_out_what_known_divergences_explain(trend: Trend) -> None:
    assert _pairs(trend.regressions()) == [
        ("api/breaks", "refd", "passed", "failed"),
        ("api/breaks", "refd", "match", "diverge"),
    ]
    assert trend.headline() == (
        "2 new failure(s), 1 fixed, 2 new divergence(s), 1 resolved, 1 new scenario(s), 1 removed, "
        "target(s) removed: dockerd-26, dockerd 28.5.1→28.5.2, schema findings refd 1→1 (+1/-1 distinct)"
    )
    counts = trend.counts()
    assert counts["regressions"] == 2 and counts["new_failures"] == 2 and counts["removed_scenarios"] == 1


def test_schema_deltas_per_target(trend: Trend) -> None:
    refd = next(d for d in trend.schema if d.target == "refd")
    assert refd.before == {"checked": 1, "findings": 1, "own_findings": 1}
    assert refd.after == {"checked": 1, "findings": 1, "own_findings": 1}
    assert [v["field"] for v in refd.new] == ["/Scope"] and refd.new[0]["scenarios"] == ["api/schema"]
    assert refd.new[0]["on_reference"] is False
    assert [v["field"] for v in refd.gone] == ["/Options"]
    assert refd.changed
    dockerd = next(d for d in trend.schema if d.target == "dockerd")
    assert not dockerd.changed
    assert "dockerd-26" not in {d.target for d in trend.schema}


def test_nothing_changed_is_no_changes() -> None:
    same = compute_trend(_new(), _new())
    assert same.headline() == "no changes"
    assert same.regressions() == [] and same.counts()["schema_targets_changed"] == 0
    assert same.still_diverging == 2  # api/breaks and api/new-known, as before


def test_a_known_divergence_that_became_unexplained_is_new() -> None:
    new = _new()
    unexplained = build_parity(
        [results("dockerd", scenario("api/new-known", v=1)), results("refd", scenario("api/new-known", v=2))]
    )
    trend = compute_trend(new, unexplained)
    assert _pairs(trend.new_divergences) == [("api/new-known", "refd", "known", "diverge")]
    assert len(trend.regressions()) == 1


def test_reference_change_is_flagged() -> None:
    old = build_parity([results("dockerd", scenario("a/1")), results("refd", scenario("a/1"))])
    new = build_parity([results("dockerd-28", scenario("a/1")), results("refd", scenario("a/1"))])
    trend = compute_trend(old, new)
    assert trend.reference_changed and trend.targets_added == ("dockerd-28",)
    assert "The reference target changed" in render_trend_markdown(trend)


def test_trend_round_trips_in_the_parity_document(trend: Trend) -> None:
    parity = Parity(**{**_new().__dict__, "trend": trend})
    data = json.loads(json.dumps(parity.to_dict()))
    assert data["schema"] == "harness.parity/4"
    assert data["trend"]["counts"]["new_failures"] == 2 and data["trend"]["reference_changed"] is False
    assert Parity.from_dict(data) == parity
    with pytest.raises(ParityError, match="malformed trend section"):
        Parity.from_dict({**data, "trend": {"new_failures": [{"scenario": 1}]}})


def test_trend_markdown(trend: Trend) -> None:
    text = render_trend_markdown(trend, "2026-11-27T00:00:00Z")
    for heading in (
        "## Targets",
        "## New failures (2)",
        "## Fixed (1)",
        "## New divergences (2)",
        "## Resolved divergences (1)",
        "## New scenarios (1)",
        "## Removed scenarios (1)",
        "## Schema findings",
        "### refd: new violations (1)",
        "### refd: gone violations (1)",
    ):
        assert heading in text
    assert "| `api/breaks` | refd | passed | failed | outcome: dockerd=passed refd=failed |" in text
    assert "(excused by a known divergence) refd is younger" in text
    assert "- dockerd: version 28.5.1 → 28.5.2" in text and "- removed: dockerd-26" in text
    assert HOSTILE not in text and "&lt;script&gt;" in text
    assert all(line.endswith(" |") for line in text.splitlines() if line.startswith("| "))


def test_write_reports_writes_trend_md_only_with_a_trend(trend: Trend, tmp_path: Path) -> None:
    with_trend = Parity(**{**_new().__dict__, "trend": trend})
    written = write_reports(with_trend, tmp_path)
    assert [p.name for p in written][-1] == "trend.md"
    assert "Trend since the previous report (generated 2026-11-01T00:00:00Z)" in render_markdown(with_trend)
    write_reports(_new(), tmp_path)  # a later report without a trend: the old trend.md must not linger
    assert not (tmp_path / "trend.md").exists()


def test_html_shows_the_trend_and_filters_changed_rows(trend: Trend) -> None:
    text = render_html(Parity(**{**_new().__dict__, "trend": trend}))
    assert '<section id="trend">' in text and 'id="only-changed"' in text
    assert '<a href="#sc-api/breaks" data-row="sc-api/breaks"><code>api/breaks</code></a>' in text
    assert 'id="sc-api/breaks"' in text
    rows = dict(re.findall(r'data-trend="([^"]*)" id="sc-([^"]+)"', text)[i][::-1] for i in range(5))
    assert rows["api/breaks"] == "new-divergence new-failure"
    assert rows["api/fixed"] == "fixed resolved"
    assert rows["api/new-known"] == "new-divergence new-failure new-scenario"
    assert rows["api/ok"] == ""
    assert "<li><code>api/removed</code></li>" in text  # removed: no row to link to
    assert HOSTILE not in text
    assert text.count("<script>") == 1
    plain = render_html(_new())
    assert 'id="trend"' not in plain and 'id="only-changed"' not in plain


# -- the commands


def _report_dir(path: Path, parity: Parity) -> Path:
    write_reports(parity, path)
    return path


def test_compare_writes_the_trend_next_to_new_and_exits_1_on_regressions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = _report_dir(tmp_path / "old", _old())
    new = _report_dir(tmp_path / "new", _new())
    assert main(["compare", str(old), str(new / "parity.json")]) == 1
    out = capsys.readouterr().out
    assert "new failure: refd  api/breaks  passed -> failed" in out
    assert "(excused by a known divergence)" in out
    assert "regressions: 2" in out
    assert (new / "trend.md").is_file()
    again = load_parity(new)
    assert again.trend is not None and again.trend.previous["source"] == str(old)
    assert 'id="trend"' in (new / "parity.html").read_text()
    assert "trend.md" in (new / "parity.md").read_text()
    # no regressions (here: nothing changed) exits 0; --reports writes elsewhere, NEW is left alone
    before = (new / "parity.json").read_text()
    assert main(["compare", str(new), str(new), "--reports", str(tmp_path / "elsewhere")]) == 0
    assert "regressions: 0" in capsys.readouterr().out
    assert (tmp_path / "elsewhere" / "trend.md").is_file()
    assert (new / "parity.json").read_text() == before


def test_harness_report_compare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main as harness_main

    old = _report_dir(tmp_path / "old", _new())
    new = _report_dir(tmp_path / "new", _new())
    assert harness_main(["report", "compare", str(old), str(new)]) == 0
    assert "no changes" in capsys.readouterr().out


def test_compare_with_a_missing_report_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new = _report_dir(tmp_path / "new", _new())
    assert main(["compare", str(tmp_path / "nope"), str(new)]) == 2
    assert "no parity document there" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text('{"schema": "harness.results/2"}')
    assert main(["compare", str(tmp_path / "bad.json"), str(new)]) == 2
    assert "not a parity document" in capsys.readouterr().err


def _fake(scenarios: dict[str, list[object]]):  # type: ignore[no-untyped-def]
    def invoke(command: Sequence[str], cwd: Path, env: Mapping[str, str], out: TextIO) -> PytestRun:
        cmd = list(command)
        target = cmd[cmd.index("--targets") + 1]
        dump_results(results(target, *scenarios[target]), Path(cmd[cmd.index("--results-json") + 1]))  # type: ignore[arg-type]
        return PytestRun(0)

    return invoke


def _run(argv: list[str], scenarios: dict[str, list[object]]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    run = Run(argv=argv, env={}, invoke_pytest=_fake(scenarios), plugin_autoloaded=True, out=out, err=err)
    parsed = parse_options(run)
    code = parsed if isinstance(parsed, int) else run_pipeline(RUN_STEPS, parsed)
    return code, out.getvalue(), err.getvalue()


def test_previous_may_be_the_reports_directory_the_run_overwrites(tmp_path: Path) -> None:
    argv = ["--targets", "dockerd,refd", "--reports", str(tmp_path)]
    first = {
        "dockerd": [scenario("api/a"), scenario("api/b")],
        "refd": [scenario("api/a"), scenario("api/b")],
    }
    assert _run(argv, first)[0] == 0
    assert not (tmp_path / "trend.md").exists()
    second = {
        "dockerd": [scenario("api/a"), scenario("api/c")],
        "refd": [scenario("api/a", "failed", "boom"), scenario("api/c")],
    }
    code, out, _ = _run([*argv, "--previous", str(tmp_path)], second)
    assert code == 1  # the run's own verdict: api/a failed; the trend never changes the exit code
    assert "new failure: refd  api/a  passed -> failed: outcome: dockerd=passed refd=failed" in out
    parity = load_parity(tmp_path)
    assert parity.trend is not None
    assert parity.trend.new_scenarios == ("api/c",) and parity.trend.removed_scenarios == ("api/b",)
    assert (tmp_path / "trend.md").is_file()


def test_a_missing_previous_report_stops_the_run_before_it_starts(tmp_path: Path) -> None:
    calls: list[str] = []

    def never(command: Sequence[str], cwd: Path, env: Mapping[str, str], out: TextIO) -> PytestRun:
        calls.append("pytest")
        return PytestRun(0)

    err = io.StringIO()
    argv = ["--targets", "refd", "--reports", str(tmp_path), "--previous", str(tmp_path / "gone")]
    run = Run(argv=argv, env={}, invoke_pytest=never, plugin_autoloaded=True, out=io.StringIO(), err=err)
    parsed = parse_options(run)
    assert isinstance(parsed, Run)
    assert run_pipeline(RUN_STEPS, parsed) == 2
    assert calls == [] and "no parity document there" in err.getvalue()


def test_report_and_merge_take_previous(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = _report_dir(tmp_path / "old", _old())
    dump_results(results("dockerd", scenario("api/ok")), tmp_path / "now" / "dockerd.json")
    assert main(["report", str(tmp_path / "now"), "--previous", str(old / "parity.json")]) == 0
    assert "removed" in capsys.readouterr().out
    trend = load_parity(tmp_path / "now").trend
    assert trend is not None and "api/removed" in trend.removed_scenarios
    assert trend.targets_removed == ("refd", "dockerd-26")
    assert (
        main(
            [
                "merge",
                str(tmp_path / "now" / "dockerd.json"),
                "-o",
                str(tmp_path / "m"),
                "--previous",
                str(old),
            ]
        )
        == 0
    )
    assert (tmp_path / "m" / "trend.md").is_file()
