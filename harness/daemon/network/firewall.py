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
from collections.abc import Callable
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
        #: iptables-restore runs started by ``network_up(..., wait=False)``, finished by ``settle``
        self._pending: list[tuple[Network, subprocess.Popen[str]]] = []

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

    def _missing(self, rules: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """The rules not in the kernel yet (``iptables -C``): a restarted refd adopts what it left running."""
        iptables = shutil.which("iptables")
        if not iptables:
            return rules
        out = []
        for table, spec in rules:
            probe = subprocess.run(
                [iptables, "-w", "-t", table, "-C", *spec.split()], capture_output=True, check=False
            )
            if probe.returncode != 0:
                out.append((table, spec))
        return out

    def _start(self, rules: list[tuple[str, str]], action: str) -> subprocess.Popen[str] | None:
        """One ``iptables-restore --noflush`` for ``rules``, started (None when there is nothing to do)."""
        if not rules:
            return None
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
        proc = subprocess.Popen(
            [self.restore, "-w", "--noflush"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdin is not None
        proc.stdin.write("\n".join(lines) + "\n")  # a few hundred bytes: fits the pipe, never blocks
        proc.stdin.close()
        proc.stdin = None  # written and closed: communicate() must not flush it again
        return proc

    @staticmethod
    def _finish(proc: subprocess.Popen[str] | None) -> None:
        if proc is None:
            return
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise FirewallError(f"iptables-restore failed: {err.strip() or out.strip()}")

    def _apply(self, rules: list[tuple[str, str]], action: str, adopt: bool = False) -> None:
        self.settle()  # one change at a time, in order
        if adopt and action in ("-A", "-I"):
            rules = self._missing(rules)
        self._finish(self._start(rules, action))

    # -- published ports -----------------------------------------------------------------------------
    def _ensure_nat_chain(self) -> bool:
        """The nat table's DOCKER chain and its two jumps (dockerd's layout), made once."""
        if "base:nat" in self.rules:
            return True
        iptables = shutil.which("iptables")
        if not iptables:
            return False
        subprocess.run([iptables, "-w", "-t", "nat", "-N", "DOCKER"], capture_output=True, check=False)
        jumps = [
            ("nat", "PREROUTING -m addrtype --dst-type LOCAL -j DOCKER"),
            ("nat", "OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER"),
        ]
        try:
            self._apply(jumps, "-A", adopt=True)
        except FirewallError as exc:
            self.log.warning(f"failed to program the nat DOCKER chain: {exc}")
            return False
        self.rules["base:nat"] = jumps
        return True

    def publish(
        self, key: str, bridge: str, container_ip: str, bindings: list[Any], adopt: bool = False
    ) -> None:
        """DNAT each IPv4 binding to the container (the userland proxy serves loopback, as on dockerd)."""
        rules: list[tuple[str, str]] = []
        for b in bindings:
            if ":" in b.host_ip:
                continue  # IPv6 bindings: ip6tables is not managed; the userland proxy serves them
            dest = "" if b.host_ip == "0.0.0.0" else f"-d {b.host_ip}/32 "
            proto = f"-p {b.proto} -m {b.proto}"
            rules.append(
                (
                    "nat",
                    f"DOCKER {dest}! -i {bridge} {proto} --dport {b.host_port} "
                    f"-j DNAT --to-destination {container_ip}:{b.container_port}",
                )
            )
            rules.append(
                (
                    "filter",
                    f"FORWARD -d {container_ip}/32 ! -i {bridge} -o {bridge} {proto} "
                    f"--dport {b.container_port} -j ACCEPT",
                )
            )
        if not rules or not self._ensure_nat_chain():
            return
        try:
            self._apply(rules, "-A", adopt=adopt)
        except FirewallError as exc:
            self.log.warning(f"failed to program port mappings for {key}: {exc}")
            return
        self.rules[f"ports:{key}"] = rules

    def unpublish(self, key: str) -> None:
        rules = self.rules.pop(f"ports:{key}", [])
        try:
            self._apply(rules, "-D")
        except FirewallError as exc:
            self.log.warning(f"failed to remove port mappings of {key}: {exc}")

    def network_up(self, net: Network, adopt: bool = False, wait: bool = True) -> None:
        """Program ``net``'s rules; ``wait=False`` leaves iptables-restore running until ``settle()``.

        At boot refd starts the default bridge's run and goes on loading containers meanwhile; it
        settles before it says it has completed initialization, so a failure is still logged at boot.
        """
        if net.id in self.rules:
            return
        rules = self._rules_for(net)
        try:
            if wait or adopt:
                self._apply(rules, "-I", adopt=adopt)
            else:
                self.settle()
                proc = self._start(rules, "-I")
                if proc is not None:
                    self._pending.append((net, proc))
        except (FirewallError, OSError) as exc:
            self.log.warning(f"failed to program iptables rules for network {net.name}: {exc}")
            return
        self.rules[net.id] = rules

    def settle(self) -> None:
        """Wait for the runs ``network_up(..., wait=False)`` started; a failed one's rules are forgotten."""
        while self._pending:
            net, proc = self._pending.pop(0)
            try:
                self._finish(proc)
            except FirewallError as exc:
                self.rules.pop(net.id, None)
                self.log.warning(f"failed to program iptables rules for network {net.name}: {exc}")

    def network_down(self, net: Network) -> None:
        rules = self.rules.pop(net.id, [])
        try:
            self._apply(rules, "-D")
        except FirewallError as exc:
            self.log.warning(f"failed to remove iptables rules of network {net.name}: {exc}")

    def networks_down(self, nets: list[Network]) -> Callable[[], None]:
        """Remove the rules of ``nets`` with one iptables-restore started now; the returned call waits for it.

        At shutdown refd deletes its bridges meanwhile: the kernel takes ~40 ms per bridge and
        iptables-restore ~25 ms, which ran one after the other and made most of refd's exit time.
        """
        self.settle()
        rules = [rule for net in nets for rule in self.rules.pop(net.id, [])]
        names = ", ".join(net.name for net in nets)
        try:
            proc = self._start(rules, "-D")
        except (FirewallError, OSError) as exc:
            self.log.warning(f"failed to remove iptables rules of network {names}: {exc}")
            return lambda: None

        def finish() -> None:
            try:
                self._finish(proc)
            except FirewallError as exc:
                self.log.warning(f"failed to remove iptables rules of network {names}: {exc}")

        return finish

    def teardown(self) -> None:
        self.settle()
        base = self.rules.pop("base:nat", None)
        for net_id in list(self.rules):
            rules = self.rules.pop(net_id)
            try:
                self._apply(rules, "-D")
            except FirewallError as exc:
                self.log.warning(f"failed to remove iptables rules: {exc}")
        if base is not None:
            try:
                self._apply(base, "-D")
            except FirewallError as exc:
                self.log.warning(f"failed to remove the nat DOCKER chain's jumps: {exc}")
            iptables = shutil.which("iptables")
            if iptables:
                subprocess.run(
                    [iptables, "-w", "-t", "nat", "-X", "DOCKER"], capture_output=True, check=False
                )
