"""The writers: JSON reloads, Markdown has the tables and ids, JUnit parses and says the right things."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from cf_factories import results, scenario

from conformance.parity import KnownDivergence, Parity, build_parity
from conformance.report import render_markdown, write_json, write_junit, write_markdown, write_reports


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


def test_write_reports_writes_the_three_files(parity: Parity, tmp_path: Path) -> None:
    written = write_reports(parity, tmp_path / "out")
    assert [p.name for p in written] == ["parity.json", "parity.md", "junit.xml"]
    assert all(p.is_file() for p in written)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["junit.xml", "parity.json", "parity.md"]
