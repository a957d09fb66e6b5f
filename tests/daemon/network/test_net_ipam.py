"""IPAM: default pools, serial allocation, static addresses and dockerd's config errors."""

from __future__ import annotations

import ipaddress

import pytest

from harness.daemon.errors import ApiError
from harness.daemon.network.ipam import (
    AddressPool,
    IPAMError,
    aux_addresses,
    local_pool_problem,
    next_free_subnet,
    validate_config,
)

Net = ipaddress.IPv4Network
Addr = ipaddress.IPv4Address


def test_first_pool_is_docker0s_and_taken_pools_are_skipped() -> None:
    assert next_free_subnet([]) == Net("172.17.0.0/16")
    assert next_free_subnet([Net("172.17.0.0/16"), Net("172.18.5.0/24")]) == Net("172.19.0.0/16")


def test_after_the_172_pools_come_192_168_slash_20s() -> None:
    taken = [Net(f"172.{n}.0.0/16") for n in range(17, 32)]
    assert next_free_subnet(taken) == Net("192.168.0.0/20")


def test_exhausted_pools_are_a_conflict() -> None:
    with pytest.raises(ApiError) as info:
        next_free_subnet([Net("0.0.0.0/0")])
    assert info.value.status == 409


def test_serial_allocation_skips_gateway_and_does_not_reuse_at_once() -> None:
    pool = AddressPool(subnet=Net("10.0.0.0/29"), gateway=Addr("10.0.0.1"))
    first, second = pool.allocate(), pool.allocate()
    assert (str(first), str(second)) == ("10.0.0.2", "10.0.0.3")
    pool.release(str(first))
    assert str(pool.allocate()) == "10.0.0.4"  # serial: the freed .2 waits its turn


def test_pool_exhaustion_and_wrap_around() -> None:
    pool = AddressPool(subnet=Net("10.0.0.0/30"), gateway=Addr("10.0.0.1"))
    assert str(pool.allocate()) == "10.0.0.2"
    with pytest.raises(IPAMError):
        pool.allocate()
    pool.release("10.0.0.2")
    assert str(pool.allocate()) == "10.0.0.2"


def test_ip_range_bounds_dynamic_allocation() -> None:
    pool = AddressPool(subnet=Net("10.9.0.0/24"), gateway=Addr("10.9.0.254"), ip_range=Net("10.9.0.128/25"))
    assert str(pool.allocate()) == "10.9.0.128"  # the range's first address is usable, as on dockerd


def test_static_address_taken_or_gateway_is_refused() -> None:
    pool = AddressPool(subnet=Net("10.0.0.0/24"), gateway=Addr("10.0.0.1"))
    assert str(pool.allocate("10.0.0.9")) == "10.0.0.9"
    for wanted in ("10.0.0.9", "10.0.0.1"):
        with pytest.raises(IPAMError) as info:
            pool.allocate(wanted)
        assert (info.value.status, info.value.message) == (403, "Address already in use")


def test_validate_config_messages() -> None:
    with pytest.raises(ApiError, match="invalid subnet garbage: invalid CIDR block notation"):
        validate_config({"Subnet": "garbage"})
    with pytest.raises(
        ApiError, match=r"invalid gateway 10\.1\.0\.1: parent subnet 10\.0\.0\.0/24 doesn't contain"
    ):
        validate_config({"Subnet": "10.0.0.0/24", "Gateway": "10.1.0.1"})
    with pytest.raises(ApiError, match="doesn't contain ip-range"):
        validate_config({"Subnet": "10.0.0.0/24", "IPRange": "10.2.0.0/25"})
    subnet, ip_range, gateway = validate_config(
        {"Subnet": "10.0.0.0/24", "IPRange": "10.0.0.0/25", "Gateway": "10.0.0.9"}
    )
    assert (str(subnet), str(ip_range), str(gateway)) == ("10.0.0.0/24", "10.0.0.0/25", "10.0.0.9")


