"""refd's httputils.Uint32Value: the resize handlers' h and w, with moby's words for each bad value."""

from __future__ import annotations

from typing import Any, cast

import pytest

from harness.daemon.errors import ApiError
from harness.daemon.httpd import Request
from harness.daemon.query import uint32_value


def _req(**query: str) -> Request:
    req = Request("POST", "/x", "HTTP/1.1", {}, cast(Any, None), cast(Any, None))
    req.query = {k: [v] for k, v in query.items()}
    return req


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (None, '"": invalid syntax'),
        ("", '"": invalid syntax'),
        ("+1", '"+1": invalid syntax'),
        ("1.5", '"1.5": invalid syntax'),
        ("abc", '"abc": invalid syntax'),
        ("-", '"-": invalid syntax'),
        ("-1", '"-1": value out of range'),
        ("4294967296", '"4294967296": value out of range'),
        ("١٢", '"١٢": invalid syntax'),  # digits, but not ASCII ones
    ],
)
def test_bad_values_are_400_naming_the_field_and_value(value: str | None, problem: str) -> None:
    req = _req() if value is None else _req(h=value)
    with pytest.raises(ApiError) as info:
        uint32_value(req, "h", "resize height")
    assert (info.value.status, info.value.message) == (400, f"invalid resize height {problem}")


def test_good_values() -> None:
    assert uint32_value(_req(w="0"), "w", "resize width") == 0
    assert uint32_value(_req(w="4294967295"), "w", "resize width") == 4294967295
    assert uint32_value(_req(w="007"), "w", "resize width") == 7
