"""Go's time as refd prints and parses it: Duration.String, time.ParseDuration and RFC3339Nano."""

from __future__ import annotations

import calendar
import time

import pytest

from harness.daemon.gotime import go_duration, now_rfc3339, parse_go_duration


@pytest.mark.parametrize(
    "ns,text",
    [
        (0, "0s"),
        (1, "1ns"),
        (1500, "1.5µs"),
        (300_000_000, "300ms"),
        (1_000_000_000, "1s"),
        (1_500_000_000, "1.5s"),
        (120_000_000_000, "2m0s"),
        (3_600_000_000_000, "1h0m0s"),
        (3_723_500_000_000, "1h2m3.5s"),
        (-2_000_000_000, "-2s"),
    ],
)
def test_go_duration_matches_time_duration_string(ns: int, text: str) -> None:
    assert go_duration(ns) == text
    assert parse_go_duration(text) == ns


@pytest.mark.parametrize(
    "text,message",
    [
        ("abc", 'time: invalid duration "abc"'),
        ("5", 'time: missing unit in duration "5"'),
        ("5x", 'time: unknown unit "x" in duration "5x"'),
        ("", 'time: invalid duration ""'),
    ],
)
def test_bad_durations_have_gos_messages(text: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_go_duration(text)
    assert str(err.value) == message


def test_now_is_rfc3339nano_without_trailing_zeros() -> None:
    before = time.time()
    text = now_rfc3339()
    assert text.endswith("Z")
    main, _, frac = text[:-1].partition(".")
    assert not frac.endswith("0") and len(frac) <= 9
    secs = calendar.timegm(time.strptime(main, "%Y-%m-%dT%H:%M:%S"))
    assert int(before) <= secs <= time.time()
