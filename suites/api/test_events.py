"""GET /events: streaming, since/until replay and filters (operation SystemEvents)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from harness.checks import eventually, expect_error
from harness.client import EngineClient
from harness.fixtures import Observations
from suites._daemon import events_since

V = "/v1.41"


@pytest.mark.scenario(
    "api/events/container-lifecycle",
    "A create/start/die/destroy cycle MUST appear on /events with Type, Action, Actor.ID and the "
    "legacy status/id/from fields",
    ref="operation SystemEvents",
)
def test_container_lifecycle_events(engine: EngineClient, test_image: str, observe: Observations) -> None:
    since = time.time() - 1
    cid = engine.post(
        f"{V}/containers/create?name=ev-cycle", json={"Image": test_image, "Cmd": ["true"]}
    ).json()["Id"]
    engine.post(f"{V}/containers/{cid}/start")
    engine.post(f"{V}/containers/{cid}/wait", timeout=30)
    engine.delete(f"{V}/containers/{cid}")
    events = [e for e in events_since(engine, since, {"container": [cid]})]
    actions = [e["Action"] for e in events]
    observe("actions", actions)
    first = events[0] if events else {}
    observe("first_keys", sorted(first))
    observe("attributes", {k: v for k, v in first.get("Actor", {}).get("Attributes", {}).items()})
    observe(
        "legacy_fields",
        {"status": first.get("status"), "id_matches": first.get("id") == cid, "from": first.get("from")},
    )
    assert actions == ["create", "start", "die", "destroy"]


@pytest.mark.scenario(
    "api/events/filter-type",
    'filters={"type":["daemon"]} MUST exclude container events',
    ref="operation SystemEvents",
)
def test_filter_type(engine: EngineClient, test_image: str, observe: Observations) -> None:
    since = time.time() - 1
    cid = engine.post(f"{V}/containers/create", json={"Image": test_image, "Cmd": ["true"]}).json()["Id"]
    engine.delete(f"{V}/containers/{cid}")
    events = events_since(engine, since, {"type": ["daemon"]})
    observe("container_events", [e for e in events if e.get("Type") == "container"])
    assert not [e for e in events if e.get("Type") == "container"]


@pytest.mark.scenario(
    "api/events/unknown-filter-accepted",
    "An unknown event filter key MUST be accepted (events filters are not validated)",
    ref="moby api/server/router/system/system_routes.go getEvents",
)
def test_unknown_filter(engine: EngineClient, observe: Observations) -> None:
    resp = engine.get(
        f"{V}/events", params={"since": "0", "until": "1", "filters": json.dumps({"bogus": ["x"]})}
    )
    observe("status", resp.status_code)
    assert resp.status_code == 200


@pytest.mark.scenario(
    "api/events/since-after-until",
    "since later than until MUST get 400 naming both values",
    ref="moby getEvents",
)
def test_since_after_until(engine: EngineClient, observe: Observations) -> None:
    resp = engine.get(f"{V}/events", params={"since": "200", "until": "100"})
    observe("status", resp.status_code)
    observe("message", resp.json().get("message"))
    expect_error(resp, 400, "`since` time (200) cannot be after `until` time (100)")


@pytest.mark.scenario(
    "api/events/malformed-filters",
    "filters that are not JSON MUST get 400",
    ref="moby api/types/filters FromJSON",
)
def test_malformed_filters(engine: EngineClient, observe: Observations) -> None:
    resp = engine.get(f"{V}/events", params={"since": "0", "until": "1", "filters": "{nope"})
    observe("status", resp.status_code)
    observe("message", resp.json().get("message"))
    expect_error(resp, 400, "invalid filter")


@pytest.mark.scenario(
    "api/events/until-past",
    "until in the past with since=0 MUST return the replay and close the stream",
    ref="operation SystemEvents",
)
def test_until_past(engine: EngineClient, observe: Observations) -> None:
    start = time.monotonic()
    resp = engine.get(f"{V}/events", params={"since": "0", "until": "1"}, timeout=10)
    observe("status", resp.status_code)
    observe("closed_quickly", time.monotonic() - start < 5)
    observe("content_type", resp.headers.get("Content-Type"))
    assert resp.status_code == 200


@pytest.mark.scenario(
    "api/events/until-future-live",
    "since=now and until a few seconds ahead MUST stream the live events of that window (a container "
    "created meanwhile) and then close the stream by itself",
    ref="operation SystemEvents; moby daemon/events.go",
)
def test_until_future_live(engine: EngineClient, test_image: str, observe: Observations) -> None:
    import threading

    now = int(time.time())
    params = {"since": str(now), "until": str(now + 4), "filters": json.dumps({"type": ["container"]})}
    box: dict[str, Any] = {}
    streaming = threading.Event()

    def listen() -> None:
        started = time.monotonic()
        resp = engine.get(f"{V}/events", params=params, timeout=30, stream=True)
        streaming.set()  # the daemon sent the stream's headers: it is listening
        box.update(status=resp.status_code, text=resp.text, took=time.monotonic() - started)

    listener = threading.Thread(target=listen)
    listener.start()
    eventually(streaming.is_set, "the events stream's response headers", timeout=10)

    created = engine.post(
        f"{V}/containers/create?name=events-window", json={"Image": test_image, "Cmd": ["true"]}
    )
    engine.delete(f"{V}/containers/events-window")
    listener.join(timeout=40)
    events = [json.loads(line) for line in box.get("text", "").splitlines() if line.strip()]
    observe("create_status", created.status_code)
    observe("status", box.get("status"))
    observe(
        "actions",
        [
            e.get("Action")
            for e in events
            if e.get("Actor", {}).get("Attributes", {}).get("name") == "events-window"
        ],
    )
    observe("closed_by_itself", not listener.is_alive() and box.get("took", 99) < 20)
    assert not listener.is_alive()
