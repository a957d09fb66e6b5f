"""The schema checks inside the pytest plugin: scenarios' responses become findings (report), failures
(strict) or nothing (off). pytest runs in a subprocess on a user's test file; the "daemon" is a tiny HTTP
server on loopback and the swagger comes from HARNESS_SWAGGER_DIR, so nothing is booted or downloaded."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from harness.results import load_results

pytest_plugins = ["pytester"]

SWAGGER = {
    "swagger": "2.0",
    "info": {"version": "1.41"},
    "definitions": {
        "Thing": {
            "type": "object",
            "required": ["Id"],
            "properties": {"Id": {"type": "string"}, "Count": {"type": "integer", "minimum": 0}},
        }
    },
    "paths": {
        "/things/{id}/json": {
            "get": {
                "operationId": "ThingInspect",
                "responses": {"200": {"schema": {"$ref": "#/definitions/Thing"}}},
            }
        }
    },
}

BODIES = {
    "/v1.41/things/good/json": {"Id": "good", "Count": 1},
    "/v1.41/things/bad/json": {"Id": "bad", "Count": -1, "Note": "<script>alert(1)</script>"},
}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps(BODIES.get(self.path, {"message": "page not found"})).encode()
        self.send_response(200 if self.path in BODIES else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Api-Version", "1.41")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def fake_daemon() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


TESTS = """
import pytest
from harness.client import EngineClient
from harness.endpoints import Endpoint

ADDRESS = {address!r}


def client():
    return EngineClient(Endpoint("tcp", ADDRESS))


@pytest.mark.scenario("api/things/bad", "GET a thing MUST answer a Thing")
def test_bad(observe):
    assert observe("status", client().get("/v1.41/things/bad/json").status_code) == 200


@pytest.mark.scenario("api/things/good", "GET a thing MUST answer a Thing")
@pytest.mark.parametrize("n", [1, 2])
def test_good(n):
    assert client().get("/v1.41/things/good/json").json()["Id"] == "good"
    client().get("/v1.41/nosuchroute")


@pytest.mark.scenario("api/things/streamed", "a streamed body is never read by the checks")
def test_streamed():
    response = client().get("/v1.41/things/bad/json", stream=True)
    assert response.raw.read()


def test_not_a_scenario():
    client().get("/v1.41/things/bad/json")
"""


@pytest.fixture
def user_tests(pytester: pytest.Pytester, fake_daemon: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    swaggers = pytester.path / "swaggers"
    swaggers.mkdir()
    (swaggers / "engine-1.41.json").write_text(json.dumps(SWAGGER))
    monkeypatch.setenv("HARNESS_SWAGGER_DIR", str(swaggers))
    pytester.makeini("[pytest]\nenable_assertion_pass_hook = true\n")  # the plugin counts checks
    for name in ("HARNESS_TARGETS", "HARNESS_BACKEND", "HARNESS_SHARD", "HARNESS_SCHEMA"):
        monkeypatch.delenv(name, raising=False)
    pytester.makepyfile(test_user=TESTS.format(address=fake_daemon))
    return pytester.path / "refd.json"


def test_report_mode_records_findings_without_failing(pytester: pytest.Pytester, user_tests: Path) -> None:
    result = pytester.runpytest_subprocess("--targets", "refd", f"--results-json={user_tests}")
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(
        ["harness schema [refd]: 3 response(s) checked, 1 finding(s) in 1 scenario(s)"]
    )
    results = load_results(user_tests)
    assert results.schema_check.mode == "report" and results.schema_check.error == ""
    assert [s["api_version"] for s in results.schema_check.swaggers] == ["1.41"]
    assert results.target.api_version == "1.41"  # learnt from the Api-Version header
    by_id = results.by_id()
    bad = by_id["api/things/bad"].schema_check
    assert bad.checked == 1
    [finding] = bad.findings
    assert (finding.method, finding.path, finding.status, finding.field, finding.keyword) == (
        "GET",
        "/things/{id}/json",
        200,
        "/Count",
        "minimum",
    )
    good = by_id["api/things/good"].schema_check  # two parametrized runs add up
    assert (good.checked, good.skipped, good.findings) == (2, {"unknown-path": 2}, ())
    streamed = by_id["api/things/streamed"].schema_check
    assert (streamed.checked, streamed.skipped) == (0, {"streamed": 1})
    # the operation each response answered, streamed ones too; a path the swagger lacks names none
    assert [by_id[i].schema_check.operations for i in sorted(by_id)] == [("ThingInspect",)] * 3
    assert "api/things/bad" in by_id and len(by_id) == 3  # the plain test is not recorded


def test_strict_mode_fails_the_scenario_with_the_findings(
    pytester: pytest.Pytester, user_tests: Path
) -> None:
    result = pytester.runpytest_subprocess(
        "--targets", "refd", "--schema", "strict", f"--results-json={user_tests}"
    )
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*schema violations (1) in responses against the Engine API swagger:*",
            "*/Count: -1 is below the minimum 0*",
        ]
    )
    bad = load_results(user_tests).by_id()["api/things/bad"]
    assert bad.outcome == "failed" and "schema violations (1)" in bad.reason
    assert len(bad.schema_check.findings) == 1


def test_off_mode_checks_nothing(
    pytester: pytest.Pytester, user_tests: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_SCHEMA", "off")
    result = pytester.runpytest_subprocess("--targets", "refd", f"--results-json={user_tests}")
    result.assert_outcomes(passed=5)
    assert "harness schema" not in result.stdout.str()
    results = load_results(user_tests)
    assert results.schema_check.mode == "off"
    assert all(s.schema_check.checked == 0 and not s.schema_check.findings for s in results.scenarios)


def test_unavailable_swaggers_warn_in_report_mode_and_stop_strict_mode(
    pytester: pytest.Pytester, user_tests: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_SWAGGER_DIR", str(pytester.path / "nowhere"))
    result = pytester.runpytest_subprocess("--targets", "refd", f"--results-json={user_tests}")
    result.assert_outcomes(passed=5)
    result.stderr.fnmatch_lines(
        ["*harness: warning: schema checks are off for this run: *nowhere is not a directory*"]
    )
    results = load_results(user_tests)
    assert "is not a directory" in results.schema_check.error
    result = pytester.runpytest_subprocess("--targets", "refd", "--schema=strict")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--schema strict: the Engine API swaggers are unavailable*"])
