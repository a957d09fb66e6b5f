"""Container operations the CLI and the SDK call with edge inputs: rename refusals and its event, list limits,
the container counts of /info, and /events filtered by container, event and label."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from harness.client import EngineClient
from harness.fixtures import Observations
from suites._daemon import create_container, events_since

V = "/v1.41"  # a version both dockerd 20.10 and newer daemons serve


@pytest.mark.scenario(
    "api/containers/rename-refusals",
    "Rename MUST refuse the current name and an invalid name with 400, a missing container with 404, and "
    "a done rename MUST emit a 'rename' event carrying oldName",
    ref="operation ContainerRename; moby daemon/rename.go",
)
def test_rename_refusals(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    tag = uuid.uuid4().hex[:8]
    since = time.time() - 1
    cid = create_container(engine, containers, test_image, ["sleep", "60"], f"ren-{tag}")

    def answer(target: str, name: str) -> dict[str, Any]:
        resp = engine.post(f"{V}/containers/{target}/rename", params={"name": name})
        text = resp.json()["message"] if resp.content else ""
        return {"status": resp.status_code, "message": text.replace(tag, "<tag>")}

    seen = {
        "same": answer(cid, f"ren-{tag}"),
        "invalid": answer(cid, "-bad name"),
        "missing": answer(f"nosuch-{tag}", f"ren2-{tag}"),
        "done": answer(cid, f"ren2-{tag}"),
    }
    renamed = [e for e in events_since(engine, since, {"container": [cid], "event": ["rename"]})]
    attrs = renamed[0]["Actor"]["Attributes"] if renamed else {}
    observe("answers", seen)
    observe("rename_events", len(renamed))
    observe("event_names", {k: attrs.get(k, "").replace(tag, "<tag>") for k in ("name", "oldName")})
    assert seen["same"] == {
        "status": 400,
        "message": "Renaming a container with the same name as its current name",
    }
    assert seen["invalid"] == {
        "status": 400,
        "message": "Error when allocating new name: Invalid container name (/-bad name), only "
        "[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
    }
    assert seen["missing"] == {"status": 404, "message": "No such container: nosuch-<tag>"}
    assert seen["done"] == {"status": 204, "message": ""}
    assert len(renamed) == 1 and attrs["oldName"] == f"/ren-{tag}" and attrs["name"] == f"ren2-{tag}"


@pytest.mark.scenario(
    "api/containers/list-limit",
    "GET /containers/json?limit=N MUST return the N most recently created containers, stopped ones "
    "included, newest first",
    ref="operation ContainerList; docker-py containers.list(limit=)",
)
def test_list_limit(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    first = create_container(engine, containers, test_image, ["sleep", "60"])
    second = create_container(engine, containers, test_image, ["sleep", "60"])
    listed = engine.get(f"{V}/containers/json", params={"limit": 2}).json()
    one = engine.get(f"{V}/containers/json", params={"limit": 1}).json()
    names = {first: "<first>", second: "<second>"}
    observe("limit_2", [names.get(c["Id"], "<other>") for c in listed])
    observe("limit_1", [names.get(c["Id"], "<other>") for c in one])
    assert [c["Id"] for c in listed] == [second, first]
    assert [c["Id"] for c in one] == [second]


@pytest.mark.scenario(
    "api/system/info-container-counts",
    "GET /info MUST count a created container as stopped, a started one as running and a paused one as "
    "paused (Containers, ContainersRunning, ContainersPaused, ContainersStopped)",
    ref="operation SystemInfo; moby daemon/info.go",
)
def test_info_container_counts(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    keys = ("Containers", "ContainersRunning", "ContainersPaused", "ContainersStopped")

    def counts() -> dict[str, int]:
        info = engine.get("/info").json()
        return {k: int(info[k]) for k in keys}

    def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
        return {k: after[k] - before[k] for k in keys}

    base = counts()
    cid = create_container(engine, containers, test_image, ["sleep", "60"])
    created = counts()
    assert engine.post(f"{V}/containers/{cid}/start").status_code == 204
    running = counts()
    assert engine.post(f"{V}/containers/{cid}/pause").status_code == 204
    paused = counts()
    engine.post(f"{V}/containers/{cid}/unpause")
    steps = {
        "created": delta(created, base),
        "started": delta(running, base),
        "paused": delta(paused, base),
    }
    observe("deltas", steps)
    assert steps == {
        "created": {"Containers": 1, "ContainersRunning": 0, "ContainersPaused": 0, "ContainersStopped": 1},
        "started": {"Containers": 1, "ContainersRunning": 1, "ContainersPaused": 0, "ContainersStopped": 0},
        "paused": {"Containers": 1, "ContainersRunning": 0, "ContainersPaused": 1, "ContainersStopped": 0},
    }


@pytest.mark.scenario(
    "api/events/filter-container-and-event",
    "/events filtered by container name and event MUST return only that container's events of that kind",
    ref="operation SystemEvents; moby daemon/events/filter.go",
)
def test_events_filter_container_and_event(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    tag = uuid.uuid4().hex[:8]
    since = time.time() - 1
    mine = create_container(engine, containers, test_image, ["true"], f"evf-{tag}")
    other = create_container(engine, containers, test_image, ["true"], f"evg-{tag}")
    for cid in (mine, other):
        engine.post(f"{V}/containers/{cid}/start")
        engine.post(f"{V}/containers/{cid}/wait", timeout=30)
    by_name = events_since(engine, since, {"container": [f"evf-{tag}"], "event": ["start", "die"]})
    seen = [(e["Type"], e["Action"], e["Actor"]["ID"] == mine) for e in by_name]
    observe("events", seen)
    assert seen == [("container", "start", True), ("container", "die", True)]


@pytest.mark.scenario(
    "api/events/filter-label",
    "/events filtered by label=k=v MUST return the events of the containers carrying that label only",
    ref="operation SystemEvents; moby daemon/events/filter.go",
)
def test_events_filter_label(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    tag = uuid.uuid4().hex[:8]
    since = time.time() - 1
    labelled = create_container(engine, containers, test_image, ["true"], Labels={"conf.events": tag})
    create_container(engine, containers, test_image, ["true"], Labels={"conf.events": "other"})
    events = events_since(engine, since, {"label": [f"conf.events={tag}"], "type": ["container"]})
    seen = [
        (e["Action"], e["Actor"]["ID"] == labelled, e["Actor"]["Attributes"].get("conf.events"))
        for e in events
    ]
    observe("events", [(a, mine, v == tag) for a, mine, v in seen])
    assert seen == [("create", True, tag)]
