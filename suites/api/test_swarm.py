"""Swarm-mode endpoints on a node in no swarm: the errors clients (docker CLI, SDK) show to users.

Every daemon here is a standalone engine, so each manager-only route answers 503 with the same sentence, and
the CLI prints it. A JSON body is sent where the route reads one: dockerd 20.10 decodes the body before it
asks the cluster, so an empty body would test the decoder rather than the swarm check.
"""

from __future__ import annotations

from typing import Any

import pytest

from harness.checks import expect_error
from harness.client import EngineClient
from harness.fixtures import Observations

NOT_MANAGER = (
    'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" '
    "to connect this node to swarm and try again."
)


def _answers(
    engine: EngineClient, observe: Observations, calls: list[tuple[str, str, Any]]
) -> dict[str, Any]:
    """Make each (method, path, body) call; observe and return status and message per call."""
    seen = {}
    for method, path, body in calls:
        resp = engine.request(method, path, **({"json": body} if body is not None else {}))
        seen[f"{method} {path}"] = {"status": resp.status_code, "message": resp.json().get("message")}
    observe("answers", seen)
    return seen


def _all_not_manager(seen: dict[str, Any]) -> bool:
    return all(v == {"status": 503, "message": NOT_MANAGER} for v in seen.values())


@pytest.mark.scenario(
    "api/swarm/inspect-not-manager",
    "GET /swarm on a node in no swarm MUST answer 503 'This node is not a swarm manager...'",
    ref="operation SwarmInspect; moby daemon/cluster/errors.go",
)
def test_inspect_not_manager(engine: EngineClient, observe: Observations) -> None:
    assert _all_not_manager(_answers(engine, observe, [("GET", "/swarm", None)]))


@pytest.mark.scenario(
    "api/swarm/unlockkey-not-manager",
    "GET /swarm/unlockkey on a node in no swarm MUST answer 503 'This node is not a swarm manager...'",
    ref="operation SwarmUnlockkey",
)
def test_unlockkey_not_manager(engine: EngineClient, observe: Observations) -> None:
    assert _all_not_manager(_answers(engine, observe, [("GET", "/swarm/unlockkey", None)]))


@pytest.mark.scenario(
    "api/swarm/update-not-manager",
    "POST /swarm/update with a version and a spec on a node in no swarm MUST answer 503 (not a manager)",
    ref="operation SwarmUpdate",
)
def test_update_not_manager(engine: EngineClient, observe: Observations) -> None:
    assert _all_not_manager(_answers(engine, observe, [("POST", "/swarm/update?version=1", {})]))


@pytest.mark.scenario(
    "api/swarm/unlock-not-manager",
    "POST /swarm/unlock with a key on a node in no swarm MUST answer 503 (not a manager)",
    ref="operation SwarmUnlock",
)
def test_unlock_not_manager(engine: EngineClient, observe: Observations) -> None:
    body = {"UnlockKey": "SWMKEY-1-notakey"}
    assert _all_not_manager(_answers(engine, observe, [("POST", "/swarm/unlock", body)]))


@pytest.mark.scenario(
    "api/swarm/leave-not-member",
    "POST /swarm/leave (with or without force) on a node in no swarm MUST answer 503 "
    "'This node is not part of a swarm'",
    ref="operation SwarmLeave; moby daemon/cluster/swarm.go",
)
def test_leave_not_member(engine: EngineClient, observe: Observations) -> None:
    seen = _answers(engine, observe, [("POST", "/swarm/leave", None), ("POST", "/swarm/leave?force=1", None)])
    assert all(v == {"status": 503, "message": "This node is not part of a swarm"} for v in seen.values())


@pytest.mark.scenario(
    "api/swarm/nodes-not-manager",
    "Node list, inspect, remove and update on a node in no swarm MUST answer 503 (not a manager)",
    ref="operations NodeList, NodeInspect, NodeDelete, NodeUpdate",
)
def test_nodes_not_manager(engine: EngineClient, observe: Observations) -> None:
    calls: list[tuple[str, str, Any]] = [
        ("GET", "/nodes", None),
        ("GET", "/nodes/nosuchnode", None),
        ("DELETE", "/nodes/nosuchnode", None),
        ("POST", "/nodes/nosuchnode/update?version=1", {"Role": "worker", "Availability": "active"}),
    ]
    assert _all_not_manager(_answers(engine, observe, calls))


