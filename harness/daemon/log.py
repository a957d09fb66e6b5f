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
import unicodedata
from typing import IO, Any

__all__ = ["LEVELS", "Logger", "format_json", "format_text", "go_quote", "parse_level", "timestamp"]

#: logrus level names in increasing verbosity, as ``ParseLevel`` accepts them.
LEVELS = ("panic", "fatal", "error", "warning", "info", "debug", "trace")
_ALIASES = {"warn": "warning"}
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._/@^+")
#: logrus prefixes user fields that collide with its own keys (prefixFieldClashes).
_RESERVED = ("time", "level", "msg")
_GO_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\\": "\\\\",
    '"': '\\"',
}


def go_quote(text: str) -> str:
    """Go's ``strconv.Quote`` (``%q``): printable runes kept, the rest escaped Go's way."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif ch == " " or (code < 0x7F) or unicodedata.category(ch)[0] in "LMNPS":
            out.append(ch)
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def parse_level(name: str) -> str:
    """Return the canonical level for ``name`` or raise ValueError like logrus.ParseLevel."""
    lowered = name.lower()
    lowered = _ALIASES.get(lowered, lowered)
    if lowered not in LEVELS:
        raise ValueError(f"not a valid logrus Level: {go_quote(name)}")
    return lowered


def timestamp(now: float | None = None) -> str:
    """RFC3339NanoFixed in UTC: ``2026-11-27T18:47:52.798035700Z``."""
    ns = time.time_ns() if now is None else int(now * 1e9)
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def _value(value: Any) -> str:
    """logrus appendValue: bare when every rune is safe (the empty string too), else %q."""
    text = value if isinstance(value, str) else _stringify(value)
    if all(ch in _SAFE for ch in text):
        return text
    return go_quote(text)


def _stringify(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "<nil>"
    return str(value)


def _unclash(fields: dict[str, Any]) -> dict[str, Any]:
    return {f"fields.{k}" if k in _RESERVED else k: v for k, v in fields.items()}


def format_text(level: str, msg: str, fields: dict[str, Any], ts: str) -> str:
    """One TextFormatter line: time, level, msg (omitted when empty), then fields sorted by key."""
    fields = _unclash(fields)
    parts = [f"time={_value(ts)}", f"level={level}"]
    if msg:
        parts.append(f"msg={_value(msg)}")
    parts += [f"{key}={_value(fields[key])}" for key in sorted(fields)]
    return " ".join(parts)


def _json_native(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_json_native(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_native(v) for k, v in value.items()}
    return _stringify(value)  # errors and other values: their text, as logrus does for error fields


def format_json(level: str, msg: str, fields: dict[str, Any], ts: str) -> str:
    """One JSONFormatter line: keys sorted and HTML characters escaped, as Go's json.Encoder writes."""
    entry: dict[str, Any] = {k: _json_native(v) for k, v in _unclash(fields).items()}
    entry.update(level=level, msg=msg, time=ts)
    text = json.dumps(entry, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    for raw, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(raw, escaped)
    return text


class Logger:
    """Thread-safe leveled logger writing dockerd-style lines to a stream (stderr)."""

    def __init__(self, stream: IO[str] | None = None, level: str = "info", fmt: str = "text") -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.level = level
        self.fmt = fmt
        self._lock = threading.Lock()

    @property
    def level(self) -> str:
        return self._level

    @level.setter
    def level(self, name: str) -> None:
        """Accept any spelling logrus accepts (``warn``, ``INFO``); raises ValueError otherwise."""
        self._level = parse_level(name)
        self._debug = self._level in ("debug", "trace")

    def enabled(self, level: str) -> bool:
        if level == "debug":  # asked on every API request
            return self._debug
        if level == self._level:
            return True
        return LEVELS.index(parse_level(level)) <= LEVELS.index(self._level)

    def log(self, level: str, msg: str, **fields: Any) -> None:
        level = parse_level(level)
        if LEVELS.index(level) > LEVELS.index(self._level):
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
