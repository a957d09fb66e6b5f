"""Schema checks: swagger 2.0 validation, operation lookup, version choice, skips, and clear fetch errors."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from harness import swagger as schema
from harness.swagger import SchemaUnavailable, Spec, SwaggerStore, validate

JSON = {"Content-Type": "application/json"}


def swagger(version: str = "1.51", **extra_definitions: Any) -> dict[str, Any]:
    """A small swagger in moby's style: $refs, x-nullable, maps, enums, limits, non-JSON operations."""
    return {
        "swagger": "2.0",
        "basePath": f"/v{version}",
        "info": {"title": "Engine API", "version": version},
        "produces": ["application/json", "text/plain"],
        "definitions": {
            "ErrorResponse": {
                "type": "object",
                "required": ["message"],
                "properties": {"message": {"type": "string", "x-nullable": False}},
            },
            "Health": {"type": "object", "properties": {"Status": {"type": "string"}}},
            "Thing": {
                "type": "object",
                "required": ["Id"],
                "properties": {
                    "Id": {"type": "string", "pattern": "^[0-9a-f]+$"},
                    "Count": {"type": "integer", "minimum": 0},
                    "Ratio": {"type": "number"},
                    "Health": {"x-nullable": True, "$ref": "#/definitions/Health"},
                    "Labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "Mode": {"type": "string", "enum": ["", "always", "never"]},
                    "Tags": {"type": "array", "items": {"type": "string"}},
                    "Pid": {"type": "integer", "x-nullable": True},
                    "Config": {"$ref": "#/definitions/Config"},
                },
            },
            "Config": {
                "allOf": [
                    {"$ref": "#/definitions/Health"},
                    {"type": "object", "properties": {"Tty": {"type": "boolean"}}},
                ]
            },
            "EventMessage": {
                "type": "object",
                "properties": {"Type": {"type": "string", "enum": ["container", "image"]}},
            },
            **extra_definitions,
        },
        "paths": {
            "/things/{id}/json": {
                "get": {
                    "produces": ["application/json"],
                    "responses": {
                        200: {"description": "ok", "schema": {"$ref": "#/definitions/Thing"}},
                        404: {"description": "nope", "schema": {"$ref": "#/definitions/ErrorResponse"}},
                    },
                }
            },
            "/things/json": {
                "get": {
                    "responses": {
                        200: {"schema": {"type": "array", "items": {"$ref": "#/definitions/Thing"}}}
                    }
                }
            },
            "/things/{id}/logs": {
                "get": {
                    "produces": ["application/vnd.docker.raw-stream"],
                    "responses": {
                        200: {"schema": {"type": "string", "format": "binary"}},
                        404: {"schema": {"$ref": "#/definitions/ErrorResponse"}},
                    },
                }
            },
            "/things/{id}/start": {"post": {"responses": {204: {"description": "no error"}}}},
            "/images/{name}/json": {
                "get": {"responses": {200: {"schema": {"type": "object", "required": ["Name"]}}}}
            },
            "/events": {"get": {"responses": {200: {"schema": {"$ref": "#/definitions/EventMessage"}}}}},
        },
    }


GOOD = {
    "Id": "abc123",
    "Count": 3,
    "Ratio": 1,
    "Health": None,
    "Labels": {"a": "b"},
    "Mode": "",
    "Tags": ["x"],
    "Pid": None,
    "Config": {"Status": "ok", "Tty": False},
    "Undocumented": {"fine": True},  # swagger 2.0: no additionalProperties means extra fields are allowed
}


@pytest.fixture
def spec() -> Spec:
    return Spec(swagger())


def _check(spec: Spec, body: Any) -> list[tuple[str, str, str]]:
    return validate(spec, {"$ref": "#/definitions/Thing"}, body)


def test_a_valid_body_passes(spec: Spec) -> None:
    assert _check(spec, GOOD) == []


