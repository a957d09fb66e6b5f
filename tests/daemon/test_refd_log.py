"""refd's daemon log lines: logrus TextFormatter / JSONFormatter shapes and levels (spec 5.1)."""

from __future__ import annotations

import io
import json
import re

import pytest

from harness.daemon.log import Logger, format_json, format_text, go_quote, parse_level, timestamp

TS = "2026-11-27T18:47:52.798035700Z"


def test_text_line_exact() -> None:
    assert format_text("info", "Starting up", {}, TS) == f'time="{TS}" level=info msg="Starting up"'


def test_safe_values_are_bare() -> None:
    assert format_text("info", "serving...", {}, TS) == f'time="{TS}" level=info msg=serving...'
    assert format_text("info", "x", {"path": "/a/b_c-d@e^f+g"}, TS).endswith("msg=x path=/a/b_c-d@e^f+g")


def test_fields_sorted_and_quoted_when_needed() -> None:
    fields = {"host": "tcp://127.0.0.1:2375", "b": 1, "a": True, "e": ""}
    line = format_text("warning", "Binding ...", fields, TS)
    assert line == f'time="{TS}" level=warning msg="Binding ..." a=true b=1 e= host="tcp://127.0.0.1:2375"'


def test_quoting_is_go_percent_q() -> None:
    line = format_text("error", 'say "hi"\n\ttab\x01', {}, TS)
    assert line.endswith('msg="say \\"hi\\"\\n\\ttab\\x01"')
    assert go_quote("é\u00a0\u2028\x7f") == '"é\\u00a0\\u2028\\x7f"'
    assert go_quote("a\\b") == '"a\\\\b"'


def test_empty_message_is_omitted_and_clashing_fields_prefixed() -> None:
    assert format_text("info", "", {"k": "v"}, TS) == f'time="{TS}" level=info k=v'
    line = format_text("info", "m", {"msg": "x", "level": "y", "time": "z"}, TS)
    assert line == f'time="{TS}" level=info msg=m fields.level=y fields.msg=x fields.time=z'


def test_json_line_keys_sorted_and_html_escaped() -> None:
    line = format_json("info", "a <b> & c", {"zeta": 1, "alpha": None, "list": ["x"], "ok": False}, TS)
    assert line == (
        '{"alpha":null,"level":"info","list":["x"],'
        '"msg":"a \\u003cb\\u003e \\u0026 c","ok":false,'
        f'"time":"{TS}","zeta":1}}'
    )
    assert json.loads(line)["msg"] == "a <b> & c"
    assert json.loads(format_json("info", "m", {"err": ValueError("boom")}, TS))["err"] == "boom"


def test_timestamp_format() -> None:
    assert timestamp(0) == "1970-01-01T00:00:00.000000000Z"
    assert timestamp(1.5) == "1970-01-01T00:00:01.500000000Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", timestamp())


@pytest.mark.parametrize(
    ("name", "level"),
    [
        ("warn", "warning"),
        ("WARN", "warning"),
        ("warning", "warning"),
        ("Info", "info"),
        ("debug", "debug"),
        ("trace", "trace"),
        ("panic", "panic"),
        ("fatal", "fatal"),
        ("error", "error"),
    ],
)
def test_parse_level(name: str, level: str) -> None:
    assert parse_level(name) == level


def test_parse_level_refuses_unknown_like_logrus() -> None:
    with pytest.raises(ValueError, match=r'^not a valid logrus Level: "verbose"$'):
        parse_level("verbose")


def _lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_level_filtering() -> None:
    stream = io.StringIO()
    log = Logger(stream, level="warn")
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    shown = [re.sub(r'^time="[^"]+" ', "", ln) for ln in _lines(stream)]
    assert shown == ["level=warning msg=w", "level=error msg=e"]
    assert log.level == "warning"
    assert not log.enabled("info") and log.enabled("warn")


def test_level_can_be_changed_with_any_logrus_spelling() -> None:
    stream = io.StringIO()
    log = Logger(stream)
    log.debug("hidden")
    log.level = "DEBUG"
    log.debug("shown", k="v")
    log.level = "warn"
    log.info("hidden")
    assert [ln.split(" ", 1)[1] for ln in _lines(stream)] == ["level=debug msg=shown k=v"]
    with pytest.raises(ValueError):
        log.level = "loud"


def test_json_logger_and_level_spelling() -> None:
    stream = io.StringIO()
    Logger(stream, level="info", fmt="json").log("warn", "careful", host="tcp://x")
    entry = json.loads(stream.getvalue())
    assert entry["level"] == "warning" and entry["msg"] == "careful" and entry["host"] == "tcp://x"


def test_closed_stream_never_raises() -> None:
    stream = io.StringIO()
    stream.close()
    Logger(stream).info("ignored")