@pytest.mark.scenario(
    "api/swarm/services-not-manager",
    "Service list, create, inspect, update and remove on a node in no swarm MUST answer 503 (not a manager)",
    ref="operations ServiceList, ServiceCreate, ServiceInspect, ServiceUpdate, ServiceDelete",
)
def test_services_not_manager(engine: EngineClient, observe: Observations, test_image: str) -> None:
    spec = {"Name": "web", "TaskTemplate": {"ContainerSpec": {"Image": test_image}}}
    calls: list[tuple[str, str, Any]] = [
        ("GET", "/services", None),
        ("POST", "/services/create", spec),
        ("GET", "/services/web", None),
        ("POST", "/services/web/update?version=1", spec),
        ("DELETE", "/services/web", None),
    ]
    assert _all_not_manager(_answers(engine, observe, calls))


@pytest.mark.parametrize("kind", ["services", "tasks"])
@pytest.mark.scenario(
    "api/swarm/logs-streams-first",
    "Service and task logs MUST refuse a request choosing no stream (500 'Bad parameters: you must choose "
    "at least one stream') before the swarm check, then answer 503 (not a manager)",
    ref="operations ServiceLogs, TaskLogs; moby api/server/router/swarm/helpers.go",
)
def test_logs_streams_first(engine: EngineClient, observe: Observations, kind: str) -> None:
    seen = _answers(
        engine, observe, [("GET", f"/{kind}/x/logs", None), ("GET", f"/{kind}/x/logs?stdout=1", None)]
    )
    assert seen[f"GET /{kind}/x/logs"] == {
        "status": 500,
        "message": "Bad parameters: you must choose at least one stream",
    }
    assert seen[f"GET /{kind}/x/logs?stdout=1"] == {"status": 503, "message": NOT_MANAGER}


@pytest.mark.scenario(
    "api/swarm/tasks-not-manager",
    "Task list and inspect on a node in no swarm MUST answer 503 (not a manager)",
    ref="operations TaskList, TaskInspect",
)
def test_tasks_not_manager(engine: EngineClient, observe: Observations) -> None:
    calls: list[tuple[str, str, Any]] = [("GET", "/tasks", None), ("GET", "/tasks/nosuchtask", None)]
    assert _all_not_manager(_answers(engine, observe, calls))


@pytest.mark.parametrize("kind", ["secrets", "configs"])
@pytest.mark.scenario(
    "api/swarm/secrets-configs-not-manager",
    "Secret and config list, create, inspect, update and remove on a node in no swarm MUST answer 503",
    ref="operations SecretList, SecretCreate, SecretInspect, SecretUpdate, SecretDelete, ConfigList, "
    "ConfigCreate, ConfigInspect, ConfigUpdate, ConfigDelete",
)
def test_secrets_configs_not_manager(engine: EngineClient, observe: Observations, kind: str) -> None:
    spec = {"Name": "s1", "Data": "aGVsbG8="}
    calls: list[tuple[str, str, Any]] = [
        ("GET", f"/{kind}", None),
        ("POST", f"/{kind}/create", spec),
        ("GET", f"/{kind}/s1", None),
        ("POST", f"/{kind}/s1/update?version=1", spec),
        ("DELETE", f"/{kind}/s1", None),
    ]
    assert _all_not_manager(_answers(engine, observe, calls))


@pytest.mark.scenario(
    "api/swarm/info-inactive",
    "GET /info on a node in no swarm MUST report Swarm.LocalNodeState 'inactive' with no node id and no "
    "control",
    ref="operation SystemInfo; moby api/types/swarm/swarm.go Info",
)
def test_info_inactive(engine: EngineClient, observe: Observations) -> None:
    swarm = engine.get("/info").json()["Swarm"]
    shown = {k: swarm.get(k) for k in ("NodeID", "NodeAddr", "LocalNodeState", "ControlAvailable", "Error")}
    observe("swarm", shown)
    observe("RemoteManagers", swarm.get("RemoteManagers"))
    assert shown == {
        "NodeID": "",
        "NodeAddr": "",
        "LocalNodeState": "inactive",
        "ControlAvailable": False,
        "Error": "",
    }


