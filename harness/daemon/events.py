"""The daemon's event bus: a bounded history plus live subscribers (moby ``daemon/events``)."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

__all__ = ["EventBus", "make_event"]

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
