"""IPv4 and IPv6 address management with dockerd's defaults and messages (libnetwork ``ipams/defaultipam``).

Pools: networks without a subnet get the next free one from the default address pools
(172.17.0.0/16 ... 172.31.0.0/16, then 192.168.0.0/16 cut into /20s); the default bridge takes
the first. IPv6 networks without a subnet get the next free /64 of a ULA /48 derived from the
daemon's engine id (moby ``deriveULABaseNetwork``). Addresses are handed out serially (the next
after the last one given, wrapping), as dockerd does, so a freed address is not reused at once;
the network address (IPv6: the subnet-router anycast address), the IPv4 broadcast address and the
gateway are never given to an endpoint.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import ApiError, conflict, invalid
from ..netip import parse_prefix

__all__ = [
    "AddressPool",
    "IPAMError",
    "aux_addresses",
    "default_pools",
    "local_pool_problem",
    "next_free_subnet",
    "next_free_subnet6",
    "ula_base",
    "validate_config",
]

Net = ipaddress.IPv4Network | ipaddress.IPv6Network
Addr = ipaddress.IPv4Address | ipaddress.IPv6Address


class IPAMError(ApiError):
    """An allocation failed (pool exhausted, address taken)."""


def default_pools() -> Iterator[ipaddress.IPv4Network]:
    """dockerd's default address pools, in order."""
    for second in range(17, 32):
        yield ipaddress.IPv4Network(f"172.{second}.0.0/16")
    yield from ipaddress.IPv4Network("192.168.0.0/16").subnets(new_prefix=20)


def local_pool_problem(pools: list[dict[str, Any] | None]) -> str:
    """Why dockerd's IPAM would refuse the configured default address pools (``splitByIPFamily``), or "".

    ``pools`` are the decoded ``default-address-pools``: a zero base or size is not canonical, a size
    shorter than the base's prefix cannot be cut from it. The text is Go's ``%v`` of the pool pointer.
    """
    for index, pool in enumerate(pools):
        if pool is None:  # dockerd 28.5 dereferences the nil pool and panics; refd refuses instead
            return f"network at index {index} (<nil>) is not in canonical form"
        base = parse_prefix(pool["base"]) if pool["base"] else None
        size = int(pool["size"])
        shown = f"&{{{base if base is not None else 'invalid Prefix'} {size}}}"
        if base is None or size == 0:
            return f"network at index {index} ({shown}) is not in canonical form"
        if base.bits > size:
            return (
                f"network at index {index} ({shown}) has a smaller prefix (/{base.bits}) than the target "
                f"size of that pool (/{size})"
            )
    return ""


#: a configured pool as libnetwork keeps it: the base (masked) and the size of the subnets cut from it
Pool = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, int]


def configured_pools(pools: list[dict[str, Any] | None] | None) -> list[Pool]:
    """The daemon's ``default-address-pools`` as libnetwork uses them (``splitByIPFamily``,
    ``newAddrSpace``): each base masked, sorted by address then prefix length
    within a family, and a pool overlapping an earlier one dropped. Pools refused at boot are not here."""
    kept: list[Pool] = []
    for version in (4, 6):
        family: list[Pool] = []
        for pool in pools or []:
            if pool is None or not pool["base"]:
                continue
            base = parse_prefix(pool["base"])
            addr = ipaddress.ip_address(base.addr.raw)
            if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
                continue  # dockerd 28.5 unmaps it to IPv4 with the IPv6 length: an invalid prefix, no subnets
            if addr.version == version:
                family.append((ipaddress.ip_network((addr, base.bits), strict=False), int(pool["size"])))
        family.sort(key=lambda p: (p[0].network_address, p[0].prefixlen))
        for net, size in family:
            if not any(net.overlaps(other) for other, _ in kept if other.version == version):
                kept.append((net, size))
    return kept


