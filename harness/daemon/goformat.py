"""Go's encodings that refd's documents share with dockerd byte for byte.

``go_json`` is ``json.Marshal`` (compact, HTML characters escaped: image configs, progress and
build stream lines are hashed or compared as bytes); ``json_line``/``error_line`` are the lines of
dockerd's JSON message streams (``pkg/streamformatter``: load, import, pull, push); ``human_size``
is go-units' ``HumanSize``; ``format_go_time``/``parse_go_time`` are ``time.RFC3339Nano``;
``go_arch`` is ``runtime.GOARCH`` for this machine. Standard library only: this is a leaf that any
layer of refd may import.
"""

from __future__ import annotations

import json
import os
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "error_line",
    "format_go_time",
    "go_arch",
    "go_json",
    "human_size",
    "json_line",
    "now_rfc3339nano",
    "parse_go_time",
    "sorted_keys",
]

_GOARCH = {
    "x86_64": "amd64",
    "aarch64": "arm64",
    "armv7l": "arm",
    "armv6l": "arm",
    "i686": "386",
    "i386": "386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}
_DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TIME_RE = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?([Zz]|[+-]\d\d:\d\d)$")


def go_json(obj: Any) -> bytes:
    """Go's json.Marshal: compact, HTML characters escaped."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").encode()


def json_line(obj: dict[str, Any]) -> bytes:
    """One line of a JSON message stream: the object as Go marshals it, then CRLF."""
    return go_json(obj) + b"\r\n"


def error_line(message: str) -> bytes:
    """The line that ends a JSON message stream with an error."""
    return json_line({"errorDetail": {"message": message}, "error": message})


def human_size(size: float, precision: int = 4) -> str:
    """go-units HumanSizeWithPrecision (decimal units): ``130B``, ``1.036MB``."""
    i = 0
    while size >= 1000 and i < len(_DECIMAL_UNITS) - 1:
        size /= 1000
        i += 1
    return f"{size:.{precision}g}{_DECIMAL_UNITS[i]}"


def sorted_keys(obj: dict[str, Any]) -> dict[str, Any]:
    """The keys in the order Go marshals a map: sorted."""
    return {k: obj[k] for k in sorted(obj)}


def parse_go_time(text: str) -> tuple[int, int, int] | None:
    """RFC 3339 (nano) -> (unix seconds, nanoseconds, UTC offset in seconds); None if it does not parse."""
    match = _TIME_RE.match(text or "")
    if match is None:
        return None
    year, mon, day, hh, mm, ss = (int(match.group(i)) for i in range(1, 7))
    nanos = int((match.group(7) or "").ljust(9, "0") or 0)
    zone = match.group(8)
    offset = (
        0
        if zone in ("Z", "z")
        else (1 if zone[0] == "+" else -1) * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    )
    try:
        base = datetime(year, mon, day, hh, mm, ss, tzinfo=UTC)
    except ValueError:
        return None
    seconds = int((base - _EPOCH).total_seconds()) - offset
    return seconds, nanos, offset


def format_go_time(seconds: int, nanos: int = 0, offset: int = 0) -> str:
    """Go's ``time.Format(time.RFC3339Nano)``: trailing zeros trimmed, ``Z`` for a zero offset."""
    stamp = (_EPOCH + timedelta(seconds=seconds + offset)).strftime("%Y-%m-%dT%H:%M:%S")
    frac = f"{nanos:09d}".rstrip("0")
    if offset == 0:
        zone = "Z"
    else:
        sign = "+" if offset > 0 else "-"
        zone = f"{sign}{abs(offset) // 3600:02d}:{abs(offset) % 3600 // 60:02d}"
    return stamp + (f".{frac}" if frac else "") + zone


def now_rfc3339nano() -> str:
    ns = time.time_ns()
    return format_go_time(ns // 1_000_000_000, ns % 1_000_000_000)


def go_arch() -> str:
    machine = os.uname().machine  # platform.machine(); importing platform compiles ~10 regexes
    return _GOARCH.get(machine, machine)
