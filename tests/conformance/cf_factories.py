"""Small builders for results documents shared by the conformance tests (plain functions, not fixtures)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from harness.results import Finding, Results, ScenarioResult, SchemaCheck, SchemaRun, TargetInfo

__all__ = ["checked", "finding", "results", "scenario"]


def scenario(sid: str, outcome: str = "passed", reason: str = "", **observations: Any) -> ScenarioResult:
    return ScenarioResult(
        id=sid,
        outcome=outcome,
        nodeid=f"suites/{sid.split('/')[0]}/test_x.py::test_{sid.rsplit('/', 1)[-1].replace('-', '_')}",
        area=sid.split("/")[0],
        statement=f"{sid} MUST behave",
        ref="spec 1.0",
        reason=reason,
        duration=0.01,
        observations=dict(observations),
    )


def finding(
    field: str = "/Options", message: str = "null where the swagger expects object", **kw: Any
) -> Finding:
    values: dict[str, Any] = {
        "method": "GET",
        "path": "/volumes/{name}",
        "status": 200,
        "api_version": "1.41",
        "keyword": "x-nullable",
        "url": "/v1.41/volumes/v",
        **kw,
    }
    return Finding(field=field, message=message, **values)


def checked(s: ScenarioResult, *findings: Finding, count: int = 1, **skipped: int) -> ScenarioResult:
    """``s`` with schema checks: ``count`` responses checked, ``findings``, ``skipped`` reasons."""
    return replace(s, schema_check=SchemaCheck(count, dict(skipped), tuple(findings)))


def results(
    name: str, *scenarios: ScenarioResult, version: str = "28.5.2", kernel: str = "6.18.0", schema: str = ""
) -> Results:
    return Results(
        target=TargetInfo(
            name=name,
            version=version,
            api_version="1.51",
            backend="local",
            kernel=kernel,
            docker_cli="28.5.2+dfsg4 (Debian sid docker-cli 28.5.2+dfsg4-5)",
        ),
        scenarios=tuple(scenarios),
        started="2026-11-27T19:00:00Z",
        duration=1.5,
        schema_check=SchemaRun(schema, ({"api_version": "1.41", "source": "bookworm"},) if schema else ()),
    )
