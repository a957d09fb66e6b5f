"""refd's side of a container shim's socket protocol (the shim's side, and the ops, are in :mod:`..shim`)."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from ..shimstate import SOCKET
from ..unixpath import short_unix_path

if TYPE_CHECKING:
    import asyncio
else:
    from ..lazy import asyncio  # imported on first use: refd answers its first /_ping without it

__all__ = ["ShimConnection"]


class ShimConnection:
    """One request/response (and optionally stream) connection to a container's shim."""

    @staticmethod
    async def open(
        state_dir: str, request: dict[str, Any]
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Send ``request``; the connection stays open for the answer and any stream that follows."""
        with short_unix_path(os.path.join(state_dir, SOCKET)) as address:
            reader, writer = await asyncio.open_unix_connection(address, limit=1 << 20)
        writer.write(json.dumps(request).encode() + b"\n")
        await writer.drain()
        return reader, writer

    @staticmethod
    async def call(state_dir: str, request: dict[str, Any], timeout: float | None = 30) -> dict[str, Any]:
        """Send ``request`` and return the shim's one-line answer."""
        reader, writer = await ShimConnection.open(state_dir, request)
        try:
            line = await asyncio.wait_for(reader.readline(), timeout)
        finally:
            writer.close()
        if not line:
            raise ConnectionError("shim closed the connection")
        return dict(json.loads(line))
