"""Container lifecycle over the raw API: create, inspect, list, start, wait, logs, stop, kill, rm, rename."""

from __future__ import annotations

import json
import re
import struct
import time
from typing import Any

import pytest

from harness.checks import eventually, expect_error
from harness.client import EngineClient
from harness.fixtures import Observations
from harness.wait import wait_until
from suites._daemon import create_container, run_container

V = "/v1.41"  # a version both dockerd 20.10 and newer daemons serve


def _create(engine: EngineClient, body: dict[str, Any], name: str = "") -> Any:
    query = f"?name={name}" if name else ""
    return engine.post(f"{V}/containers/create{query}", json=body)


def _frames(raw: bytes) -> list[tuple[int, bytes]]:
    out = []
    while len(raw) >= 8:
        stream, size = struct.unpack(">BxxxI", raw[:8])
        out.append((stream, raw[8 : 8 + size]))
        raw = raw[8 + size :]
    return out


def _wait(engine: EngineClient, cid: str) -> Any:
    return engine.post(f"{V}/containers/{cid}/wait", timeout=60).json()


@pytest.mark.scenario(
    "api/containers/create-response",
    "POST /containers/create MUST answer 201 with the 64-hex Id and a Warnings list",
    ref="operation ContainerCreate",
)
def test_create_response(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    resp = _create(engine, {"Image": test_image, "Cmd": ["true"]})
    body = resp.json()
    containers.append(body.get("Id", ""))
    observe("status", resp.status_code)
    observe("keys", sorted(body))
    observe("id_is_64_hex", len(body["Id"]) == 64 and all(ch in "0123456789abcdef" for ch in body["Id"]))
    observe("warnings", body["Warnings"])
    assert resp.status_code == 201


@pytest.mark.scenario(
    "api/containers/create-name-conflict",
    "Creating a second container with a taken name MUST get 409 with dockerd's message",
    ref="moby daemon/names.go, daemon/errors.go nameConflictError",
)
def test_create_name_conflict(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    first = _create(engine, {"Image": test_image, "Cmd": ["true"]}, "conflict-me")
    containers.append(first.json()["Id"])
    second = _create(engine, {"Image": test_image, "Cmd": ["true"]}, "conflict-me")
    message = second.json()["message"]
    observe("status", second.status_code)
    observe("message", message.replace(first.json()["Id"], "<id>"))
    expect_error(second, 409)
    assert message == (
        f'Conflict. The container name "/conflict-me" is already in use by container '
        f'"{first.json()["Id"]}". You have to remove (or rename) that container to be able to reuse '
        "that name."
    )


@pytest.mark.scenario(
    "api/containers/create-invalid-name",
    "A name outside [a-zA-Z0-9][a-zA-Z0-9_.-] MUST get 400 naming the allowed characters",
    ref="moby daemon/names.go",
)
def test_create_invalid_name(engine: EngineClient, test_image: str, observe: Observations) -> None:
    resp = _create(engine, {"Image": test_image, "Cmd": ["true"]}, "-bad!")
    observe("status", resp.status_code)
    observe("message", resp.json()["message"])
    expect_error(resp, 400, "Invalid container name (-bad!), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    assert (
        resp.json()["message"] == "Invalid container name (-bad!), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
    )


@pytest.mark.scenario(
    "api/containers/create-missing-image",
    "Creating from an image that does not exist MUST get 404 'No such image: <ref>'",
    ref="spec 6.5",
)
def test_create_missing_image(engine: EngineClient, observe: Observations) -> None:
    resp = _create(engine, {"Image": "nosuchimage", "Cmd": ["true"]})
    observe("status", resp.status_code)
    observe("message", resp.json()["message"])
    expect_error(resp, 404, "No such image: nosuchimage:latest")
    assert resp.json()["message"] == "No such image: nosuchimage:latest"


@pytest.mark.scenario(
    "api/containers/inspect-created",
    "Inspect of a created container MUST show State 'created', the merged Config and HostConfig defaults",
    ref="operation ContainerInspect",
)
def test_inspect_created(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    resp = _create(
        engine,
        {"Image": test_image, "Cmd": ["echo", "hi"], "Env": ["A=b"], "Labels": {"k": "v"}},
        "inspect-me",
    )
    cid = resp.json()["Id"]
    containers.append(cid)
    doc = engine.get(f"{V}/containers/inspect-me/json").json()
    state = doc["State"]
    observe(
        "state",
        {
            k: state[k]
            for k in (
                "Status",
                "Running",
                "Paused",
                "Restarting",
                "OOMKilled",
                "Dead",
                "Pid",
                "ExitCode",
                "Error",
                "StartedAt",
                "FinishedAt",
            )
        },
    )
    observe("name", doc["Name"])
    observe("path_args", [doc["Path"], doc["Args"]])
    observe("hostname_is_short_id", doc["Config"]["Hostname"] == cid[:12])
    observe("env", doc["Config"]["Env"])
    observe("labels", doc["Config"]["Labels"])
    observe("cmd", doc["Config"]["Cmd"])
    observe("image", doc["Config"]["Image"])
    hc = doc["HostConfig"]
    observe(
        "host_config",
        {
            k: hc.get(k)
            for k in (
                "RestartPolicy",
                "NetworkMode",
                "LogConfig",
                "ShmSize",
                "Privileged",
                "AutoRemove",
                "ReadonlyRootfs",
                "IpcMode",
            )
        },
    )
    observe("restart_count", doc["RestartCount"])
    observe("image_is_digest", doc["Image"].startswith("sha256:"))
    assert state["Status"] == "created" and doc["Name"] == "/inspect-me"


@pytest.mark.scenario(
    "api/containers/inspect-missing",
    "Inspect of an unknown container MUST get 404 'No such container: <ref>'",
    ref="spec 6.5",
)
def test_inspect_missing(engine: EngineClient, observe: Observations) -> None:
    resp = engine.get(f"{V}/containers/nosuch/json")
    observe("status", resp.status_code)
    observe("body", resp.text)
    assert resp.status_code == 404 and resp.json() == {"message": "No such container: nosuch"}


@pytest.mark.scenario(
    "api/containers/list-all",
    "GET /containers/json MUST hide non-running containers unless all=1, with dockerd's summary shape",
    ref="operation ContainerList",
)
def test_list_all(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    cid = create_container(engine, containers, test_image, ["true"], "list-me", Labels={"suite": "list"})
    running = engine.get(f"{V}/containers/json").json()
    everything = engine.get(f"{V}/containers/json?all=1").json()
    mine = [c for c in everything if c["Id"] == cid]
    observe("in_default_list", any(c["Id"] == cid for c in running))
    observe("in_all_list", bool(mine))
    summary = mine[0]
    observe(
        "summary",
        {
            k: summary.get(k)
            for k in ("Names", "Image", "Command", "State", "Status", "Labels", "Ports", "HostConfig")
        },
    )
    observe("keys", sorted(summary))
    assert mine and not any(c["Id"] == cid for c in running)


@pytest.mark.scenario(
    "api/containers/list-filters",
    "List filters status, label, name and id MUST select containers; a bad status MUST be a 400",
    ref="moby daemon/list.go",
)
def test_list_filters(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    cid = create_container(engine, containers, test_image, ["true"], "filter-me", Labels={"pick": "me"})

    def ids(filters: dict[str, list[str]]) -> list[str]:
        resp = engine.get(f"{V}/containers/json", params={"all": "1", "filters": json.dumps(filters)})
        return [c["Id"] for c in resp.json()] if resp.status_code == 200 else [f"status {resp.status_code}"]

    observe("status=created", cid in ids({"status": ["created"]}))
    observe("status=running", cid in ids({"status": ["running"]}))
    observe("label=pick=me", cid in ids({"label": ["pick=me"]}))
    observe("label=pick=other", cid in ids({"label": ["pick=other"]}))
    observe("name=filter-me", cid in ids({"name": ["filter-me"]}))
    observe("id prefix", cid in ids({"id": [cid[:10]]}))
    bad = engine.get(f"{V}/containers/json", params={"filters": json.dumps({"status": ["bogus"]})})
    observe("bad_status", {"status": bad.status_code, "message": bad.json().get("message")})
    assert cid in ids({"label": ["pick=me"]})
    expect_error(
        bad,
        400,
        "invalid filter 'status=bogus': invalid value for state (bogus): must be one of created, running, "
        "paused, restarting, removing, exited, dead",
    )


@pytest.mark.scenario(
    "api/containers/run-exit-code",
    "A started container that exits 3 MUST report StatusCode 3 from wait and State.ExitCode 3",
    ref="operations ContainerStart, ContainerWait",
)
def test_run_exit_code(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    cid = run_container(engine, containers, test_image, ["sh", "-c", "exit 3"])
    result = _wait(engine, cid)
    state = engine.get(f"{V}/containers/{cid}/json").json()["State"]
    observe("wait", result)
    observe("state", {k: state[k] for k in ("Status", "Running", "ExitCode", "OOMKilled", "Pid", "Error")})
    observe("finished_set", not state["FinishedAt"].startswith("0001"))
    assert result["StatusCode"] == 3 and state["Status"] == "exited"


@pytest.mark.scenario(
    "api/containers/start-twice",
    "Starting a running container MUST answer 304 Not Modified",
    ref="operation ContainerStart",
)
def test_start_twice(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    cid = run_container(engine, containers, test_image, ["sleep", "30"])
    again = engine.post(f"{V}/containers/{cid}/start")
    observe("status", again.status_code)
    assert again.status_code == 304


@pytest.mark.scenario(
    "api/containers/start-missing-binary",
    "Starting a container whose command does not exist MUST fail with 400 naming the executable",
    ref="moby daemon/start.go; runc",
)
def test_start_missing_binary(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    resp = _create(engine, {"Image": test_image, "Cmd": ["nosuchcmd"]})
    cid = resp.json()["Id"]
    containers.append(cid)
    started = engine.post(f"{V}/containers/{cid}/start")
    message = started.json()["message"]
    state = engine.get(f"{V}/containers/{cid}/json").json()["State"]
    observe("status", started.status_code)
    observe("names_executable", 'exec: "nosuchcmd": executable file not found in $PATH' in message)
    observe("state", {"Status": state["Status"], "ExitCode": state["ExitCode"], "Running": state["Running"]})
    assert started.status_code == 400
    assert 'exec: "nosuchcmd": executable file not found in $PATH' in message


@pytest.mark.scenario(
    "api/containers/logs-multiplexed",
    "Logs of a non-TTY container MUST come as multiplexed frames (1=stdout, 2=stderr) in order",
    ref="operation ContainerLogs; spec 5.2",
)
def test_logs_multiplexed(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    cid = run_container(
        engine, containers, test_image, ["sh", "-c", "echo out1; echo err1 >&2; sleep 0.2; echo out2"]
    )
    _wait(engine, cid)
    # some daemons write the log asynchronously: wait until all three lines are on disk
    responses = [engine.get(f"{V}/containers/{cid}/logs?stdout=1&stderr=1")]

    def three_lines() -> bool:
        responses.append(engine.get(f"{V}/containers/{cid}/logs?stdout=1&stderr=1"))
        return len(_frames(responses[-1].content)) >= 3

    wait_until(three_lines, 10, interval=0.1)
    resp = responses[-1]
    frames = _frames(resp.content)

    observe("status", resp.status_code)
    observe(
        "frames_by_stream",
        {
            "stdout": [d.decode() for s, d in frames if s == 1],
            "stderr": [d.decode() for s, d in frames if s == 2],
        },
    )
    only_err = _frames(engine.get(f"{V}/containers/{cid}/logs?stderr=1").content)
    observe("stderr_only", [d.decode() for _, d in only_err])
    tail = _frames(engine.get(f"{V}/containers/{cid}/logs?stdout=1&tail=1").content)
    observe("tail_1_stdout", [d.decode() for _, d in tail])
    assert [d for s, d in frames if s == 1] == [b"out1\n", b"out2\n"]


@pytest.mark.scenario(
    "api/containers/logs-no-stream",
    "Logs without stdout or stderr MUST get 400 'Bad parameters: you must choose at least one stream'",
    ref="moby api/server/router/container/container_routes.go",
)
def test_logs_no_stream(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    cid = create_container(engine, containers, test_image, ["true"])
    resp = engine.get(f"{V}/containers/{cid}/logs")
    observe("status", resp.status_code)
    observe("body", resp.json())
    expect_error(resp, 400, "Bad parameters: you must choose at least one stream")


@pytest.mark.scenario(
    "api/containers/logs-timestamps",
    "logs?timestamps=1 MUST prefix each line with an RFC3339 time with 9 fractional digits",
    ref="operation ContainerLogs",
)
def test_logs_timestamps(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    import re

    cid = run_container(engine, containers, test_image, ["echo", "stamp"])
    _wait(engine, cid)
    frames = _frames(engine.get(f"{V}/containers/{cid}/logs?stdout=1&timestamps=1").content)
    line = frames[0][1].decode() if frames else ""
    ok = bool(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z stamp\n$", line))
    observe("format_ok", ok)
    assert ok, line


@pytest.mark.scenario(
    "api/containers/stop-sigkill-after-timeout",
    "Stopping a container that ignores SIGTERM MUST SIGKILL it after t seconds (exit 137)",
    ref="spec 7.2; operation ContainerStop",
)
def test_stop_timeout(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    cid = run_container(engine, containers, test_image, ["sleep", "60"])
    start = time.monotonic()
    resp = engine.post(f"{V}/containers/{cid}/stop?t=1", timeout=60)
    took = time.monotonic() - start
    state = engine.get(f"{V}/containers/{cid}/json").json()["State"]
    observe("status", resp.status_code)
    observe("exit_code", state["ExitCode"])
    observe("waited_for_timeout", took >= 0.9)
    again = engine.post(f"{V}/containers/{cid}/stop")
    observe("stop_again", again.status_code)
    assert resp.status_code == 204 and state["ExitCode"] == 137 and again.status_code == 304


@pytest.mark.scenario(
    "api/containers/kill-signal",
    "kill?signal=TERM on a shell trapping TERM MUST run the trap; an unknown signal MUST be a 400",
    ref="operation ContainerKill",
)
def test_kill_signal(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    cid = run_container(
        engine,
        containers,
        test_image,
        ["sh", "-c", "trap 'echo got-term; exit 7' TERM; echo trap-set; while true; do sleep 0.1; done"],
    )
    eventually(
        lambda: b"trap-set" in engine.get(f"{V}/containers/{cid}/logs?stdout=1").content,
        "the shell to have set its TERM trap (its 'trap-set' line)",
    )
    bad = engine.post(f"{V}/containers/{cid}/kill?signal=NOPE")
    resp = engine.post(f"{V}/containers/{cid}/kill?signal=TERM")
    result = _wait(engine, cid)
    logs = _frames(engine.get(f"{V}/containers/{cid}/logs?stdout=1").content)
    observe("bad_signal", {"status": bad.status_code, "message": bad.json().get("message")})
    observe("status", resp.status_code)
    observe("exit", result["StatusCode"])
    observe("trap_ran", [d.decode() for _, d in logs if d != b"trap-set\n"])
    expect_error(bad, 400, re.compile("cannot kill container: [0-9a-f]+: invalid signal: NOPE$"))
    assert resp.status_code == 204 and result["StatusCode"] == 7


@pytest.mark.scenario(
    "api/containers/kill-not-running",
    "Killing a container that is not running MUST get 409",
    ref="moby daemon/kill.go",
)
def test_kill_not_running(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    cid = create_container(engine, containers, test_image, ["true"], "kill-me")
    resp = engine.post(f"{V}/containers/kill-me/kill")
    observe("status", resp.status_code)
    observe("message", resp.json()["message"].replace(cid, "<id>"))
    expect_error(
        resp, 409, re.compile(r"cannot kill container: kill-me: container [0-9a-f]+ is not running$")
    )


@pytest.mark.scenario(
    "api/containers/remove-running",
    "Removing a running container without force MUST get 409; with force=1 it MUST be removed",
    ref="moby daemon/delete.go",
)
def test_remove_running(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    cid = run_container(engine, containers, test_image, ["sleep", "60"])
    refused = engine.delete(f"{V}/containers/{cid}")
    forced = engine.delete(f"{V}/containers/{cid}?force=1")
    gone = engine.get(f"{V}/containers/{cid}/json")
    observe(
        "refused", {"status": refused.status_code, "message": refused.json()["message"].replace(cid, "<id>")}
    )
    observe("forced", forced.status_code)
    observe("gone", gone.status_code)
    expect_error(
        refused,
        409,
        f'cannot remove container "{cid}": container is running: stop the container before removing or '
        "force remove",
    )
    assert forced.status_code == 204
    expect_error(gone, 404, f"No such container: {cid}")


@pytest.mark.scenario(
    "api/containers/rename",
    "Rename MUST change the name; renaming to a taken name MUST get 409",
    ref="operation ContainerRename",
)
def test_rename(engine: EngineClient, test_image: str, containers: list[str], observe: Observations) -> None:
    a = create_container(engine, containers, test_image, ["true"], "rename-a")
    b = create_container(engine, containers, test_image, ["true"], "rename-b")
    ok = engine.post(f"{V}/containers/rename-a/rename?name=rename-c")
    taken = engine.post(f"{V}/containers/rename-c/rename?name=rename-b")
    observe("ok", ok.status_code)
    observe("new_name", engine.get(f"{V}/containers/{a}/json").json()["Name"])
    observe("taken", {"status": taken.status_code, "message": taken.json()["message"].replace(b, "<id>")})
    assert ok.status_code == 204
    expect_error(
        taken,
        409,
        f'Error when allocating new name: Conflict. The container name "/rename-b" is already in use by '
        f'container "{b}". You have to remove (or rename) that container to be able to reuse that name.',
    )


@pytest.mark.scenario(
    "api/containers/restart-policy-on-failure",
    "RestartPolicy on-failure:2 MUST restart a failing container twice, then leave it exited",
    ref="operation ContainerCreate HostConfig.RestartPolicy",
)
def test_restart_on_failure(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    cid = run_container(
        engine,
        containers,
        test_image,
        ["sh", "-c", "exit 2"],
        HostConfig={"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2}},
    )
    deadline = time.monotonic() + 30
    doc: dict[str, Any] = {}
    while time.monotonic() < deadline:
        doc = engine.get(f"{V}/containers/{cid}/json").json()
        if doc["RestartCount"] == 2 and doc["State"]["Status"] == "exited":
            break
        time.sleep(0.2)
    observe("restart_count", doc["RestartCount"])
    observe("status", doc["State"]["Status"])
    observe("exit_code", doc["State"]["ExitCode"])
    assert doc["RestartCount"] == 2 and doc["State"]["Status"] == "exited"


@pytest.mark.scenario(
    "api/containers/restart-policy-invalid",
    "An unknown restart policy MUST be refused at create with 400",
    ref="moby hostconfig.go",
)
def test_restart_policy_invalid(engine: EngineClient, test_image: str, observe: Observations) -> None:
    resp = _create(
        engine, {"Image": test_image, "Cmd": ["true"], "HostConfig": {"RestartPolicy": {"Name": "sometimes"}}}
    )
    observe("status", resp.status_code)
    expect_error(
        resp,
        400,
        "invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always', 'on-failure', or "
        "'unless-stopped'",
    )


@pytest.mark.scenario(
    "api/containers/restart-policy-checks",
    "Create MUST refuse a restart policy as dockerd 28 does (400, its wording): an unknown name, a retry "
    "count with a policy other than on-failure ('and cannot be negative' when it is), a negative count for "
    "on-failure, an empty name with a count (taken as 'no'); AutoRemove with a restart policy MUST be "
    "refused before the policy itself is checked; an empty name without a count MUST be stored as 'no'",
    ref="moby api/types/container/hostconfig.go ValidateRestartPolicy; daemon/create.go; daemon/container.go",
)
def test_restart_policy_checks(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    def answer(policy: dict[str, Any], auto_remove: bool = False) -> Any:
        host_config = {"RestartPolicy": policy, "AutoRemove": auto_remove}
        resp = engine.post(
            "/containers/create", json={"Image": test_image, "Cmd": ["true"], "HostConfig": host_config}
        )
        if resp.status_code == 201:
            containers.append(resp.json()["Id"])
            policy = engine.get(f"/containers/{resp.json()['Id']}/json").json()["HostConfig"]["RestartPolicy"]
            return (201, policy)
        return (resp.status_code, resp.json().get("message"))

    seen = {
        "unknown": answer({"Name": "sometimes"}),
        "always-3": answer({"Name": "always", "MaximumRetryCount": 3}),
        "always-neg": answer({"Name": "always", "MaximumRetryCount": -1}),
        "no-neg": answer({"Name": "no", "MaximumRetryCount": -1}),
        "unless-stopped-2": answer({"Name": "unless-stopped", "MaximumRetryCount": 2}),
        "on-failure-neg": answer({"Name": "on-failure", "MaximumRetryCount": -1}),
        "empty-3": answer({"Name": "", "MaximumRetryCount": 3}),
        "empty": answer({"Name": ""}),
        "auto-remove-bad-policy": answer({"Name": "on-failure", "MaximumRetryCount": -1}, auto_remove=True),
        "on-failure-5": answer({"Name": "on-failure", "MaximumRetryCount": 5}),
    }
    observe("answers", seen)
    only = "invalid restart policy: maximum retry count can only be used with 'on-failure'"
    assert seen == {
        "unknown": (
            400,
            "invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always', 'on-failure', "
            "or 'unless-stopped'",
        ),
        "always-3": (400, only),
        "always-neg": (400, only + " and cannot be negative"),
        "no-neg": (400, only + " and cannot be negative"),
        "unless-stopped-2": (400, only),
        "on-failure-neg": (400, "invalid restart policy: maximum retry count cannot be negative"),
        "empty-3": (400, only),
        "empty": (201, {"Name": "no", "MaximumRetryCount": 0}),
        "auto-remove-bad-policy": (400, "can't create 'AutoRemove' container with restart policy"),
        "on-failure-5": (201, {"Name": "on-failure", "MaximumRetryCount": 5}),
    }


@pytest.mark.scenario(
    "api/containers/auto-remove",
    "A container with AutoRemove MUST be gone after it exits",
    ref="HostConfig.AutoRemove",
)
def test_auto_remove(engine: EngineClient, test_image: str, observe: Observations) -> None:
    resp = _create(engine, {"Image": test_image, "Cmd": ["true"], "HostConfig": {"AutoRemove": True}})
    cid = resp.json()["Id"]
    engine.post(f"{V}/containers/{cid}/start")
    engine.post(f"{V}/containers/{cid}/wait?condition=removed", timeout=30)
    deadline = time.monotonic() + 10
    status = 200
    while time.monotonic() < deadline:
        status = engine.get(f"{V}/containers/{cid}/json").status_code
        if status == 404:
            break
        time.sleep(0.1)
    observe("inspect_after_exit", status)
    assert status == 404


@pytest.mark.kernel
@pytest.mark.scenario(
    "api/containers/pause-unpause",
    "Pause MUST freeze the container (State.Paused) and unpause MUST resume it",
    ref="operations ContainerPause, ContainerUnpause",
)
def test_pause_unpause(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    cid = run_container(engine, containers, test_image, ["sleep", "60"])
    paused = engine.post(f"{V}/containers/{cid}/pause")
    state_paused = engine.get(f"{V}/containers/{cid}/json").json()["State"]
    again = engine.post(f"{V}/containers/{cid}/pause")
    unpaused = engine.post(f"{V}/containers/{cid}/unpause")
    state = engine.get(f"{V}/containers/{cid}/json").json()["State"]
    observe("pause", paused.status_code)
    observe("paused_state", {"Status": state_paused["Status"], "Paused": state_paused["Paused"]})
    observe(
        "pause_again", {"status": again.status_code, "message": again.json()["message"].replace(cid, "<id>")}
    )
    observe("unpause", unpaused.status_code)
    observe("state", {"Status": state["Status"], "Paused": state["Paused"]})
    assert paused.status_code == 204 and state_paused["Paused"] is True and state["Status"] == "running"


@pytest.mark.scenario(
    "api/containers/wait-next-exit",
    "wait?condition=next-exit on a created container MUST return after it is started and exits",
    ref="operation ContainerWait",
)
def test_wait_next_exit(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:

    cid = create_container(engine, containers, test_image, ["sh", "-c", "exit 5"])
    # the daemon answers the wait's headers once its waiter is in place; the status line follows the exit
    waiting = engine.post(f"{V}/containers/{cid}/wait?condition=next-exit", timeout=30, stream=True)
    assert waiting.status_code == 200
    engine.post(f"{V}/containers/{cid}/start")
    result: dict[str, Any] = waiting.json()
    observe("wait", result)

    assert result.get("StatusCode") == 5
