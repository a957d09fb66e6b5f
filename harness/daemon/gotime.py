"""Go's time as dockerd prints it: ``time.Duration`` text (``String()``, ``time.ParseDuration``) and
``time.Time`` in RFC3339Nano.

Health checks (``Config.Healthcheck``), ``docker commit --change HEALTHCHECK`` and the builder's
``HEALTHCHECK`` flags speak Go durations; container records and the shim's records carry Go
timestamps. This leaf module is what they share.
"""

from __future__ import annotations

import json
import re
import time

__all__ = ["go_duration", "now_rfc3339", "parse_go_duration"]


def now_rfc3339() -> str:
    """UTC now with nanoseconds, as Go's time.Time marshals (RFC3339Nano, trailing zeros trimmed)."""
    secs, frac = divmod(time.time_ns(), 1_000_000_000)
    text = f"{frac:09d}".rstrip("0")
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + (f".{text}" if text else "") + "Z"


def go_duration(ns: int) -> str:
    """Go's ``time.Duration.String``: ``300ms``, ``1.5s``, ``2m0s``, ``1h0m0s``, ``500µs``, ``0s``."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    u = abs(int(ns))

    def frac(value: int, prec: int) -> tuple[int, str]:
        whole, rest = divmod(value, 10**prec)
        digits = f"{rest:0{prec}d}".rstrip("0")
        return whole, f".{digits}" if digits else ""

    if u < 1_000_000_000:
        if u < 1000:
            return f"{sign}{u}ns"
        unit, prec = ("µs", 3) if u < 1_000_000 else ("ms", 6)
        whole, tail = frac(u, prec)
        return f"{sign}{whole}{tail}{unit}"
    secs, tail = frac(u, 9)
    text = f"{secs % 60}{tail}s"
    minutes = secs // 60
    if minutes:
        text = f"{minutes % 60}m{text}"
        if minutes // 60:
            text = f"{minutes // 60}h{text}"
    return sign + text


_UNITS = {
    "ns": 1,
    "us": 1000,
    "µs": 1000,
    "μs": 1000,
    "ms": 1_000_000,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}
_DURATION_PART = re.compile(r"(\d*)(?:\.(\d*))?([^\d.]*)")


def parse_go_duration(text: str) -> int:
    """Go's ``time.ParseDuration`` in ns (``1m30s``, ``1.5h``, ``300ms``); ValueError with Go's text."""
    quoted = json.dumps(text, ensure_ascii=False)
    rest, sign = text, 1
    if rest[:1] in ("-", "+"):
        sign, rest = (-1 if rest[0] == "-" else 1), rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise ValueError(f"time: invalid duration {quoted}")
    total = 0
    while rest:
        m = _DURATION_PART.match(rest)
        assert m is not None
        whole, frac, unit = m.group(1), m.group(2), m.group(3)
        if not whole and not frac:
            raise ValueError(f"time: invalid duration {quoted}")
        if not unit:
            raise ValueError(f"time: missing unit in duration {quoted}")
        if unit not in _UNITS:
            raise ValueError(
                f"time: unknown unit {json.dumps(unit, ensure_ascii=False)} in duration {quoted}"
            )
        scale = _UNITS[unit]
        total += int(whole or 0) * scale
        if frac:
            total += int(frac) * scale // 10 ** len(frac)
        rest = rest[m.end() :]
    return sign * total
