"""Prune filters (containers, volumes), resize of a container or exec that is not running, export errors,
and the lowest API version a daemon serves: operations the CLI and the SDK call with these edge inputs."""

from __future__ import annotations

import io
import json
import tarfile
import time
import uuid
from typing import Any

import pytest

from harness.checks import expect_error
from harness.client import EngineClient
from harness.fixtures import Observations
from harness.wait import wait_until
from suites._daemon import create_container, events_since

V = "/v1.41"  # a version both dockerd 20.10 and newer daemons serve (1.41 prunes named volumes too)


def _filters(values: dict[str, list[str]]) -> dict[str, str]:
    return {"filters": json.dumps({k: {v: True for v in vs} for k, vs in values.items()})}


@pytest.mark.scenario(
    "api/containers/prune-label-filter",
    "POST /containers/prune with label filters MUST remove only the stopped containers matching them "
    "(label=k=v, label!=k) and list them in ContainersDeleted",
    ref="operation ContainerPrune; moby daemon/prune.go",
)
def test_container_prune_label(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    tag = uuid.uuid4().hex[:8]
    keep = create_container(
        engine, containers, test_image, ["true"], Labels={"conf.run": tag, "conf.keep": "yes"}
    )
    drop = create_container(engine, containers, test_image, ["true"], Labels={"conf.run": tag})
    other = create_container(engine, containers, test_image, ["true"])
    filters = {"label": [f"conf.run={tag}"], "label!": ["conf.keep"]}
    resp = engine.post(f"{V}/containers/prune", params=_filters(filters))
    body = resp.json()
    left = {c: engine.get(f"{V}/containers/{c}/json").status_code for c in (keep, drop, other)}
    observe("status", resp.status_code)
    observe("deleted", ["<drop>" if c == drop else c for c in body.get("ContainersDeleted") or []])
    observe("reclaimed_type", type(body.get("SpaceReclaimed")).__name__)
    observe("inspect_after", {"keep": left[keep], "drop": left[drop], "unlabelled": left[other]})
    assert resp.status_code == 200
    assert body["ContainersDeleted"] == [drop]
    assert left == {keep: 200, drop: 404, other: 200}


@pytest.mark.scenario(
    "api/containers/prune-space-reclaimed",
    "POST /containers/prune MUST report as SpaceReclaimed the sizes of the pruned containers' read-write "
    "layers (each one's SizeRw: a file written, 100000 bytes written, nothing written), and its 'prune' "
    "event MUST carry the same number as 'reclaimed'",
    ref="operation ContainerPrune; moby daemon/prune.go ContainersPrune (GetContainerLayerSize)",
)
def test_container_prune_space_reclaimed(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    tag = uuid.uuid4().hex[:8]
    commands = {
        "hello": ["sh", "-c", "echo hello > /data.txt"],
        "100000": ["sh", "-c", "head -c 100000 /dev/zero > /big"],
        "nothing": ["true"],
    }
    sizes = {}
    for name, cmd in commands.items():
        cid = create_container(engine, containers, test_image, cmd, Labels={"conf.reclaim": tag})
        assert engine.post(f"{V}/containers/{cid}/start").status_code == 204
        assert engine.post(f"{V}/containers/{cid}/wait", timeout=60).json()["StatusCode"] == 0
        sizes[name] = engine.get(f"{V}/containers/{cid}/json", params={"size": "1"}).json()["SizeRw"]
    observe("size_rw", sizes)
    assert sizes == {"hello": 6, "100000": 100000, "nothing": 0}
    since = time.time() - 1
    resp = engine.post(f"{V}/containers/prune", params=_filters({"label": [f"conf.reclaim={tag}"]}))
    body = resp.json()
    observe("pruned", len(body.get("ContainersDeleted") or []))
    assert resp.status_code == 200 and len(body["ContainersDeleted"]) == 3
    assert observe("space_reclaimed", body["SpaceReclaimed"]) == sum(sizes.values())
    events = events_since(engine, since, {"type": ["container"], "event": ["prune"]})
    reclaimed = [e["Actor"]["Attributes"].get("reclaimed") for e in events]
    assert observe("event_reclaimed", reclaimed[-1:]) == [str(sum(sizes.values()))]


@pytest.mark.scenario(
    "api/containers/prune-invalid-filter",
    "POST /containers/prune with a filter other than until and label MUST answer 400 naming it",
    ref="operation ContainerPrune; moby daemon/prune.go containersAcceptedFilters",
)
def test_container_prune_invalid_filter(engine: EngineClient, observe: Observations) -> None:
    resp = engine.post(f"{V}/containers/prune", params={"filters": '{"status":{"exited":true}}'})
    observe("status", resp.status_code)
    observe("message", resp.json().get("message"))
    expect_error(resp, 400, "invalid filter 'status'")
    assert resp.json()["message"].lower() == "invalid filter 'status'"


@pytest.mark.scenario(
    "api/volumes/prune-label-filter",
    "POST /volumes/prune with a label filter MUST remove only the unused volumes carrying the label and "
    "list them in VolumesDeleted (API 1.41: named volumes too)",
    ref="operation VolumePrune; moby volume/service/service.go Prune",
)
def test_volume_prune_label(engine: EngineClient, observe: Observations) -> None:
    tag = uuid.uuid4().hex[:8]
    names = {"drop": f"prune-drop-{tag}", "keep": f"prune-keep-{tag}"}
    engine.post(f"{V}/volumes/create", json={"Name": names["drop"], "Labels": {"conf.prune": tag}})
    engine.post(f"{V}/volumes/create", json={"Name": names["keep"], "Labels": {"conf.prune": "other"}})
    try:
        resp = engine.post(f"{V}/volumes/prune", params=_filters({"label": [f"conf.prune={tag}"]}))
        body = resp.json()
        after = {k: engine.get(f"{V}/volumes/{n}").status_code for k, n in names.items()}
    finally:
        for name in names.values():
            engine.delete(f"{V}/volumes/{name}")
    observe("status", resp.status_code)
    observe("deleted", [n.replace(tag, "<tag>") for n in body.get("VolumesDeleted") or []])
    observe("reclaimed_type", type(body.get("SpaceReclaimed")).__name__)
    observe("inspect_after", after)
    assert resp.status_code == 200
    assert body["VolumesDeleted"] == [names["drop"]]
    assert after == {"drop": 404, "keep": 200}


@pytest.mark.scenario(
    "api/containers/resize-not-running",
    "POST /containers/{id}/resize MUST answer 409 'container <id> is not running' for a created container "
    "and 404 for a missing one",
    ref="operation ContainerResize; moby daemon/resize.go",
)
def test_resize_not_running(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    cid = create_container(engine, containers, test_image, ["true"], Tty=True)
    created = engine.post(f"{V}/containers/{cid}/resize", params={"h": 20, "w": 80})
    missing = engine.post(f"{V}/containers/nosuchcontainer-{cid[:6]}/resize", params={"h": 20, "w": 80})
    observe(
        "created", {"status": created.status_code, "message": created.json()["message"].replace(cid, "<id>")}
    )
    observe(
        "missing",
        {"status": missing.status_code, "message": missing.json()["message"].replace(cid[:6], "<x>")},
    )
    assert created.status_code == 409
    assert created.json()["message"].lower() == f"container {cid} is not running"
    expect_error(missing, 404, f"No such container: nosuchcontainer-{cid[:6]}")


@pytest.mark.scenario(
    "api/exec/resize-missing",
    "POST /exec/{id}/resize for an exec that does not exist MUST answer 404 'No such exec instance: <id>'",
    ref="operation ExecResize; moby daemon/resize.go ContainerExecResize",
)
def test_exec_resize_missing(engine: EngineClient, observe: Observations) -> None:
    resp = engine.post(f"{V}/exec/nosuchexec/resize", params={"h": 20, "w": 80})
    observe("status", resp.status_code)
    observe("message", resp.json().get("message"))
    expect_error(resp, 404, "No such exec instance: nosuchexec")
    assert resp.json()["message"] == "No such exec instance: nosuchexec"


@pytest.mark.scenario(
    "api/containers/export-missing",
    "GET /containers/{id}/export for a missing container MUST answer 404 'No such container: <id>' as JSON",
    ref="operation ContainerExport",
)
def test_export_missing(engine: EngineClient, observe: Observations) -> None:
    resp = engine.get(f"{V}/containers/nosuchcontainer/export")
    observe("status", resp.status_code)
    observe("content_type", resp.headers.get("Content-Type"))
    observe("message", resp.json().get("message"))
    expect_error(resp, 404, "No such container: nosuchcontainer")
    assert resp.json()["message"] == "No such container: nosuchcontainer"


@pytest.mark.scenario(
    "api/system/version-at-minimum",
    "A request at the daemon's MinAPIVersion MUST be served, answering the daemon's own (maximum) "
    "ApiVersion in the body and the Api-Version header",
    ref="operation SystemVersion; moby api/server/middleware/version.go",
)
def test_version_at_minimum(engine: EngineClient, observe: Observations) -> None:
    current = engine.get("/version").json()
    lowest = engine.get(f"/v{current['MinAPIVersion']}/version")
    body = lowest.json()
    observe("status", lowest.status_code)
    observe("body_is_max", body.get("ApiVersion") == current["ApiVersion"])
    observe("header_is_max", lowest.headers.get("Api-Version") == current["ApiVersion"])
    assert lowest.status_code == 200
    assert body["ApiVersion"] == current["ApiVersion"] == lowest.headers.get("Api-Version")


@pytest.mark.scenario(
    "api/containers/restart",
    "POST /containers/{id}/restart MUST stop and start a running container again (204, a new StartedAt, "
    "RestartCount unchanged) and answer 404 for a missing one",
    ref="operation ContainerRestart; moby daemon/restart.go",
)
def test_restart(engine: EngineClient, test_image: str, containers: list[str], observe: Observations) -> None:
    cid = create_container(engine, containers, test_image, ["sleep", "60"])
    assert engine.post(f"{V}/containers/{cid}/start").status_code == 204
    before = engine.get(f"{V}/containers/{cid}/json").json()
    resp = engine.post(f"{V}/containers/{cid}/restart", params={"t": 0}, timeout=60)
    after = engine.get(f"{V}/containers/{cid}/json").json()
    missing = engine.post(f"{V}/containers/nosuchcontainer/restart")
    observe("status", resp.status_code)
    observe("running_after", after["State"]["Running"])
    observe("started_again", after["State"]["StartedAt"] != before["State"]["StartedAt"])
    observe("restart_count", after["RestartCount"])
    observe("missing", {"status": missing.status_code, "message": missing.json().get("message")})
    assert resp.status_code == 204 and after["State"]["Running"] is True
    assert after["State"]["StartedAt"] != before["State"]["StartedAt"] and after["RestartCount"] == 0
    expect_error(missing, 404, "No such container: nosuchcontainer")


@pytest.mark.scenario(
    "api/build/prune-query",
    "POST /build/prune MUST answer CachesDeleted and SpaceReclaimed, and refuse an unknown filter and a "
    "size that is not an integer with 400",
    ref="operation BuildPrune; moby api/server/router/build/build_routes.go postPrune",
)
def test_build_prune_query(engine: EngineClient, observe: Observations) -> None:
    plain = engine.post(f"{V}/build/prune")
    bad_filter = engine.post(f"{V}/build/prune", params=_filters({"color": ["red"]}))
    bad_size = engine.post(f"{V}/build/prune", params={"keep-storage": "lots"})
    body = plain.json()
    observe(
        "plain",
        {
            "status": plain.status_code,
            "keys": sorted(body),
            "reclaimed": type(body["SpaceReclaimed"]).__name__,
        },
    )
    observe("bad_filter", {"status": bad_filter.status_code, "message": bad_filter.json().get("message")})
    observe("bad_size", {"status": bad_size.status_code, "message": bad_size.json().get("message")})
    assert plain.status_code == 200 and sorted(body) == ["CachesDeleted", "SpaceReclaimed"]
    assert bad_filter.status_code == 400
    assert bad_filter.json()["message"].lower() == "failed to prune build cache: invalid filter 'color'"
    assert bad_size.status_code == 400
    atoi = 'strconv.Atoi: parsing "lots": invalid syntax'
    assert bad_size.json()["message"] == f"keep-storage is in bytes and expects an integer, got lots: {atoi}"


_BAD_SIZES = {
    "h-absent": "w=100",
    "w-empty": "h=100&w=",
    "h-word": "h=abc&w=100",
    "h-plus": "h=%2B1&w=100",
    "w-negative": "h=100&w=-1",
    "h-past-uint32": "h=4294967296&w=100",
}


@pytest.mark.scenario(
    "api/containers/resize-invalid-size",
    "POST /containers/{id}/resize MUST read h and w as uint32 before it looks the container up: 400 "
    "'invalid resize height \"<h>\": invalid syntax' for an absent, empty, signed or non-numeric value, "
    "'... value out of range' for a negative one or one past 4294967295",
    ref="moby api/server/router/container/container_routes.go postContainersResize; httputils.Uint32Value",
)
def test_resize_invalid_size(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    cid = create_container(engine, containers, test_image, ["true"], Tty=True)
    got = {}
    for case, query in _BAD_SIZES.items():
        resp = engine.post(f"{V}/containers/{cid}/resize?{query}")
        got[case] = [resp.status_code, _message(resp)]
    missing = engine.post(f"{V}/containers/nosuchcontainer-{cid[:6]}/resize?h=x&w=1")
    got["missing-container"] = [missing.status_code, _message(missing).replace(cid[:6], "<x>")]
    observe("answers", got)
    assert got["h-absent"] == [400, 'invalid resize height "": invalid syntax']
    assert got["w-negative"] == [400, 'invalid resize width "-1": value out of range']
    assert got["h-past-uint32"] == [400, 'invalid resize height "4294967296": value out of range']
    assert got["missing-container"] == [400, 'invalid resize height "x": invalid syntax']


def _message(resp: Any) -> str:
    """The error message of a JSON error body, else the body's text (a daemon that answered otherwise)."""
    try:
        return str(resp.json().get("message"))
    except ValueError:
        return str(resp.text)


@pytest.mark.scenario(
    "api/exec/resize-detached-tty",
    "An exec created with Tty MUST get a terminal when started detached with the Go client's body "
    "{Detach: true, Tty: false} (the start's Tty only frames an attached stream): POST /exec/{id}/resize "
    "answers 200 and the process sees the new size; bad sizes answer 400 as for containers",
    ref="moby api/server/router/container/exec.go postContainerExecStart; daemon/resize.go",
)
def test_exec_resize_detached_tty(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    cid = create_container(engine, containers, test_image, ["sleep", "120"])
    assert engine.post(f"{V}/containers/{cid}/start").status_code == 204
    script = "while [ ! -e /tmp/go ]; do usleep 10000; done; stty size > /tmp/size"
    eid = engine.post(f"{V}/containers/{cid}/exec", json={"Tty": True, "Cmd": ["sh", "-c", script]}).json()[
        "Id"
    ]
    started = engine.post(f"{V}/exec/{eid}/start", json={"Detach": True, "Tty": False})
    resized = engine.post(f"{V}/exec/{eid}/resize?h=33&w=77")
    bad = engine.post(f"{V}/exec/{eid}/resize?h=33&w=-7")

    def run(cmd: list[str]) -> None:
        other = engine.post(f"{V}/containers/{cid}/exec", json={"Cmd": cmd}).json()["Id"]
        engine.post(f"{V}/exec/{other}/start", json={"Detach": True})

    run(["touch", "/tmp/go"])
    size = {"text": ""}

    def written() -> bool:
        archive = engine.get(f"{V}/containers/{cid}/archive", params={"path": "/tmp/size"})
        if archive.status_code != 200:
            return False
        with tarfile.open(fileobj=io.BytesIO(archive.content)) as tar:
            member = tar.extractfile("size")
            size["text"] = member.read().decode().strip() if member else ""
        return bool(size["text"])

    wait_until(written, 20)
    observe("start", started.status_code)
    observe("resize", resized.status_code)
    observe("bad", [bad.status_code, _message(bad)])
    observe("stty_size", size["text"])
    assert (started.status_code, resized.status_code) == (200, 200), resized.text
    assert size["text"] == "33 77"
    assert [bad.status_code, _message(bad)] == [400, 'invalid resize width "-7": value out of range']
