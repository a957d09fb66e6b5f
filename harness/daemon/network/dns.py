"""The embedded DNS server (dockerd's 127.0.0.11) for containers on user-defined networks.

One UDP socket per sandbox, opened inside the container's network namespace on 127.0.0.11:53 and
served by refd's event loop. Names of containers on a shared user-defined network (container name,
aliases, short id, and ``name.network``) answer with their address on that network; everything
else is forwarded to the host's nameservers (ExtServers), SERVFAIL if none answers, as dockerd does.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Callable
from typing import Any

from .netlink import in_netns

__all__ = ["DNSServer", "parse_query", "reply"]

_HEADER = struct.Struct("!HHHHHH")
TYPE_A, TYPE_AAAA, CLASS_IN = 1, 28, 1
RCODE_SERVFAIL, RCODE_NXDOMAIN = 2, 3


def parse_query(data: bytes) -> tuple[int, int, str, int, int, int]:
    """(id, flags, name, qtype, qclass, end of question) of a query; ValueError if malformed."""
    if len(data) < _HEADER.size:
        raise ValueError("short DNS message")
    qid, flags, qdcount, _, _, _ = _HEADER.unpack_from(data)
    if qdcount != 1:
        raise ValueError("one question expected")
    labels, offset = [], _HEADER.size
    while True:
        if offset >= len(data):
            raise ValueError("truncated name")
        length = data[offset]
        offset += 1
        if length == 0:
            break
        if length > 63 or offset + length > len(data):
            raise ValueError("bad label")
        labels.append(data[offset : offset + length].decode("ascii", "replace"))
        offset += length
    if offset + 4 > len(data):
        raise ValueError("truncated question")
    qtype, qclass = struct.unpack_from("!HH", data, offset)
    return qid, flags, ".".join(labels), qtype, qclass, offset + 4


def reply(query: bytes, end: int, addresses: list[str], rcode: int = 0, ttl: int = 600) -> bytes:
    """A response to ``query`` with A records (AAAA ones for IPv6 addresses; the question echoed, name by
    pointer)."""
    qid, flags = struct.unpack_from("!HH", query)
    rd = flags & 0x0100
    out_flags = 0x8000 | 0x0400 * 0 | rd | 0x0080 | rcode  # QR, RD copied, RA
    header = _HEADER.pack(qid, out_flags, 1, len(addresses), 0, 0)
    answers = b"".join(_record(a, ttl) for a in addresses)
    return header + query[_HEADER.size : end] + answers


def _record(address: str, ttl: int) -> bytes:
    if ":" in address:
        return struct.pack("!HHHIH", 0xC00C, TYPE_AAAA, CLASS_IN, ttl, 16) + socket.inet_pton(
            socket.AF_INET6, address
        )
    return struct.pack("!HHHIH", 0xC00C, TYPE_A, CLASS_IN, ttl, 4) + socket.inet_aton(address)


def answers_for(qtype: int, addresses: list[str]) -> list[str]:
    """The addresses a query of ``qtype`` is answered with: IPv4 ones for A, IPv6 ones for AAAA, none
    for another type (a known name still gets its empty answer, not a forward)."""
    if qtype == TYPE_A:
        return [a for a in addresses if ":" not in a]
    if qtype == TYPE_AAAA:
        return [a for a in addresses if ":" in a]
    return []


class DNSServer(asyncio.DatagramProtocol):
    """Answers one sandbox's queries; ``lookup(name)`` gives the addresses of known names."""

    def __init__(self, lookup: Callable[[str], list[str] | None], upstreams: list[str]) -> None:
        self.lookup = lookup
        self.upstreams = upstreams
        self.transport: asyncio.DatagramTransport | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.pending: asyncio.Future[Any] | None = None

    @classmethod
    def serve(cls, netns: str, lookup: Callable[[str], list[str] | None], upstreams: list[str]) -> DNSServer:
        """Bind 127.0.0.11:53 inside ``netns`` now (queries queue in the socket) and serve it on the loop."""

        def bind() -> socket.socket:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            sock.bind(("127.0.0.11", 53))
            return sock

        sock = in_netns(netns, bind)
        server = cls(lookup, upstreams)
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(loop.create_datagram_endpoint(lambda: server, sock=sock))
        server.pending = task
        return server

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def close(self) -> None:
        if self.pending is not None and not self.pending.done():
            self.pending.add_done_callback(lambda f: f.exception() or f.result()[0].close())
        if self.transport is not None:
            self.transport.close()
        for task in self.tasks:
            task.cancel()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            _, _, name, qtype, qclass, end = parse_query(data)
        except ValueError:
            return
        known = self.lookup(name.rstrip(".").lower()) if qclass == CLASS_IN else None
        if known is not None:
            self._send(reply(data, end, answers_for(qtype, known)), addr)
            return
        task = asyncio.ensure_future(self._forward(data, end, addr))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _send(self, data: bytes, addr: Any) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data, addr)

    async def _forward(self, data: bytes, end: int, addr: Any) -> None:
        loop = asyncio.get_running_loop()
        for upstream in self.upstreams:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
            try:
                await loop.sock_connect(sock, (upstream, 53))
                await loop.sock_sendall(sock, data)
                answer = await asyncio.wait_for(loop.sock_recv(sock, 4096), 2)
            except (OSError, TimeoutError):
                continue
            finally:
                sock.close()
            if answer[:2] == data[:2]:
                self._send(answer, addr)
                return
        with contextlib.suppress(Exception):
            self._send(reply(data, end, [], RCODE_SERVFAIL), addr)