def test_ipv6_pool_skips_the_subnet_router_anycast_and_gateway() -> None:
    pool = AddressPool(
        subnet=ipaddress.IPv6Network("fd00:c0f:2::/64"), gateway=ipaddress.IPv6Address("fd00:c0f:2::1")
    )
    assert [str(pool.allocate()), str(pool.allocate())] == ["fd00:c0f:2::2", "fd00:c0f:2::3"]
    assert str(pool.allocate("fd00:c0f:2::99")) == "fd00:c0f:2::99"
    with pytest.raises(ApiError) as info:
        pool.allocate("10.0.0.2")
    assert info.value.message == "invalid endpoint settings:\ninvalid IPv6 address: 10.0.0.2"


def test_ipv6_subnets_come_from_the_engine_ids_ula_prefix() -> None:
    from harness.daemon.network.ipam import next_free_subnet6, ula_base

    base = ula_base("engine-a")
    assert base.prefixlen == 48 and str(base).startswith("fd")
    assert ula_base("engine-a") == base != ula_base("engine-b")
    first = next_free_subnet6([], "engine-a")
    assert first.prefixlen == 64 and first.subnet_of(base)
    assert next_free_subnet6([first, Net("172.17.0.0/16")], "engine-a") == next(
        s for s in base.subnets(new_prefix=64) if s != first
    )


def test_ipv6_config_is_checked_like_ipv4() -> None:
    subnet, ip_range, gateway = validate_config({"Subnet": "fd00:1::/64", "Gateway": "fd00:1::fe"})
    assert (str(subnet), ip_range, str(gateway)) == ("fd00:1::/64", None, "fd00:1::fe")
    with pytest.raises(ApiError) as info:
        validate_config({"Subnet": "fd00:1::/64", "IPRange": "fd00:2::/80"})
    assert "doesn't contain ip-range" in info.value.message


@pytest.mark.parametrize(
    ("pools", "problem"),
    [  # dockerd 28.5's words at boot (dockerd-28 target), after "could not construct local address space: "
        ([{"base": "10.98.0.0/16", "size": 24}], ""),
        ([{"base": "10.97.1.0/16", "size": 24}, {"base": "fd00:1::/56", "size": 64}], ""),
        ([{"base": "", "size": 24}], "network at index 0 (&{invalid Prefix 24}) is not in canonical form"),
        (
            [{"base": "10.0.0.0/8", "size": 0}],
            "network at index 0 (&{10.0.0.0/8 0}) is not in canonical form",
        ),
        (
            [{"base": "10.97.0.0/16", "size": 24}, {"base": "10.96.0.0/16", "size": 8}],
            "network at index 1 (&{10.96.0.0/16 8}) has a smaller prefix (/16) than the target size of that "
            "pool (/8)",
        ),
        (
            [{"base": "10.97.0.0/16", "size": -1}],
            "network at index 0 (&{10.97.0.0/16 -1}) has a smaller prefix (/16) than the target size of that "
            "pool (/-1)",
        ),
        (
            [{"base": "fd00:1::/64", "size": 48}],
            "network at index 0 (&{fd00:1::/64 48}) has a smaller prefix (/64) than the target size of that "
            "pool (/48)",
        ),
        ([None], "network at index 0 (<nil>) is not in canonical form"),  # dockerd 28.5 panics on a null pool
    ],
)
def test_default_address_pools_refused_at_boot_as_dockerd(
    pools: list[dict[str, object] | None], problem: str
) -> None:
    assert local_pool_problem(pools) == problem


def test_auxiliary_addresses_are_checked_and_never_handed_out() -> None:
    subnet = ipaddress.ip_network("10.231.46.0/29")
    aux = aux_addresses({"AuxiliaryAddresses": {"a": "10.231.46.2", "b": "10.231.46.3"}}, subnet)
    pool = AddressPool(subnet=subnet, gateway=ipaddress.ip_address("10.231.46.1"))
    pool.reserve_aux(aux)
    assert [str(pool.allocate()) for _ in range(3)] == ["10.231.46.4", "10.231.46.5", "10.231.46.6"]
    with pytest.raises(ApiError) as err:
        pool.allocate("10.231.46.2")
    assert (err.value.status, err.value.message) == (403, "Address already in use")
    with pytest.raises(ApiError) as err:
        pool.reserve_aux({"x": ipaddress.ip_address("10.231.46.1")})
    assert (err.value.status, err.value.message) == (
        500,
        "failed to allocate secondary ip address (x:10.231.46.1): Address already in use",
    )


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("10.9.9.9", "parent subnet 10.231.47.0/24 doesn't contain this address"),
        ("nope", "invalid address"),
        ("fd00::1", "parent subnet is an IPv4 block"),
    ],
)
def test_auxiliary_addresses_refused_as_moby_validate_ipam(address: str, problem: str) -> None:
    with pytest.raises(ApiError) as err:
        aux_addresses({"AuxiliaryAddresses": {"x": address}}, ipaddress.ip_network("10.231.47.0/24"))
    assert (err.value.status, err.value.message) == (
        400,
        f"invalid network config:\ninvalid auxiliary address x: {problem}",
    )


