"""iptables rules for bridge networks (``--iptables``, default on), added and removed as one batch.

What a container needs to reach out and be isolated like under dockerd: masquerading of the
network's subnet leaving its bridge (``--ip-masq``), forwarding to and from the bridge, and for an
``--internal`` network no traffic in or out of the subnet. Every rule refd adds it remembers and
deletes again when the network goes or refd shuts down, so nothing is left in the host's tables.
One ``iptables-restore --noflush`` per change keeps it to a single process.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .model import Network

__all__ = ["Firewall", "FirewallError"]


class FirewallError(Exception):
    """iptables is missing or refused a rule; the message says which and how to go without."""


class Firewall:
    def __init__(self, config: Any, log: Any) -> None:
        self.log = log
        self.masquerade = bool(config.get("ip-masq", True))
        self.restore = shutil.which("iptables-restore") or ""
        self.rules: dict[str, list[tuple[str, str]]] = {}  # network id -> (table, rule spec)

    def _rules_for(self, net: Network) -> list[tuple[str, str]]:
        if net.pool is None:
            return []
        subnet, bridge = str(net.pool.subnet), net.bridge_name
        if net.internal:
            return [
                ("filter", f"FORWARD -i {bridge} ! -d {subnet} -j DROP"),
                ("filter", f"FORWARD ! -s {subnet} -o {bridge} -j DROP"),
            ]
        rules = [
            ("filter", f"FORWARD -o {bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
            ("filter", f"FORWARD -i {bridge} -j ACCEPT"),
        ]
        masq = net.options.get("com.docker.network.bridge.enable_ip_masquerade", "true") != "false"
        if self.masquerade and masq:
            rules.append(("nat", f"POSTROUTING -s {subnet} ! -o {bridge} -j MASQUERADE"))
        return rules

    def _apply(self, rules: list[tuple[str, str]], action: str) -> None:
        if not rules:
            return
        if not self.restore:
            raise FirewallError(
                "iptables-restore not found: install iptables, or start the daemon with --iptables=false"
            )
        lines: list[str] = []
        for table in ("filter", "nat"):
            mine = [spec for t, spec in rules if t == table]
            if mine:
                lines.append(f"*{table}")
                lines += [f"{action} {spec}" for spec in mine]
                lines.append("COMMIT")
        proc = subprocess.run(
            [self.restore, "-w", "--noflush"],
            input="\n".join(lines) + "\n",
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise FirewallError(f"iptables-restore failed: {proc.stderr.strip() or proc.stdout.strip()}")

    def network_up(self, net: Network) -> None:
        if net.id in self.rules:
            return
        rules = self._rules_for(net)
        try:
            self._apply(rules, "-I")
        except FirewallError as exc:
            self.log.warning(f"failed to program iptables rules for network {net.name}: {exc}")
            return
        self.rules[net.id] = rules

    def network_down(self, net: Network) -> None:
        rules = self.rules.pop(net.id, [])
        try:
            self._apply(rules, "-D")
        except FirewallError as exc:
            self.log.warning(f"failed to remove iptables rules of network {net.name}: {exc}")

    def teardown(self) -> None:
        for net_id in list(self.rules):
            rules = self.rules.pop(net_id)
            try:
                self._apply(rules, "-D")
            except FirewallError as exc:
                self.log.warning(f"failed to remove iptables rules: {exc}")
