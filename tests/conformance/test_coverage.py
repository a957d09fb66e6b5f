"""conformance.coverage: operations count as covered through a scenario's ref or its recorded traffic; the
uncovered ones carry their out-of-scope reason or are gaps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conformance.coverage import compute, from_parity, main, operations, render_markdown
from conformance.parity import build_parity
from conformance.report import write_json
from harness.results import Results, ScenarioResult, SchemaCheck, TargetInfo, dump_results

SWAGGER: dict[str, Any] = {
    "swagger": "2.0",
    "info": {"version": "1.51"},
    "paths": {
        "/_ping": {
            "get": {"operationId": "SystemPing", "tags": ["System"]},
            "head": {"operationId": "SystemPingHead", "tags": ["System"]},
        },
        "/containers/{id}/pause": {"post": {"operationId": "ContainerPause", "tags": ["Container"]}},
        "/swarm": {"get": {"operationId": "SwarmInspect", "tags": ["Swarm"]}, "parameters": []},
        "/volumes/{name}": {"put": {"operationId": "VolumeUpdate", "tags": ["Volume"]}},
    },
}


def _scenario(sid: str, ref: str = "", ops: tuple[str, ...] = ()) -> ScenarioResult:
    return ScenarioResult(sid, "passed", ref=ref, schema_check=SchemaCheck(operations=ops))


def test_operations_read_method_path_and_tag_and_skip_non_operations() -> None:
    ops = operations(SWAGGER)
    assert [(o.id, o.method, o.path, o.tag) for o in ops] == [
        ("SystemPing", "GET", "/_ping", "System"),
        ("SystemPingHead", "HEAD", "/_ping", "System"),
        ("ContainerPause", "POST", "/containers/{id}/pause", "Container"),
        ("SwarmInspect", "GET", "/swarm", "Swarm"),
        ("VolumeUpdate", "PUT", "/volumes/{name}", "Volume"),
    ]


def test_ref_and_traffic_both_cover_and_the_rest_are_gaps_or_out_of_scope() -> None:
    cov = compute(
        SWAGGER,
        [
            _scenario("api/system/ping", ref="spec 6.2", ops=("SystemPing",)),
            _scenario("api/cli/pause", ref="operations ContainerPause Paused, ContainerUnpaws; spec 4.1"),
        ],
    )
    assert [o.id for o in cov.covered()] == ["SystemPing", "ContainerPause"]
    assert cov.by_ref == {"ContainerPause": {"api/cli/pause"}}
    assert cov.by_traffic == {"SystemPing": {"api/system/ping"}}
    # a typo in a ref shows up; 'Paused' is a field named after the operation, not an operation
    assert cov.unknown_refs == {"api/cli/pause": {"ContainerUnpaws"}}
    assert [o.id for o in cov.gaps()] == ["SystemPingHead"]
    by_id = {o.id: o for o in cov.uncovered()}
    assert cov.reason(by_id["SwarmInspect"]).startswith("swarm mode")  # by tag
    assert cov.reason(by_id["VolumeUpdate"]).startswith("cluster volumes")  # by operation id


def test_words_before_operation_are_not_operation_ids() -> None:
    cov = compute(SWAGGER, [_scenario("api/x", ref="SystemPingHead spec; moby api/server/router")])
    assert cov.covered() == [] and cov.unknown_refs == {}


def test_markdown_lists_gaps_reasons_and_covering_scenarios() -> None:
    cov = compute(SWAGGER, [Results(TargetInfo("refd"), (_scenario("api/a", ops=("SystemPing",)),))])
    text = render_markdown(cov, "1.51")
    assert text.startswith(
        "Engine API 1.51 operations: 5; covered by at least one scenario: 1; out of scope: 2; gaps: 2."
    )
    assert "| SystemPingHead | `HEAD /_ping` | **gap**: no scenario yet |" in text
    assert "| SystemPing | `api/a` |" in text


def test_command_line_reads_results_files_and_fails_on_gaps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "swaggers").mkdir()
    (tmp_path / "swaggers" / "engine.json").write_text(json.dumps(SWAGGER))
    monkeypatch.setenv("HARNESS_SWAGGER_DIR", str(tmp_path / "swaggers"))
    dump_results(Results(TargetInfo("refd"), (_scenario("api/a", ops=("SystemPing",)),)), tmp_path / "r.json")
    assert main([str(tmp_path / "r.json"), "--swagger", "1.51"]) == 0
    out = capsys.readouterr().out
    assert out == "API 1.51: 1/5 operations covered; gaps: SystemPingHead, ContainerPause\n"
    assert main([str(tmp_path / "r.json"), "--fail-on-gaps", "--swagger", "1.51"]) == 1
    capsys.readouterr()
    assert main([str(tmp_path / "r.json"), "--swagger", "x"]) == 2
    assert "unknown swagger 'x': name a Debian suite" in capsys.readouterr().err


def test_a_parity_document_counts_every_targets_traffic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    refd = Results(TargetInfo("refd"), (_scenario("api/a", ops=("SystemPing",)),))
    dockerd = Results(TargetInfo("dockerd-28"), (_scenario("api/a", ops=("SystemPingHead",)),))
    parity = build_parity([refd, dockerd], reference="dockerd-28")
    write_json(parity, tmp_path / "parity.json")
    assert [s.schema_check.operations for s in from_parity(parity)] == [("SystemPing", "SystemPingHead")]
    (tmp_path / "swaggers").mkdir()
    (tmp_path / "swaggers" / "engine.json").write_text(json.dumps(SWAGGER))
    monkeypatch.setenv("HARNESS_SWAGGER_DIR", str(tmp_path / "swaggers"))
    assert main([str(tmp_path / "parity.json"), "--swagger", "1.51"]) == 0
    assert capsys.readouterr().out == "API 1.51: 2/5 operations covered; gaps: ContainerPause\n"
    (tmp_path / "broken.json").write_text("[1]")
    assert main([str(tmp_path / "broken.json"), "--swagger", "1.51"]) == 2
    assert "broken.json: not a readable results or parity JSON file" in capsys.readouterr().err
