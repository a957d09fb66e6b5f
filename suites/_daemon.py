"""Small helpers scenarios share for daemons they booted themselves (the session daemon has ``engine``)."""

from __future__ import annotations

from typing import Any

from harness.backends.base import DaemonHandle
from harness.client import EngineClient

__all__ = ["info"]


def info(daemon: DaemonHandle) -> dict[str, Any]:
    """``GET /info`` on ``daemon``'s primary endpoint."""
    assert daemon.endpoint is not None
    client = EngineClient(daemon.endpoint)
    try:
        return dict(client.get("/info").json())
    finally:
        client.close()
