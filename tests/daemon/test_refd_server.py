"""The Engine API request helpers in ``server.py`` (spec 6.5)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from harness.daemon.errors import ApiError
from harness.daemon.httpd import Request
from harness.daemon.server import read_json


def _read(body: bytes, content_type: str = "application/json") -> Any:
    async def run() -> Any:
        reader = asyncio.StreamReader()
        reader.feed_data(body)
        reader.feed_eof()
        headers = {"content-type": content_type} if content_type else {}
        req = Request("POST", "/containers/create", "HTTP/1.1", headers, reader, cast(Any, None))
        req._remaining = len(body)
        return await read_json(req)

    return asyncio.run(run())


def _error(body: bytes, content_type: str = "application/json") -> tuple[int, str]:
    with pytest.raises(ApiError) as info:
        _read(body, content_type)
    return info.value.status, info.value.message


def test_valid_and_empty_bodies() -> None:
    assert _read(b'{"Image": "busybox"}') == {"Image": "busybox"}
    assert _read(b"", "") is None


def test_wrong_content_type() -> None:
    assert _error(b"{}", "text/plain") == (
        400,
        "unsupported Content-Type header (text/plain): must be 'application/json'",
    )


def test_trailing_content() -> None:
    assert _error(b"{} x") == (400, "unexpected content after JSON")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{bad", "invalid JSON: invalid character 'b' looking for beginning of object key string"),
        (b'{"Image":"bb",', "invalid JSON: unexpected EOF"),
    ],
)
def test_malformed_json_uses_go_messages(body: bytes, message: str) -> None:
    assert _error(body) == (400, message)


class _Recorder:
    def __init__(self) -> None:
        self.routes: list[tuple[str, str, str]] = []

    def add(self, method: str, pattern: str, handler: Any, fast: Any = None) -> None:
        self.routes.append((method, pattern, getattr(handler, "__name__", "")))


def test_lazy_routes_are_the_modules_own() -> None:
    """Routes declared in LAZY_ROUTES (imported on first use) are exactly those the module registers."""
    import importlib

    from harness.daemon.api import LAZY_ROUTES

    for module, declared in LAZY_ROUTES.items():
        recorder = _Recorder()
        importlib.import_module(f"harness.daemon.api.{module}").register(recorder)
        assert sorted(recorder.routes) == sorted(declared), module


def test_the_network_list_answers_with_a_trailing_slash_too() -> None:
    """moby routes GET /networks/ to the list as well (its TestNetworkList, moby issue 24595)."""
    from harness.daemon.api import networks

    recorder = _Recorder()
    networks.register(recorder)
    assert ("GET", "/networks/", "list_networks") in recorder.routes


def test_register_leaves_lazy_modules_unimported() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from harness.daemon.api import LAZY_ROUTES, register\n"
        "from harness.daemon.server import Router\n"
        "router = Router.__new__(Router); router.routes = {}; router.exact = {}\n"
        "register(router)\n"
        "router._find('GET', '/no-such-route')  # adds the deferred routes\n"
        "print([m for m in LAZY_ROUTES if 'harness.daemon.api.' + m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_routes_beyond_ping_are_added_by_the_first_request_that_needs_them() -> None:
    """refd answers /_ping before importing the other handler modules; the first other request adds them."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from harness.daemon.api import register\n"
        "from harness.daemon.server import Router\n"
        "router = Router.__new__(Router); router.routes = {}; router.exact = {}\n"
        "register(router)\n"
        "print(router._find('GET', '/_ping') is not None, 'harness.daemon.api.containers' in sys.modules)\n"
        "found = router._find('GET', '/containers/abc/json')\n"
        "print(found is not None and found[1], 'harness.daemon.api.containers' in sys.modules)\n"
        "print(router._find('GET', '/no-such-route'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["True False", "{'name': 'abc'} True", "None"]


# -- worker_stream: a worker thread's lines as dockerd's WriteFlusher streams them -----------------------
class _Failure(Exception):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message, self.status = message, status


def _streamed(work: Any, done: Any = None) -> tuple[int, list[bytes]]:
    from harness.daemon.server import worker_stream

    async def run() -> tuple[int, list[bytes]]:
        resp = await worker_stream(work, done)
        assert resp.stream is not None
        return resp.status, [chunk async for chunk in resp.stream]

    return asyncio.run(run())


def test_worker_stream_passes_lines_then_runs_done() -> None:
    finished: list[bool] = []

    def work(write: Any, cancelled: Any) -> None:
        write(b"one\r\n")
        write(b"two\r\n")
        assert not cancelled.is_set()

    assert _streamed(work, lambda: finished.append(True)) == (200, [b"one\r\n", b"two\r\n"])
    assert finished == [True]


def test_worker_stream_error_before_the_first_line_is_an_error_response() -> None:
    def fails(_write: Any, _cancelled: Any) -> None:
        raise _Failure("manifest for x:nope not found", 404)

    with pytest.raises(ApiError) as info:
        _streamed(fails)
    assert (info.value.status, info.value.message) == (404, "manifest for x:nope not found")

    def crashes(_write: Any, _cancelled: Any) -> None:
        raise KeyError("x")

    with pytest.raises(ApiError) as info:
        _streamed(crashes)
    assert (info.value.status, info.value.message) == (500, "KeyError: 'x'")


def test_worker_stream_error_after_a_line_ends_the_stream() -> None:
    finished: list[bool] = []

    def work(write: Any, _cancelled: Any) -> None:
        write(b"Pulling\r\n")
        raise _Failure("unexpected EOF", 500)

    status, lines = _streamed(work, lambda: finished.append(True))
    assert (status, lines) == (
        200,
        [b"Pulling\r\n", b'{"errorDetail":{"message":"unexpected EOF"},"error":"unexpected EOF"}\r\n'],
    )
    assert finished == [True]


def test_an_empty_chunked_body_is_read_as_eof() -> None:
    """Go sees a chunked body as ContentLength -1: ReadJSON decodes it and reads EOF (moby's
    TestPluginInvalidJSON sends one); an empty body without chunking is no error."""

    async def run() -> Any:
        reader = asyncio.StreamReader()
        reader.feed_data(b"0\r\n\r\n")
        reader.feed_eof()
        headers = {"content-type": "application/json"}
        req = Request("POST", "/plugins/pull", "HTTP/1.1", headers, reader, cast(Any, None))
        req._chunked = True
        return await read_json(req)

    with pytest.raises(ApiError) as info:
        asyncio.run(run())
    assert (info.value.status, info.value.message) == (
        400,
        "invalid JSON: got EOF while reading request body",
    )
    assert _read(b"", "application/json") is None


def test_version_prefix_split() -> None:
    from harness.daemon.server import _split_version

    assert _split_version("/v1.41/containers/json") == ("1.41", "/containers/json")
    assert _split_version("/v1.41/containers/json") == ("1.41", "/containers/json")  # from the cache
    assert _split_version("/version") == ("", "/version")
    assert _split_version("/v1.41") == ("", "/v1.41")
    assert _split_version("/v/x") == ("", "/v/x")


def test_a_deferred_load_that_fails_fails_again_on_the_next_request() -> None:
    from harness.daemon.server import Router

    router = Router.__new__(Router)
    router.routes, router.exact = {}, {}
    calls = []

    def broken(_: Router) -> None:
        calls.append(1)
        raise ImportError("no module named harness.daemon.api.nothing")

    router.defer(broken)
    for _ in range(2):
        with pytest.raises(ImportError):
            router._find("GET", "/containers/json")
    assert len(calls) == 2
