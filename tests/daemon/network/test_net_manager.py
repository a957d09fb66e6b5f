"""The network manager's pure pieces: the DNS names an endpoint answers to."""

from __future__ import annotations

from typing import Any

from harness.daemon.containers.model import Container
from harness.daemon.network.manager import NetworkManager


def make_container(hostname: str) -> Container:
    return Container(
        id="ab" * 32,
        name="/web",
        created="2024-01-01T00:00:00Z",
        path="sh",
        args=[],
        config={"Hostname": hostname},
        host_config={},
        image_id="sha256:" + "0" * 64,
        root="/nonexistent",
    )


def test_dns_names_are_the_name_aliases_short_id_and_host_name_once_each() -> None:
    c = make_container("foobar")
    endpoint: dict[str, Any] = {"Aliases": ["api", "web"]}
    assert NetworkManager._dns_names(c, endpoint) == ["web", "api", c.id[:12], "foobar"]
    plain = make_container(c.id[:12])  # the default host name: the short ID
    assert NetworkManager._dns_names(plain, {}) == ["web", c.id[:12]]


def _endpoint(gw4: str, ip4: str, gw6: str = "", ip6: str = "", priority: int = 0) -> dict[str, Any]:
    return {
        "EndpointID": "e",
        "Gateway": gw4,
        "IPAddress": ip4,
        "IPv6Gateway": gw6,
        "GlobalIPv6Address": ip6,
        "GwPriority": priority,
    }


def _gateways(monkeypatch: Any, networks: dict[str, dict[str, Any]], internal: tuple[str, ...] = ()) -> Any:
    """What libnetwork's gateway selection hands to the sandbox for these endpoints."""
    from types import SimpleNamespace

    import harness.daemon.network.bridge as br

    seen: list[Any] = []
    monkeypatch.setattr(br, "set_gateways", lambda sandbox, gw4, gw6: seen.append((gw4, gw6)))
    c = make_container("h")
    c.network_settings = {"SandboxKey": "/run/netns/x", "Networks": networks}

    def find(name: str) -> Any:
        return SimpleNamespace(name=name, driver="bridge", internal=name in internal)

    NetworkManager._update_gateways(SimpleNamespace(find=find), c)  # type: ignore[arg-type]
    return seen[0]


def test_the_highest_gateway_priority_wins_then_the_name(monkeypatch: Any) -> None:
    nets = {
        "net1": _endpoint("10.0.1.1", "10.0.1.2"),
        "net2": _endpoint("10.0.2.1", "10.0.2.2", priority=100),
        "net3": _endpoint("10.0.3.1", "10.0.3.2", priority=10),
    }
    assert _gateways(monkeypatch, nets) == (("10.0.2.1", "10.0.2.2"), None)
    del nets["net2"]
    nets["net0"] = _endpoint("10.0.0.1", "10.0.0.2", priority=10)  # same priority: the name sorts first
    assert _gateways(monkeypatch, nets) == (("10.0.0.1", "10.0.0.2"), None)


def test_a_dual_stack_endpoint_serves_both_families_and_internal_ones_come_last(monkeypatch: Any) -> None:
    nets = {
        "a": _endpoint("", "10.0.1.2", priority=5),  # internal: no gateway
        "b": _endpoint("10.0.2.1", "10.0.2.2", "fd00::1", "fd00::2"),
        "c": _endpoint("10.0.3.1", "10.0.3.2", priority=-1),
    }
    assert _gateways(monkeypatch, nets, internal=("a",)) == (("10.0.2.1", "10.0.2.2"), ("fd00::1", "fd00::2"))
    assert _gateways(monkeypatch, {"c": nets["c"]}) == (("10.0.3.1", "10.0.3.2"), None)
    assert _gateways(monkeypatch, {"a": nets["a"]}, internal=("a",)) == (None, None)


def test_isolated_and_inhibited_bridges_hold_no_address() -> None:
    """libnetwork setupBridgeIPv4/IPv6: no IPv4 address with inhibit_ipv4 or gateway mode isolated, no
    IPv6 one (IPv6 off on the bridge) with IPv6 gateway mode isolated (moby TestIsolated)."""
    import ipaddress

    from harness.daemon.network.ipam import AddressPool
    from harness.daemon.network.model import Network

    def net(**options: str) -> Network:
        return Network(
            id="n" * 64,
            name="n",
            driver="bridge",
            created="",
            options=dict(options),
            pool=AddressPool(ipaddress.IPv4Network("10.9.0.0/24"), ipaddress.IPv4Address("10.9.0.1")),
            pool6=AddressPool(ipaddress.IPv6Network("fd00:9::/64"), ipaddress.IPv6Address("fd00:9::1")),
        )

    assert (net().bridge_cidr, net().bridge_cidr6) == ("10.9.0.1/24", "fd00:9::1/64")
    assert net(**{"com.docker.network.bridge.inhibit_ipv4": "true"}).bridge_cidr == ""
    isolated = net(
        **{
            "com.docker.network.bridge.gateway_mode_ipv4": "isolated",
            "com.docker.network.bridge.gateway_mode_ipv6": "isolated",
        }
    )
    assert (isolated.bridge_cidr, isolated.bridge_cidr6) == ("", "")
