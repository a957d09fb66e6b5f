"""goformat: Go's json.Marshal, RFC 3339 nano times and GOARCH, as dockerd writes them."""

from __future__ import annotations

import platform

from harness.daemon.goformat import format_go_time, go_arch, go_json, parse_go_time, sorted_keys


def test_go_time_round_trip() -> None:
    assert format_go_time(*parse_go_time("2024-01-02T03:04:05.120000000Z")) == "2024-01-02T03:04:05.12Z"  # type: ignore[misc]
    assert format_go_time(*parse_go_time("2024-01-02T03:04:05+02:00")) == "2024-01-02T03:04:05+02:00"  # type: ignore[misc]
    assert parse_go_time("1970-01-01T00:00:00Z") == (0, 0, 0)
    assert parse_go_time("2024-02-30T00:00:00Z") is None  # matches the pattern, not the calendar
    assert parse_go_time("not a time") is None


def test_go_json_is_compact_and_escapes_html() -> None:
    assert go_json({"a": [1, "<b>&"], "c": "\u2028"}) == b'{"a":[1,"\\u003cb\\u003e\\u0026"],"c":"\\u2028"}'
    assert go_json({"é": None}) == '{"é":null}'.encode()  # not ASCII-escaped, as Go's encoder


def test_sorted_keys_and_go_arch() -> None:
    assert list(sorted_keys({"b": 1, "a": 2})) == ["a", "b"]
    assert go_arch() == {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), go_arch())


def test_json_message_lines_and_human_sizes() -> None:
    from harness.daemon.goformat import error_line, human_size, json_line

    assert json_line({"status": "a<b"}) == b'{"status":"a\\u003cb"}\r\n'
    assert error_line("boom") == b'{"errorDetail":{"message":"boom"},"error":"boom"}\r\n'
    assert [human_size(n) for n in (0, 999, 1000, 1036415, 5.5e12)] == [
        "0B",
        "999B",
        "1kB",
        "1.036MB",
        "5.5TB",
    ]
    assert human_size(1036415, precision=2) == "1MB"
