"""The rtnetlink client and sandboxes against the real kernel, inside throwaway network namespaces.

Two namespaces stand for "the daemon's" and "a container's"; nothing touches the host's links.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.daemon.network import bridge as br
from harness.daemon.network.netlink import Netlink, NetlinkError
from harness.daemon.network.sandbox import create_netns, delete_netns

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")


@pytest.fixture
def namespaces(tmp_path: Path) -> Iterator[tuple[str, str]]:
    host, sandbox = str(tmp_path / "host-ns"), str(tmp_path / "sandbox-ns")
    # a private mount namespace is not needed: the bind mounts live under tmp_path and are removed below
    create_netns(host)
    create_netns(sandbox)
    try:
        yield host, sandbox
    finally:
        delete_netns(sandbox)
        delete_netns(host)


def test_sandbox_starts_with_lo_up_and_is_removed(namespaces: tuple[str, str]) -> None:
    _, sandbox = namespaces
    with Netlink(sandbox) as nl:
        assert list(nl.links()) == ["lo"]
        assert nl.link_info("lo")["flags"] & 1  # IFF_UP
    delete_netns(sandbox)
    assert not os.path.exists(sandbox)
    delete_netns(sandbox)  # twice is fine


def test_bridge_and_endpoint(namespaces: tuple[str, str]) -> None:
    host, sandbox = namespaces
    with Netlink(host) as nl:
        br.ensure_bridge(nl, "brtest0", "10.77.0.1/24", mtu=1400)
        br.ensure_bridge(nl, "brtest0", "10.77.0.1/24")  # idempotent
        assert nl.addresses("brtest0") == ["10.77.0.1/24"]
        mac = br.attach_endpoint(nl, sandbox, "brtest0", br.next_ifname(sandbox), "10.77.0.2/24", "10.77.0.1")
        veths = [name for name in nl.links() if name.startswith("veth")]
        assert len(veths) == 1 and nl.link_info(veths[0])["master"] == nl.index("brtest0")
    with Netlink(sandbox) as inside:
        assert inside.addresses("eth0") == ["10.77.0.2/24"] and inside.link_info("eth0")["mac"] == mac
    routes = subprocess.run(
        ["nsenter", f"--net={sandbox}", "ip", "route"], capture_output=True, text=True, check=True
    ).stdout
    assert "default via 10.77.0.1 dev eth0" in routes
    assert br.next_ifname(sandbox) == "eth1"
    br.detach_endpoint(sandbox, "10.77.0.2")
    with Netlink(host) as nl:
        assert not [name for name in nl.links() if name.startswith("veth")]  # the pair went together
        br.remove_bridge(nl, "brtest0")
        assert not nl.exists("brtest0")


def test_errors_name_the_request(namespaces: tuple[str, str]) -> None:
    host, _ = namespaces
    with Netlink(host) as nl:
        with pytest.raises(NetlinkError, match="no network interface named nosuch0"):
            nl.index("nosuch0")
        nl.add_bridge("brdup0")
        with pytest.raises(NetlinkError, match="create bridge brdup0: File exists"):
            nl.add_bridge("brdup0")
        assert nl.delete_link("brdup0") and not nl.delete_link("brdup0")


def test_manual_bridge_must_exist(namespaces: tuple[str, str]) -> None:
    host, _ = namespaces
    with Netlink(host) as nl, pytest.raises(br.BridgeError, match="must be created manually"):
        br.ensure_bridge(nl, "br-mine", "10.78.0.1/24", create=False)
