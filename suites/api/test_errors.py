"""Error shapes shared by every endpoint: bodies, statuses, content types (spec 6.5)."""

from __future__ import annotations

import pytest

from harness.checks import expect_error
from harness.client import EngineClient
from harness.fixtures import Observations


@pytest.mark.scenario(
    "api/errors/json-body-newline",
    'Error bodies MUST be {"message": ...} as application/json ending in a newline',
    ref="spec 6.1; moby api/server/httputils",
)
def test_json_body_newline(engine: EngineClient, observe: Observations) -> None:
    resp = engine.get("/v1.41/containers/nosuch/json")
    observe("status", resp.status_code)
    observe("content_type", resp.headers.get("Content-Type"))
    observe("raw_body", resp.text)
    assert resp.text == '{"message":"No such container: nosuch"}\n'


@pytest.mark.scenario(
    "api/errors/plain-text-old-api",
    "For API versions below 1.24 errors MUST be plain text (rejected as too old first)",
    ref="spec 6.1",
)
def test_plain_text_old_api(engine: EngineClient, observe: Observations) -> None:
    resp = engine.get("/v1.23/containers/nosuch/json")
    observe("status", resp.status_code)
    observe("content_type", resp.headers.get("Content-Type"))
    observe("nosniff", resp.headers.get("X-Content-Type-Options"))
    assert resp.headers.get("Content-Type") == "text/plain; charset=utf-8"


@pytest.mark.scenario(
    "api/errors/wrong-content-type",
    "A JSON endpoint given a body with another Content-Type MUST answer 400 naming the type",
    ref="spec 6.5; moby api/server/httputils.CheckForJSON",
)
def test_wrong_content_type(engine: EngineClient, observe: Observations) -> None:
    resp = engine.post(
        "/v1.41/containers/create",
        data='{"Image":"x"}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    observe("status", resp.status_code)
    observe("mentions_type", "application/x-www-form-urlencoded" in resp.json().get("message", ""))
    assert resp.status_code == 400 and "application/x-www-form-urlencoded" in resp.json()["message"]


#: dockerd 28's words: Go's decoder error after "invalid JSON: "
MALFORMED = {
    "{bad": "invalid JSON: invalid character 'b' looking for beginning of object key string",
    '{"Image":"bb",': "invalid JSON: unexpected EOF",
}


@pytest.mark.parametrize("body", list(MALFORMED))
@pytest.mark.scenario(
    "api/errors/malformed-json",
    "A malformed JSON body on container create MUST be a client error (400 'invalid JSON: <Go "
    "error>' from dockerd 23)",
    ref="spec 6.5",
)
def test_malformed_json(engine: EngineClient, observe: Observations, body: str) -> None:
    resp = engine.post("/v1.41/containers/create", data=body, headers={"Content-Type": "application/json"})
    observe(body, {"status": resp.status_code, "message": resp.json().get("message")})
    expect_error(resp, 400, MALFORMED[body])


@pytest.mark.scenario(
    "api/errors/exec-missing",
    "Inspect of an unknown exec instance MUST get 404 'No such exec instance: <id>'",
    ref="spec 6.5; moby daemon/errors.go",
)
def test_exec_missing(engine: EngineClient, observe: Observations) -> None:
    resp = engine.get("/v1.41/exec/nosuch/json")
    observe("status", resp.status_code)
    observe("body", resp.json())
    assert resp.status_code == 404 and resp.json() == {"message": "No such exec instance: nosuch"}
