"""Attaching a client's streams to a container's (or an exec's) stdio, as moby's ``daemon/attach.go``
and ``container/stream`` do it: detach keys, the relay between client and shim, and connecting to a
container that has not started yet.

The HTTP side (hijacking, the response head, websocket framing) stays in the API handlers; what they
share lives here, below them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from .shimclient import ShimConnection

if TYPE_CHECKING:
    import asyncio
else:
    from ..lazy import asyncio  # imported on first use: refd answers its first /_ping without it

if TYPE_CHECKING:
    from .lifecycle import ContainerManager
    from .model import Container

__all__ = [
    "DEFAULT_DETACH_KEYS",
    "Detached",
    "EscapeProxy",
    "Pump",
    "attach_when_running",
    "background",
    "detach_key_bytes",
    "relay",
]

DEFAULT_DETACH_KEYS = b"\x10\x11"  # ctrl-p, ctrl-q

#: strong references to fire-and-forget tasks (asyncio keeps only weak ones)
_BACKGROUND: set[asyncio.Future[Any]] = set()

#: what runs on a shim connection once it is open: (shim's reader, shim's writer)
Pump = Callable[["asyncio.StreamReader", "asyncio.StreamWriter"], Awaitable[None]]


def background(coro: Coroutine[Any, Any, Any]) -> asyncio.Future[Any]:
    """Run ``coro`` as a task nobody awaits, kept alive until it ends."""
    task = asyncio.ensure_future(coro)
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)
    return task


def detach_key_bytes(text: str) -> bytes:
    """moby/term ToBytes: ``ctrl-p,ctrl-q`` -> b"\\x10\\x11"; ValueError for anything else."""
    out = bytearray()
    for key in text.split(","):
        if len(key) == 1:
            out.append(ord(key))
            continue
        if not key.startswith("ctrl-") or len(key) != 6:  # case-sensitive: "ctrl-A" is refused
            raise ValueError(key)
        code = key[5]
        if "a" <= code <= "z":
            out.append(ord(code) - ord("a") + 1)
        elif code in "@[\\]^_":
            out.append({"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}[code])
        else:
            raise ValueError(key)
    return bytes(out)


class Detached(Exception):
    """The client typed its detach sequence (moby term.EscapeError); ``args[0]``: what came before it."""


class EscapeProxy:
    """moby/term's EscapeProxy: withholds a partial detach sequence, raises Detached on a full one."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.matched = 0

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        for byte in data:
            if byte == self.keys[self.matched]:
                self.matched += 1
                if self.matched == len(self.keys):
                    raise Detached(bytes(out))
                continue
            if self.matched:  # a broken sequence: what was held back goes through after all
                out += self.keys[: self.matched]
                self.matched = 0
                if byte == self.keys[0]:
                    self.matched = 1
                    continue
            out.append(byte)
        return bytes(out)


async def relay(
    client_reader: asyncio.StreamReader,
    client_writer: asyncio.StreamWriter,
    shim_reader: asyncio.StreamReader,
    shim_writer: asyncio.StreamWriter,
    use_stdin: bool,
    detach_keys: bytes | None = None,
    end_with_stdin: bool = False,
    output_ended: Callable[[], Awaitable[Any]] | None = None,
) -> bool:
    """Pump both ways until the container's output ends; True if the client detached.

    The client's input goes to the process's stdin (through the escape proxy with ``detach_keys``);
    when the client closes its side, output keeps flowing until the process ends, unless
    ``end_with_stdin``: then the stream ends with the client's input, as moby's CopyStreams closes
    stdout and stderr when stdin is done for a terminal or a process whose stdin stays open. When the
    output ends, ``output_ended`` is awaited before the stream does.
    """
    proxy = EscapeProxy(detach_keys) if detach_keys else None
    detached = False

    async def down() -> None:
        while data := await shim_reader.read(65536):
            client_writer.write(data)
            await client_writer.drain()
        if output_ended is not None:
            await output_ended()

    async def up() -> None:
        nonlocal detached
        while data := await client_reader.read(65536):
            if not use_stdin:
                continue
            if proxy is not None:
                try:
                    data = proxy.feed(data)
                except Detached as exc:
                    if exc.args[0]:
                        shim_writer.write(exc.args[0])
                        await shim_writer.drain()
                    detached = True
                    return
            shim_writer.write(data)
            await shim_writer.drain()
        with contextlib.suppress(OSError):
            if shim_writer.can_write_eof():
                shim_writer.write_eof()

    tasks = [asyncio.ensure_future(down()), asyncio.ensure_future(up())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if tasks[1] in done and not tasks[0].done() and not detached and not (end_with_stdin and use_stdin):
            await tasks[0]  # client closed its side: keep delivering output until the container ends
    except (ConnectionError, OSError):
        pass
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        shim_writer.close()
    return detached


async def attach_when_running(
    manager: ContainerManager, c: Container, request: dict[str, Any], pump: Pump
) -> None:
    """Open an ``attach`` connection to ``c``'s shim and run ``pump`` on it; returns once it is done.

    A container that is not running yet gets the connection when it starts, before its process runs,
    so no output is lost (``docker run``); if that start fails, this returns without running ``pump``.
    """
    done = asyncio.Event()

    async def connect(state_dir: str | None) -> None:
        if state_dir is None:  # the start failed: end the stream
            done.set()
            return
        reader, writer = await ShimConnection.open(state_dir, request)

        async def run() -> None:
            try:
                await pump(reader, writer)
            finally:
                done.set()

        background(run())  # a start hands the connection over and goes on: the pump is not its to wait

    if c.running:
        await connect(manager.state_dir(c))
    else:
        manager.pending_attach.setdefault(c.id, []).append(connect)
    await done.wait()
