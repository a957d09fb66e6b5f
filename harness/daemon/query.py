"""Query-string values read as moby's httputils and api/types read them: booleans, filters, timestamps.

Every handler parses its query with these, so they live below the handlers (a handler never imports another).
"""

from __future__ import annotations

import json

from .errors import invalid
from .httpd import Request
from .log import go_quote

__all__ = ["bool_filter", "bool_value", "match_kv", "parse_filters", "parse_timestamp", "uint32_value"]


def bool_value(req: Request, name: str) -> bool:
    """httputils.BoolValue: anything but '', 0, no, false, none is true."""
    value = req.arg(name).strip().lower()
    return value not in ("", "0", "no", "false", "none")


def uint32_value(req: Request, name: str, what: str) -> int:
    """httputils.Uint32Value: a uint32 (absent or empty is no number); a bad one is a 400 naming ``what``
    and the value, ``invalid resize height "-1": value out of range`` (the resize handlers' words)."""
    raw = req.arg(name)
    digits = raw.removeprefix("-")
    if not digits or not (digits.isascii() and digits.isdigit()):
        problem = "invalid syntax"
    elif raw.startswith("-") or int(digits) >= 1 << 32:
        problem = "value out of range"
    else:
        return int(digits)
    raise invalid(f"invalid {what} {go_quote(raw)}: {problem}")


def parse_filters(raw: str, allowed: set[str] | None) -> dict[str, list[str]]:
    """Decode the ``filters`` query (map of {value: true}, or the legacy map of lists).

    ``allowed=None`` accepts any key, as /events does; endpoints that validate pass their keys.
    """
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, RecursionError):  # Go's decoder stops at 10000 levels: invalid too
        raise invalid("invalid filter") from None
    if not isinstance(data, dict):
        raise invalid("invalid filter")
    # Go decodes map[string]map[string]bool, else the legacy map[string][]string: one form, exact types
    new_form = all(
        isinstance(v, dict) and all(isinstance(b, bool) for b in v.values()) for v in data.values()
    )
    legacy = all(isinstance(v, list) and all(isinstance(s, str) for s in v) for v in data.values())
    if data and not new_form and not legacy:
        raise invalid("invalid filter")
    out: dict[str, list[str]] = {}
    for key, value in data.items():
        if allowed is not None and key not in allowed:
            raise invalid(f"invalid filter '{key}'")
        out[key] = [k for k, v in value.items() if v] if isinstance(value, dict) else list(value)
    return out


def bool_filter(filters: dict[str, list[str]], key: str, default: bool) -> bool:
    """filters.Args.GetBoolOrDefault: ``key`` as true or false (``1``/``true``, ``0``/``false``)."""
    if key not in filters:
        return default
    values = filters[key]
    if not values:
        raise invalid(f"invalid filter '{key}'")
    is_false = "0" in values or "false" in values
    is_true = "1" in values or "true" in values
    if is_false == is_true:
        raise invalid(f"invalid filter '{key}=[{' '.join(values)}]'")
    return is_true


def match_kv(values: list[str], labels: dict[str, str]) -> bool:
    """filters.Args.MatchKVList: every ``key`` or ``key=value`` of ``values`` is in ``labels``."""
    if not values:
        return True
    if not labels:
        return False
    for value in values:
        key, sep, want = value.partition("=")
        if key not in labels or (sep and labels[key] != want):
            return False
    return True


def parse_timestamp(text: str, now: float) -> float | None:
    """Docker's timestamp query: seconds[.nanos], RFC 3339, or a Go duration relative to now."""
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    units = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    for suffix in sorted(units, key=len, reverse=True):
        if text.endswith(suffix):
            try:
                return now - float(text[: -len(suffix)]) * units[suffix]
            except ValueError:
                break
    from datetime import datetime

    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise invalid(f'failed to parse value as time or duration: "{text}"') from None