@pytest.mark.parametrize(
    ("change", "pointer", "keyword", "text"),
    [
        ({"Count": "3"}, "/Count", "type", 'expected integer, got string "3"'),
        ({"Count": True}, "/Count", "type", "expected integer, got boolean"),
        ({"Count": -1}, "/Count", "minimum", "-1 is below the minimum 0"),
        ({"Id": "XYZ"}, "/Id", "pattern", "does not match"),
        ({"Mode": "no"}, "/Mode", "enum", '"no" is not one of ["", "always", "never"]'),
        ({"Labels": {"a": 1}}, "/Labels/a", "type", "expected string, got integer 1"),
        ({"Tags": ["x", 2]}, "/Tags/1", "type", "expected string, got integer 2"),
        ({"Pid": "1"}, "/Pid", "type", "expected integer"),
        ({"Config": {"Tty": "yes"}}, "/Config/Tty", "type", "expected boolean"),  # through $ref + allOf
        ({"Config": {"Status": 7}}, "/Config/Status", "type", "expected string"),
        ({"Health": {"Status": 1}}, "/Health/Status", "type", "expected string"),  # nullable, but not null
        ({"Ratio": "1.5"}, "/Ratio", "type", "expected number"),
    ],
)
def test_violations_are_detected_with_pointer_keyword_and_message(
    spec: Spec, change: dict[str, Any], pointer: str, keyword: str, text: str
) -> None:
    found = _check(spec, {**GOOD, **change})
    assert len(found) == 1, found
    assert found[0][:2] == (pointer, keyword)
    assert text in found[0][2]


def test_missing_required_property_and_wrong_top_level_type(spec: Spec) -> None:
    assert _check(spec, {"Count": 1}) == [("/Id", "required", "required property 'Id' is missing")]
    [(pointer, keyword, message)] = _check(spec, ["not", "an", "object"])
    assert (pointer, keyword) == ("", "type") and "expected object (Thing), got array" in message


def test_ref_and_x_nullable(spec: Spec) -> None:
    # x-nullable next to a $ref (moby's style) allows null; a $ref'd struct without it does not
    assert _check(spec, {**GOOD, "Health": None}) == []
    [(pointer, keyword, message)] = _check(spec, {**GOOD, "Config": None})
    assert (pointer, keyword) == ("/Config", "x-nullable")
    assert "object (Config)" in message
    assert _check(spec, {**GOOD, "Pid": None}) == []
    assert validate(spec, {"$ref": "#/definitions/ErrorResponse"}, {"message": None})[0][1] == "x-nullable"
    assert _check(spec, {**GOOD, "Count": None}) == [
        ("/Count", "x-nullable", "null where the swagger expects integer (not x-nullable)")
    ]


def test_go_nil_slices_and_maps_are_null_unless_strict(spec: Spec) -> None:
    body = {**GOOD, "Tags": None, "Labels": None}
    assert _check(spec, body) == []  # what Go writes for a nil slice and a nil map
    strict = validate(spec, {"$ref": "#/definitions/Thing"}, body, go_nulls=False)
    assert strict == [
        ("/Labels", "x-nullable", "null where the swagger expects object (not x-nullable)"),
        ("/Tags", "x-nullable", "null where the swagger expects array (not x-nullable)"),
    ]


def test_additional_properties_false_is_enforced() -> None:
    spec = Spec(swagger(Closed={"type": "object", "properties": {"A": {}}, "additionalProperties": False}))
    assert validate(spec, {"$ref": "#/definitions/Closed"}, {"A": 1}) == []
    assert validate(spec, {"$ref": "#/definitions/Closed"}, {"A": 1, "B": 2}) == [
        ("/B", "additionalProperties", "property 'B' is not allowed")
    ]


@pytest.fixture
def store(tmp_path: Path) -> SwaggerStore:
    (tmp_path / "old.json").write_text(json.dumps(swagger("1.41")))
    (tmp_path / "new.yaml").write_text(json.dumps(swagger("1.51")))  # JSON is YAML too
    return SwaggerStore(tmp_path)


def test_check_finds_violations_in_a_response(store: SwaggerStore) -> None:
    body = json.dumps({**GOOD, "Count": -5, "Config": None}).encode()
    result = store.check("GET", "/v1.41/things/deadbeef/json?size=1", 200, JSON, body)
    assert result.checked and result.template == "/things/{id}/json" and result.api_version == "1.41"
    assert [(f.field, f.keyword) for f in result.findings] == [
        ("/Count", "minimum"),
        ("/Config", "x-nullable"),
    ]
    f = result.findings[0]
    assert (f.method, f.path, f.status, f.url) == (
        "GET",
        "/things/{id}/json",
        200,
        "/v1.41/things/deadbeef/json",
    )
    assert f.summary() == "GET /things/{id}/json 200 [API 1.41] /Count: -5 is below the minimum 0"


