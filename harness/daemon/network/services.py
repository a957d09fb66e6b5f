"""What refd runs for a container's network besides its interfaces: published-port proxies and DNS.

Both live in refd's event loop, so they come back for live-restored containers once refd restarts
(``container_up`` is idempotent), and go when the container stops (``container_down``).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .files import host_nameservers
from .links import endpoint_link
from .ports import PortAllocator, PortError, Proxy, plan_bindings, ports_document, start_proxy

if TYPE_CHECKING:
    from ..containers.model import Container
    from ..daemon import Daemon
    from .dns import DNSServer

__all__ = ["NetServices"]


class NetServices:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.allocator = PortAllocator()
        self.proxies: dict[str, Proxy] = {}
        self.dns: dict[str, DNSServer] = {}

    # -- lifecycle -----------------------------------------------------------------------------------
    def container_up(self, c: Container) -> None:
        settings = c.network_settings
        sandbox = _usable_sandbox(settings.get("SandboxKey") or "", int(c.state.get("Pid") or 0))
        if not sandbox:
            return
        if c.id not in self.proxies:
            self._publish(c)
        if c.id not in self.dns and self.daemon.networks.uses_embedded_dns(c):

            def lookup(name: str, asker: Container = c) -> list[str] | None:
                return self.lookup(asker, name)

            from .dns import DNSServer

            try:
                self.dns[c.id] = DNSServer.serve(sandbox, lookup, self._upstreams(c))
            except OSError as exc:
                self.daemon.log.warning(f"failed to start the embedded DNS server for {c.id}: {exc}")

    def _program_nat(self, c: Container, target: str, bindings: list[Any], adopt: bool = False) -> None:
        firewall = getattr(self.daemon, "firewall", None)
        if firewall is None:
            return
        for name, ep in (c.network_settings.get("Networks") or {}).items():
            if ep.get("IPAddress") == target:
                net = self.daemon.networks.find(name)
                if net is not None and net.driver == "bridge":
                    target6 = str(ep.get("GlobalIPv6Address") or "")
                    firewall.publish(c.id, net.bridge_name, target, bindings, adopt, target6)
                return

    def container_down(self, c: Container) -> None:
        firewall = getattr(self.daemon, "firewall", None)
        if firewall is not None:
            firewall.unpublish(c.id)
        proxy = self.proxies.pop(c.id, None)
        if proxy is not None:
            proxy.close()
            for b in proxy.bindings:
                self.allocator.release(b.proto, b.host_ip, b.host_port)
        server = self.dns.pop(c.id, None)
        if server is not None:
            server.close()

    def shutdown(self) -> None:
        for cid in list(self.proxies):
            proxy = self.proxies.pop(cid)
            proxy.close()
        for cid in list(self.dns):
            self.dns.pop(cid).close()

    # -- ports ---------------------------------------------------------------------------------------
    def _target_ip(self, c: Container) -> str:
        for ep in (c.network_settings.get("Networks") or {}).values():
            if ep.get("IPAddress"):
                return str(ep["IPAddress"])
        return ""

    def _target_ip6(self, c: Container, target: str) -> str:
        """The IPv6 address of the endpoint ``target`` is on (IPv6 host ports relay there)."""
        for ep in (c.network_settings.get("Networks") or {}).values():
            if ep.get("IPAddress") == target:
                return str(ep.get("GlobalIPv6Address") or "")
        return ""

    def _publish(self, c: Container) -> None:
        target = self._target_ip(c)
        hc = c.host_config
        if not target or not (hc.get("PortBindings") or hc.get("PublishAllPorts")):
            c.network_settings["Ports"] = ports_document(c.config, hc, []) if target else {}
            return
        if c.network_settings.get("Ports") and self._restore_bindings(c, target):
            return
        relay = bool(self.daemon.config.get("userland-proxy", True))
        target6 = self._target_ip6(c, target)
        try:
            bindings = plan_bindings(self.allocator, c.config, hc, ipv6_hosts=relay or bool(target6))
            proxy = start_proxy(target, bindings, target6, relay)
        except PortError as exc:
            endpoint: dict[str, Any] = next(iter((c.network_settings.get("Networks") or {}).values()), {})
            raise PortError(
                500,
                "failed to set up container networking: driver failed programming external connectivity on "
                f"endpoint {c.name.removeprefix('/')} ({endpoint.get('EndpointID', '')}): {exc.message}",
            ) from None
        self.proxies[c.id] = proxy
        c.network_settings["Ports"] = ports_document(c.config, hc, bindings)
        self._program_nat(c, target, bindings)

    def _restore_bindings(self, c: Container, target: str) -> bool:
        """A live-restored container keeps its published host ports."""
        from .ports import Binding

        bindings = []
        for key, entries in (c.network_settings.get("Ports") or {}).items():
            port, _, proto = key.partition("/")
            for entry in entries or []:
                bindings.append(Binding(int(port), proto or "tcp", entry["HostIp"], int(entry["HostPort"])))
        if not bindings:
            return False
        try:
            for b in bindings:
                self.allocator.take(b.proto, b.host_ip, b.host_port)
            relay = bool(self.daemon.config.get("userland-proxy", True))
            self.proxies[c.id] = start_proxy(target, bindings, self._target_ip6(c, target), relay)
            self._program_nat(c, target, bindings, adopt=True)
        except PortError as exc:
            self.daemon.log.warning(f"failed to restore the published ports of {c.id}: {exc.message}")
            for b in bindings:
                self.allocator.release(b.proto, b.host_ip, b.host_port)
        return True

    # -- DNS -----------------------------------------------------------------------------------------
    def _upstreams(self, c: Container) -> list[str]:
        servers = [str(s) for s in c.host_config.get("Dns") or []] or list(
            self.daemon.config.get("dns") or []
        )
        return servers or host_nameservers()

    def lookup(self, asker: Container, name: str) -> list[str] | None:
        """Addresses for ``name`` on the user-defined networks ``asker`` is on; None: not a container name."""
        mine = asker.network_settings.get("Networks") or {}
        found: list[str] = []
        for net_name, own in mine.items():
            net = self.daemon.networks.find(net_name)
            if net is None or not net.user_defined:
                continue
            # the asker's links on this network (libnetwork CreateOptionAlias): a name only it resolves
            other = endpoint_link(self.daemon.containers, own.get("Links"), name)
            ep = (other.network_settings.get("Networks") or {}).get(net.name) if other is not None else None
            if ep:
                _add_addresses(found, ep)
            for other in self.daemon.containers.by_id.values():
                ep = (other.network_settings.get("Networks") or {}).get(net.name)
                if not ep or not (ep.get("IPAddress") or ep.get("GlobalIPv6Address")):
                    continue
                names = [n.lower() for n in ep.get("DNSNames") or []]
                candidates = set(names) | {f"{n}.{net.name.lower()}" for n in names}
                if name in candidates:
                    _add_addresses(found, ep)
        return found or None


def _add_addresses(found: list[str], ep: dict[str, Any]) -> None:
    """An endpoint's IPv4 and IPv6 addresses (A and AAAA answers), each once."""
    for address in (ep.get("IPAddress"), ep.get("GlobalIPv6Address")):
        if address and address not in found:
            found.append(str(address))


def _usable_sandbox(path: str, pid: int) -> str:
    """The sandbox file if it still names a network namespace, else the container's own.

    After refd restarts in another mount namespace (a supervisor that does not keep it), the bind
    mount behind the file is gone and only an empty file remains; the container's PID 1 still holds
    the namespace, so ``/proc/<pid>/ns/net`` reaches it.
    """
    if not path or path.endswith("/netns/default"):
        return ""
    try:
        if os.stat(path).st_ino == os.stat(f"/proc/{pid}/ns/net").st_ino or not pid:
            return path
    except OSError:
        pass
    return f"/proc/{pid}/ns/net" if pid and os.path.exists(f"/proc/{pid}/ns/net") else path
