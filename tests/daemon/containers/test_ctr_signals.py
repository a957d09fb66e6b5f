"""Signal parsing as docker's API does it: numbers, names with or without SIG, dockerd's 400s."""

from __future__ import annotations

import signal

import pytest

from harness.daemon.containers.signals import SIGNALS, parse_signal
from harness.daemon.errors import ApiError


@pytest.mark.parametrize(
    ("text", "expected"),
    [("KILL", 9), ("SIGKILL", 9), ("sigterm", 15), ("hup", 1), ("9", 9), ("64", 64), (15, 15)],
)
def test_names_and_numbers(text: str | int, expected: int) -> None:
    assert parse_signal(text) == expected


def test_empty_is_the_default() -> None:
    assert parse_signal(None) == signal.SIGKILL
    assert parse_signal("", 0) == 0


@pytest.mark.parametrize("text", ["0", "65", "NOPE", "SIGNOPE", "-1"])
def test_bad_signals_are_400s(text: str) -> None:
    with pytest.raises(ApiError) as err:
        parse_signal(text)
    assert (err.value.status, err.value.message) == (400, f"invalid signal: {text}")


def test_table_has_this_platforms_names_without_prefix() -> None:
    assert SIGNALS["TERM"] == signal.SIGTERM
    assert SIGNALS["WINCH"] == signal.SIGWINCH
    assert not any(name.startswith(("SIG", "_")) for name in SIGNALS)