def test_a_valid_response_has_no_findings(store: SwaggerStore) -> None:
    result = store.check("GET", "/v1.51/things/abc/json", 200, JSON, json.dumps(GOOD).encode())
    assert result.checked and result.findings == []


def test_unknown_paths_and_methods_are_ignored(store: SwaggerStore) -> None:
    for method, path in (("GET", "/v1.41/nosuchroute"), ("DELETE", "/v1.41/things/x/json"), ("GET", "/")):
        result = store.check(method, path, 404, JSON, b'{"message": "page not found"}')
        assert (result.checked, result.skipped, result.findings) == (False, "unknown-path", [])


def test_non_json_bodies_and_operations_are_skipped(store: SwaggerStore) -> None:
    logs = "/v1.41/things/abc/logs"
    raw = {"Content-Type": "application/vnd.docker.raw-stream"}
    assert store.check("GET", logs, 200, raw, b"\x01\x00\x00\x00\x00\x00\x00\x02hi").skipped == "not-json"
    # the swagger says the 200 is a stream, so even a JSON-labelled 200 body is not checked
    assert store.check("GET", logs, 200, JSON, b'{"x": 1}').skipped == "not-json"
    # but the JSON error of the same operation is
    bad = store.check("GET", logs, 404, JSON, b'{"msg": "no such container"}')
    assert bad.checked and [(f.field, f.keyword) for f in bad.findings] == [("/message", "required")]
    assert store.check("GET", "/_ping", 200, {"Content-Type": "text/plain"}, b"OK").skipped == "not-json"
    assert store.check("HEAD", "/v1.41/things/a/json", 200, JSON, b"").skipped == "no-body"
    assert store.check("POST", "/v1.41/things/a/start", 204, JSON, b"{}").skipped == "no-schema"


def test_undocumented_error_status_is_checked_as_an_error_response(store: SwaggerStore) -> None:
    result = store.check("POST", "/v1.41/things/a/start", 409, JSON, b'{"message": "conflict"}')
    assert result.checked and result.findings == []
    assert store.check("GET", "/v1.41/things/a/json", 202, JSON, b"{}").skipped == "undocumented-status"


def test_invalid_json_is_a_finding(store: SwaggerStore) -> None:
    result = store.check("GET", "/v1.41/things/a/json", 200, JSON, b'{"Id": ')
    assert [(f.keyword, f.field) for f in result.findings] == [("json", "")]
    assert result.findings[0].message.startswith("the body is not JSON")


def test_json_streams_are_checked_document_by_document(store: SwaggerStore) -> None:
    body = b'{"Type": "container"}\n{"Type": "volume"}\n{"Type": "volume"}\n'
    result = store.check("GET", "/v1.41/events?until=1", 200, JSON, body)
    assert [(f.field, f.keyword, f.count) for f in result.findings] == [("/Type", "enum", 2)]


def test_literal_routes_win_and_names_may_hold_slashes(store: SwaggerStore) -> None:
    listing = store.check(
        "GET", "/v1.41/things/json", 200, JSON, json.dumps([GOOD, {**GOOD, "Id": 1}]).encode()
    )
    assert listing.template == "/things/json"
    assert [(f.field, f.keyword) for f in listing.findings] == [("/*/Id", "type")]  # indices generalised
    image = store.check("GET", "/v1.41/images/library/busybox:latest/json", 200, JSON, b"{}")
    assert image.template == "/images/{name}/json" and image.findings[0].keyword == "required"


def test_the_swagger_is_chosen_by_the_negotiated_version(store: SwaggerStore) -> None:
    assert store.for_version("1.24").api_version == "1.41"  # older: the oldest swagger at or above
    assert store.for_version("1.41").api_version == "1.41"
    assert store.for_version("1.44").api_version == "1.51"
    assert store.for_version("1.99").api_version == "1.51"  # newer than all: the newest
    body = json.dumps(GOOD).encode()
    assert store.check("GET", "/v1.44/things/a/json", 200, JSON, body).api_version == "1.51"
    # no version prefix: the daemon's Api-Version header says which API answered
    headers = {**JSON, "Api-Version": "1.41"}
    assert store.check("GET", "/things/a/json", 200, headers, body).api_version == "1.41"
    assert store.check("GET", "/things/a/json", 200, JSON, body).api_version == "1.51"
    assert [s["api_version"] for s in store.loaded()] == ["1.41", "1.51"]


