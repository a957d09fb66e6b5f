"""The userland proxy's relays for published ports: TCP streams and UDP datagrams on refd's event loop.

Apart from :mod:`.ports` (allocation, the ports document) so that refd boots without asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

from .ports import _family, _pipe

__all__ = ["serve_tcp", "serve_udp"]


class _TcpServer:
    def __init__(self, task: asyncio.Future[Any]) -> None:
        self.task = task

    def close(self) -> None:
        def done(f: asyncio.Future[Any]) -> None:
            if not f.cancelled() and f.exception() is None:
                f.result().close()

        if self.task.done():
            done(self.task)
        else:
            self.task.add_done_callback(done)


def serve_tcp(loop: asyncio.AbstractEventLoop, sock: socket.socket, ip: str, port: int) -> _TcpServer:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(ip, port), 10)
        except (OSError, TimeoutError):
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        for w in (writer, up_writer):
            with contextlib.suppress(Exception):
                w.close()

    return _TcpServer(asyncio.ensure_future(asyncio.start_server(handle, sock=sock)))


class _UdpRelay(asyncio.DatagramProtocol):
    def __init__(self, ip: str, port: int) -> None:
        self.target = (ip, port)
        self.transport: asyncio.DatagramTransport | None = None
        self.clients: dict[Any, socket.socket] = {}
        self.pending: asyncio.Future[Any] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        loop = asyncio.get_running_loop()
        upstream = self.clients.get(addr)
        if upstream is None:
            upstream = socket.socket(_family(self.target[0]), socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
            upstream.connect(self.target)
            self.clients[addr] = upstream

            def back(up: socket.socket = upstream, client: Any = addr) -> None:
                with contextlib.suppress(OSError):
                    answer = up.recv(65536)
                    if self.transport is not None:
                        self.transport.sendto(answer, client)

            loop.add_reader(upstream.fileno(), back)
        with contextlib.suppress(OSError):
            upstream.send(data)

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        for up in self.clients.values():
            with contextlib.suppress(Exception):
                loop.remove_reader(up.fileno())
            up.close()
        if self.transport is not None:
            self.transport.close()


def serve_udp(loop: asyncio.AbstractEventLoop, sock: socket.socket, ip: str, port: int) -> _UdpRelay:
    relay = _UdpRelay(ip, port)
    relay.pending = asyncio.ensure_future(loop.create_datagram_endpoint(lambda: relay, sock=sock))
    return relay
