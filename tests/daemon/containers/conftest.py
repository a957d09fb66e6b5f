"""Helpers for the container domain's tests: records without a daemon, a fake shim on a real socket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

from harness.daemon.containers.model import Container
from harness.daemon.shimstate import SOCKET
from harness.daemon.unixpath import short_unix_path


def make_container(tmp: str, cid: str = "c", name: str = "box", **config: Any) -> Container:
    """A container record rooted under ``tmp`` (nothing on disk until it is saved)."""
    return Container(
        id=(cid * 64)[:64],
        name=f"/{name}",
        created="2024-01-01T00:00:00Z",
        path="sh",
        args=[],
        config=config,
        host_config={"LogConfig": {"Type": "json-file", "Config": {}}},
        image_id="sha256:" + "0" * 64,
        root=os.path.join(tmp, "containers", (cid * 64)[:64]),
    )


class Events:
    """What ``emit`` was called with: (container id, action, attributes)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, str]]] = []

    def __call__(self, c: Container, action: str, **extra: str) -> None:
        self.seen.append((c.id, action, extra))

    @property
    def actions(self) -> list[str]:
        return [action for _, action, _ in self.seen]


#: a fake shim's behaviour: request -> (answer line or None, then bytes to stream) on one connection
ShimScript = Callable[[dict[str, Any]], tuple[dict[str, Any] | None, bytes]]


@contextlib.asynccontextmanager
async def fake_shim(state_dir: str, script: ShimScript) -> AsyncIterator[list[dict[str, Any]]]:
    """A server on ``<state_dir>/shim.sock`` speaking the shim's line protocol; yields the requests seen."""
    os.makedirs(state_dir, exist_ok=True)
    requests: list[dict[str, Any]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = json.loads(await reader.readline())
        requests.append(request)
        answer, stream = script(request)
        if answer is not None:
            writer.write(json.dumps(answer).encode() + b"\n")
        writer.write(stream)
        await writer.drain()
        writer.close()

    with short_unix_path(os.path.join(state_dir, SOCKET)) as address:
        server = await asyncio.start_unix_server(handle, address)
    try:
        yield requests
    finally:
        server.close()
        await server.wait_closed()
