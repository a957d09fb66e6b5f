"""Managed plugins with none installed, and BuildKit's /session: listing, filters and the errors clients see.

Installing a plugin needs a plugin registry and a plugin rootfs, which the test environment has not; what
every engine answers without them (an empty list, not-found texts in dockerd's order of checks) is what
``docker plugin ls/inspect/rm`` and the SDK's ``client.plugins`` show.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from harness.client import EngineClient
from harness.fixtures import Observations


def _call(engine: EngineClient, method: str, path: str, body: Any = None) -> dict[str, Any]:
    resp = engine.request(method, path, **({"json": body} if body is not None else {}))
    return {"status": resp.status_code, "message": resp.json().get("message")}


def _filters(value: dict[str, dict[str, bool]]) -> str:
    return json.dumps(value).replace(" ", "")


@pytest.mark.scenario(
    "api/plugins/list-empty",
    "GET /plugins with no plugin installed MUST answer 200 [] (also with capability and enabled filters)",
    ref="operation PluginList",
)
def test_list_empty(engine: EngineClient, observe: Observations) -> None:
    seen = {}
    for query in (
        "",
        "?filters=" + _filters({"capability": {"volumedriver": True}}),
        "?filters=" + _filters({"enabled": {"true": True}}),
    ):
        resp = engine.get(f"/plugins{query}")
        seen[query or "(none)"] = {"status": resp.status_code, "body": resp.json()}
    observe("lists", seen)
    assert all(v == {"status": 200, "body": []} for v in seen.values())


@pytest.mark.scenario(
    "api/plugins/list-invalid-filter",
    "GET /plugins with a filter other than capability or enabled MUST answer 400 naming the filter",
    ref="operation PluginList; moby plugin/backend_linux.go acceptedPluginFilterTags",
)
def test_list_invalid_filter(engine: EngineClient, observe: Observations) -> None:
    seen = _call(engine, "GET", "/plugins?filters=" + _filters({"label": {"a": True}}))
    observe("answer", seen)
    assert seen["status"] == 400
    assert seen["message"].lower() == "invalid filter 'label'"


@pytest.mark.parametrize("name", ["nosuchplugin", "nosuchplugin:1.0", "example/nosuch:latest"])
@pytest.mark.scenario(
    "api/plugins/inspect-not-found",
    "GET /plugins/{name}/json for a plugin not installed MUST answer 404 'plugin \"<name>\" not found' "
    "with the name as given",
    ref="operation PluginInspect",
)
def test_inspect_not_found(engine: EngineClient, observe: Observations, name: str) -> None:
    seen = _call(engine, "GET", f"/plugins/{name}/json")
    observe(name, seen)
    assert seen == {"status": 404, "message": f'plugin "{name}" not found'}


@pytest.mark.scenario(
    "api/plugins/remove-not-found",
    "DELETE /plugins/{name} (with or without force) for a plugin not installed MUST answer 404",
    ref="operation PluginDelete",
)
def test_remove_not_found(engine: EngineClient, observe: Observations) -> None:
    seen = {q: _call(engine, "DELETE", f"/plugins/nosuchplugin{q}") for q in ("", "?force=1")}
    observe("answers", seen)
    assert all(v == {"status": 404, "message": 'plugin "nosuchplugin" not found'} for v in seen.values())


@pytest.mark.scenario(
    "api/plugins/enable-timeout-first",
    "POST /plugins/{name}/enable MUST parse its timeout before looking the plugin up: none is Go's 500 "
    "'strconv.Atoi: parsing \"\": invalid syntax', a number gives 404 for a plugin not installed",
    ref="operation PluginEnable; moby api/server/router/plugin/plugin_routes.go enablePlugin",
)
def test_enable_timeout_first(engine: EngineClient, observe: Observations) -> None:
    seen = {
        q: _call(engine, "POST", f"/plugins/nosuchplugin/enable{q}") for q in ("", "?timeout=x", "?timeout=0")
    }
    observe("answers", seen)
    assert seen[""] == {"status": 500, "message": 'strconv.Atoi: parsing "": invalid syntax'}
    assert seen["?timeout=x"] == {"status": 500, "message": 'strconv.Atoi: parsing "x": invalid syntax'}
    assert seen["?timeout=0"] == {"status": 404, "message": 'plugin "nosuchplugin" not found'}


@pytest.mark.scenario(
    "api/plugins/disable-push-set-not-found",
    "Disable, push and set for a plugin not installed MUST answer 404 'plugin \"<name>\" not found'",
    ref="operations PluginDisable, PluginPush, PluginSet",
)
def test_disable_push_set_not_found(engine: EngineClient, observe: Observations) -> None:
    seen = {
        "disable": _call(engine, "POST", "/plugins/nosuchplugin/disable"),
        "push": _call(engine, "POST", "/plugins/nosuchplugin/push"),
        "set": _call(engine, "POST", "/plugins/nosuchplugin/set", ["DEBUG=1"]),
    }
    observe("answers", seen)
    assert all(v == {"status": 404, "message": 'plugin "nosuchplugin" not found'} for v in seen.values())


@pytest.mark.scenario(
    "api/plugins/json-body-first",
    "POST /plugins/{name}/set, /plugins/{name}/upgrade and /plugins/pull MUST read their JSON body before "
    "anything else: 400 for a non-JSON Content-Type, invalid JSON or content after it, for a plugin that "
    "does not exist too; an empty body is no error of its own (then the plugin is not found), an empty "
    "chunked one is 'invalid JSON: got EOF while reading request body'",
    ref="moby api/server/router/plugin/plugin_routes.go (httputils.ReadJSON first)",
)
def test_json_body_first(engine: EngineClient, observe: Observations) -> None:
    bodies = {
        "text-plain": ("[]", "text/plain"),
        "invalid": ("{invalid json", "application/json"),
        "trailing": ("[] trailing content", "application/json"),
        "empty": ("", "application/json"),
    }
    seen: dict[str, dict[str, Any]] = {}
    for path in ("/plugins/nosuchplugin/set", "/plugins/nosuchplugin/upgrade?remote=x", "/plugins/pull"):
        for case, (body, ctype) in bodies.items():
            resp = engine.request("POST", path, data=body, headers={"Content-Type": ctype})
            seen[f"{path.split('?')[0]} {case}"] = {
                "status": resp.status_code,
                "message": resp.json()["message"],
            }
        chunked = engine.request("POST", path, data=iter([b""]), headers={"Content-Type": "application/json"})
        seen[f"{path.split('?')[0]} chunked-empty"] = {
            "status": chunked.status_code,
            "message": chunked.json()["message"],
        }
    observe("answers", seen)
    set_answers = {k.split()[-1]: v for k, v in seen.items() if k.startswith("/plugins/nosuchplugin/set")}
    assert set_answers["text-plain"] == {
        "status": 400,
        "message": "unsupported Content-Type header (text/plain): must be 'application/json'",
    }
    assert set_answers["invalid"] == {
        "status": 400,
        "message": "invalid JSON: invalid character 'i' looking for beginning of object key string",
    }
    assert set_answers["trailing"] == {
        "status": 400,
        "message": "unexpected content after JSON",
    }
    assert set_answers["empty"] == {"status": 404, "message": 'plugin "nosuchplugin" not found'}
    assert set_answers["chunked-empty"] == {
        "status": 400,
        "message": "invalid JSON: got EOF while reading request body",
    }
    assert all(v["status"] == 400 for k, v in seen.items() if not k.endswith("empty"))


@pytest.mark.scenario(
    "api/plugins/create-needs-name",
    "POST /plugins/create without a name MUST fail with 500 'failed to parse reference : invalid reference "
    "format'",
    ref="operation PluginCreate; moby plugin/backend_linux.go CreateFromContext",
)
def test_create_needs_name(engine: EngineClient, observe: Observations) -> None:
    seen = _call(engine, "POST", "/plugins/create")
    observe("answer", seen)
    assert seen == {"status": 500, "message": "failed to parse reference : invalid reference format"}


@pytest.mark.scenario(
    "api/plugins/privileges-needs-remote",
    "GET /plugins/privileges without a remote MUST fail with 500 'invalid reference format'",
    ref="operation GetPluginPrivileges",
)
def test_privileges_needs_remote(engine: EngineClient, observe: Observations) -> None:
    seen = _call(engine, "GET", "/plugins/privileges")
    observe("answer", seen)
    assert seen == {"status": 500, "message": "invalid reference format"}


_DIGEST = "sha256:" + "a" * 64


@pytest.mark.scenario(
    "api/plugins/references-checked",
    "Plugin upgrade, pull, privileges and create MUST parse their references before anything else: a "
    "remote or name that is no reference is distribution's 500 'invalid reference format[: ...]', a "
    "plugin name with a digest 500 'cannot use digest in plugin tag' (create: 'canonical references are "
    "not permitted'); a valid upgrade of a plugin not installed is 404 with the name as the plugin store "
    "looks it up (a bare name gets ':latest')",
    ref="moby api/server/router/plugin/plugin_routes.go parseRemoteRef, getName; plugin/backend_linux.go",
)
def test_references_checked(engine: EngineClient, observe: Observations) -> None:
    requests = {
        "upgrade no remote": ("POST", "/plugins/nosuchplugin/upgrade"),
        "upgrade remote uppercase": ("POST", "/plugins/nosuchplugin/upgrade?remote=UPPER"),
        "upgrade remote garbage": ("POST", "/plugins/nosuchplugin/upgrade?remote=a%24b"),
        "upgrade name uppercase": ("POST", "/plugins/UPPER/upgrade?remote=busybox"),
        "upgrade name digest": ("POST", f"/plugins/nosuchplugin@{_DIGEST}/upgrade?remote=busybox"),
        "upgrade bare name": ("POST", "/plugins/nosuchplugin/upgrade?remote=busybox"),
        "upgrade tagged name": ("POST", "/plugins/nosuchplugin:1.0/upgrade?remote=busybox"),
        "pull remote uppercase": ("POST", "/plugins/pull?remote=UPPER"),
        "pull name digest": ("POST", f"/plugins/pull?remote=busybox&name=x@{_DIGEST}"),
        "privileges remote uppercase": ("GET", "/plugins/privileges?remote=UPPER"),
        "create name uppercase": ("POST", "/plugins/create?name=UPPER"),
        "create name digest": ("POST", f"/plugins/create?name=x@{_DIGEST}"),
    }
    seen = {case: _call(engine, method, path) for case, (method, path) in requests.items()}
    observe("answers", seen)
    upper = "invalid reference format: repository name (library/UPPER) must be lowercase"
    assert seen == {
        "upgrade no remote": {"status": 500, "message": "invalid reference format"},
        "upgrade remote uppercase": {"status": 500, "message": upper},
        "upgrade remote garbage": {"status": 500, "message": "invalid reference format"},
        "upgrade name uppercase": {"status": 500, "message": upper},
        "upgrade name digest": {"status": 500, "message": "cannot use digest in plugin tag"},
        "upgrade bare name": {"status": 404, "message": 'plugin "nosuchplugin:latest" not found'},
        "upgrade tagged name": {"status": 404, "message": 'plugin "nosuchplugin:1.0" not found'},
        "pull remote uppercase": {"status": 500, "message": upper},
        "pull name digest": {"status": 500, "message": "cannot use digest in plugin tag"},
        "privileges remote uppercase": {"status": 500, "message": upper},
        "create name uppercase": {"status": 500, "message": f"failed to parse reference UPPER: {upper}"},
        "create name digest": {"status": 500, "message": "canonical references are not permitted"},
    }


@pytest.mark.scenario(
    "api/plugins/sdk",
    "The docker SDK MUST list no plugins and raise NotFound for a plugin not installed",
    ref="docker-py models/plugins.py",
)
def test_sdk_plugins(docker_client: Any, observe: Observations) -> None:
    import docker

    observe("list", docker_client.plugins.list())
    with pytest.raises(docker.errors.NotFound) as info:
        docker_client.plugins.get("nosuchplugin")
    observe("not_found", {"status": info.value.status_code, "explanation": info.value.explanation})
    assert docker_client.plugins.list() == []
    assert info.value.explanation == 'plugin "nosuchplugin" not found'


@pytest.mark.scenario(
    "api/session/upgrade-required",
    "POST /session MUST answer 400 'no upgrade proto in request' without an Upgrade header and "
    "'protocol <p> not supported' for another protocol than h2c",
    ref="operation Session; moby/buildkit session/manager.go HandleHTTPRequest",
)
def test_session_upgrade_required(engine: EngineClient, observe: Observations) -> None:
    plain = engine.post("/session")
    other = engine.post("/session", headers={"Upgrade": "websocket", "Connection": "Upgrade"})
    seen = {
        "no-upgrade": {"status": plain.status_code, "message": plain.json().get("message")},
        "websocket": {"status": other.status_code, "message": other.json().get("message")},
    }
    observe("answers", seen)
    assert seen == {
        "no-upgrade": {"status": 400, "message": "no upgrade proto in request"},
        "websocket": {"status": 400, "message": "protocol websocket not supported"},
    }
