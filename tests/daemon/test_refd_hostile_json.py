"""JSON nested past Python's recursion limit is a 400 (or ignored where dockerd ignores it), never a 500.

Found by tests/reliability/test_rel_http.py: ``[`` x 100000 as a body, a ``filters`` query or an
``X-Registry-Auth`` header raised RecursionError, answered as ``500 RecursionError: ...``. dockerd 28.5
answers ``400 invalid JSON: exceeded max depth`` and ``400 invalid filter``, and ignores the header.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any, cast

import pytest

from harness.daemon.distribution.auth import AuthConfig, decode_auth_config
from harness.daemon.errors import ApiError
from harness.daemon.httpd import Request
from harness.daemon.query import parse_filters
from harness.daemon.server import read_json

DEEP = b"[" * 100_000 + b"]" * 100_000


def _read(body: bytes) -> Any:
    async def run() -> Any:
        reader = asyncio.StreamReader()
        reader.feed_data(body)
        reader.feed_eof()
        req = Request(
            "POST",
            "/containers/create",
            "HTTP/1.1",
            {"content-type": "application/json"},
            reader,
            cast(Any, None),
        )
        req._remaining = len(body)
        return await read_json(req)

    return asyncio.run(run())


def test_deep_body_is_dockerds_400() -> None:
    with pytest.raises(ApiError) as info:
        _read(DEEP)
    assert (info.value.status, info.value.message) == (400, "invalid JSON: exceeded max depth")


def test_deep_but_unbalanced_body_keeps_the_syntax_error() -> None:
    with pytest.raises(ApiError) as info:
        _read(b"[" * 5000)
    assert info.value.status == 400 and info.value.message.startswith("invalid JSON: ")


def test_deep_filters_are_invalid() -> None:
    with pytest.raises(ApiError) as info:
        parse_filters("[" * 100_000, None)
    assert (info.value.status, info.value.message) == (400, "invalid filter")


def test_deep_registry_auth_is_ignored() -> None:
    assert decode_auth_config(base64.urlsafe_b64encode(b"[" * 50_000).decode()) == AuthConfig()


@pytest.mark.parametrize(
    "raw",
    [
        '{"until": {"": false}, "label": []}',  # both forms at once: dockerd 28.5 says invalid filter
        '{"label": [1]}',
        '{"label": {"a": 1}}',
        '{"label": "a"}',
    ],
)
def test_filters_take_one_form_with_exact_types(raw: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_filters(raw, None)
    assert (info.value.status, info.value.message) == (400, "invalid filter")


def test_filters_forms() -> None:
    assert parse_filters('{"label": {"a": true, "b": false}}', None) == {"label": ["a"]}
    assert parse_filters('{"label": ["a", "b"], "until": []}', None) == {"label": ["a", "b"], "until": []}
    assert parse_filters("{}", None) == {}
