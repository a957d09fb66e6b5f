"""Published ports: dockerd's port allocation and a userland proxy (docker-proxy's job) in refd.

``PortBindings`` (``-p``) and ``PublishAllPorts`` (``-P``) become host sockets bound in refd's own
network namespace that relay to the container's address: reachable from the host on loopback as
with dockerd's default ``userland-proxy``. Ephemeral host ports come from
``ip_local_port_range`` (dockerd's allocator), the same port for the IPv4 and IPv6 wildcard pair.
"""

from __future__ import annotations

import contextlib
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ApiError

if TYPE_CHECKING:
    import asyncio
else:
    from ..lazy import asyncio  # imported on first use: refd answers its first /_ping without it

__all__ = ["Binding", "PortError", "Proxy", "exposed_ports", "plan_bindings"]


class PortError(ApiError):
    """A host port could not be allocated or bound (dockerd: ``port is already allocated``)."""


@dataclass
class Binding:
    container_port: int
    proto: str
    host_ip: str
    host_port: int

    @property
    def key(self) -> str:
        return f"{self.container_port}/{self.proto}"


def _split(key: str) -> tuple[int, str]:
    port, _, proto = key.partition("/")
    return int(port), proto or "tcp"


def exposed_ports(config: dict[str, Any], host_config: dict[str, Any]) -> list[str]:
    """Every port key the container exposes or publishes, sorted like dockerd's map."""
    keys = set((config.get("ExposedPorts") or {}).keys()) | set(
        (host_config.get("PortBindings") or {}).keys()
    )
    return sorted(keys)  # dockerd's JSON map order: the keys as strings


