"""Small builders for results documents shared by the conformance tests (plain functions, not fixtures)."""

from __future__ import annotations

from typing import Any

from conformance.results import Results, ScenarioResult, TargetInfo

__all__ = ["results", "scenario"]


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


def results(name: str, *scenarios: ScenarioResult, version: str = "28.5.2") -> Results:
    return Results(
        target=TargetInfo(name=name, version=version, api_version="1.51", backend="local", kernel="6.18.0"),
        scenarios=tuple(scenarios),
        started="2026-11-27T19:00:00Z",
        duration=1.5,
    )
