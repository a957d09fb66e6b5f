"""Attaching: detach keys as moby/term reads them, the escape proxy, the client<->shim relay, and
connecting to a container before or after it starts."""

from __future__ import annotations

import asyncio
import socket
from types import SimpleNamespace
from typing import Any

import pytest

from harness.daemon.containers.attach import (
    DEFAULT_DETACH_KEYS,
    Detached,
    EscapeProxy,
    attach_when_running,
    detach_key_bytes,
    relay,
)

from .conftest import fake_shim, make_container


@pytest.mark.parametrize(
    ("text", "keys"),
    [
        ("ctrl-p,ctrl-q", DEFAULT_DETACH_KEYS),
        ("a,b", b"ab"),
        ("ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_", bytes([0, 27, 28, 29, 30, 31])),
        ("ctrl-z", b"\x1a"),
    ],
)
def test_detach_keys(text: str, keys: bytes) -> None:
    assert detach_key_bytes(text) == keys


@pytest.mark.parametrize("text", ["ctrl-A", "ctrl-1", "ctrl-pq", "ab", "shift-a"])
def test_bad_detach_keys(text: str) -> None:
    with pytest.raises(ValueError):
        detach_key_bytes(text)


def test_escape_proxy_withholds_a_partial_sequence_and_detaches_on_the_whole() -> None:
    proxy = EscapeProxy(b"\x10\x11")
    assert proxy.feed(b"ab\x10") == b"ab"  # the ctrl-p is held back
    assert proxy.feed(b"c") == b"\x10c"  # not followed by ctrl-q: it goes through after all
    assert proxy.feed(b"\x10\x10") == b"\x10"  # a second ctrl-p restarts the sequence
    with pytest.raises(Detached) as err:
        proxy.feed(b"\x11")
    assert err.value.args[0] == b""
    with pytest.raises(Detached) as err:
        EscapeProxy(b"\x10\x11").feed(b"xy\x10\x11z")
    assert err.value.args[0] == b"xy"


async def _pair() -> tuple[asyncio.StreamReader, asyncio.StreamWriter, socket.socket]:
    ours, theirs = socket.socketpair()
    reader, writer = await asyncio.open_connection(sock=ours)
    theirs.setblocking(False)
    return reader, writer, theirs


async def _recv(sock: socket.socket, size: int) -> bytes:
    loop = asyncio.get_running_loop()
    data = b""
    while len(data) < size:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, size - len(data)), 5)
        if not chunk:
            break
        data += chunk
    return data


def test_relay_both_ways_then_output_until_the_container_ends() -> None:
    async def main() -> bool:
        c_reader, c_writer, client = await _pair()
        s_reader, s_writer, shim = await _pair()
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(relay(c_reader, c_writer, s_reader, s_writer, use_stdin=True))
        await loop.sock_sendall(client, b"input")
        assert await _recv(shim, 5) == b"input"
        client.shutdown(socket.SHUT_WR)  # the client is done sending: output still flows
        assert await _recv(shim, 1) == b""  # its EOF reaches the process's stdin
        await loop.sock_sendall(shim, b"late output")
        assert await _recv(client, 11) == b"late output"
        shim.close()  # the container's output ends
        detached = await asyncio.wait_for(task, 5)
        c_writer.close()
        client.close()
        return detached

    assert asyncio.run(main()) is False


def test_relay_holds_the_stream_open_until_the_output_end_is_handled() -> None:
    async def main() -> None:
        c_reader, c_writer, client = await _pair()
        s_reader, s_writer, shim = await _pair()
        handled = asyncio.Event()
        task = asyncio.ensure_future(
            relay(c_reader, c_writer, s_reader, s_writer, use_stdin=False, output_ended=handled.wait)
        )
        await asyncio.get_running_loop().sock_sendall(shim, b"out")
        assert await _recv(client, 3) == b"out"
        shim.close()  # the container's output ends, its exit not handled yet
        await asyncio.sleep(0)
        done, _ = await asyncio.wait([task], timeout=0.2)
        assert not done  # the client's stream stays open meanwhile
        handled.set()
        assert await asyncio.wait_for(task, 5) is False
        c_writer.close()
        assert await _recv(client, 1) == b""
        client.close()

    asyncio.run(main())


