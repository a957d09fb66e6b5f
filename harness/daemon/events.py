"""The daemon's event bus: a bounded history plus live subscribers (moby ``daemon/events``)."""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio
else:
    from .lazy import asyncio  # imported on first use: refd answers its first /_ping without it

__all__ = ["EventBus", "make_event", "matches"]

HISTORY = 256


def make_event(
    kind: str, action: str, actor_id: str, attributes: dict[str, str] | None = None, scope: str = "local"
) -> dict[str, Any]:
    """One event as dockerd serialises it (container events also carry the legacy fields)."""
    now = time.time_ns()
    event: dict[str, Any] = {}
    if kind == "container":
        event.update(status=action, id=actor_id, **{"from": (attributes or {}).get("image", "")})
    elif kind == "image":  # dockerd fills the deprecated status/id (omitempty) for image events too
        event.update(status=action, **({"id": actor_id} if actor_id else {}))
    event.update(
        Type=kind,
        Action=action,
        Actor={"ID": actor_id, "Attributes": dict(attributes or {})},
        scope=scope,
        time=now // 1_000_000_000,
        timeNano=now,
    )
    return event


class EventBus:
    """Publishes events to subscribers' queues and keeps the last ``HISTORY`` for ``since``."""

    def __init__(self) -> None:
        self.history: deque[dict[str, Any]] = deque(maxlen=HISTORY)
        self.subscribers: set[asyncio.Queue[dict[str, Any]]] = set()

    def publish(self, event: dict[str, Any]) -> None:
        self.history.append(event)
        for queue in list(self.subscribers):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                self.subscribers.discard(queue)  # a stalled reader is dropped, as dockerd evicts it

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1024)
        self.subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self.subscribers.discard(queue)

    def listener_count(self) -> int:
        return len(self.subscribers)


def matches(event: dict[str, Any], filters: dict[str, list[str]]) -> bool:
    """Whether ``event`` passes the ``/events`` filters (moby ``daemon/events/filter.go``): each key given."""
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
