"""``GET /events``: history replay (``since``), live stream, ``until`` and ``filters``."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ..errors import invalid
from ..httpd import Request, Response
from ..server import version_tuple

if TYPE_CHECKING:
    from ..daemon import Daemon
    from ..server import Router

__all__ = ["parse_filters", "parse_timestamp", "register"]


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


def _matches(event: dict[str, Any], filters: dict[str, list[str]]) -> bool:
    actor = event.get("Actor", {})
    attrs = actor.get("Attributes", {})
    checks = {
        "type": lambda v: event.get("Type") == v,
        "event": lambda v: event.get("Action") == v or event.get("Action", "").split(":")[0] == v,
        "scope": lambda v: event.get("scope") == v,
        "label": lambda v: (
            (attrs.get(v.partition("=")[0]) == v.partition("=")[2]) if "=" in v else v in attrs
        ),
        "daemon": lambda v: (
            event.get("Type") == "daemon" and (actor.get("ID") == v or attrs.get("name") == v)
        ),
    }
    for key, values in filters.items():
        if not values:
            continue
        check = checks.get(key)
        if check is None:  # object filters: container, image, network, volume...
            if event.get("Type") != key:
                return False
            check = lambda v: actor.get("ID", "").startswith(v) or attrs.get("name") == v  # noqa: E731
        if not any(check(v) for v in values):
            return False
    return True


async def events(req: Request, daemon: Daemon) -> Response:
    now = time.time()
    since = parse_timestamp(req.arg("since"), now)
    until = parse_timestamp(req.arg("until"), now)
    if since is not None and until is not None and until < since:
        raise invalid(f"`since` time ({req.arg('since')}) cannot be after `until` time ({req.arg('until')})")
    filters = parse_filters(req.arg("filters"), None)
    queue = daemon.events.subscribe()
    backlog = [e for e in daemon.events.history if since is not None and e["timeNano"] / 1e9 >= since]

    # image create events (commits, build steps) were added in API 1.46: older clients never see them
    old_api = version_tuple(req.api_version) < (1, 46)

    def wanted(event: dict[str, Any]) -> bool:
        if old_api and event.get("Type") == "image" and event.get("Action") == "create":
            return False
        return (until is None or event["timeNano"] / 1e9 <= until) and _matches(event, filters)

    async def stream() -> AsyncIterator[bytes]:
        try:
            yield b""  # headers go out before the first event, as dockerd flushes them
            for event in backlog:
                if wanted(event):
                    yield json.dumps(event, separators=(",", ":")).encode() + b"\n"
            while True:
                timeout = None if until is None else max(0.0, until - time.time())
                if timeout == 0.0:
                    return
                try:
                    event = await asyncio.wait_for(queue.get(), timeout)
                except TimeoutError:
                    return
                if since is not None and event in backlog:
                    continue
                if wanted(event):
                    yield json.dumps(event, separators=(",", ":")).encode() + b"\n"
        finally:
            daemon.events.unsubscribe(queue)

    return Response(200, headers=[("Content-Type", "application/json")], stream=stream())


def register(router: Router) -> None:
    router.add("GET", "/events", events)