@pytest.mark.scenario(
    "api/swarm/sdk-not-manager",
    "The docker SDK's swarm and service calls MUST raise APIError with status 503 and the daemon's text",
    ref="docker-py models/swarm.py, models/services.py",
)
def test_sdk_not_manager(docker_client: Any, observe: Observations) -> None:
    import docker

    errors = {}
    for name, call in (
        ("swarm.reload", docker_client.swarm.reload),
        ("services.list", docker_client.services.list),
        ("nodes.list", docker_client.nodes.list),
    ):
        with pytest.raises(docker.errors.APIError) as info:
            call()
        errors[name] = {"status": info.value.status_code, "explanation": info.value.explanation}
    observe("errors", errors)
    assert all(e == {"status": 503, "explanation": NOT_MANAGER} for e in errors.values())


@pytest.mark.scenario(
    "api/volumes/update-not-cluster",
    "PUT /volumes/{name} on a node in no swarm MUST answer 503: only cluster volumes can be updated "
    "(API >= 1.42)",
    ref="operation VolumeUpdate; moby api/server/router/volume/volume_routes.go",
)
def test_volume_update_not_cluster(engine: EngineClient, observe: Observations) -> None:
    resp = engine.request("PUT", "/volumes/somevolume?version=1", json={"Spec": {"Availability": "active"}})
    observe("status", resp.status_code)
    observe("message", resp.json().get("message"))
    expect_error(resp, 503, "volume update only valid for cluster volumes, but swarm is unavailable")
    assert resp.json()["message"] == "volume update only valid for cluster volumes, but swarm is unavailable"


@pytest.mark.scenario(
    "api/swarm/init-join-checks",
    "POST /swarm/init and /swarm/join on a node in no swarm MUST check the request first as dockerd does "
    "(400s: invalid JSON, an empty ListenAddr, a spec not named 'default', a join without RemoteAddrs) and "
    "leave the node in no swarm ('inactive')",
    ref="operations SwarmInit, SwarmJoin; moby daemon/cluster/swarm.go validateAndSanitize*Request",
)
def test_init_join_checks(engine: EngineClient, observe: Observations) -> None:
    def answer(path: str, body: Any = None, raw: bytes | None = None) -> dict[str, Any]:
        if raw is not None:
            resp = engine.post(path, data=raw, headers={"Content-Type": "application/json"})
        else:
            resp = engine.post(path, **({"json": body} if body is not None else {}))
        return {"status": resp.status_code, "message": resp.json().get("message")}

    seen = {
        "init-bad-json": answer("/swarm/init", raw=b"{"),
        "init-no-body": answer("/swarm/init"),
        "init-array": answer("/swarm/init", []),
        "init-spec-name": answer("/swarm/init", {"ListenAddr": "0.0.0.0:2377", "Spec": {"Name": "other"}}),
        "join-empty": answer("/swarm/join", {}),
        "join-no-remote": answer("/swarm/join", {"ListenAddr": "0.0.0.0:2377", "JoinToken": "x"}),
    }
    observe("answers", seen)
    empty_listen = 'invalid ListenAddr "": invalid empty address'
    assert seen == {
        "init-bad-json": {"status": 400, "message": "invalid JSON: unexpected EOF"},
        "init-no-body": {"status": 400, "message": empty_listen},
        "init-array": {
            "status": 400,
            "message": "invalid JSON: json: cannot unmarshal array into Go value of type swarm.InitRequest",
        },
        "init-spec-name": {"status": 400, "message": 'swarm spec must be named "default"'},
        "join-empty": {"status": 400, "message": empty_listen},
        "join-no-remote": {"status": 400, "message": "at least 1 RemoteAddr is required to join"},
    }
    state = engine.get("/info").json()["Swarm"]["LocalNodeState"]
    assert observe("local-node-state", state) == "inactive"
