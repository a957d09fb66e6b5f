"""A container's network wiring (moby ``daemon/container_operations.go``): its settings at create, its
sandbox and endpoints, ports and DNS while it runs, the files it sees (``/etc/hostname``,
``/etc/hosts``, ``/etc/resolv.conf``), ``--network container:X`` and legacy links.

The network manager (:mod:`..network.manager`) owns networks, addresses and sandboxes; the network
services (:mod:`..network.services`) the embedded DNS and port proxies. This module is what a
container asks of them, and when.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ApiError, conflict
from .model import Container

if TYPE_CHECKING:
    from ..daemon import Daemon
    from .store import ContainerStore

__all__ = ["HOST_HOSTS", "Joined", "NetworkWiring"]

#: the file a --network host container's /etc/hosts copies (libnetwork's originHostsPath)
HOST_HOSTS = "/etc/hosts"

#: the empty NetworkSettings a container has until it runs, as dockerd 28 shows it
_EMPTY_SETTINGS: dict[str, Any] = {
    "Bridge": "",
    "SandboxID": "",
    "SandboxKey": "",
    "Ports": {},
    "HairpinMode": False,
    "LinkLocalIPv6Address": "",
    "LinkLocalIPv6PrefixLen": 0,
    "SecondaryIPAddresses": None,
    "SecondaryIPv6Addresses": None,
    "EndpointID": "",
    "Gateway": "",
    "GlobalIPv6Address": "",
    "GlobalIPv6PrefixLen": 0,
    "IPAddress": "",
    "IPPrefixLen": 0,
    "IPv6Gateway": "",
    "MacAddress": "",
}
_DNS_FLAGS = (("Dns", "dns"), ("DnsSearch", "dns-search"), ("DnsOptions", "dns-opt"))


@dataclass(frozen=True)
class Joined:
    """What a started container joins: its sandbox's netns path, or the peer whose netns it shares."""

    netns: str | None
    peer: Container | None


