"""The writers: JSON reloads, Markdown has the tables and ids, JUnit parses and says the right things."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from cf_factories import checked, finding, results, scenario

from conformance.parity import KnownDivergence, Parity, build_parity
from conformance.report import (
    render_html,
    render_junit,
    render_markdown,
    write_html,
    write_json,
    write_junit,
    write_markdown,
    write_reports,
)


@pytest.fixture
def parity() -> Parity:
    ref = results(
        "dockerd",
        scenario("api/ok", status=200),
        scenario("api/diverges", headers={"Api-Version": "1.51"}),
        scenario("api/known", v=1),
        scenario("api/skip", "skipped", "needs root"),
        scenario("api/fails", "failed", 'expected <200> & "ok"\x01'),
        scenario("api/only-ref"),
    )
    tgt = results(
        "refd",
        scenario("api/ok", status=200),
        scenario("api/diverges", headers={"Api-Version": "1.41|x"}),
        scenario("api/known", v=2),
        scenario("api/skip", "skipped", "needs root"),
        scenario("api/fails", "error", "fixture blew up"),
    )
    known = [KnownDivergence("api/known", ("refd",), "refd is younger", "https://example.test/k")]
    return build_parity([ref, tgt], known, generated="2026-11-27T19:00:00Z")


def test_json_writer_reloads(parity: Parity, tmp_path: Path) -> None:
    path = write_json(parity, tmp_path / "parity.json")
    assert Parity.from_dict(json.loads(path.read_text())) == parity


def test_markdown_has_summary_scenarios_divergences_and_rules(parity: Parity, tmp_path: Path) -> None:
    text = write_markdown(parity, tmp_path / "parity.md").read_text()
    for heading in (
        "## Summary",
        "## Scenarios",
        "## Skipped",
        "## Failures",
        "## Divergences",
        "## Normalisation rules",
    ):
        assert heading in text
    for s in parity.scenarios:
        assert f"`{s.id}`" in text
    assert "| `api/ok` | api/ok MUST behave (spec 1.0) | passed | passed | match |" in text
    assert '| `/headers/Api-Version` | `"1.51"` | `"1.41\\|x"` |' in text  # pipes escaped in cells
    assert "refd is younger (https://example.test/k)" in text
    assert "| `short-id` |" in text
    # every table row has as many cells as its header
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    for line in rows:
        assert line.endswith(" |")


def test_markdown_says_none_without_divergences() -> None:
    parity = build_parity([results("dockerd", scenario("a/1")), results("refd", scenario("a/1"))])
    text = render_markdown(parity)
    assert "## Divergences\n\nNone." in text
    assert "result: **OK**" in text


def test_junit_parses_and_maps_outcomes_and_verdicts(parity: Parity, tmp_path: Path) -> None:
    root = ET.parse(write_junit(parity, tmp_path / "junit.xml")).getroot()
    assert root.tag == "testsuites"
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert list(suites) == ["dockerd", "refd"]
    for suite in suites.values():
        assert [c.get("name") for c in suite.findall("testcase")] == [s.id for s in parity.scenarios]

    def case(target: str, sid: str) -> ET.Element:
        found = suites[target].find(f"testcase[@name='{sid}']")
        assert found is not None
        return found

    assert list(case("dockerd", "api/ok")) == []
    assert list(case("refd", "api/ok")) == []
    failure = case("dockerd", "api/fails").find("failure")
    assert failure is not None
    assert failure.get("message") == 'expected <200> & "ok"\ufffd'
    error = case("refd", "api/fails").find("error")
    assert error is not None and "fixture blew up" in (error.text or "")
    assert "outcome: dockerd=failed refd=error" in (error.text or "")
    skipped = case("refd", "api/skip").find("skipped")
    assert skipped is not None and skipped.get("message") == "needs root"
    diverge = case("refd", "api/diverges").find("failure")
    assert diverge is not None and diverge.get("type") == "parity"
    assert '/headers/Api-Version: dockerd="1.51" refd="1.41|x"' in (diverge.text or "")
    known = case("refd", "api/known")
    assert known.find("failure") is None
    assert "known divergence vs dockerd: refd is younger" in (known.findtext("system-out") or "")
    missing = case("refd", "api/only-ref").find("failure")
    assert missing is not None and missing.get("type") == "missing"
    assert suites["refd"].get("tests") == "6"
    assert (suites["refd"].get("failures"), suites["refd"].get("errors"), suites["refd"].get("skipped")) == (
        "2",
        "1",
        "1",
    )
    assert root.get("tests") == "12"


def test_write_reports_writes_the_four_files(parity: Parity, tmp_path: Path) -> None:
    written = write_reports(parity, tmp_path / "out")
    assert [p.name for p in written] == ["parity.json", "parity.md", "junit.xml", "parity.html"]
    assert all(p.is_file() for p in written)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "junit.xml",
        "parity.html",
        "parity.json",
        "parity.md",
    ]


# -- schema findings in the reports

SHARED = finding("/Options")
OWN = finding(
    "/HostConfig/MemorySwappiness",
    "-1 is below the minimum 0",
    keyword="minimum",
    path="/containers/{id}/json",
    url="/v1.41/containers/abc/json",
)
HOSTILE = "<script>alert('x')</script>"


@pytest.fixture
def schema_parity() -> Parity:
    ref = results(
        "dockerd",
        checked(scenario("api/volumes/inspect", status=200), SHARED, count=2, **{"not-json": 1}),
        checked(scenario("config/x/y", text=HOSTILE)),
        scenario("socket/z/w", "skipped", "needs root"),
        schema="report",
        kernel="6.1.0",
    )
    tgt = results(
        "refd",
        checked(scenario("api/volumes/inspect", status=200), SHARED, OWN, count=2),
        checked(scenario("config/x/y", text=HOSTILE + "&"), finding("/Evil", HOSTILE)),
        scenario("socket/z/w", "failed", f"boom {HOSTILE}"),
        schema="report",
        kernel="6.18.0",
    )
    return build_parity([ref, tgt], generated="2026-11-27T19:00:00Z")


def test_parity_marks_the_findings_the_reference_shares(schema_parity: Parity) -> None:
    refd = {f.field: f.on_reference for _, f in schema_parity.findings("refd")}
    assert refd == {"/Options": True, "/HostConfig/MemorySwappiness": False, "/Evil": False}
    assert [f.on_reference for _, f in schema_parity.findings("dockerd")] == [None]  # the reference itself
    assert [f.field for _, f in schema_parity.own_findings("refd")] == [
        "/HostConfig/MemorySwappiness",
        "/Evil",
    ]
    summary = schema_parity.summary()["targets"]
    assert summary["refd"]["schema"] == {
        "mode": "report",
        "error": "",
        "checked": 3,
        "findings": 3,
        "own_findings": 2,
        "scenarios_with_findings": 2,
    }
    assert summary["dockerd"]["schema"]["findings"] == 1


def test_json_keeps_schema_checks_and_reloads(schema_parity: Parity, tmp_path: Path) -> None:
    data = json.loads(write_json(schema_parity, tmp_path / "parity.json").read_text())
    assert data["schema"] == "harness.parity/4"
    refd = data["scenarios"][0]["results"]["refd"]["schema_check"]
    assert [f["on_reference"] for f in refd["findings"]] == [True, False]
    assert data["targets"][0]["schema_check"]["mode"] == "report"
    assert Parity.from_dict(data) == schema_parity


def test_markdown_lists_findings_per_target(schema_parity: Parity) -> None:
    text = render_markdown(schema_parity)
    assert "## Schema findings" in text
    assert "report: 3 checked, 3 finding(s), 2 not on the reference" in text
    assert (
        "| `GET /containers/{id}/json` | 200 | 1.41 | `/HostConfig/MemorySwappiness` "
        "| -1 is below the minimum 0 | 1 in 1: `api/volumes/inspect` | no |" in text
    )
    findings = text[text.index("## Schema findings") :]
    assert HOSTILE not in findings and "&lt;script&gt;" in findings


def test_junit_carries_findings_in_system_out(schema_parity: Parity) -> None:
    root = ET.fromstring(render_junit(schema_parity))
    case = root.find("testsuite[@name='refd']/testcase[@name='api/volumes/inspect']")
    assert case is not None and case.find("failure") is None  # findings are not failures
    out = case.findtext("system-out") or ""
    assert "schema findings (2):" in out
    shared = "GET /volumes/{name} 200 [API 1.41] /Options: null where the swagger expects object"
    assert f"{shared} [also on the reference]" in out
    assert "/HostConfig/MemorySwappiness: -1 is below the minimum 0\n" in out + "\n"


def test_html_is_self_contained_with_every_scenario_and_filters(
    schema_parity: Parity, tmp_path: Path
) -> None:
    text = write_html(schema_parity, tmp_path / "parity.html").read_text()
    assert text.startswith("<!DOCTYPE html>")
    # no external assets: nothing is fetched from anywhere
    assert not re.search(r"<(link|img|iframe)\b|\bsrc=|@import|url\(", text)
    for s in schema_parity.scenarios:
        assert f"<code>{s.id}</code>" in text
        assert f'data-area="{s.area}"' in text
    for area in ("api", "config", "socket"):
        assert f'data-group="area" value="{area}" checked' in text
    for outcome in ("passed", "failed", "skipped", "error", "absent"):
        assert f'data-group="outcome" value="{outcome}"' in text
    for verdict in ("match", "diverge", "known", "missing", "skipped"):
        assert f'data-group="verdict" value="{verdict}"' in text
    assert 'id="only-findings"' in text and 'id="search"' in text
    assert "<script>" in text and text.count("<script>") == 1  # the page's own, inline


def test_html_escapes_untrusted_scenario_output(schema_parity: Parity) -> None:
    text = render_html(schema_parity)
    assert HOSTILE not in text  # not in observations, failure reasons nor finding messages
    assert "alert(&#x27;x&#x27;)" in text
    assert "&lt;script&gt;" in text
    assert text.count("<script>") == 1 and text.count("</script>") == 1


def test_html_cells_open_on_observations_diff_reason_and_findings(parity: Parity) -> None:
    text = render_html(parity)
    cell = text[text.index("<code>api/known</code>") :]
    cell = cell[: cell.index("<tr data-area")]
    assert "<details>" in cell and "known divergence: refd is younger" in cell
    assert '<a href="https://example.test/k" rel="noopener noreferrer">' in cell
    assert "<th>path (normalised)</th>" in cell and "<code>/v</code>" in cell
    assert "&quot;v&quot;: 2" in cell  # raw observations, pretty JSON, escaped


def test_html_groups_targets_by_kernel_when_they_differ(schema_parity: Parity, parity: Parity) -> None:
    text = render_html(schema_parity)
    assert '<th colspan="1">kernel 6.1.0</th>' in text and '<th colspan="1">kernel 6.18.0</th>' in text
    assert "schema 1/2" in text  # refd's cell: 1 finding of 2 not on the reference
    assert "kernel 6.18.0</th>" not in render_html(parity)  # one kernel: shown under each target instead
    assert "28.5.2 · 6.18.0" in render_html(parity)


def test_html_filters_scenarios_with_findings(schema_parity: Parity) -> None:
    text = render_html(schema_parity)
    rows = re.findall(
        r'<tr data-area="[^"]*" data-profile="[^"]*" data-outcomes="([^"]*)" data-verdicts="([^"]*)" '
        r'data-findings="(\d+)"',
        text,
    )
    assert rows == [
        ("passed", "match", "3"),
        ("passed", "diverge", "1"),
        ("failed skipped", "skipped", "0"),
    ]


def test_every_report_names_the_docker_cli_the_scenarios_drove(parity: Parity, tmp_path: Path) -> None:
    cli = "28.5.2+dfsg4 (Debian sid docker-cli 28.5.2+dfsg4-5)"
    written = write_reports(parity, tmp_path)
    assert {p.name for p in written} >= {"parity.json", "parity.md", "junit.xml", "parity.html"}
    doc = json.loads((tmp_path / "parity.json").read_text())
    assert {t["docker_cli"] for t in doc["targets"]} == {cli}
    md = (tmp_path / "parity.md").read_text()
    assert "| Docker CLI |" in md and f"| {cli} |" in md
    props = ET.parse(tmp_path / "junit.xml").getroot().findall("testsuite/properties/property")
    assert {(p.get("name"), p.get("value")) for p in props} >= {("docker_cli", cli)}
    assert f"<td>{cli}</td>" in (tmp_path / "parity.html").read_text()


def test_markdown_lists_what_scenarios_left_on_a_shared_daemon_and_the_shuffle_seed() -> None:
    from dataclasses import replace

    from harness.results import Results

    leaky = replace(scenario("api/a"), left_behind=("left volume forgotten",))
    refd = replace(results("refd", leaky, scenario("api/b")), shuffle_seed=42)
    docker: Results = results("dockerd", scenario("api/a"), scenario("api/b"))
    parity = build_parity([refd, docker], [])
    text = render_markdown(parity)
    assert "Scenario order: shuffled (refd seed 42)" in text
    assert "| `api/a` | refd | left volume forgotten |" in text
    doc = json.loads(json.dumps(parity.to_dict()))
    assert doc["scenarios"][0]["results"]["refd"]["left_behind"] == ["left volume forgotten"]
    clean = render_markdown(build_parity([docker], []))
    assert "Every scenario on a shared daemon left it as it found it." in clean
