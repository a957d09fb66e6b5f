"""harness.apitrace: the response tap of the schema checks never reads a stream nor breaks a request."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from harness import apitrace


class _Response:
    def __init__(self, consumed: bool = True) -> None:
        self.request = SimpleNamespace(method="GET", path_url="/v1.41/info?x=1")
        self.status_code = 200
        self.headers = {"Content-Type": "application/json"}
        self._content_consumed = consumed
        self.reads = 0

    @property
    def content(self) -> bytes:
        self.reads += 1
        return b"{}"


@pytest.fixture
def seen() -> Iterator[list[apitrace.Response]]:
    got: list[apitrace.Response] = []
    previous = apitrace.set_sink(got.append)
    yield got
    apitrace.set_sink(previous)


def test_a_read_response_reaches_the_sink(seen: list[apitrace.Response]) -> None:
    response = _Response()
    assert apitrace.response_hook(response, stream=False) is response
    assert seen == [
        apitrace.Response("GET", "/v1.41/info?x=1", 200, {"Content-Type": "application/json"}, b"{}")
    ]


def test_a_streamed_response_is_reported_without_reading_it(seen: list[apitrace.Response]) -> None:
    response = _Response(consumed=False)
    apitrace.response_hook(response, stream=True)
    assert response.reads == 0 and seen[0].body is None


def test_no_sink_does_nothing_and_a_failing_sink_is_harmless() -> None:
    response = _Response()
    previous = apitrace.set_sink(None)
    try:
        assert apitrace.response_hook(response) is response and response.reads == 0

        def boom(_: Any) -> None:
            raise RuntimeError("a broken check")

        apitrace.set_sink(boom)
        assert apitrace.response_hook(response) is response
    finally:
        apitrace.set_sink(previous)