def _port_range() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as fh:
            low, high = (int(x) for x in fh.read().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


def _ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind(("::", 0))
        return True
    except OSError:
        return False


@dataclass
class Proxy:
    """The listening sockets and relay tasks of one container's published ports."""

    target_ip: str
    bindings: list[Binding] = field(default_factory=list)
    sockets: list[socket.socket] = field(default_factory=list)
    servers: list[Any] = field(default_factory=list)

    def close(self) -> None:
        for server in self.servers:
            with contextlib.suppress(Exception):
                server.close()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.close()
        self.servers.clear()
        self.sockets.clear()


class PortAllocator:
    """Host ports in use by refd's proxies, per protocol (dockerd's portallocator)."""

    def __init__(self) -> None:
        self.used: set[tuple[str, str, int]] = set()
        self.next: dict[str, int] = {}

    def _conflicts(self, proto: str, ip: str, port: int) -> bool:
        """Same port and protocol, same address family, and the same address or a wildcard."""
        v6 = ":" in ip
        return any(
            p == proto
            and q == port
            and (":" in i) == v6
            and (i == ip or ip in ("0.0.0.0", "::") or i in ("0.0.0.0", "::"))
            for p, i, q in self.used
        )

    def take(self, proto: str, ip: str, port: int) -> None:
        if self._conflicts(proto, ip, port):
            raise PortError(500, f"Bind for {ip}:{port} failed: port is already allocated")
        self.used.add((proto, ip, port))

    def ephemeral(self, proto: str, ips: list[str]) -> int:
        low, high = _port_range()
        start = self.next.get(proto, low)
        for offset in range(high - low + 1):
            port = low + (start - low + offset) % (high - low + 1)
            if any(self._conflicts(proto, ip, port) for ip in ips):
                continue
            if not all(_can_bind(proto, ip, port) for ip in ips):
                continue
            self.next[proto] = port + 1
            return port
        raise PortError(500, f"no free host port in {low}-{high}")

    def release(self, proto: str, ip: str, port: int) -> None:
        self.used.discard((proto, ip, port))


def _family(ip: str) -> int:
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def _can_bind(proto: str, ip: str, port: int) -> bool:
    try:
        with _socket(proto, ip) as s:
            s.bind((ip, port))
        return True
    except OSError:
        return False


def _socket(proto: str, ip: str) -> socket.socket:
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    s = socket.socket(_family(ip), kind | socket.SOCK_CLOEXEC)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if ":" in ip:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    return s


def plan_bindings(
    allocator: PortAllocator,
    config: dict[str, Any],
    host_config: dict[str, Any],
    default_ip: str = "0.0.0.0",
    ipv6_hosts: bool = True,
) -> list[Binding]:
    """The host side of every published port, allocated (ephemeral ports chosen), in dockerd's order.

    ``ipv6_hosts`` False (no userland proxy and a container without an IPv6 address): IPv6 host addresses
    are left out, as dockerd 28 does ('Cannot map from IPv6 to an IPv4-only container')."""
    wanted = dict(host_config.get("PortBindings") or {})
    if host_config.get("PublishAllPorts"):
        for key in exposed_ports(config, host_config):
            wanted.setdefault(key, [{"HostIp": "", "HostPort": ""}])
    out: list[Binding] = []
    v6 = ipv6_hosts and _ipv6_available()
    try:
        for key in exposed_ports(config, host_config):
            port, proto = _split(key)
            for spec in wanted.get(key) or []:
                host_ip = (spec or {}).get("HostIp") or ""
                text = str((spec or {}).get("HostPort") or "")
                ips = (
                    [host_ip]
                    if host_ip
                    else [default_ip, *(["::"] if v6 and default_ip == "0.0.0.0" else [])]
                )
                if not ipv6_hosts:
                    ips = [ip for ip in ips if ":" not in ip]
                    if not ips:
                        continue
                if text and "-" in text:
                    low, _, high = text.partition("-")
                    candidates = list(range(int(low), int(high) + 1))
                    host_port = next(
                        (
                            p
                            for p in candidates
                            if not any(allocator._conflicts(proto, ip, p) for ip in ips)
                            and all(_can_bind(proto, ip, p) for ip in ips)
                        ),
                        0,
                    )
                    if not host_port:
                        raise PortError(500, f"Bind for {ips[0]}:{text} failed: port is already allocated")
                elif text:
                    host_port = int(text)
                else:
                    host_port = allocator.ephemeral(proto, ips)
                for ip in ips:
                    allocator.take(proto, ip, host_port)
                    out.append(Binding(port, proto, ip, host_port))
    except BaseException:
        for b in out:
            allocator.release(b.proto, b.host_ip, b.host_port)
        raise
    return out


def ports_document(
    config: dict[str, Any], host_config: dict[str, Any], bindings: list[Binding]
) -> dict[str, Any]:
    """``NetworkSettings.Ports`` of a running container."""
    doc: dict[str, Any] = {}
    for key in exposed_ports(config, host_config):
        mine = [b for b in bindings if b.key == key]
        doc[key] = [{"HostIp": b.host_ip, "HostPort": str(b.host_port)} for b in mine] or None
    return doc


def port_summary(ports: dict[str, Any]) -> list[dict[str, Any]]:
    """``Ports`` of ``GET /containers/json``: one entry per binding, or per unpublished exposed port."""
    out: list[dict[str, Any]] = []
    for key in sorted(ports):
        port, _, proto = key.partition("/")
        entries = ports[key]
        if not entries:
            out.append({"PrivatePort": int(port), "Type": proto or "tcp"})
            continue
        for entry in entries:
            out.append(
                {
                    "IP": entry["HostIp"],
                    "PrivatePort": int(port),
                    "PublicPort": int(entry["HostPort"]),
                    "Type": proto or "tcp",
                }
            )
    return out


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()


def start_proxy(target_ip: str, bindings: list[Binding], target_ip6: str = "", relay: bool = True) -> Proxy:
    """Bind every host socket now (errors surface at start, like dockerd) and relay on the loop; an IPv6
    host address relays to the container's IPv6 address when it has one (docker-proxy's choice).

    ``relay`` False (``--userland-proxy=false``): the sockets only hold the ports (TCP ones listening with
    no backlog, as dockerd 28 keeps them); NAT carries the traffic."""
    from .relay import serve_tcp, serve_udp

    proxy = Proxy(target_ip, bindings)
    loop = asyncio.get_running_loop()
    try:
        for b in bindings:
            sock = _socket(b.proto, b.host_ip)
            proxy.sockets.append(sock)
            try:
                sock.bind((b.host_ip, b.host_port))
            except OSError as exc:
                reason = (exc.strerror or str(exc)).lower()
                raise PortError(
                    500,
                    f"failed to bind host port for {b.host_ip}:{b.host_port}:{target_ip}:{b.key}: {reason}",
                ) from None
            target = target_ip6 if target_ip6 and ":" in b.host_ip else target_ip
            if not relay:
                if b.proto == "tcp":
                    sock.listen(0)
                continue
            if b.proto == "tcp":
                sock.listen(128)
                proxy.servers.append(serve_tcp(loop, sock, target, b.container_port))
            else:
                proxy.servers.append(serve_udp(loop, sock, target, b.container_port))
    except BaseException:
        proxy.close()
        raise
    return proxy
