"""Published ports: allocation rules and the shapes inspect and list show."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from harness.daemon.network.ports import PortAllocator, PortError, plan_bindings, port_summary, ports_document


def test_same_port_on_both_wildcards_is_not_a_conflict() -> None:
    alloc = PortAllocator()
    alloc.take("tcp", "0.0.0.0", 8080)
    alloc.take("tcp", "::", 8080)  # separate families, like dockerd's IPv4/IPv6 pair
    alloc.take("udp", "0.0.0.0", 8080)
    with pytest.raises(PortError, match=r"Bind for 127.0.0.1:8080 failed: port is already allocated"):
        alloc.take("tcp", "127.0.0.1", 8080)


def test_release_frees_the_port() -> None:
    alloc = PortAllocator()
    alloc.take("tcp", "127.0.0.1", 8080)
    alloc.release("tcp", "127.0.0.1", 8080)
    alloc.take("tcp", "127.0.0.1", 8080)


def test_plan_publishes_explicit_ephemeral_and_publish_all() -> None:
    alloc = PortAllocator()
    config: dict[str, Any] = {"ExposedPorts": {"7000/tcp": {}, "80/tcp": {}}}
    hc = {"PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}, "PublishAllPorts": True}
    bindings = plan_bindings(alloc, config, hc)
    keys = {(b.key, b.host_ip) for b in bindings}
    assert ("80/tcp", "127.0.0.1") in keys and ("7000/tcp", "0.0.0.0") in keys
    assert all(b.host_port > 0 for b in bindings)
    doc = ports_document(config, hc, bindings)
    assert sorted(doc) == ["7000/tcp", "80/tcp"]


def test_busy_host_port_in_a_range_is_skipped() -> None:
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        hc = {"PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": f"{port}-{port + 1}"}]}}
        (binding,) = plan_bindings(PortAllocator(), {}, hc)
        assert binding.host_port == port + 1


def test_summary_lists_bindings_and_unpublished_ports() -> None:
    ports = {
        "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}],
        "7000/tcp": None,
        "53/udp": [{"HostIp": "0.0.0.0", "HostPort": "5353"}, {"HostIp": "::", "HostPort": "5353"}],
    }
    assert port_summary(ports) == [
        {"IP": "0.0.0.0", "PrivatePort": 53, "PublicPort": 5353, "Type": "udp"},
        {"IP": "::", "PrivatePort": 53, "PublicPort": 5353, "Type": "udp"},
        {"PrivatePort": 7000, "Type": "tcp"},
        {"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
    ]


def test_without_the_proxy_an_ipv4_only_container_is_published_on_ipv4_only() -> None:
    hc = {"PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "18093"}], "81/tcp": [{"HostIp": "::1"}]}}
    bindings = plan_bindings(PortAllocator(), {}, hc, ipv6_hosts=False)
    assert [(b.key, b.host_ip, b.host_port) for b in bindings] == [("80/tcp", "0.0.0.0", 18093)]
