"""System endpoints: /_ping, /version, /info, version negotiation and the 404 handler."""

from __future__ import annotations

import pytest

from harness.client import EngineClient
from harness.fixtures import Observations

PING_HEADERS = ("Cache-Control", "Pragma", "Content-Type", "Docker-Experimental", "Ostype")


@pytest.mark.scenario(
    "api/system/ping",
    "GET /_ping MUST answer 200 'OK' as text/plain with no-cache headers",
    ref="spec 6.2; moby api/server/router/system/system_routes.go",
)
def test_ping(engine: EngineClient, observe: Observations) -> None:
    resp = engine.get("/_ping")
    observe("status", resp.status_code)
    observe("body", resp.text)
    observe("headers", {name: resp.headers.get(name) for name in PING_HEADERS})
    observe("api_version_header_present", "Api-Version" in resp.headers)
    assert resp.status_code == 200
    assert resp.text == "OK"
    assert resp.headers["Cache-Control"] == "no-cache, no-store, must-revalidate"


@pytest.mark.scenario(
    "api/system/ping-head",
    "HEAD /_ping MUST answer 200 with an empty body and Content-Length 0",
    ref="spec 6.2",
)
def test_ping_head(engine: EngineClient, observe: Observations) -> None:
    resp = engine.head("/_ping")
    observe("status", resp.status_code)
    observe("content_length", resp.headers.get("Content-Length"))
    observe("body", resp.text)
    assert resp.status_code == 200
    assert resp.headers.get("Content-Length") == "0"


@pytest.mark.scenario(
    "api/system/ping-builder-version",
    "GET /_ping SHOULD advertise Builder-Version 2 and Swarm state (dockerd >= 23)",
    ref="spec 6.2",
)
def test_ping_builder_version(engine: EngineClient, observe: Observations) -> None:
    resp = engine.get("/_ping")
    observe("Builder-Version", resp.headers.get("Builder-Version"))
    observe("Swarm", resp.headers.get("Swarm"))
    assert resp.headers.get("Builder-Version") == "2"


@pytest.mark.scenario(
    "api/system/version-shape",
    "GET /version MUST describe the Engine component with string Details and ApiVersion",
    ref="spec 6.3; operation SystemVersion",
)
def test_version_shape(engine: EngineClient, observe: Observations) -> None:
    resp = engine.get("/version")
    body = resp.json()
    engine_component = next(c for c in body["Components"] if c["Name"] == "Engine")
    observe("status", resp.status_code)
    observe("keys", sorted(k for k in body if k not in ("Components",)))
    observe("engine_detail_types", sorted({type(v).__name__ for v in engine_component["Details"].values()}))
    observe("api_version_matches_header", body["ApiVersion"] == resp.headers.get("Api-Version"))
    assert resp.status_code == 200
    assert body["Os"] == "linux"


@pytest.mark.scenario(
    "api/system/info-keys",
    "GET /info MUST carry the keys clients read (ID, Driver, "
    "DockerRootDir, LoggingDriver, RegistryConfig, Labels, Warnings...)",
    ref="spec 6.4",
)
def test_info_keys(engine: EngineClient, docker_daemon: object, observe: Observations) -> None:
    resp = engine.get("/info")
    body = resp.json()
    wanted = (
        "ID",
        "Containers",
        "Images",
        "Driver",
        "DockerRootDir",
        "LoggingDriver",
        "CgroupDriver",
        "Debug",
        "Labels",
        "LiveRestoreEnabled",
        "RegistryConfig",
        "Warnings",
        "ServerVersion",
        "OSType",
        "Architecture",
        "NCPU",
        "MemTotal",
        "Name",
        "SecurityOptions",
        "Runtimes",
        "DefaultRuntime",
        "Swarm",
    )
    observe("missing", [k for k in wanted if k not in body])
    observe("LoggingDriver", body.get("LoggingDriver"))
    observe(
        "DockerRootDir_is_data_root", body.get("DockerRootDir") == getattr(docker_daemon, "data_root", None)
    )
    observe("InsecureRegistryCIDRs", body.get("RegistryConfig", {}).get("InsecureRegistryCIDRs"))
    observe("docker.io", body.get("RegistryConfig", {}).get("IndexConfigs", {}).get("docker.io"))
    assert resp.status_code == 200
    assert not [k for k in wanted if k not in body]


@pytest.mark.scenario(
    "api/system/version-too-new",
    "A request for an API version above the maximum MUST get 400 'client version X is too new'",
    ref="spec 6.1; moby api/server/middleware/version.go",
)
def test_version_too_new(engine: EngineClient, observe: Observations) -> None:
    resp = engine.get("/v1.99/version")
    observe("status", resp.status_code)
    observe("content_type", resp.headers.get("Content-Type"))
    message = resp.json()["message"]
    observe("message_prefix", message.split(". Maximum")[0])
    assert resp.status_code == 400
    assert message.startswith("client version 1.99 is too new. Maximum supported API version is ")


@pytest.mark.scenario(
    "api/system/version-too-old",
    "A request for an API version below the minimum MUST get 400 in plain text",
    ref="spec 6.1",
)
def test_version_too_old(engine: EngineClient, observe: Observations) -> None:
    resp = engine.get("/v1.11/version")
    observe("status", resp.status_code)
    observe("content_type", resp.headers.get("Content-Type"))
    observe("message_prefix", resp.text.split(". Minimum")[0])
    assert resp.status_code == 400
    assert resp.text.startswith("client version 1.11 is too old. Minimum supported API version is ")


@pytest.mark.parametrize(
    "method,path", [("GET", "/v1.41/nosuchroute"), ("DELETE", "/version"), ("GET", "/vabc/version")]
)
@pytest.mark.scenario(
    "api/system/page-not-found",
    'Unknown paths and wrong methods MUST get 404 {"message":"page not found"} without API headers',
    ref="spec 6.1; moby api/server/server.go",
)
def test_page_not_found(engine: EngineClient, observe: Observations, method: str, path: str) -> None:
    resp = engine.request(method, path)
    observe(
        f"{method} {path}",
        {
            "status": resp.status_code,
            "body": resp.text,
            "content_type": resp.headers.get("Content-Type"),
            "api_version_header": "Api-Version" in resp.headers,
        },
    )
    assert resp.status_code == 404
    assert resp.json() == {"message": "page not found"}