def test_an_empty_or_bad_swagger_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SchemaUnavailable, match="holds no"):
        SwaggerStore(tmp_path).ensure()
    (tmp_path / "broken.json").write_text("{nope")
    with pytest.raises(SchemaUnavailable, match="cannot read the swagger"):
        SwaggerStore(tmp_path).ensure()
    (tmp_path / "broken.json").write_text('{"info": {}}')
    with pytest.raises(SchemaUnavailable, match="not a swagger document"):
        SwaggerStore(tmp_path).ensure()
    with pytest.raises(SchemaUnavailable, match="is not a directory"):
        SwaggerStore(tmp_path / "absent").ensure()


def test_swagger_dir_comes_from_the_environment(
    store: SwaggerStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_SWAGGER_DIR", str(tmp_path))
    assert SwaggerStore().directory == tmp_path


def test_without_apt_the_fetch_error_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    monkeypatch.setattr(schema.shutil, "which", lambda name: None)
    with pytest.raises(SchemaUnavailable) as info:
        schema.fetch(schema.SOURCES[0], mirror="http://127.0.0.1:9/debian")
    assert "apt-get is not available" in str(info.value) and "HARNESS_SWAGGER_DIR" in str(info.value)
    assert [p.name for p in (tmp_path / "swagger").iterdir()] == ["bookworm.lock"]  # no half entry


@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get")
def test_an_unreachable_mirror_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    store = SwaggerStore(auto_fetch=False)
    with pytest.raises(SchemaUnavailable, match="is not cached"):
        store.ensure()
    # a closed port on loopback: apt fails at once, no traffic leaves the machine
    with pytest.raises(SchemaUnavailable) as info:
        schema.fetch(schema.SOURCES[-1], mirror="http://127.0.0.1:9/debian")
    message = str(info.value)
    assert (
        "the sid swagger (golang-github-docker-docker-dev) cannot be fetched: apt-get update (sid)" in message
    )
    assert "could not be reached" in message and "--schema off" in message
    assert not (tmp_path / "swagger" / "sid").exists()
    assert not list((tmp_path / "swagger").glob(".fetch-*"))  # the private apt directories are gone


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_the_swagger_is_extracted_from_the_package(tmp_path: Path) -> None:
    root = tmp_path / "pkg"
    member = root / schema.SWAGGER_MEMBER
    member.parent.mkdir(parents=True)
    member.write_text("swagger: '2.0'\ninfo: {version: '1.51'}\npaths: {}\n")
    (root / "DEBIAN").mkdir()
    (root / "DEBIAN" / "control").write_text(
        f"Package: {schema.PACKAGE}\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@example.test>\n"
        "Description: test\n"
    )
    deb = tmp_path / "x.deb"
    subprocess.run(
        ["dpkg-deb", "--build", "--root-owner-group", str(root), str(deb)], check=True, capture_output=True
    )
    out = tmp_path / "swagger.yaml"
    schema._extract(deb, out)
    assert Spec(schema._read_yaml(out)).api_version == "1.51"
    (root / schema.SWAGGER_MEMBER).unlink()
    subprocess.run(
        ["dpkg-deb", "--build", "--root-owner-group", str(root), str(deb)], check=True, capture_output=True
    )
    with pytest.raises(SchemaUnavailable, match="holds no /usr/share/gocode"):
        schema._extract(deb, out)


def test_cli_check_reports_findings(
    store: SwaggerStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HARNESS_SWAGGER_DIR", str(store.directory))
    body = tmp_path / "bodies" / "body.json"  # not among the swaggers
    body.parent.mkdir()
    body.write_text(json.dumps({**GOOD, "Count": -1}))
    assert schema.main(["check", "GET", "/v1.41/things/a/json", "200", str(body)]) == 1
    assert "/Count: -1 is below the minimum 0" in capsys.readouterr().out
    body.write_text(json.dumps(GOOD))
    assert schema.main(["check", "GET", "/v1.41/things/a/json", "200", str(body)]) == 0
    assert schema.main(["check", "GET", "/v1.41/nosuch", "200", str(body)]) == 0
    assert "not checked: unknown-path" in capsys.readouterr().out
    body.write_text(json.dumps({**GOOD, "Tags": None}))
    assert schema.main(["check", "GET", "/v1.41/things/a/json", "200", str(body)]) == 0
    assert schema.main(["check", "--strict-nulls", "GET", "/v1.41/things/a/json", "200", str(body)]) == 1
    assert "/Tags: null where the swagger expects array (not x-nullable)" in capsys.readouterr().out