def test_relay_detach_keys_end_the_attach_and_pass_what_came_before() -> None:
    async def main() -> bool:
        c_reader, c_writer, client = await _pair()
        s_reader, s_writer, shim = await _pair()
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(
            relay(c_reader, c_writer, s_reader, s_writer, use_stdin=True, detach_keys=DEFAULT_DETACH_KEYS)
        )
        await loop.sock_sendall(client, b"ls\x10\x11")
        detached = await asyncio.wait_for(task, 5)
        assert await _recv(shim, 2) == b"ls"
        c_writer.close()
        client.close()
        shim.close()
        return detached

    assert asyncio.run(main()) is True


def test_relay_without_stdin_drops_the_clients_input() -> None:
    async def main() -> None:
        c_reader, c_writer, client = await _pair()
        s_reader, s_writer, shim = await _pair()
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(relay(c_reader, c_writer, s_reader, s_writer, use_stdin=False))
        await loop.sock_sendall(client, b"ignored")
        await loop.sock_sendall(shim, b"out")
        assert await _recv(client, 3) == b"out"
        shim.shutdown(socket.SHUT_WR)  # the container's output ends
        await asyncio.wait_for(task, 5)
        assert await _recv(shim, 7) == b""  # the client's bytes never reached the process
        shim.close()
        c_writer.close()
        client.close()

    asyncio.run(main())


def test_attach_to_a_created_container_waits_for_its_start(tmp_path: Any) -> None:
    c = make_container(str(tmp_path))
    state_dir = str(tmp_path / "state")
    manager = SimpleNamespace(pending_attach={}, state_dir=lambda _: state_dir)
    received: list[bytes] = []

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.read())
        writer.close()

    async def main() -> list[dict[str, Any]]:
        async with fake_shim(state_dir, lambda req: (None, b"hello")) as requests:
            attach = asyncio.ensure_future(attach_when_running(manager, c, {"op": "attach"}, pump))  # type: ignore[arg-type]
            await asyncio.sleep(0)
            assert not attach.done() and len(manager.pending_attach[c.id]) == 1
            for connect in manager.pending_attach.pop(c.id):  # what a start does before the process runs
                await connect(state_dir)
            await asyncio.wait_for(attach, 5)
            return requests

    assert asyncio.run(main()) == [{"op": "attach"}]
    assert received == [b"hello"]


def test_attach_ends_when_the_start_fails(tmp_path: Any) -> None:
    c = make_container(str(tmp_path))
    manager = SimpleNamespace(pending_attach={}, state_dir=lambda _: "/nonexistent")

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise AssertionError("no stream for a container that did not start")

    async def main() -> None:
        attach = asyncio.ensure_future(attach_when_running(manager, c, {"op": "attach"}, pump))  # type: ignore[arg-type]
        await asyncio.sleep(0)
        for connect in manager.pending_attach.pop(c.id):
            await connect(None)
        await asyncio.wait_for(attach, 5)

    asyncio.run(main())


def test_attach_to_a_running_container_connects_at_once(tmp_path: Any) -> None:
    c = make_container(str(tmp_path))
    c.set_running(1)
    state_dir = str(tmp_path / "state")
    manager = SimpleNamespace(pending_attach={}, state_dir=lambda _: state_dir)
    received: list[bytes] = []

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.read())
        writer.close()

    async def main() -> None:
        async with fake_shim(state_dir, lambda req: (None, b"now")):
            await asyncio.wait_for(attach_when_running(manager, c, {"op": "attach"}, pump), 5)  # type: ignore[arg-type]

    asyncio.run(main())
    assert received == [b"now"] and manager.pending_attach == {}