def _subnets(pools: list[Pool], version: int) -> Iterator[Net]:
    for net, size in pools:
        if net.version != version:
            continue
        if (
            size > net.max_prefixlen
        ):  # libnetwork's FirstPrefix is then the invalid Prefix, which it hands out
            raise ApiError(500, "failed to allocate gateway (): invalid pool id: LocalDefault/invalid Prefix")
        yield from net.subnets(new_prefix=size)


def next_free_subnet(taken: Iterable[Net], pools: list[Pool] | None = None) -> ipaddress.IPv4Network:
    """The first subnet of the address pools overlapping none of ``taken`` (IPv4 ones): the configured
    pools' (``pools``) when there are any, else dockerd's defaults."""
    used = [n for n in taken if n.version == 4]
    candidates = _subnets(pools, 4) if pools else default_pools()
    for pool in candidates:
        if not any(pool.overlaps(other) for other in used):
            return pool  # type: ignore[return-value]
    raise conflict("all predefined address pools have been fully subnetted")


def ula_base(engine_id: str) -> ipaddress.IPv6Network:
    """The daemon's ULA /48: fd00::/8 plus the low 40 bits of sha256(engine id) as the global id."""
    gid = int.from_bytes(hashlib.sha256(engine_id.encode()).digest()[:8], "big") & ((1 << 40) - 1)
    return ipaddress.IPv6Network((int(ipaddress.IPv6Address("fd00::")) + (gid << 80), 48))


def next_free_subnet6(
    taken: Iterable[Net], engine_id: str, pools: list[Pool] | None = None
) -> ipaddress.IPv6Network:
    """The first subnet overlapping none of ``taken`` (IPv6 ones) of the configured IPv6 pools, or when
    there are none, the first /64 of the daemon's ULA /48 (moby adds it only then)."""
    used = [n for n in taken if n.version == 6]
    v6 = [p for p in pools or [] if p[0].version == 6]
    candidates = _subnets(v6, 6) if v6 else ula_base(engine_id).subnets(new_prefix=64)
    for pool in candidates:
        if not any(pool.overlaps(other) for other in used):
            return pool  # type: ignore[return-value]
    raise conflict("all predefined address pools have been fully subnetted")


def validate_config(config: dict[str, str]) -> tuple[Net, Net | None, Addr | None]:
    """Check one IPAM Config entry (Subnet, IPRange, Gateway) with dockerd's ``invalid network config``."""
    subnet_text = config.get("Subnet") or ""
    try:
        subnet = ipaddress.ip_network(subnet_text, strict=False)
    except ValueError:
        raise invalid(
            f"invalid network config:\ninvalid subnet {subnet_text}: invalid CIDR block notation"
        ) from None
    ip_range = None
    if config.get("IPRange"):
        try:
            ip_range = ipaddress.ip_network(config["IPRange"], strict=False)
        except ValueError:
            raise invalid(
                f"invalid network config:\ninvalid ip-range {config['IPRange']}: invalid CIDR block notation"
            ) from None
        if ip_range.version != subnet.version or not ip_range.subnet_of(subnet):  # type: ignore[arg-type]
            raise invalid(
                f"invalid network config:\ninvalid ip-range {config['IPRange']}: parent subnet "
                f"{subnet_text} doesn't contain ip-range"
            )
    gateway = None
    if config.get("Gateway"):
        try:
            gateway = ipaddress.ip_address(config["Gateway"])
        except ValueError:
            raise invalid(
                f"invalid network config:\ninvalid gateway {config['Gateway']}: invalid IP address"
            ) from None
        if gateway not in subnet:
            raise invalid(
                f"invalid network config:\ninvalid gateway {config['Gateway']}: parent subnet "
                f"{subnet_text} doesn't contain this address"
            )
    return subnet, ip_range, gateway


