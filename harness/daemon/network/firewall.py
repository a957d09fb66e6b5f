"""iptables rules for bridge networks (``--iptables``, default on), added and removed as one batch.

What a container needs to reach out and be isolated like under dockerd: masquerading of the
network's subnet leaving its bridge (``--ip-masq``), forwarding to and from the bridge, and for an
``--internal`` network no traffic in or out of the subnet. An IPv6 network gets the same in
ip6tables (``--ip6tables``, default on as in dockerd 28), and a published port on an IPv6 host
address a DNAT to the container's IPv6 address. Every rule refd adds it remembers and deletes again
when the network goes or refd shuts down, so nothing is left in the host's tables. One
``iptables-restore --noflush`` (and one ``ip6tables-restore``) per change keeps it to a process or two.

A rule is ``(table, spec)``; the tables ``nat6`` and ``filter6`` are ip6tables' ``nat`` and ``filter``.
"""

from __future__ import annotations

import os
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
        self.ipv6 = bool(config.get("ip6tables", True))
        #: --userland-proxy=false: loopback and a container's own published ports go through NAT (hairpin)
        self.hairpin = not config.get("userland-proxy", True)
        self.restore = shutil.which("iptables-restore") or ""
        self.restore6 = shutil.which("ip6tables-restore") or ""
        self.rules: dict[str, list[tuple[str, str]]] = {}  # network id -> (table, rule spec)
        #: iptables-restore runs started by ``network_up(..., wait=False)``, finished by ``settle``
        self._pending: list[tuple[Network, list[subprocess.Popen[str]]]] = []

    def _rules_for(self, net: Network) -> list[tuple[str, str]]:
        if net.pool is None:
            return []
        rules = self._family_rules(net, str(net.pool.subnet), "")
        if net.pool6 is not None and self.ipv6:
            rules += self._family_rules(net, str(net.pool6.subnet), "6")
        return rules

    def _family_rules(self, net: Network, subnet: str, family: str) -> list[tuple[str, str]]:
        bridge = net.bridge_name
        if net.internal:
            if family:  # libnetwork's IPv6 rules leave the bridge's own traffic alone (neighbour discovery)
                return [
                    ("filter6", f"FORWARD -i {bridge} ! -o {bridge} ! -d {subnet} -j DROP"),
                    ("filter6", f"FORWARD ! -i {bridge} -o {bridge} ! -s {subnet} -j DROP"),
                ]
            return [
                ("filter", f"FORWARD -i {bridge} ! -d {subnet} -j DROP"),
                ("filter", f"FORWARD ! -s {subnet} -o {bridge} -j DROP"),
            ]
        rules = [
            (f"filter{family}", f"FORWARD -o {bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
            (f"filter{family}", f"FORWARD -i {bridge} -j ACCEPT"),
        ]
        masq = net.options.get("com.docker.network.bridge.enable_ip_masquerade", "true") != "false"
        if self.masquerade and masq:
            rules.append((f"nat{family}", f"POSTROUTING -s {subnet} ! -o {bridge} -j MASQUERADE"))
        if self.hairpin:  # what the host sends into the bridge from a local address (127.0.0.1) comes back
            rules.append(
                (f"nat{family}", f"POSTROUTING -o {bridge} -m addrtype --src-type LOCAL -j MASQUERADE")
            )
        return rules

    @staticmethod
    def _tool(table: str) -> tuple[str, str]:
        """``(iptables or ip6tables, the kernel's table name)`` for a rule's table."""
        return ("ip6tables", table[:-1]) if table.endswith("6") else ("iptables", table)

    def _missing(self, rules: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """The rules not in the kernel yet (``iptables -C``): a restarted refd adopts what it left running."""
        out = []
        for table, spec in rules:
            tool, kernel_table = self._tool(table)
            binary = shutil.which(tool)
            if not binary:
                out.append((table, spec))
                continue
            probe = subprocess.run(
                [binary, "-w", "-t", kernel_table, "-C", *spec.split()], capture_output=True, check=False
            )
            if probe.returncode != 0:
                out.append((table, spec))
        return out

    def _start(self, rules: list[tuple[str, str]], action: str) -> list[subprocess.Popen[str]]:
        """One ``iptables-restore --noflush`` (and one ``ip6tables-restore``) for ``rules``, started."""
        procs: list[subprocess.Popen[str]] = []
        for family, restore, tool in (("", self.restore, "iptables"), ("6", self.restore6, "ip6tables")):
            lines: list[str] = []
            for table in ("filter", "nat"):
                mine = [spec for t, spec in rules if t == f"{table}{family}"]
                if mine:
                    lines.append(f"*{table}")
                    lines += [f"{action} {spec}" for spec in mine]
                    lines.append("COMMIT")
            if not lines:
                continue
            if not restore:
                flag = "--iptables=false" if not family else "--ip6tables=false"
                raise FirewallError(
                    f"{tool}-restore not found: install iptables, or start the daemon with {flag}"
                )
            proc = subprocess.Popen(
                [restore, "-w", "--noflush"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            assert proc.stdin is not None
            proc.stdin.write("\n".join(lines) + "\n")  # a few hundred bytes: fits the pipe, never blocks
            proc.stdin.close()
            proc.stdin = None  # written and closed: communicate() must not flush it again
            procs.append(proc)
        return procs

    @staticmethod
    def _finish(procs: list[subprocess.Popen[str]]) -> None:
        failures = []
        for proc in procs:
            out, err = proc.communicate()
            if proc.returncode != 0:
                tool = (
                    os.path.basename(str(proc.args[0])) if isinstance(proc.args, list) else "iptables-restore"
                )
                failures.append(f"{tool} failed: {err.strip() or out.strip()}")
        if failures:
            raise FirewallError("; ".join(failures))

    def _apply(self, rules: list[tuple[str, str]], action: str, adopt: bool = False) -> None:
        self.settle()  # one change at a time, in order
        if adopt and action in ("-A", "-I"):
            rules = self._missing(rules)
        self._finish(self._start(rules, action))

    # -- published ports -----------------------------------------------------------------------------
    def _ensure_nat_chain(self, family: str = "") -> bool:
        """The nat table's DOCKER chain and its two jumps (dockerd's layout), made once per family."""
        if f"base:nat{family}" in self.rules:
            return True
        binary = shutil.which("ip6tables" if family else "iptables")
        if not binary:
            return False
        subprocess.run([binary, "-w", "-t", "nat", "-N", "DOCKER"], capture_output=True, check=False)
        # the userland proxy serves loopback; without it, loopback is DNATed too
        loopback = "" if self.hairpin else ("! -d ::1/128 " if family else "! -d 127.0.0.0/8 ")
        jumps = [
            (f"nat{family}", "PREROUTING -m addrtype --dst-type LOCAL -j DOCKER"),
            (f"nat{family}", f"OUTPUT {loopback}-m addrtype --dst-type LOCAL -j DOCKER"),
        ]
        try:
            self._apply(jumps, "-A", adopt=True)
        except FirewallError as exc:
            self.log.warning(f"failed to program the nat DOCKER chain: {exc}")
            return False
        self.rules[f"base:nat{family}"] = jumps
        return True

    def publish(
        self,
        key: str,
        bridge: str,
        container_ip: str,
        bindings: list[Any],
        adopt: bool = False,
        container_ip6: str = "",
    ) -> None:
        """DNAT each binding to the container: IPv4 ones to ``container_ip``, IPv6 ones to ``container_ip6``
        when the container has one (else the userland proxy serves them, as on dockerd)."""
        rules: list[tuple[str, str]] = []
        # with the proxy, traffic from the bridge itself is left to it; without, it is DNATed (hairpin)
        not_bridge = "" if self.hairpin else f"! -i {bridge} "
        for b in bindings:
            v6 = ":" in b.host_ip
            if v6 and not (container_ip6 and self.ipv6):
                continue
            proto = f"-p {b.proto} -m {b.proto}"
            if self.hairpin:  # a container reaching its own published port is masqueraded as the host
                ip, bits = (container_ip6, 128) if v6 else (container_ip, 32)
                rules.append(
                    (
                        "nat6" if v6 else "nat",
                        f"POSTROUTING -s {ip}/{bits} -d {ip}/{bits} {proto} --dport {b.container_port} "
                        "-j MASQUERADE",
                    )
                )
            if v6:
                dest = "" if b.host_ip == "::" else f"-d {b.host_ip}/128 "
                rules.append(
                    (
                        "nat6",
                        f"DOCKER {dest}! -s fe80::/10 {not_bridge}{proto} --dport {b.host_port} "
                        f"-j DNAT --to-destination [{container_ip6}]:{b.container_port}",
                    )
                )
                rules.append(
                    (
                        "filter6",
                        f"FORWARD -d {container_ip6}/128 ! -i {bridge} -o {bridge} {proto} "
                        f"--dport {b.container_port} -j ACCEPT",
                    )
                )
                continue
            dest = "" if b.host_ip == "0.0.0.0" else f"-d {b.host_ip}/32 "
            rules.append(
                (
                    "nat",
                    f"DOCKER {dest}{not_bridge}{proto} --dport {b.host_port} "
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
        families = {t.removeprefix("nat").removeprefix("filter") for t, _ in rules}
        if not rules or not all(self._ensure_nat_chain(f) for f in sorted(families)):
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
                procs = self._start(rules, "-I")
                if procs:
                    self._pending.append((net, procs))
        except (FirewallError, OSError) as exc:
            self.log.warning(f"failed to program iptables rules for network {net.name}: {exc}")
            return
        self.rules[net.id] = rules

    def settle(self) -> None:
        """Wait for the runs ``network_up(..., wait=False)`` started; a failed one's rules are forgotten."""
        while self._pending:
            net, procs = self._pending.pop(0)
            try:
                self._finish(procs)
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
            procs = self._start(rules, "-D")
        except (FirewallError, OSError) as exc:
            self.log.warning(f"failed to remove iptables rules of network {names}: {exc}")
            return lambda: None

        def finish() -> None:
            try:
                self._finish(procs)
            except FirewallError as exc:
                self.log.warning(f"failed to remove iptables rules of network {names}: {exc}")

        return finish

    def teardown(self) -> None:
        self.settle()
        bases = {family: self.rules.pop(f"base:nat{family}", None) for family in ("", "6")}
        for net_id in list(self.rules):
            rules = self.rules.pop(net_id)
            try:
                self._apply(rules, "-D")
            except FirewallError as exc:
                self.log.warning(f"failed to remove iptables rules: {exc}")
        for family, base in bases.items():
            if base is None:
                continue
            try:
                self._apply(base, "-D")
            except FirewallError as exc:
                self.log.warning(f"failed to remove the nat DOCKER chain's jumps: {exc}")
            binary = shutil.which("ip6tables" if family else "iptables")
            if binary:
                subprocess.run([binary, "-w", "-t", "nat", "-X", "DOCKER"], capture_output=True, check=False)
