"""logrus-compatible log lines on stderr, as dockerd writes them.

dockerd logs through logrus (20.10) or containerd/log (28.x): a TextFormatter with
``FullTimestamp`` and a fixed nine-digit RFC 3339 timestamp, or JSON with
``--log-format json``. Users grep these lines, so the shape is part of conformance.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import IO, Any

__all__ = ["LEVELS", "Logger", "format_text", "format_json", "parse_level", "timestamp"]

#: logrus level names in increasing verbosity, as ``ParseLevel`` accepts them.
LEVELS = ("panic", "fatal", "error", "warning", "info", "debug", "trace")
_ALIASES = {"warn": "warning"}
_SAFE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._/@^+")


def parse_level(name: str) -> str:
    """Return the canonical level for ``name`` or raise ValueError like logrus.ParseLevel."""
    lowered = name.lower()
    lowered = _ALIASES.get(lowered, lowered)
    if lowered not in LEVELS:
        raise ValueError(f"not a valid logrus Level: {name!r}")
    return lowered


def timestamp(now: float | None = None) -> str:
    """RFC3339NanoFixed in UTC: ``2026-11-27T18:47:52.798035700Z``."""
    ns = time.time_ns() if now is None else int(now * 1e9)
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def _go_quote(text: str) -> str:
    """Approximate Go's %q: JSON string escaping matches it for printable text."""
    return json.dumps(text, ensure_ascii=False)


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else _stringify(value)
    if text and all(ch in _SAFE for ch in text):
        return text
    return _go_quote(text)


def _stringify(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "<nil>"
    return str(value)


def format_text(level: str, msg: str, fields: dict[str, Any], ts: str) -> str:
    """One TextFormatter line: time, level, msg, then fields sorted by key."""
    parts = [f"time={_value(ts)}", f"level={level}", f"msg={_value(msg)}"]
    parts += [f"{key}={_value(fields[key])}" for key in sorted(fields)]
    return " ".join(parts)


def format_json(level: str, msg: str, fields: dict[str, Any], ts: str) -> str:
    """One JSONFormatter line with keys sorted, as Go's map encoding does."""
    entry: dict[str, Any] = {k: _stringify(v) if not isinstance(v, int | float | str) else v
                             for k, v in fields.items()}
    entry.update(level=level, msg=msg, time=ts)
    return json.dumps(dict(sorted(entry.items())), ensure_ascii=False, separators=(",", ":"))


class Logger:
    """Thread-safe leveled logger writing dockerd-style lines to a stream (stderr)."""

    def __init__(self, stream: IO[str] | None = None, level: str = "info", fmt: str = "text") -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.level = level
        self.fmt = fmt
        self._lock = threading.Lock()

    def enabled(self, level: str) -> bool:
        return LEVELS.index(level) <= LEVELS.index(self.level)

    def log(self, level: str, msg: str, **fields: Any) -> None:
        if not self.enabled(level):
            return
        formatter = format_json if self.fmt == "json" else format_text
        line = formatter(level, msg, fields, timestamp())
        with self._lock:
            try:
                self.stream.write(line + "\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass  # a closed stderr must never take the daemon down

    def debug(self, msg: str, **fields: Any) -> None:
        self.log("debug", msg, **fields)

    def info(self, msg: str, **fields: Any) -> None:
        self.log("info", msg, **fields)

    def warning(self, msg: str, **fields: Any) -> None:
        self.log("warning", msg, **fields)

    def error(self, msg: str, **fields: Any) -> None:
        self.log("error", msg, **fields)
