"""Exec through the real CLI and the raw API (operations ContainerExec, ExecStart, ExecInspect)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from harness.checks import eventually, expect_error
from harness.client import EngineClient
from harness.fixtures import Observations
from suites._daemon import cli_run, create_container

CLI = Callable[..., Any]
V = "/v1.41"


@pytest.fixture
def running(docker_cli: CLI, test_image: str, containers: list[str]) -> str:
    """A running container for execs; removed afterwards."""
    return cli_run(docker_cli, containers, test_image, "sleep", "120")


@pytest.mark.kernel
@pytest.mark.scenario(
    "api/exec/cli-output-and-namespace",
    "`docker exec` MUST run inside the container's namespaces (its hostname) and relay stdout",
    ref="docker CLI exec; operation ContainerExec",
)
def test_exec_output(docker_cli: CLI, running: str, observe: Observations) -> None:
    result = docker_cli("exec", running, "sh", "-c", "echo in-exec; hostname")
    observe("exit", result.returncode)
    observe("stdout_first", result.stdout.splitlines()[:1])
    observe("hostname_is_short_id", result.stdout.splitlines()[1:] == [running[:12]])
    assert result.stdout.splitlines() == ["in-exec", running[:12]]


@pytest.mark.scenario(
    "api/exec/cli-exit-code", "`docker exec` MUST exit with the process's exit code", ref="docker CLI exec"
)
def test_exec_exit_code(docker_cli: CLI, running: str, observe: Observations) -> None:
    result = docker_cli("exec", running, "sh", "-c", "exit 4")
    observe("exit", result.returncode)
    assert result.returncode == 4


@pytest.mark.scenario(
    "api/exec/cli-stdin", "`docker exec -i` MUST feed stdin to the process", ref="docker CLI exec -i"
)
def test_exec_stdin(docker_cli: CLI, running: str, observe: Observations) -> None:
    result = docker_cli("exec", "-i", running, "tr", "a-z", "A-Z", input="piped\n")
    observe("stdout", result.stdout)
    assert result.stdout == "PIPED\n"


@pytest.mark.scenario(
    "api/exec/cli-missing-command",
    "`docker exec` of a missing command MUST fail with exit 127 and name the executable",
    ref="moby daemon/exec.go translateContainerdStartErr",
)
def test_exec_missing(docker_cli: CLI, running: str, observe: Observations) -> None:
    result = docker_cli("exec", running, "nosuchcmd")
    observe("exit", result.returncode)
    observe(
        "names_executable",
        'exec: "nosuchcmd": executable file not found in $PATH' in result.stdout + result.stderr,
    )
    assert result.returncode == 127


@pytest.mark.scenario(
    "api/exec/inspect-lifecycle",
    "Exec inspect MUST show Running false and ExitCode null before start, the exit code after",
    ref="operation ExecInspect",
)
def test_exec_inspect(engine: EngineClient, running: str, observe: Observations) -> None:
    created = engine.post(f"{V}/containers/{running}/exec", json={"Cmd": ["sh", "-c", "exit 3"]})
    eid = created.json()["Id"]
    before = engine.get(f"{V}/exec/{eid}/json").json()
    started = engine.post(f"{V}/exec/{eid}/start", json={"Detach": False})

    def ended() -> dict[str, Any] | None:
        doc: dict[str, Any] = engine.get(f"{V}/exec/{eid}/json").json()
        return None if doc.get("Running") else doc

    # dockerd 28 records the exit a moment after the stream ends
    after = eventually(ended, "the exec's exit to be recorded (Running false)", timeout=10, interval=0.1)

    again = engine.post(f"{V}/exec/{eid}/start", json={"Detach": False})
    observe("create_status", created.status_code)
    observe(
        "before", {k: before.get(k) for k in ("Running", "ExitCode", "OpenStdin", "OpenStdout", "CanRemove")}
    )
    observe("process_config", before.get("ProcessConfig"))
    observe("start_status", started.status_code)
    observe("after", {k: after.get(k) for k in ("Running", "ExitCode")})
    # dockerd hijacks before it checks: the refusal arrives in the stream of a 200
    observe("restart", {"status": again.status_code, "has_already_run": "has already run" in again.text})
    assert after["ExitCode"] == 3 and "has already run" in again.text


@pytest.mark.scenario(
    "api/exec/not-running", "Exec in a stopped container MUST get 409", ref="moby daemon/exec.go"
)
def test_exec_not_running(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    cid = create_container(engine, containers, test_image, ["true"])
    resp = engine.post(f"{V}/containers/{cid}/exec", json={"Cmd": ["true"]})
    observe("status", resp.status_code)
    observe("message", resp.json()["message"].replace(cid, "<id>"))
    expect_error(resp, 409, re.compile(r"container [0-9a-f]+ is not running$"))


@pytest.mark.scenario(
    "api/exec/no-command",
    "Exec without Cmd MUST get 400 'No exec command specified'",
    ref="moby api/server/router/container/exec.go",
)
def test_exec_no_command(engine: EngineClient, running: str, observe: Observations) -> None:
    resp = engine.post(f"{V}/containers/{running}/exec", json={"Cmd": []})
    observe("status", resp.status_code)
    observe("body", resp.json())
    assert resp.status_code == 400 and resp.json() == {"message": "No exec command specified"}


@pytest.mark.scenario(
    "api/exec/exec-ids-follow-lifecycle",
    "A container's ExecIDs MUST list created and running execs and MUST drop an exec once its process has "
    "ended (attached or detached); the ended exec MUST still inspect",
    ref="moby daemon/exec.go, container ExecCommands",
)
def test_exec_ids_follow_lifecycle(
    engine: EngineClient, docker_cli: CLI, running: str, observe: Observations
) -> None:
    docker_cli("exec", running, "true")
    docker_cli("exec", "-d", running, "sleep", "1")
    with_detached = engine.get(f"{V}/containers/{running}/json").json()["ExecIDs"]
    created = engine.post(f"{V}/containers/{running}/exec", json={"Cmd": ["true"]}).json()["Id"]
    ended = [e for e in (with_detached or []) if e != created]
    # the attached exec has ended already; the detached one (sleep 1) runs until its process exits
    assert observe("while_detached_runs", len(with_detached or [])) == 1, with_detached

    def dropped() -> list[str] | None:
        ids: list[str] = engine.get(f"{V}/containers/{running}/json").json()["ExecIDs"] or []
        return ids if not set(ids) & set(ended) else None

    after = eventually(dropped, "the ended detached exec to leave ExecIDs", timeout=15)
    assert observe("after", ["created" if e == created else "other" for e in after]) == ["created"]
    statuses = observe("ended_still_inspects", [engine.get(f"{V}/exec/{e}/json").status_code for e in ended])
    assert statuses == [200]


@pytest.mark.kernel
@pytest.mark.scenario(
    "api/exec/tty-in-container-devpts",
    "`docker exec -t` MUST give the process a terminal from the container's own devpts: `tty` names a "
    "/dev/pts entry that exists inside the container",
    ref="runc console socket; docker CLI exec -t",
)
def test_exec_tty_devpts(docker_cli: CLI, running: str, observe: Observations) -> None:
    import re

    result = docker_cli("exec", "-t", running, "sh", "-c", 't=$(tty); echo "$t"; test -e "$t" && echo exists')
    lines = result.stdout.replace("\r", "").splitlines()
    assert observe("exit", result.returncode) == 0, result.stderr
    assert observe("tty_shape", bool(lines) and bool(re.fullmatch(r"/dev/pts/\d+", lines[0]))), lines
    assert observe("exists_inside", lines[1:] == ["exists"]), lines


@pytest.mark.scenario(
    "api/exec/create-unknown-user",
    "POST /containers/{id}/exec with a User the container's /etc/passwd (or a group its /etc/group) does not "
    "know MUST fail at create with 400 and moby/sys/user's words, before any exec exists",
    ref="moby daemon/exec.go ContainerExecCreate (getUser before the exec is registered)",
)
def test_exec_create_unknown_user(engine: EngineClient, running: str, observe: Observations) -> None:
    answers = {}
    for user in ("no-such-user", "no-such-user:0", "0:no-such-group", "nobody", "0:0"):
        resp = engine.post(f"{V}/containers/{running}/exec", json={"Cmd": ["id"], "User": user})
        answers[user] = [
            resp.status_code,
            resp.json().get("message") if resp.status_code != 201 else "created",
        ]
    observe("answers", answers)
    assert answers["no-such-user"] == [
        400,
        "unable to find user no-such-user: no matching entries in passwd file",
    ]
    assert answers["0:no-such-group"] == [
        400,
        "unable to find group no-such-group: no matching entries in group file",
    ]
    assert answers["nobody"] == answers["0:0"] == [201, "created"]


@pytest.mark.scenario(
    "api/containers/group-add-names",
    "HostConfig.GroupAdd names MUST be looked up in the container's /etc/group (numbers are taken as they "
    "are): the process and its execs get those gids, and an unknown name fails the start with dockerd's "
    "500 naming it, as an unknown Config.User does",
    ref="moby daemon/oci_linux.go getUser; moby/sys/user GetAdditionalGroupsPath",
)
def test_group_add_names(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    cid = create_container(
        engine, containers, test_image, ["sleep", "60"], HostConfig={"GroupAdd": ["nogroup", "777"]}
    )
    started = engine.post(f"{V}/containers/{cid}/start")
    eid = engine.post(f"{V}/containers/{cid}/exec", json={"Cmd": ["id", "-G"], "AttachStdout": True}).json()[
        "Id"
    ]
    out = engine.post(f"{V}/exec/{eid}/start", json={"Detach": False, "Tty": True}).content.decode().split()
    bad = create_container(engine, containers, test_image, ["true"], HostConfig={"GroupAdd": ["nosuchgroup"]})
    refused = engine.post(f"{V}/containers/{bad}/start")
    observe("started", started.status_code)
    observe("exec_groups", out)
    observe("unknown_name", [refused.status_code, "unable to find group nosuchgroup" in refused.text])
    assert started.status_code == 204 and out == ["0", "777", "65534"]
    expect_error(refused, 500, "unable to find group nosuchgroup: no matching entries in group file")
    nobody = create_container(engine, containers, test_image, ["true"], User="nosuchuser")
    expect_error(
        engine.post(f"{V}/containers/{nobody}/start"),
        500,
        "unable to find user nosuchuser: no matching entries in passwd file",
    )
    state = engine.get(f"{V}/containers/{nobody}/json").json()["State"]
    assert (state["ExitCode"], state["Error"]) == (
        128,
        "unable to find user nosuchuser: no matching entries in passwd file",
    )


def _exec_bytes(engine: EngineClient, cid: str, create: dict[str, Any], start: dict[str, Any]) -> bytes:
    """What an attached exec start sends (the daemon closes the stream when the process ends)."""
    body = {"Cmd": ["echo", "hello out"], "AttachStdout": True, "AttachStderr": True, **create}
    eid = engine.post(f"{V}/containers/{cid}/exec", json=body).json()["Id"]
    return bytes(engine.post(f"{V}/exec/{eid}/start", json=start, timeout=30).content)


@pytest.mark.scenario(
    "api/exec/tty-crlf",
    "An exec created with Tty MUST run on a terminal (its ONLCR turns '\\n' into '\\r\\n', as a terminal "
    "does), whatever the start's Tty; the start's Tty MUST only choose a raw stream over multiplexed frames",
    ref="operations ContainerExec Tty, ExecStart Tty; moby api/server/router/container/exec.go",
)
def test_exec_tty_crlf(engine: EngineClient, running: str, observe: Observations) -> None:
    cases = {
        "create-tty-start-tty": ({"Tty": True}, {"Tty": True}),
        "create-tty-start-plain": ({"Tty": True}, {"Tty": False}),
        "create-plain-start-tty": ({"Tty": False}, {"Tty": True}),
        "create-plain-start-plain": ({"Tty": False}, {"Tty": False}),
        "create-tty-start-empty": ({"Tty": True}, {}),
    }
    seen = {name: _exec_bytes(engine, running, *bodies) for name, bodies in cases.items()}
    observe("streams", {name: data.decode(errors="replace") for name, data in seen.items()})
    frame = b"\x01\x00\x00\x00\x00\x00\x00"
    assert seen["create-tty-start-tty"] == b"hello out\r\n"
    assert seen["create-tty-start-plain"] == frame + b"\x0bhello out\r\n"
    assert seen["create-plain-start-tty"] == b"hello out\n"
    assert seen["create-plain-start-plain"] == frame + b"\x0ahello out\n"
    assert seen["create-tty-start-empty"] == seen["create-tty-start-plain"]