def aux_addresses(config: dict[str, Any], subnet: Net) -> dict[str, Addr]:
    """An IPAM entry's ``AuxiliaryAddresses`` checked as moby's ValidateIPAM (each inside the subnet, of
    its family); name -> address."""
    out: dict[str, Addr] = {}
    family = f"IPv{subnet.version}"
    for name, text in (config.get("AuxiliaryAddresses") or {}).items():
        try:
            addr = ipaddress.ip_address(str(text))
        except ValueError:
            problem = "invalid address"
        else:
            if addr.version != subnet.version:
                problem = f"parent subnet is an {family} block"
            elif addr not in subnet:
                problem = f"parent subnet {subnet} doesn't contain this address"
            else:
                out[str(name)] = addr
                continue
        raise invalid(f"invalid network config:\ninvalid auxiliary address {name}: {problem}")
    return out


@dataclass
class AddressPool:
    """The addresses of one network's subnet: which are in use, and where serial allocation resumes;
    ``reserved``: the auxiliary addresses, never handed out."""

    subnet: Net
    #: None: the network has no gateway (gateway mode isolated, or inhibit_ipv4 on an internal network)
    gateway: Addr | None
    ip_range: Net | None = None
    used: set[Addr] = field(default_factory=set)
    last: int = 0  # offset of the last address handed out
    reserved: set[Addr] = field(default_factory=set)

    def reserve_aux(self, addresses: dict[str, Addr]) -> None:
        """libnetwork's secondary addresses: each taken in the allocatable range (outside it, ignored as
        libnetwork's ErrIPOutOfRange); one already taken (the gateway) is a 500."""
        space = self.ip_range or self.subnet
        for name, addr in addresses.items():
            if addr not in space:
                continue
            if addr == self.gateway or addr in self.reserved or addr in self.used:
                raise IPAMError(
                    500, f"failed to allocate secondary ip address ({name}:{addr}): Address already in use"
                )
            self.reserved.add(addr)

    def _candidates(self) -> tuple[int, int]:
        space = self.ip_range or self.subnet
        return int(space.network_address), int(space.broadcast_address)

    def _usable(self, addr: Addr) -> bool:
        # libnetwork newPoolData: an IPv4 /31 or /32 keeps its network and broadcast addresses (RFC 3021)
        point_to_point = self.subnet.version == 4 and self.subnet.prefixlen >= 31
        return (
            (point_to_point or addr != self.subnet.network_address)
            and (self.subnet.version == 6 or point_to_point or addr != self.subnet.broadcast_address)
            and addr != self.gateway
            and addr not in self.used
            and addr not in self.reserved
        )

    def allocate(self, wanted: str = "") -> Addr:
        """A free address (``wanted`` if given); IPAMError when taken or exhausted."""
        if wanted:
            family = f"IPv{self.subnet.version}"
            try:
                addr = ipaddress.ip_address(wanted)
            except ValueError:
                raise invalid(f"invalid endpoint settings:\ninvalid {family} address: {wanted}") from None
            if addr.version != self.subnet.version:
                raise invalid(f"invalid endpoint settings:\ninvalid {family} address: {wanted}")
            if addr not in self.subnet:
                raise invalid(
                    f"invalid endpoint settings:\nno configured subnet or ip-range contain the IP address "
                    f"{wanted}"
                )
            if addr in self.used or addr in self.reserved or addr == self.gateway:
                raise IPAMError(403, "Address already in use")
            self.used.add(addr)
            return addr
        low, high = self._candidates()
        size = high - low + 1
        make = ipaddress.IPv4Address if self.subnet.version == 4 else ipaddress.IPv6Address
        start = self.last - low + 1 if low <= self.last <= high else 0
        for step in range(size):
            candidate = make(low + (start + step) % size)
            if self._usable(candidate):
                self.used.add(candidate)
                self.last = int(candidate)
                return candidate
        raise IPAMError(503, "no available addresses on this pool")

    def reserve(self, addr: str) -> None:
        """Mark an address as used (restored endpoints)."""
        self.used.add(ipaddress.ip_address(addr))

    def release(self, addr: str) -> None:
        self.used.discard(ipaddress.ip_address(addr))
