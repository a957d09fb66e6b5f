"""gRPC over h2 between two refd Peers on a socket pair: unary and streaming calls, errors, big messages."""

from __future__ import annotations

import asyncio
import gzip
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from harness.daemon.buildkit.grpc import NOT_FOUND, UNIMPLEMENTED, Call, GrpcError, Peer


async def _pair(handlers: dict[str, Callable[[Call], Awaitable[None]]]) -> tuple[Peer, Peer, list[Any]]:
    a, b = socket.socketpair()
    sr, sw = await asyncio.open_connection(sock=a)
    cr, cw = await asyncio.open_connection(sock=b)
    server = Peer(sr, sw, client_side=False, handlers=handlers)
    client = Peer(cr, cw, client_side=True)
    await server.start()
    await client.start()
    tasks = [asyncio.ensure_future(server.serve()), asyncio.ensure_future(client.serve())]
    return server, client, tasks


async def _close(server: Peer, client: Peer, tasks: list[Any]) -> None:
    await client.close()
    await server.close()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def test_unary_stream_and_errors() -> None:
    async def echo(call: Call) -> None:
        req = await call.recv()
        assert req is not None
        await call.send(req[::-1])

    async def count(call: Call) -> None:
        await call.recv()
        for i in range(3):
            await call.send(bytes([i]))

    async def fail(call: Call) -> None:
        await call.recv()
        raise GrpcError(NOT_FOUND, "no such thing: ü%")

    async def main() -> None:
        server, client, tasks = await _pair({"/t.S/Echo": echo, "/t.S/Count": count, "/t.S/Fail": fail})
        try:
            assert await client.unary("/t.S/Echo", b"abc") == b"cba"
            call = await client.open("/t.S/Count")
            await call.send(b"")
            await call.finish()
            got = []
            while (msg := await call.recv()) is not None:
                got.append(msg)
            assert got == [b"\x00", b"\x01", b"\x02"]
            with pytest.raises(GrpcError) as info:
                await client.unary("/t.S/Fail", b"")
            assert (info.value.code, info.value.message) == (NOT_FOUND, "no such thing: ü%")
            with pytest.raises(GrpcError) as info:
                await client.unary("/other.Service/Nope", b"")
            assert (info.value.code, info.value.message) == (UNIMPLEMENTED, "unknown service other.Service")
        finally:
            await _close(server, client, tasks)

    asyncio.run(main())


def test_messages_beyond_the_flow_control_window_and_gzip() -> None:
    big = bytes(range(256)) * 4096  # 1 MiB: more than HTTP/2's initial 64 KiB window

    async def size(call: Call) -> None:
        req = await call.recv()
        assert req is not None
        await call.send(struct.pack(">I", len(req)) + req[:4])
        await call.send(big)

    async def main() -> None:
        server, client, tasks = await _pair({"/t.S/Size": size})
        try:
            call = await client.open("/t.S/Size")
            await call.send(big)
            await call.finish()
            first = await call.recv()
            assert first == struct.pack(">I", len(big)) + big[:4]
            assert await call.recv() == big
            # a gzip-flagged message is inflated
            raw = gzip.compress(b"zipped")
            call2 = await client.open("/t.S/Size")
            await client._send_data(call2.stream_id, struct.pack(">BI", 1, len(raw)) + raw)
            await call2.finish()
            assert await call2.recv() == struct.pack(">I", 6) + b"zipp"
        finally:
            await _close(server, client, tasks)

    asyncio.run(main())


def test_a_closed_connection_fails_open_calls() -> None:
    async def hang(call: Call) -> None:
        await call.recv()
        await asyncio.sleep(3600)

    async def main() -> None:
        server, client, tasks = await _pair({"/t.S/Hang": hang})
        call = await client.open("/t.S/Hang")
        await call.send(b"x")
        await server.close()
        with pytest.raises(GrpcError):
            while await call.recv() is not None:
                pass
        await _close(server, client, tasks)

    asyncio.run(main())
