"""refd's answers for swarm mode, managed plugins, /session and the build/volume/container prune queries:
dockerd 28's statuses and texts for a node in no swarm with no plugin installed (suites/api/test_swarm.py,
test_plugins.py and test_prune_resize.py check them against real dockerd)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from harness.daemon.api import build, plugins, session, swarm
from harness.daemon.errors import ApiError
from harness.daemon.httpd import Request, Response
from harness.daemon.server import Router


def _router() -> Router:
    router = Router(cast(Any, None))
    for module in (swarm, plugins, session):
        module.register(router)
    router.add("POST", "/build/prune", build.prune)
    return router


def _answer(method: str, path: str, headers: dict[str, str] | None = None, api: str = "1.51") -> Any:
    """Route ``method path?query`` and run its handler: the JSON list it returns or the ApiError it raises."""
    router = _router()
    bare, _, query = path.partition("?")
    found = router._find(method, bare)
    assert found is not None, f"refd has no route for {method} {bare}"
    route, match = found
    params: dict[str, list[str]] = {}
    for pair in filter(None, query.split("&")):
        key, _, value = pair.partition("=")
        params.setdefault(key, []).append(value)
    req = Request(method, path, "HTTP/1.1", headers or {}, cast(Any, None), cast(Any, None))
    req.path, req.query, req.match, req.api_version = bare, params, match, api
    events = type("E", (), {"publish": lambda self, e: None})()
    # a data-root with no BuildKit cache in it: /build/prune has nothing to remove
    daemon = cast(Any, type("D", (), {"events": events, "config": {"data-root": "/nonexistent/refd-test"}})())

    async def call() -> Response:
        return await route.handler(req, daemon)

    try:
        resp = asyncio.run(call())
    except ApiError as exc:
        return exc.status, exc.message
    return resp.status, resp.body.decode().strip()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/swarm"),
        ("POST", "/swarm/update"),
        ("GET", "/nodes/x"),
        ("POST", "/services/create"),
        ("DELETE", "/services/web"),
        ("GET", "/tasks"),
        ("POST", "/secrets/s1/update"),
        ("GET", "/configs/c1"),
        ("GET", "/services/x/logs?stdout=1"),
    ],
)
def test_manager_routes_answer_not_a_manager(method: str, path: str) -> None:
    assert _answer(method, path) == (503, swarm.NOT_MANAGER)


def test_leave_logs_and_volume_update_have_their_own_texts() -> None:
    assert _answer("POST", "/swarm/leave") == (503, "This node is not part of a swarm")
    assert _answer("GET", "/tasks/x/logs") == (500, "Bad parameters: you must choose at least one stream")
    assert _answer("PUT", "/volumes/v") == (
        503,
        "volume update only valid for cluster volumes, but swarm is unavailable",
    )


def _post_json(path: str, body: bytes) -> Any:
    """Route ``POST path`` with a JSON body and run its handler: (status, message)."""
    found = _router()._find("POST", path)
    assert found is not None, f"refd has no route for POST {path}"
    route, match = found

    async def call() -> Response:
        reader = asyncio.StreamReader()
        reader.feed_data(body)
        reader.feed_eof()
        headers = {"content-type": "application/json", "content-length": str(len(body))}
        req = Request("POST", path, "HTTP/1.1", headers, reader, cast(Any, None), _remaining=len(body))
        req.path, req.match, req.api_version = path, match, "1.51"
        return await route.handler(req, cast(Any, None))

    try:
        resp = asyncio.run(call())
    except ApiError as exc:
        return exc.status, exc.message
    return resp.status, resp.body.decode().strip()


@pytest.mark.parametrize(
    ("path", "body", "answer"),
    [
        ("/swarm/init", b"{}", (400, 'invalid ListenAddr "": invalid empty address')),
        (
            "/swarm/init",
            b'{"ListenAddr": "0.0.0.0:2377", "Spec": {"Name": "x"}}',
            (400, 'swarm spec must be named "default"'),
        ),
        ("/swarm/init", b'{"ListenAddr": "0.0.0.0:2377"}', (503, swarm.NO_SWARM_MODE.format("init"))),
        (
            "/swarm/join",
            b'{"ListenAddr": "0.0.0.0:2377"}',
            (400, "at least 1 RemoteAddr is required to join"),
        ),
        (
            "/swarm/join",
            b'{"ListenAddr": "0.0.0.0:2377", "RemoteAddrs": ["10.0.0.1:2377"], "JoinToken": "t"}',
            (503, swarm.NO_SWARM_MODE.format("join")),
        ),
    ],
)
def test_swarm_init_and_join_check_the_request_then_refuse(path: str, body: bytes, answer: Any) -> None:
    """dockerd's request checks first (suites/api/test_swarm.py compares them), then refd's own 503 where
    dockerd would make or join a swarm."""
    assert _post_json(path, body) == answer


def test_plugins_list_is_empty_and_filters_are_checked() -> None:
    assert _answer("GET", "/plugins") == (200, "[]")
    assert _answer("GET", '/plugins?filters={"capability":{"volumedriver":true}}') == (200, "[]")
    assert _answer("GET", '/plugins?filters={"label":{"a":true}}') == (400, "invalid filter 'label'")


def test_named_plugins_are_not_found_with_the_name_as_given() -> None:
    assert _answer("GET", "/plugins/example/p:1.0/json") == (404, 'plugin "example/p:1.0" not found')
    assert _answer("DELETE", "/plugins/p") == (404, 'plugin "p" not found')
    assert _answer("POST", "/plugins/p/set") == (404, 'plugin "p" not found')


def test_enable_parses_the_timeout_first() -> None:
    assert _answer("POST", "/plugins/p/enable") == (500, 'strconv.Atoi: parsing "": invalid syntax')
    assert _answer("POST", "/plugins/p/enable?timeout=1.5") == (
        500,
        'strconv.Atoi: parsing "1.5": invalid syntax',
    )
    assert _answer("POST", "/plugins/p/enable?timeout=-3") == (404, 'plugin "p" not found')


def test_remote_plugin_operations_need_a_reference_and_are_not_implemented() -> None:
    assert _answer("GET", "/plugins/privileges") == (500, "invalid reference format")
    assert _answer("POST", "/plugins/create") == (500, "failed to parse reference : invalid reference format")
    status, message = _answer("POST", "/plugins/pull?remote=vieux/sshfs")
    assert status == 501 and "not implemented by refd" in message


def test_session_needs_an_h2c_upgrade() -> None:
    assert _answer("POST", "/session") == (400, "no upgrade proto in request")
    assert _answer("POST", "/session", {"upgrade": "websocket"}) == (400, "protocol websocket not supported")
    status, body = _answer("POST", "/session", {"upgrade": "h2c"})
    assert (status, body) == (200, "")  # a hijack: 101, then the client's HTTP/2 (tests/daemon/buildkit)


def test_build_prune_checks_sizes_then_filters() -> None:
    assert _answer("POST", "/build/prune") == (200, '{"CachesDeleted":null,"SpaceReclaimed":0}')
    assert _answer("POST", '/build/prune?filters={"until":{"24h":true}}')[0] == 200
    assert _answer("POST", '/build/prune?filters={"color":{"red":true}}') == (
        400,
        "failed to prune build cache: invalid filter 'color'",
    )
    atoi = 'strconv.Atoi: parsing "1k": invalid syntax'
    bad = (400, f"max-used-space is in bytes and expects an integer, got 1k: {atoi}")
    assert _answer("POST", "/build/prune?max-used-space=1k") == bad
    # before API 1.48 only keep-storage is read
    assert _answer("POST", "/build/prune?max-used-space=1k", api="1.47")[0] == 200
