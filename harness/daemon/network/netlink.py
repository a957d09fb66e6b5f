"""A small rtnetlink client (stdlib only): links, addresses and routes, in any network namespace.

refd configures bridges and veth pairs the way dockerd's libnetwork does through netlink, without
shelling out to ``ip`` and without pyroute2 (whose import alone costs about a tenth of a second of
refd's boot). Only the requests refd needs are here. A netlink socket stays bound to the network
namespace it was created in, so ``Netlink(netns=path)`` opens one from a short-lived thread that has
joined that namespace; every request then acts there, from any thread.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

__all__ = ["Netlink", "NetlinkError", "in_netns"]

T = TypeVar("T")

NETLINK_ROUTE = 0
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_GETADDR = 20, 22
RTM_NEWROUTE, RTM_DELROUTE = 24, 25

IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER = 1, 3, 4, 10
IFLA_PROTINFO, IFLA_LINKINFO, IFLA_NET_NS_FD = 12, 18, 28
IFLA_BRPORT_MODE = 4  # a bridge port's hairpin mode
AF_BRIDGE = 7
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST = 1, 2, 4
RTA_DST, RTA_OIF, RTA_GATEWAY = 1, 4, 5
IFF_UP = 0x1
IFA_F_NODAD = 0x02

_NLMSGHDR = struct.Struct("=IHHII")
_IFINFOMSG = struct.Struct("=BxHiII")
_IFADDRMSG = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")
_RTATTR = struct.Struct("=HH")
_NLA_F_NESTED = 0x8000


class NetlinkError(OSError):
    """A netlink request failed; ``errno`` is the kernel's, the message names the request."""


def _attr(kind: int, payload: bytes) -> bytes:
    length = _RTATTR.size + len(payload)
    return _RTATTR.pack(length, kind) + payload + b"\0" * ((4 - length % 4) % 4)


def _str(kind: int, text: str) -> bytes:
    return _attr(kind, text.encode() + b"\0")


def _u32(kind: int, value: int) -> bytes:
    return _attr(kind, struct.pack("=I", value))


def _parse_attrs(data: bytes) -> dict[int, bytes]:
    attrs: dict[int, bytes] = {}
    offset = 0
    while offset + _RTATTR.size <= len(data):
        length, kind = _RTATTR.unpack_from(data, offset)
        if length < _RTATTR.size:
            break
        attrs[kind & ~_NLA_F_NESTED] = data[offset + _RTATTR.size : offset + length]
        offset += (length + 3) & ~3
    return attrs


def in_netns(path: str, func: Callable[[], T]) -> T:
    """Run ``func`` in a thread that has joined the network namespace at ``path``; return its result.

    setns(CLONE_NEWNET) changes only the calling thread, and the thread ends right after, so the
    daemon's other threads never leave their namespace.
    """
    result: list[Any] = []
    failure: list[BaseException] = []

    def run() -> None:
        from ..runtime import syscalls as sc

        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                sc.setns(fd, sc.CLONE_NEWNET)
            finally:
                os.close(fd)
            result.append(func())
        except BaseException as exc:  # re-raised in the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=run, name="refd-netns", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]  # type: ignore[no-any-return]


