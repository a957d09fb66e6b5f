"""The results file: round trips, shard merging, and clear errors for bad files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cf_factories import results, scenario

from harness.results import (
    SCHEMA,
    Finding,
    Results,
    ResultsError,
    SchemaCheck,
    SchemaRun,
    dump_results,
    load_results,
    merge_results,
)

FINDING: dict[str, Any] = {
    "method": "GET",
    "path": "/volumes/{name}",
    "status": 200,
    "api_version": "1.41",
    "field": "/Options",
    "keyword": "x-nullable",
    "message": "null where the swagger expects object (not x-nullable)",
    "url": "/v1.41/volumes/vol-a",
    "count": 2,
}

EXAMPLE: dict[str, Any] = {
    "schema": "harness.results/3",
    "target": {
        "name": "refd",
        "version": "28.5.2-refd",
        "api_version": "1.51",
        "backend": "local",
        "kernel": "6.18.0",
        "docker_cli": "28.5.2+dfsg4 (Debian sid docker-cli 28.5.2+dfsg4-5)",
    },
    "started": "2026-11-27T19:00:00Z",
    "duration": 12.3,
    "schema_check": {
        "mode": "report",
        "swaggers": [
            {"api_version": "1.41", "source": "bookworm", "suite": "bookworm", "package_version": "x"}
        ],
        "error": "",
    },
    "profiles": {
        "no-bridge": {
            "description": "no default bridge",
            "args": ["--bridge=none"],
            "daemon_json": {},
            "netns_setup": [],
            "source": "harness/profiles.toml",
            "dropped": [],
        }
    },
    "scenarios": [
        {
            "id": "api/system/ping-headers",
            "nodeid": "suites/api/test_system.py::test_ping",
            "area": "api",
            "statement": "GET /_ping MUST answer 200 OK ...",
            "ref": "spec 6.2",
            "outcome": "passed",
            "reason": "",
            "duration": 0.12,
            "observations": {"status": 200, "headers": {"Api-Version": "1.41"}},
            "schema_check": {
                "checked": 3,
                "skipped": {"not-json": 1},
                "findings": [FINDING],
                "operations": ["SystemPing"],
            },
        }
    ],
}


def test_example_document_round_trips_exactly() -> None:
    loaded = Results.from_dict(EXAMPLE)
    assert loaded.target.name == "refd"
    assert loaded.scenarios[0].observations["headers"]["Api-Version"] == "1.41"
    assert loaded.to_dict() == EXAMPLE


def test_schema_checks_load_typed() -> None:
    loaded = Results.from_dict(EXAMPLE)
    assert loaded.schema_check.mode == "report"
    check = loaded.scenarios[0].schema_check
    assert check.checked == 3 and check.skipped == {"not-json": 1}
    assert check.findings == (Finding.from_dict(FINDING),)
    assert check.findings[0].on_reference is None


def test_version_1_files_still_load_without_schema_checks() -> None:
    old = json.loads(json.dumps(EXAMPLE))
    old["schema"] = "harness.results/1"
    del old["schema_check"]
    del old["profiles"]
    del old["scenarios"][0]["schema_check"]
    loaded = Results.from_dict(old)
    assert loaded.schema_check == SchemaRun()
    assert loaded.scenarios[0].schema_check == SchemaCheck()
    assert loaded.to_dict()["schema"] == SCHEMA == "harness.results/3"
    old["schema_check"] = {"mode": "report"}  # a version 1 file has no such field
    with pytest.raises(ResultsError, match="unknown field"):
        Results.from_dict(old)


def test_merge_adds_schema_counts_and_findings() -> None:
    one = SchemaCheck(2, {"not-json": 1}, (Finding.from_dict(FINDING),))
    two = SchemaCheck(1, {"not-json": 2, "no-body": 1}, (Finding.from_dict({**FINDING, "count": 1}),))
    merged = one.merge(two)
    assert merged.checked == 3 and merged.skipped == {"no-body": 1, "not-json": 3}
    assert [f.count for f in merged.findings] == [3]


def test_merge_unites_operations_and_loading_rejects_a_non_list() -> None:
    one = SchemaCheck(operations=("SystemPing", "SystemVersion"))
    assert one.merge(SchemaCheck(operations=("SystemInfo", "SystemPing"))).operations == (
        "SystemInfo",
        "SystemPing",
        "SystemVersion",
    )
    with pytest.raises(ResultsError, match="expected a list of operation ids"):
        SchemaCheck.from_dict({"checked": 0, "operations": "SystemPing"})


def test_dump_and_load_round_trip(tmp_path: Path) -> None:
    original = results("refd", scenario("api/a", status=200), scenario("api/b", "skipped", "needs root"))
    path = tmp_path / "sub" / "refd.json"
    dump_results(original, path)
    assert json.loads(path.read_text())["schema"] == SCHEMA
    assert load_results(path) == original
    assert [p.name for p in path.parent.iterdir()] == ["refd.json"]  # no temp file left behind


def test_optional_fields_default_and_area_comes_from_the_id() -> None:
    minimal = {
        "schema": SCHEMA,
        "target": {"name": "refd"},
        "scenarios": [{"id": "socket/x", "outcome": "error"}],
    }
    loaded = Results.from_dict(minimal)
    assert loaded.scenarios[0].area == "socket"
    assert loaded.scenarios[0].observations == {}
    assert loaded.duration == 0.0


def _write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "bad.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def _with(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(json.dumps(EXAMPLE))
    for key, value in changes.items():
        if key.startswith("scenario_"):
            doc["scenarios"][0][key.removeprefix("scenario_")] = value
        else:
            doc[key] = value
    return doc


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("{not json", "not JSON"),
        ("[]", "expected an object, got list"),
        (_with(schema="harness.results/4"), "schema is 'harness.results/4', expected 'harness.results/3'"),
        (_with(scenario_schema_check={"checked": 1, "findings": [{"method": "GET"}]}), "findings[0].path"),
        (_with(scenario_schema_check={"skipped": {"x": "many"}}), "schema_check.skipped: expected an object"),
        ({k: v for k, v in EXAMPLE.items() if k != "schema"}, "schema is None"),
        ({k: v for k, v in EXAMPLE.items() if k != "target"}, "at target: missing required field"),
        (_with(target={"version": "1"}), "at target.name: missing required field"),
        (_with(scenario_outcome="xfail"), "at scenarios[0].outcome: outcome 'xfail' is not one of"),
        (_with(scenario_observations=[1, 2]), "at scenarios[0].observations: expected an object, got list"),
        (_with(scenario_duration="fast"), "at scenarios[0].duration: expected a number, got str"),
        (_with(scenario_id=7), "at scenarios[0].id: expected a string, got int"),
        (_with(scenario_colour="red"), "at scenarios[0]: unknown field(s) 'colour'"),
        (_with(scenarios={"a": 1}), "at scenarios: expected a list, got dict"),
        (_with(scenarios=[EXAMPLE["scenarios"][0]] * 2), "duplicate scenario id 'api/system/ping-headers'"),
    ],
)
def test_bad_files_name_the_file_and_the_problem(tmp_path: Path, data: Any, expected: str) -> None:
    path = _write(tmp_path, data)
    with pytest.raises(ResultsError) as info:
        load_results(path)
    message = str(info.value)
    assert str(path) in message
    assert expected in message
    assert info.value.source == str(path)


def test_missing_file_is_a_results_error(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match=r"nope\.json: invalid results file: file does not exist"):
        load_results(tmp_path / "nope.json")


def test_merge_combines_shards_of_one_target() -> None:
    a = results("refd", scenario("api/b"), scenario("api/a"))
    b = results("refd", scenario("api/c", "failed", "boom"))
    merged = merge_results([a, b])
    assert [s.id for s in merged.scenarios] == ["api/a", "api/b", "api/c"]
    assert merged.duration == 3.0
    assert merged.target == a.target


def test_merge_refuses_different_targets_and_conflicting_shards() -> None:
    with pytest.raises(ResultsError, match=r"different targets.*version: '28\.5\.2' != '27\.0'"):
        merge_results([results("refd"), results("refd", version="27.0")])
    with pytest.raises(ResultsError, match="'api/a' appears in two shards"):
        merge_results([results("refd", scenario("api/a")), results("refd", scenario("api/a", "failed"))])
    # the very same scenario twice (a re-uploaded shard) is harmless
    assert len(merge_results([results("refd", scenario("api/a"))] * 2).scenarios) == 1


def test_merge_accepts_a_shard_that_learnt_no_api_version() -> None:
    from dataclasses import replace

    a = results("refd", scenario("api/a"))
    b = results("refd", scenario("socket/b"))
    b = replace(b, target=replace(b.target, api_version=""))
    merged = merge_results([b, a])
    assert merged.target.api_version == "1.51"
