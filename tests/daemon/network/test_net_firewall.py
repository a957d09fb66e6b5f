"""The firewall's batched iptables-restore runs: started at boot, settled later, removed while bridges go."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from harness.daemon.network.firewall import Firewall
from harness.daemon.network.ipam import AddressPool
from harness.daemon.network.model import Network


class _Log:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warning(self, text: str) -> None:
        self.warnings.append(text)


def _fake_restore(tmp_path: Path, fail: bool = False) -> Path:
    """An iptables-restore that appends its argv and stdin to calls.txt (and fails when asked)."""
    script = tmp_path / "iptables-restore"
    calls = tmp_path / "calls.txt"
    tail = 'echo "iptables-restore: line 2 failed" >&2; exit 1' if fail else "exit 0"
    script.write_text(f'#!/bin/sh\necho "ARGS $*" >> {calls}\ncat >> {calls}\n{tail}\n')
    script.chmod(0o755)
    return script


def _firewall(tmp_path: Path, fail: bool = False) -> tuple[Firewall, _Log]:
    log = _Log()
    fw = Firewall({"ip-masq": True}, log)
    fw.restore = str(_fake_restore(tmp_path, fail))
    return fw, log


def _bridge() -> Network:
    net = Network(
        id="b" * 64,
        name="bridge",
        driver="bridge",
        created="",
        options={"com.docker.network.bridge.name": "docker0"},
    )
    net.pool = AddressPool(
        subnet=ipaddress.IPv4Network("172.17.0.0/16"), gateway=ipaddress.IPv4Address("172.17.0.1")
    )
    return net


def test_rules_started_at_boot_are_in_after_settle(tmp_path: Path) -> None:
    fw, log = _firewall(tmp_path)
    net = _bridge()
    fw.network_up(net, wait=False)
    assert net.id in fw.rules
    fw.settle()
    calls = (tmp_path / "calls.txt").read_text()
    assert "ARGS -w --noflush" in calls
    assert "-I FORWARD -i docker0 -j ACCEPT" in calls
    assert "-I POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE" in calls
    assert log.warnings == []


def test_a_failed_run_started_at_boot_is_logged_at_settle_and_forgotten(tmp_path: Path) -> None:
    fw, log = _firewall(tmp_path, fail=True)
    net = _bridge()
    fw.network_up(net, wait=False)
    fw.settle()
    assert log.warnings == [
        "failed to program iptables rules for network bridge: iptables-restore failed: "
        "iptables-restore: line 2 failed"
    ]
    assert net.id not in fw.rules


def test_networks_down_removes_the_rules_in_one_run(tmp_path: Path) -> None:
    fw, log = _firewall(tmp_path)
    net = _bridge()
    fw.network_up(net)
    (tmp_path / "calls.txt").unlink()
    done = fw.networks_down([net])
    done()
    calls = (tmp_path / "calls.txt").read_text()
    assert calls.count("ARGS ") == 1
    assert "-D FORWARD -i docker0 -j ACCEPT" in calls
    assert net.id not in fw.rules and log.warnings == []


def test_networks_down_reports_a_failed_removal(tmp_path: Path) -> None:
    fw, log = _firewall(tmp_path)
    net = _bridge()
    fw.network_up(net)
    fw.restore = str(_fake_restore(tmp_path, fail=True))
    fw.networks_down([net])()
    assert log.warnings == [
        "failed to remove iptables rules of network bridge: iptables-restore failed: "
        "iptables-restore: line 2 failed"
    ]


def test_without_iptables_restore_the_warning_names_the_fix(tmp_path: Path) -> None:
    fw, log = _firewall(tmp_path)
    fw.restore = ""
    fw.network_up(_bridge(), wait=False)
    assert log.warnings == [
        "failed to program iptables rules for network bridge: iptables-restore not found: install "
        "iptables, or start the daemon with --iptables=false"
    ]


def test_a_later_change_waits_for_a_started_run(tmp_path: Path) -> None:
    fw, _ = _firewall(tmp_path)
    net = _bridge()
    fw.network_up(net, wait=False)
    assert len(fw._pending) == 1
    fw.unpublish("nothing")  # any other change settles first: the runs stay in order
    assert fw._pending == []


def test_an_ipv6_network_gets_the_same_rules_in_ip6tables(tmp_path: Path) -> None:
    fw, log = _firewall(tmp_path)
    six = tmp_path / "six"
    six.mkdir()
    fw.restore6 = str(_fake_restore(six))
    net = _bridge()
    net.pool6 = AddressPool(
        subnet=ipaddress.IPv6Network("fd00:c0f:3::/64"), gateway=ipaddress.IPv6Address("fd00:c0f:3::1")
    )
    fw.network_up(net)
    v4, v6 = (tmp_path / "calls.txt").read_text(), (six / "calls.txt").read_text()
    assert "-I POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE" in v4 and "fd00" not in v4
    assert "-I POSTROUTING -s fd00:c0f:3::/64 ! -o docker0 -j MASQUERADE" in v6
    assert "-I FORWARD -i docker0 -j ACCEPT" in v6 and log.warnings == []
    fw.ipv6 = False  # --ip6tables=false
    assert all("fd00" not in spec for _, spec in fw._rules_for(net))


def test_without_the_userland_proxy_published_ports_are_hairpin_nat(tmp_path: Path) -> None:
    from harness.daemon.network.ports import Binding

    log = _Log()
    fw = Firewall({"ip-masq": True, "userland-proxy": False}, log)
    fw.restore = str(_fake_restore(tmp_path))
    net = _bridge()
    assert ("nat", "POSTROUTING -o docker0 -m addrtype --src-type LOCAL -j MASQUERADE") in fw._rules_for(net)
    fw.rules["base:nat"] = []  # the DOCKER chain is there (no iptables binary needed here)
    fw.publish("c1", "docker0", "172.17.0.2", [Binding(80, "tcp", "0.0.0.0", 18098)])
    calls = (tmp_path / "calls.txt").read_text()
    assert "-A DOCKER -p tcp -m tcp --dport 18098 -j DNAT --to-destination 172.17.0.2:80" in calls
    assert "-A POSTROUTING -s 172.17.0.2/32 -d 172.17.0.2/32 -p tcp -m tcp --dport 80 -j MASQUERADE" in calls
    assert log.warnings == []


def test_an_internal_networks_ipv6_rules_spare_traffic_within_its_bridge(tmp_path: Path) -> None:
    """libnetwork setupInternalNetworkRules: in ip6tables the drops name '! -o'/'! -i' the bridge, so
    neighbour discovery (to multicast addresses outside the subnet) still crosses it (moby TestIsolated)."""
    fw, _ = _firewall(tmp_path)
    net = _bridge()
    net.internal = True
    net.pool6 = AddressPool(subnet=ipaddress.IPv6Network("fd00:c0f:3::/64"), gateway=None)
    rules = fw._rules_for(net)
    assert ("filter", "FORWARD -i docker0 ! -d 172.17.0.0/16 -j DROP") in rules
    assert ("filter6", "FORWARD -i docker0 ! -o docker0 ! -d fd00:c0f:3::/64 -j DROP") in rules
    assert ("filter6", "FORWARD ! -i docker0 -o docker0 ! -s fd00:c0f:3::/64 -j DROP") in rules
