"""Checking helpers for scenarios, and the count of checks the plugin holds each scenario to.

A scenario states a MUST; it proves it with ``assert`` (pytest counts each passing one through its
``pytest_assertion_pass`` hook) or with the helpers here, which count themselves. The plugin fails a scenario
that passed without a single check: observations alone compare targets but check nothing on one target.

- ``expect_error(resp, status, message)``: the common error shape (status, then dockerd's JSON ``message``).
- ``expect_status(resp, status)``: a status with the body in the failure message.
- ``eventually(probe, what)``: poll an observable condition instead of sleeping (on ``harness.wait``).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from .wait import wait_until

__all__ = ["count", "counted", "eventually", "expect_error", "expect_status", "reset"]

T = TypeVar("T")

_lock = threading.Lock()
_count = 0


def counted(n: int = 1) -> None:
    """Record ``n`` checks made by a helper (or by an assert pytest's hook reported)."""
    global _count
    with _lock:
        _count += n


def reset() -> None:
    global _count
    with _lock:
        _count = 0


def count() -> int:
    with _lock:
        return _count


def _body(resp: Any) -> Any:
    try:
        return resp.json()
    except ValueError:
        return resp.text


def expect_status(resp: Any, status: int) -> Any:
    """``resp`` answered ``status``; returns the body (JSON when it is JSON, else text)."""
    body = _body(resp)
    if resp.status_code != status:
        where = f"{resp.request.method} {resp.request.path_url}"
        raise AssertionError(f"{where}: expected status {status}, got {resp.status_code}: {str(body)[:500]}")
    counted()
    return body


def expect_error(resp: Any, status: int, message: str | re.Pattern[str] | None = None) -> str:
    """``resp`` is an error of ``status`` whose JSON ``message`` is ``message`` (a string: exactly; a compiled
    pattern: matched from the start); returns the message. ``None`` checks only that a message is present."""
    body = expect_status(resp, status)
    got = body.get("message") if isinstance(body, dict) else None
    if not isinstance(got, str):
        raise AssertionError(f"expected a JSON error body with a message, got {str(body)[:500]}")
    if isinstance(message, re.Pattern):
        if not message.match(got):
            raise AssertionError(f"error message {got!r} does not match {message.pattern!r}")
    elif message is not None and got != message:
        raise AssertionError(f"error message {got!r} != {message!r}")
    counted()
    return got


def eventually(probe: Callable[[], T | None], what: str, timeout: float = 30.0, interval: float = 0.05) -> T:
    """Poll ``probe`` until it returns something truthy and return that; fail naming ``what`` (the condition
    awaited) and the last value seen when ``timeout`` passes. The alternative to a sleep."""
    last: list[T | None] = []

    def check() -> bool:
        value = probe()
        last[:] = [value]
        return bool(value)

    if not wait_until(check, timeout, interval):
        seen = repr(last[0])[:300] if last else "nothing"
        raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; last seen: {seen}")
    counted()
    value = last[0]
    assert value is not None  # truthy
    return value
