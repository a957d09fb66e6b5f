"""The results file: round trips, shard merging, and clear errors for bad files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cf_factories import results, scenario

from conformance.results import (
    SCHEMA,
    Results,
    ResultsError,
    dump_results,
    load_results,
    merge_results,
)

EXAMPLE: dict[str, Any] = {
    "schema": "harness.results/1",
    "target": {
        "name": "refd",
        "version": "28.5.2-refd",
        "api_version": "1.51",
        "backend": "local",
        "kernel": "6.18.0",
    },
    "started": "2026-11-27T19:00:00Z",
    "duration": 12.3,
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
        }
    ],
}


def test_example_document_round_trips_exactly() -> None:
    loaded = Results.from_dict(EXAMPLE)
    assert loaded.target.name == "refd"
    assert loaded.scenarios[0].observations["headers"]["Api-Version"] == "1.41"
    assert loaded.to_dict() == EXAMPLE


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
        (_with(schema="harness.results/2"), "schema is 'harness.results/2', expected 'harness.results/1'"),
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