class NetworkWiring:
    """Between a daemon's containers (``store``) and its networks (set up after the wiring)."""

    def __init__(self, daemon: Daemon, store: ContainerStore) -> None:
        self.daemon = daemon
        self.store = store

    @property
    def _networks(self) -> Any:
        return getattr(self.daemon, "networks", None)

    @property
    def _services(self) -> Any:
        return getattr(self.daemon, "net_services", None)

    # -- create ----------------------------------------------------------------------------------------
    def resolve_mode(self, host_config: dict[str, Any]) -> None:
        """``--network container:X`` is recorded with X's full id, as dockerd records it; an X that does not
        exist is kept as given (dockerd refuses it when the container starts, not at create)."""
        mode = str(host_config.get("NetworkMode") or "")
        if mode.startswith("container:"):
            try:
                host_config["NetworkMode"] = f"container:{self.store.get(mode.split(':', 1)[1]).id}"
            except ApiError as exc:
                if exc.status != 404:
                    raise

    def create_warnings(self, host_config: dict[str, Any]) -> list[str]:
        """The network's create warnings (IPv4 forwarding off: ``--bridge=none``)."""
        return [] if self._networks is None else list(self._networks.create_warnings(host_config))

    def check_rename(self, c: Container) -> None:
        """A running container's sandbox must still find each of its networks to rename them."""
        if self._networks is not None:
            self._networks.check_rename(c)

    def normalise_links(self, host_config: dict[str, Any], name: str) -> None:
        """``--link name:alias`` as dockerd stores it; an unknown container is a 400. On a user-defined
        network there are no legacy links (moby registerLinks): a link there is the endpoint's
        (``EndpointsConfig.<net>.Links``, as the CLI sends it), so the host config's are dropped."""
        mode = str(host_config.get("NetworkMode") or "")
        if mode not in ("", "default", "bridge", "host", "none") and not mode.startswith("container:"):
            host_config["Links"] = None
        elif host_config.get("Links"):
            from ..network.links import normalise_links

            host_config["Links"] = normalise_links(self.store, list(host_config["Links"]), name)

    def remove_link(self, parent: Container, name: str) -> None:
        """``parent`` forgets its link called ``name`` (``/parent/alias``); a running one's hosts file is
        written again without it, as dockerd's sandbox refresh does."""
        links = list(parent.host_config.get("Links") or [])
        parent.host_config["Links"] = [link for link in links if str(link).partition(":")[2] != name] or None
        parent.save()
        if parent.running and os.path.exists(parent.file("hosts")):
            self._write_hosts(parent)

    def initial_settings(self, c: Container, body: dict[str, Any]) -> dict[str, Any]:
        """``NetworkSettings`` of a created container: the networks it will join, nothing allocated."""
        networks_manager = self._networks
        if networks_manager is not None:
            networks: dict[str, Any] = networks_manager.initial_networks(c.host_config, body)
        else:
            from ..network.manager import empty_endpoint

            mode = c.host_config.get("NetworkMode", "default")
            name = "bridge" if mode in ("default", "bridge") else mode if mode in ("host", "none") else ""
            networks = {name: empty_endpoint()} if name else {}
        return {**_EMPTY_SETTINGS, "Ports": {}, "Networks": networks}

    # -- start -----------------------------------------------------------------------------------------
    def up(self, c: Container) -> Joined:
        """Everything network ``c`` needs before its process spec is made: links checked, its sandbox and
        endpoints up (or the running peer it joins, whose hostname it takes), its files written."""
        if c.host_config.get("Links"):
            from ..network.links import check_running

            check_running(self.store, c)
        netns = self._sandbox_up(c)
        peer = self._peer(c)
        self._userns_up(c, peer)
        if peer is not None:  # --network container:X shares X's hostname and files
            c.config["Hostname"] = peer.config.get("Hostname") or peer.short_id
        self._write_files(c)
        return Joined(netns, peer)

    def _remapped(self, c: Container) -> bool:
        networks = self._networks
        return bool(networks is not None and networks.remaps(c))

    def _userns_up(self, c: Container, peer: Container | None) -> None:
        """--userns-remap: the container's user namespace, when its sandbox did not bring one (host
        networking, a disabled network); a peer's (``--network container:X``) is joined instead."""
        from ..network.sandbox import create_userns, userns_path

        if not self._remapped(c) or peer is not None:
            return
        path = userns_path(self.daemon.config["exec-root"], c.id)
        if os.path.exists(path):
            return
        try:
            create_userns(path, self.daemon.idmap)
        except OSError as exc:
            raise ApiError(500, f"failed to create the user namespace of container {c.id}: {exc}") from None

    def apply(self, c: Container, spec: dict[str, Any], joined: Joined) -> None:
        """Into ``c``'s process spec: the netns (and user namespace) to join, the link environment, a peer's
        files."""
        from ..network.sandbox import userns_path

        if joined.netns:
            spec["namespaces"]["net"] = joined.netns
        if self._remapped(c):
            peer = joined.peer
            spec["namespaces"]["user"] = (
                f"/proc/{peer.state['Pid']}/ns/user"
                if peer is not None
                else userns_path(self.daemon.config["exec-root"], c.id)
            )
        self._link_env(c, spec)
        if joined.peer is not None:
            for key, name in (
                ("hosts_path", "hosts"),
                ("hostname_path", "hostname"),
                ("resolv_conf_path", "resolv.conf"),
            ):
                spec[key] = joined.peer.file(name)

    def _sandbox_up(self, c: Container) -> str | None:
        """The container's sandbox with its endpoints, ports and DNS; the netns path to join, if any."""
        networks = self._networks
        if networks is None:
            return None
        netns = networks.sandbox_up(c)
        if netns:
            services = self._services
            if services is not None:
                services.container_up(c)
        return netns  # type: ignore[no-any-return]

    def _peer(self, c: Container) -> Container | None:
        """The container whose network namespace ``c`` joins (``--network container:X``), running."""
        mode = str(c.host_config.get("NetworkMode") or "")
        if not mode.startswith("container:"):
            return None
        ref = mode.split(":", 1)[1]
        try:
            other = self.store.by_id.get(ref) or self.store.get(ref)
        except ApiError as exc:  # moby getNetworkedContainer: a system error at start
            status = 500 if exc.status == 404 else exc.status
            raise ApiError(status, f"joining network namespace of container: {exc.message}") from None
        if not other.running:
            raise conflict(
                "cannot join network namespace of a non running container: "
                f"container {other.name.removeprefix('/')} is {other.status}"
            )
        return other

    def _write_files(self, c: Container) -> None:
        from ..network.files import resolv_conf

        os.makedirs(c.root, mode=0o710, exist_ok=True)
        idmap = getattr(self.daemon, "idmap", None)
        if idmap is not None:  # the remapped root traverses to the files bound into the container
            os.chown(c.root, 0, idmap.root[1])
            os.chown(os.path.dirname(c.root), 0, idmap.root[1])
        hostname = c.config.get("Hostname") or c.short_id
        with open(c.file("hostname"), "w") as fh:
            fh.write(hostname + "\n")
        self._write_hosts(c)
        networks = self._networks
        internal_dns = networks is not None and networks.uses_embedded_dns(c)
        joined = not c.config.get("NetworkDisabled")  # --bridge=none: no endpoint joined the sandbox
        with open(c.file("resolv.conf"), "w") as fh:
            fh.write(resolv_conf(self._dns_settings(c), internal_dns, joined=joined))

    def _dns_settings(self, c: Container) -> dict[str, Any]:
        """The container's Dns/DnsSearch/DnsOptions, else the daemon's --dns/--dns-search/--dns-opt."""
        hc, cfg = dict(c.host_config), self.daemon.config
        for key, flag in _DNS_FLAGS:
            if not hc.get(key) and cfg.get(flag):
                hc[key] = list(cfg[flag])
        return hc

    def _write_hosts(self, c: Container) -> None:
        from ..network.files import hosts_file
        from ..network.links import link_hosts

        if c.host_config.get("NetworkMode") == "host" and not c.host_config.get("ExtraHosts"):
            # libnetwork's buildHostsFile: the host's own file, unless extra hosts must override it
            try:
                with open(HOST_HOSTS, "rb") as src:
                    content = src.read()
            except FileNotFoundError:
                content = b""
            with open(c.file("hosts"), "wb") as fh:
                fh.write(content)
            return
        links = link_hosts(self.store, c) if c.host_config.get("Links") else []
        with open(c.file("hosts"), "w") as fh:
            fh.write(hosts_file(c, links))

    def _link_env(self, c: Container, spec: dict[str, Any]) -> None:
        """moby's link environment goes first; the container's own variables win over it."""
        if not c.host_config.get("Links"):
            return
        from ..network.links import link_env

        own = {e.split("=", 1)[0] for e in spec["env"]}
        spec["env"] = [e for e in link_env(self.store, c) if e.split("=", 1)[0] not in own] + spec["env"]

    # -- while running -----------------------------------------------------------------------------------
    def changed(self, c: Container) -> None:
        """After connect/disconnect: a running container's /etc/hosts and DNS follow its networks."""
        if not c.running:
            return
        with contextlib.suppress(OSError):
            self._write_hosts(c)
        services = self._services
        if services is not None:
            services.container_up(c)

    def restore(self, c: Container) -> None:
        """A container kept running across refd's restart (live-restore): its addresses stay taken."""
        networks = self._networks
        if networks is not None:
            networks.restore(c)

    def services_up(self, c: Container) -> None:
        """DNS and port proxies live in refd: back for a container that outlived its refd."""
        services = self._services
        if services is not None:
            with contextlib.suppress(Exception):
                services.container_up(c)

    # -- exit --------------------------------------------------------------------------------------------
    def down(self, c: Container) -> None:
        """Release the sandbox, endpoints and services; never keeps a dead container from stopping."""
        services = self._services
        if services is not None:
            with contextlib.suppress(Exception):
                services.container_down(c)
        networks = self._networks
        if networks is not None:
            try:
                networks.sandbox_down(c)
            except Exception as exc:
                self.daemon.log.warning(f"failed to release the network of container {c.id}: {exc}")
        if getattr(self.daemon, "idmap", None) is not None:
            from ..network.sandbox import delete_netns, userns_path

            delete_netns(userns_path(self.daemon.config["exec-root"], c.id))
