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
