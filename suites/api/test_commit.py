"""``docker commit`` (POST /commit) and the history of committed images.

The container writes a file and deletes one, so the committed layer holds an addition and a
whiteout; the new image is run to show both took effect.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import pytest

from harness.checks import eventually, expect_error
from harness.client import EngineClient
from harness.fixtures import Observations

from ._build import Cleanup, V, cleanup, image_summary

__all__ = ["cleanup"]

CLI = Callable[..., Any]
#: /newfile last: once it shows in /changes, the deletion before it has happened too (what _start waits for)
WRITE = "rm /bin/ls; echo data > /newfile; sleep 300"


def _create(engine: EngineClient, cmd: str, **extra: Any) -> str:
    resp = engine.post(f"{V}/containers/create", json={"Image": "busybox", "Cmd": ["sh", "-c", cmd], **extra})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["Id"])


def _start(engine: EngineClient, cid: str) -> None:
    assert engine.post(f"{V}/containers/{cid}/start").status_code == 204
    eventually(
        lambda: "newfile" in engine.get(f"{V}/containers/{cid}/changes").text,
        f"container {cid[:12]} to write /newfile",
        timeout=5,
        interval=0.1,
    )


def _commit(engine: EngineClient, cid: str, body: Any = None, **query: Any) -> tuple[int, Any]:
    params: list[tuple[str, str]] = [("container", cid)]
    for key, value in query.items():
        for item in value if isinstance(value, list) else [value]:
            params.append((key, str(item)))
    resp = engine.post(
        f"{V}/commit?{urllib.parse.urlencode(params)}",
        data=json.dumps(body if body is not None else {}),
        headers={"Content-Type": "application/json"},
    )
    return resp.status_code, resp.json()


def _run(engine: EngineClient, image: str, cmd: list[str]) -> str:
    cid = engine.post(f"{V}/containers/create", json={"Image": image, "Cmd": cmd}).json()["Id"]
    engine.post(f"{V}/containers/{cid}/start")
    engine.post(f"{V}/containers/{cid}/wait")
    logs = engine.get(f"{V}/containers/{cid}/logs?stdout=1&stderr=1").content
    engine.delete(f"{V}/containers/{cid}?force=1")
    out, i = b"", 0
    while i + 8 <= len(logs):
        size = int.from_bytes(logs[i + 4 : i + 8], "big")
        out += logs[i + 8 : i + 8 + size]
        i += 8 + size
    return out.decode()


@pytest.mark.kernel
@pytest.mark.scenario(
    "api/commit/running",
    "POST /commit MUST answer 201 {Id}, pause a running container around it (pause/unpause events around "
    "image create, tag and container commit with comment/imageID/imageRef), apply changes (expanded with "
    "the container's env), keep author and comment, and store the container's changes as one layer",
    ref="moby daemon/commit.go CreateImageFromContainer; daemon/images/image_commit.go",
)
def test_commit_running(engine: EngineClient, cleanup: Cleanup, observe: Observations) -> None:
    cid = _create(engine, WRITE, Labels={"from": "container"}, Env=["BASE=b"])
    _start(engine, cid)
    since = time.time()
    status, body = _commit(
        engine,
        cid,
        repo="committed",
        tag="v1",
        author="Jane <jane@example.com>",
        comment="a message",
        changes=[
            "ENV X=1 Y=$BASE",
            'CMD ["cat", "/newfile"]',
            "LABEL added=$X",
            "EXPOSE 8080",
            "WORKDIR /srv",
        ],
    )
    observe("status", status)
    observe("body-keys", sorted(body))
    observe("image", image_summary(engine, "committed:v1"))
    doc = engine.get(f"{V}/images/committed:v1/json").json()
    observe("container-config", doc.get("ContainerConfig"))
    observe("container-matches", doc.get("Container") == cid)
    observe("parent-is-busybox", doc["Parent"] == engine.get(f"{V}/images/busybox/json").json()["Id"])
    until = time.time() + 1
    events = []
    for line in engine.get(f"{V}/events?since={since:.3f}&until={until:.3f}").text.splitlines():
        event = json.loads(line)
        if event["Type"] in ("container", "image"):
            attrs = event["Actor"]["Attributes"]
            attrs.pop("name", None) if event["Type"] == "container" else None
            events.append((event["Type"], event["Action"], sorted(attrs.items())))
    observe("events", events)
    observe("state-after", engine.get(f"{V}/containers/{cid}/json").json()["State"]["Status"])
    observe("run", _run(engine, "committed:v1", ["sh", "-c", "cat /newfile; ls /bin/ls 2>&1; pwd"]))
    assert status == 201


@pytest.mark.scenario(
    "api/commit/stopped",
    "A stopped container MUST commit without pausing (pause=0 too); a Config body MUST be merged with the "
    "container's (its Cmd kept unless given, Env and Labels added)",
    ref="moby daemon/commit.go merge",
)
def test_commit_stopped(engine: EngineClient, cleanup: Cleanup, observe: Observations) -> None:
    cid = _create(engine, "echo stopped > /stopped", Env=["KEEP=1"])
    engine.post(f"{V}/containers/{cid}/start")
    engine.post(f"{V}/containers/{cid}/wait")
    status, body = _commit(engine, cid, {"Env": ["NEW=2"], "Labels": {"l": "v"}, "User": "nobody"}, pause=0)
    observe("status", status)
    image = body["Id"]
    observe("image", image_summary(engine, image))
    observe("run", _run(engine, image, ["cat", "/stopped"]))
    plain_status, plain = _commit(engine, cid)
    observe("plain", image_summary(engine, plain["Id"]))
    assert status == 201 and plain_status == 201


@pytest.mark.scenario(
    "api/commit/errors",
    "POST /commit MUST refuse changes that are not commit instructions ('X is not a valid change command'), "
    "invalid instructions, an unknown container (404), a bad repository name and a non-JSON body (400)",
    ref="moby builder/dockerfile/builder.go BuildFromConfig; api/server/router/container postCommit",
)
def test_commit_errors(engine: EngineClient, cleanup: Cleanup, observe: Observations) -> None:
    cid = _create(engine, "true")
    for name, change in {
        "run": "RUN echo",
        "unknown": "FOO bar",
        "from": "FROM busybox",
        "env-empty": "ENV",
        "expose": "EXPOSE abc",
        "stopsignal": "STOPSIGNAL NOPE",
        "healthcheck": "HEALTHCHECK --interval=1ns CMD true",
        "lowercase": 'cmd ["x"]',
    }.items():
        status, body = observe(name, _commit(engine, cid, changes=change))
        assert status == (201 if name == "lowercase" else 400), (name, status, body)
        if name in ("run", "unknown", "from"):
            assert body["message"] == f"{change.split()[0]} is not a valid change command"
    assert observe("missing", _commit(engine, "nosuch")) == (404, {"message": "No such container: nosuch"})
    status, body = observe("bad-repo", _commit(engine, cid, repo="Bad"))
    assert (status, body["message"]) == (
        400,
        "invalid reference format: repository name (library/Bad) must be lowercase",
    )
    resp = engine.post(f"{V}/commit?container={cid}", data="x", headers={"Content-Type": "text/plain"})
    observe("content-type", (resp.status_code, resp.json()))
    expect_error(resp, 400, "unsupported Content-Type header (text/plain): must be 'application/json'")
    resp = engine.post(
        f"{V}/commit?container={cid}", data="{bad", headers={"Content-Type": "application/json"}
    )
    observe("bad-json", (resp.status_code, resp.json()))
    expect_error(
        resp, 400, re.compile(r"invalid JSON: invalid character 'b' looking for beginning of object key")
    )


@pytest.mark.scenario(
    "api/commit/cli",
    "docker commit (-a, -m, -c, -p) and docker history MUST work as against dockerd",
    ref="docker/cli cli/command/container/commit.go, image/history.go",
)
def test_commit_cli(docker_cli: CLI, engine: EngineClient, cleanup: Cleanup, observe: Observations) -> None:
    cid = _create(engine, WRITE)
    _start(engine, cid)
    committed = docker_cli(
        "commit", "-a", "cli author", "-m", "cli message", "-c", "ENV CLI=1", cid, "cli-commit:1"
    )
    observe("commit", {"rc": committed.returncode, "stdout": committed.stdout, "stderr": committed.stderr})
    history = docker_cli(
        "history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Size}}|{{.Comment}}", "cli-commit:1"
    )
    observe("history", {"rc": history.returncode, "stdout": history.stdout})
    bad = docker_cli("commit", "-c", "RUN x", cid)
    observe("bad-change", {"rc": bad.returncode, "stderr": bad.stderr})
    assert committed.returncode == 0


@pytest.mark.scenario(
    "api/commit/workdir",
    "Creating a container whose WorkingDir does not exist MUST make it (root, 0755) in the container's "
    "layer: docker diff lists it and a commit keeps it; a WorkingDir that is a file MUST fail the create",
    ref="moby container/container.go SetupWorkingDirectory (daemon/create_unix.go)",
)
def test_commit_workdir(engine: EngineClient, cleanup: Cleanup, observe: Observations) -> None:
    cid = _create(engine, "true", WorkingDir="/made/for/me")
    changes = engine.get(f"{V}/containers/{cid}/changes").json()
    observe("changes", sorted((c["Path"], c["Kind"]) for c in changes or []))
    status, body = _commit(engine, cid)
    observe("layers", len(engine.get(f"{V}/images/{body['Id']}/json").json()["RootFS"]["Layers"]))
    observe("run", _run(engine, body["Id"], ["sh", "-c", "pwd; stat -c '%a %u:%g' /made/for/me"]))
    resp = engine.post(
        f"{V}/containers/create", json={"Image": "busybox", "Cmd": ["true"], "WorkingDir": "/bin/sh"}
    )
    observe("file", (resp.status_code, resp.json()))
    assert status == 201