class Netlink:
    """One NETLINK_ROUTE socket; ``netns`` (a namespace file) picks the namespace it acts in."""

    def __init__(self, netns: str | None = None) -> None:
        if netns is None:
            self.sock = self._open()
        else:
            self.sock = in_netns(netns, self._open)
        self.netns = netns
        self._seq = 0
        self._lock = threading.Lock()

    @staticmethod
    def _open() -> socket.socket:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        sock.bind((0, 0))
        return sock

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport -----------------------------------------------------------------------------------
    def _request(self, msg_type: int, flags: int, payload: bytes, what: str) -> list[tuple[int, bytes]]:
        with self._lock:
            self._seq += 1
            seq = self._seq
            header = _NLMSGHDR.pack(_NLMSGHDR.size + len(payload), msg_type, flags | NLM_F_REQUEST, seq, 0)
            self.sock.send(header + payload)
            replies: list[tuple[int, bytes]] = []
            while True:
                data = self.sock.recv(65536)
                offset = 0
                while offset + _NLMSGHDR.size <= len(data):
                    length, rtype, rflags, rseq, _ = _NLMSGHDR.unpack_from(data, offset)
                    body = data[offset + _NLMSGHDR.size : offset + length]
                    offset += (length + 3) & ~3
                    if rseq != seq:
                        continue
                    if rtype == NLMSG_ERROR:
                        (code,) = struct.unpack_from("=i", body)
                        if code:
                            raise NetlinkError(-code, f"{what}: {os.strerror(-code)}")
                        return replies
                    if rtype == NLMSG_DONE:
                        return replies
                    replies.append((rtype, body))
                    if not rflags & NLM_F_MULTI and not flags & NLM_F_ACK:
                        return replies

    # -- links ---------------------------------------------------------------------------------------
    def links(self) -> dict[str, int]:
        """Interface name -> index."""
        out: dict[str, int] = {}
        for _, body in self._request(RTM_GETLINK, NLM_F_DUMP, _IFINFOMSG.pack(0, 0, 0, 0, 0), "list links"):
            _, _, index, _, _ = _IFINFOMSG.unpack_from(body)
            attrs = _parse_attrs(body[_IFINFOMSG.size :])
            name = attrs.get(IFLA_IFNAME, b"").rstrip(b"\0").decode()
            out[name] = index
        return out

    def index(self, name: str) -> int:
        """The index of interface ``name``; NetlinkError(ENODEV) if there is none."""
        try:
            replies = self._request(
                RTM_GETLINK, 0, _IFINFOMSG.pack(0, 0, 0, 0, 0) + _str(IFLA_IFNAME, name), f"find link {name}"
            )
        except NetlinkError as exc:
            raise NetlinkError(errno.ENODEV, f"no network interface named {name}") from exc
        _, _, index, _, _ = _IFINFOMSG.unpack_from(replies[0][1])
        return int(index)

    def exists(self, name: str) -> bool:
        try:
            self.index(name)
        except NetlinkError:
            return False
        return True

    def link_info(self, name: str) -> dict[str, Any]:
        """Name, index, flags, MTU, MAC and master of one interface."""
        replies = self._request(
            RTM_GETLINK, 0, _IFINFOMSG.pack(0, 0, 0, 0, 0) + _str(IFLA_IFNAME, name), f"find link {name}"
        )
        body = replies[0][1]
        _, _, index, flags, _ = _IFINFOMSG.unpack_from(body)
        attrs = _parse_attrs(body[_IFINFOMSG.size :])
        mac = attrs.get(IFLA_ADDRESS, b"")
        master = attrs.get(IFLA_MASTER)
        return {
            "name": name,
            "index": index,
            "flags": flags,
            "mtu": struct.unpack("=I", attrs[IFLA_MTU])[0] if IFLA_MTU in attrs else 0,
            "mac": ":".join(f"{b:02x}" for b in mac),
            "master": struct.unpack("=I", master)[0] if master else 0,
        }

    def add_bridge(self, name: str, mtu: int = 0) -> None:
        attrs = _str(IFLA_IFNAME, name) + _attr(IFLA_LINKINFO, _str(IFLA_INFO_KIND, "bridge"))
        if mtu:
            attrs += _u32(IFLA_MTU, mtu)
        self._request(
            RTM_NEWLINK,
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            _IFINFOMSG.pack(0, 0, 0, 0, 0) + attrs,
            f"create bridge {name}",
        )

    def add_veth(self, name: str, peer: str, peer_netns_fd: int | None = None, mtu: int = 0) -> None:
        """A veth pair ``name`` <-> ``peer``; the peer is created directly in ``peer_netns_fd``'s netns."""
        peer_attrs = _str(IFLA_IFNAME, peer)
        if mtu:
            peer_attrs += _u32(IFLA_MTU, mtu)
        if peer_netns_fd is not None:
            peer_attrs += _u32(IFLA_NET_NS_FD, peer_netns_fd)
        peer_msg = _IFINFOMSG.pack(0, 0, 0, 0, 0) + peer_attrs
        info = _str(IFLA_INFO_KIND, "veth") + _attr(IFLA_INFO_DATA, _attr(VETH_INFO_PEER, peer_msg))
        attrs = _str(IFLA_IFNAME, name) + _attr(IFLA_LINKINFO, info)
        if mtu:
            attrs += _u32(IFLA_MTU, mtu)
        self._request(
            RTM_NEWLINK,
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            _IFINFOMSG.pack(0, 0, 0, 0, 0) + attrs,
            f"create veth pair {name}/{peer}",
        )

    def set_link(
        self,
        name: str,
        *,
        up: bool | None = None,
        master: str | None = None,
        mtu: int = 0,
        mac: str = "",
        new_name: str = "",
    ) -> None:
        index = self.index(name)
        flags = change = 0
        if up is not None:
            change = IFF_UP
            flags = IFF_UP if up else 0
        attrs = b""
        if master is not None:
            attrs += _u32(IFLA_MASTER, self.index(master) if master else 0)
        if mtu:
            attrs += _u32(IFLA_MTU, mtu)
        if mac:
            attrs += _attr(IFLA_ADDRESS, bytes(int(x, 16) for x in mac.split(":")))
        if new_name:
            attrs += _str(IFLA_IFNAME, new_name)
        self._request(
            RTM_NEWLINK,
            NLM_F_ACK,
            _IFINFOMSG.pack(0, 0, index, flags, change) + attrs,
            f"configure link {name}",
        )

    def set_hairpin(self, name: str, on: bool = True) -> None:
        """Hairpin mode on the bridge port ``name`` (``bridge link set dev NAME hairpin on``): frames may go
        back out of the port they came in by, as NAT back to the sender needs."""
        index = self.index(name)
        mode = _attr(IFLA_BRPORT_MODE, bytes([1 if on else 0]))
        self._request(
            RTM_SETLINK,
            NLM_F_ACK,
            _IFINFOMSG.pack(AF_BRIDGE, 0, index, 0, 0) + _attr(IFLA_PROTINFO | _NLA_F_NESTED, mode),
            f"set hairpin mode on {name}",
        )

    def delete_link(self, name: str) -> bool:
        """Delete ``name``; False if it did not exist."""
        try:
            index = self.index(name)
        except NetlinkError:
            return False
        try:
            self._request(RTM_DELLINK, NLM_F_ACK, _IFINFOMSG.pack(0, 0, index, 0, 0), f"delete link {name}")
        except NetlinkError as exc:
            if exc.errno == errno.ENODEV:
                return False
            raise
        return True

    # -- addresses and routes ------------------------------------------------------------------------
    def add_address(self, name: str, cidr: str, nodad: bool = False) -> None:
        """Add ``cidr`` (``10.0.0.2/24``) to ``name`` with its broadcast (``ip addr add ... brd +``);
        ``nodad`` skips IPv6 duplicate address detection, as libnetwork's addresses do."""
        iface = ipaddress.ip_interface(cidr)
        index = self.index(name)
        family = socket.AF_INET if iface.version == 4 else socket.AF_INET6
        packed = iface.ip.packed
        attrs = _attr(IFA_LOCAL, packed) + _attr(IFA_ADDRESS, packed)
        if iface.version == 4 and iface.network.prefixlen < 31:
            attrs += _attr(IFA_BROADCAST, iface.network.broadcast_address.packed)
        try:
            self._request(
                RTM_NEWADDR,
                NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
                _IFADDRMSG.pack(family, iface.network.prefixlen, IFA_F_NODAD if nodad else 0, 0, index)
                + attrs,
                f"add address {cidr} to {name}",
            )
        except NetlinkError as exc:
            if exc.errno != errno.EEXIST:
                raise

    def addresses(self, name: str, version: int = 4) -> list[str]:
        """The IPv4 (or IPv6) addresses of ``name`` as CIDRs."""
        index = self.index(name)
        wanted = socket.AF_INET if version == 4 else socket.AF_INET6
        out = []
        for _, body in self._request(
            RTM_GETADDR, NLM_F_DUMP, _IFADDRMSG.pack(wanted, 0, 0, 0, 0), "list addresses"
        ):
            family, prefix, _, _, ifindex = _IFADDRMSG.unpack_from(body)
            if ifindex != index or family != wanted:
                continue
            attrs = _parse_attrs(body[_IFADDRMSG.size :])
            raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
            if raw:
                out.append(f"{ipaddress.ip_address(raw)}/{prefix}")
        return out

    def add_default_route(self, gateway: str, device: str) -> None:
        gw = ipaddress.ip_address(gateway)
        family = socket.AF_INET if gw.version == 4 else socket.AF_INET6
        attrs = _attr(RTA_GATEWAY, gw.packed) + _u32(RTA_OIF, self.index(device))
        self._request(
            RTM_NEWROUTE,
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            _RTMSG.pack(family, 0, 0, 0, 254, 3, 0, 1, 0) + attrs,
            f"add default route via {gateway} dev {device}",
        )

    def delete_default_routes(self, version: int) -> None:
        """Remove every default route of the main table for IPv4 (or IPv6), as ``ip route del default``
        until there is none."""
        family = socket.AF_INET if version == 4 else socket.AF_INET6
        for _ in range(64):
            try:
                self._request(
                    RTM_DELROUTE,
                    NLM_F_ACK,
                    _RTMSG.pack(family, 0, 0, 0, 254, 0, 255, 0, 0),
                    f"delete the IPv{version} default route",
                )
            except NetlinkError as exc:
                if exc.errno == errno.ESRCH:
                    return
                raise


@contextlib.contextmanager
def netlink(netns: str | None = None) -> Iterator[Netlink]:
    """A Netlink socket for the duration of a block."""
    nl = Netlink(netns)
    try:
        yield nl
    finally:
        nl.close()