def test_a_point_to_point_31_without_a_gateway_hands_out_both_addresses() -> None:
    """libnetwork newPoolData (RFC 3021): a /31 keeps its network and broadcast addresses; an isolated or
    inhibit_ipv4 internal network takes no gateway (moby TestPointToPoint)."""
    pool = AddressPool(subnet=ipaddress.IPv4Network("192.168.135.0/31"), gateway=None)
    assert {str(pool.allocate()), str(pool.allocate())} == {"192.168.135.0", "192.168.135.1"}
    with pytest.raises(IPAMError):
        pool.allocate()
    wide = AddressPool(subnet=ipaddress.IPv4Network("10.0.0.0/30"), gateway=None)
    assert [str(wide.allocate()), str(wide.allocate())] == ["10.0.0.1", "10.0.0.2"]  # .0 and .3 kept back


def test_configured_pools_are_masked_sorted_and_deduplicated() -> None:
    from harness.daemon.network.ipam import configured_pools

    pools = configured_pools(
        [
            {"base": "10.233.1.0/16", "size": 24},
            {"base": "fd00:abcd::/56", "size": 64},
            {"base": "10.234.0.0/16", "size": 20},
            {"base": "10.233.128.0/17", "size": 28},  # inside the first: libnetwork drops it
        ]
    )
    assert [(str(n), s) for n, s in pools] == [
        ("10.233.0.0/16", 24),
        ("10.234.0.0/16", 20),
        ("fd00:abcd::/56", 64),
    ]


def test_networks_come_from_the_configured_pools() -> None:
    from harness.daemon.network.ipam import configured_pools, next_free_subnet6

    pools = configured_pools([{"base": "10.234.0.0/16", "size": 20}, {"base": "10.233.0.0/16", "size": 24}])
    assert str(next_free_subnet([], pools)) == "10.233.0.0/24"
    assert str(next_free_subnet([Net("10.233.0.0/17")], pools)) == "10.233.128.0/24"
    assert str(next_free_subnet([Net("10.233.0.0/16")], pools)) == "10.234.0.0/20"
    with pytest.raises(ApiError, match="all predefined address pools have been fully subnetted"):
        next_free_subnet([Net("10.232.0.0/14")], pools)
    # no IPv6 pool configured: the ULA /48 of the engine id, as moby adds it only then
    assert next_free_subnet6([], "engine-a", pools) == next_free_subnet6([], "engine-a")
    six = configured_pools([{"base": "fd00:abcd::/56", "size": 64}])
    assert str(next_free_subnet6([], "engine-a", six)) == "fd00:abcd::/64"
    with pytest.raises(ApiError):
        next_free_subnet([], six)  # only IPv6 pools: no IPv4 subnet to give


def test_a_pool_cut_past_the_address_length_gives_dockerds_invalid_prefix_error() -> None:
    from harness.daemon.network.ipam import configured_pools

    pools = configured_pools([{"base": "10.96.0.0/16", "size": 24}, {"base": "10.97.0.0/16", "size": 40}])
    assert str(next_free_subnet([], pools)) == "10.96.0.0/24"  # the allocator reaches it only when needed
    with pytest.raises(ApiError) as info:
        next_free_subnet([Net("10.96.0.0/16")], pools)
    assert (info.value.status, info.value.message) == (
        500,
        "failed to allocate gateway (): invalid pool id: LocalDefault/invalid Prefix",
    )
