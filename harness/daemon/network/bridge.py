"""The bridge driver's kernel side: the Linux bridge of a network and the veth pair of each endpoint."""

from __future__ import annotations

import contextlib
import os
import secrets

from .netlink import Netlink, NetlinkError

__all__ = [
    "BridgeError",
    "attach_endpoint",
    "detach_endpoint",
    "ensure_bridge",
    "remove_bridge",
    "set_gateways",
]


class BridgeError(Exception):
    """Setting up a bridge or an endpoint failed; the message names the device and the fix."""


def ensure_bridge(
    nl: Netlink,
    name: str,
    gateway_cidr: str,
    mtu: int = 0,
    create: bool = True,
    gateway6_cidr: str = "",
    hairpin: bool = False,
) -> None:
    """The bridge ``name`` exists, is up and holds ``gateway_cidr`` (and ``gateway6_cidr`` for IPv6).

    ``hairpin`` (``--userland-proxy=false``): loopback addresses route to the bridge (``route_localnet``,
    libnetwork's setupLoopbackAddressesRouting), so ``127.0.0.1:<port>`` DNATs to a container, and bridged
    frames go through iptables (``bridge-nf-call-iptables``, where br_netfilter is loaded)."""
    if not nl.exists(name):
        if not create:
            raise BridgeError(f"bridge device with non default name {name} must be created manually")
        try:
            nl.add_bridge(name, mtu)
        except NetlinkError as exc:
            raise BridgeError(f"failed to create bridge {name} via netlink: {exc}") from None
    # dockerd leaves IPv6 off on IPv4-only bridges; an IPv6 address needs it on first
    _sysctl(f"net/ipv6/conf/{name}/disable_ipv6", "0" if gateway6_cidr else "1")
    try:
        if gateway_cidr and gateway_cidr not in nl.addresses(name):
            nl.add_address(name, gateway_cidr)
        if gateway6_cidr and gateway6_cidr not in nl.addresses(name, version=6):
            nl.add_address(name, gateway6_cidr, nodad=True)
        nl.set_link(name, up=True)
    except NetlinkError as exc:
        raise BridgeError(f"failed to configure bridge {name}: {exc}") from None
    if hairpin:
        _sysctl(f"net/ipv4/conf/{name}/route_localnet", "1")
        _sysctl("net/bridge/bridge-nf-call-iptables", "1")


def remove_bridge(nl: Netlink, name: str) -> None:
    with contextlib.suppress(NetlinkError):
        nl.delete_link(name)


def attach_endpoint(
    host: Netlink,
    sandbox: str,
    bridge: str,
    ifname: str,
    cidr: str,
    gateway: str | None,
    mtu: int = 0,
    mac: str = "",
    cidr6: str = "",
    gateway6: str | None = None,
    hairpin: bool = False,
) -> str:
    """A veth pair from ``bridge`` into the sandbox as ``ifname`` with ``cidr`` (and ``cidr6`` on an IPv6
    network, and the MAC ``mac``, when given); returns its MAC."""
    host_side = "veth" + secrets.token_hex(4)[:7]
    fd = os.open(sandbox, os.O_RDONLY | os.O_CLOEXEC)
    try:
        host.add_veth(host_side, ifname, peer_netns_fd=fd, mtu=mtu)
    except NetlinkError as exc:
        raise BridgeError(
            f"failed to add the host ({host_side}) <=> sandbox ({ifname}) pair: {exc}"
        ) from None
    finally:
        os.close(fd)
    try:
        host.set_link(host_side, master=bridge, up=True)
        if hairpin:  # --userland-proxy=false: a container reaches its own published port (setHairpinMode)
            host.set_hairpin(host_side)
        with Netlink(sandbox) as inside:
            if mac:
                inside.set_link(ifname, mac=mac)
            inside.add_address(ifname, cidr)
            if cidr6:
                inside.add_address(ifname, cidr6, nodad=True)
            else:
                _sysctl_in(sandbox, f"net/ipv6/conf/{ifname}/disable_ipv6", "1")  # IPv4-only, like dockerd
            inside.set_link(ifname, up=True)
            for via in (gateway, gateway6):
                if via:
                    with contextlib.suppress(NetlinkError):  # a second network's gateway is not the default
                        inside.add_default_route(via, ifname)
            return str(inside.link_info(ifname)["mac"])
    except (NetlinkError, OSError) as exc:
        with contextlib.suppress(NetlinkError):
            host.delete_link(host_side)
        raise BridgeError(f"failed to configure endpoint {ifname} on {bridge}: {exc}") from None


def set_gateways(sandbox: str, gateway4: tuple[str, str] | None, gateway6: tuple[str, str] | None) -> None:
    """libnetwork's updateGateway: the sandbox's default routes go, then each family's is set again via
    ``(gateway, endpoint address)``: through the interface holding that address."""
    with Netlink(sandbox) as inside:
        for version in (4, 6):
            with contextlib.suppress(NetlinkError):
                inside.delete_default_routes(version)
        for version, choice in ((4, gateway4), (6, gateway6)):
            if choice is None:
                continue
            via, address = choice
            for name in inside.links():
                if name != "lo" and any(a.split("/")[0] == address for a in inside.addresses(name, version)):
                    with contextlib.suppress(NetlinkError):
                        inside.add_default_route(via, name)
                    break


def detach_endpoint(sandbox: str, address: str) -> None:
    """Delete the sandbox's interface holding ``address`` (its host-side peer goes with it)."""
    try:
        with Netlink(sandbox) as inside:
            for name in inside.links():
                if name != "lo" and any(a.split("/")[0] == address for a in inside.addresses(name)):
                    inside.delete_link(name)
    except (NetlinkError, OSError):
        pass


def next_ifname(sandbox: str) -> str:
    """The first free ``ethN`` in the sandbox."""
    with Netlink(sandbox) as inside:
        names = set(inside.links())
    n = 0
    while f"eth{n}" in names:
        n += 1
    return f"eth{n}"


def _sysctl_in(netns: str, key: str, value: str) -> None:
    """Write a per-netns sysctl from a thread inside ``netns`` (/proc/sys/net follows the writer's netns)."""
    from .netlink import in_netns

    with contextlib.suppress(OSError):
        in_netns(netns, lambda: _sysctl(key, value))


def _sysctl(key: str, value: str) -> None:
    with contextlib.suppress(OSError), open(f"/proc/sys/{key}", "w") as fh:
        fh.write(value)
