"""All networks of one daemon: the predefined ones, user-defined bridges, and each container's endpoints.

Follows dockerd 28 (libnetwork): ``bridge`` (docker0, or ``--bridge``/``--bip``), ``host`` and ``none``
exist from boot; user-defined bridge networks get a ``br-<id>`` bridge and a subnet from the default
pools; a container's endpoints are made when it starts (veth into its sandbox, an address from the
network's pool) and released when it stops, with ``connect``/``disconnect`` events as dockerd emits.
Records live under ``<data-root>/network/files``; bridges refd made are removed at shutdown.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import ApiError, conflict, invalid, not_found
from . import bridge as br
from .ipam import (
    AddressPool,
    IPAMError,
    Pool,
    aux_addresses,
    configured_pools,
    local_pool_problem,
    next_free_subnet,
    next_free_subnet6,
    validate_config,
)
from .model import DEFAULT_BRIDGE_OPTIONS, PREDEFINED, Network
from .netlink import Netlink, NetlinkError
from .sandbox import create_netns, create_userns, delete_netns, netns_path, userns_path

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from ..containers.model import Container
    from ..daemon import Daemon

__all__ = ["NetworkError", "NetworkManager", "destroy_sandbox", "empty_endpoint", "parse_mac"]


#: dockerd 28.5's words when the address pools give the default bridge no subnet
_NO_DEFAULT_BRIDGE = 'Error initializing network controller: error creating default "bridge" network: '


class NetworkError(Exception):
    """The network controller cannot start; the message is dockerd's start-up error."""


def _now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def empty_endpoint(config: dict[str, Any] | None = None) -> dict[str, Any]:
    """An endpoint entry of ``NetworkSettings.Networks`` before the container runs."""
    config = config or {}
    return {
        "IPAMConfig": config.get("IPAMConfig") or None,
        "Links": config.get("Links") or None,
        "Aliases": config.get("Aliases") or None,
        "MacAddress": config.get("MacAddress") or "",
        "DriverOpts": config.get("DriverOpts") or None,
        "GwPriority": int(config.get("GwPriority") or 0),
        "NetworkID": "",
        "EndpointID": "",
        "Gateway": "",
        "IPAddress": "",
        "IPPrefixLen": 0,
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "DNSNames": None,
    }


def _go_ip(text: str, version: int | None = None) -> bool:
    """Go's net.ParseIP, not the unspecified address; ``version`` 4 wants To4() to work, 6 wants it not to
    (an IPv4-mapped IPv6 address counts as IPv4)."""
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return False
    if addr.is_unspecified:
        return False
    v4 = addr.version == 4 or (isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None)
    return version is None or v4 == (version == 4)


def parse_mac(text: str) -> str | None:
    """Go's net.ParseMAC (6, 8 or 20 bytes; ``:``/``-`` between pairs or ``.`` between quads) as
    ``aa:bb:...``; None when Go refuses it."""
    if len(text) < 14:
        return None
    if text[2] in ":-":
        size, sep, width = (len(text) + 1) // 3, text[2], 2
        if (len(text) + 1) % 3:
            return None
    elif text[4] == ".":
        size, sep, width = 2 * (len(text) + 1) // 5, ".", 4
        if (len(text) + 1) % 5:
            return None
    else:
        return None
    groups = text.split(sep)
    if size not in (6, 8, 20) or any(len(g) != width for g in groups):
        return None
    try:
        raw = bytes.fromhex("".join(groups))
    except ValueError:
        return None
    return ":".join(f"{b:02x}" for b in raw)


def _ipam_order(*entries: tuple[dict[str, str], bool]) -> list[dict[str, str]]:
    """``IPAM.Config`` as moby's buildIPAMResources lists it: the configured entries (IPv4, then IPv6),
    then those the allocator chose (IPv4, then IPv6)."""
    configured = [entry for entry, given in entries if entry and given]
    return configured + [entry for entry, given in entries if entry and not given]


def destroy_sandbox(path: str) -> None:
    """Delete a sandbox's links (but lo) and its netns mount; a missing one is fine."""
    if os.path.exists(path):
        with contextlib.suppress(OSError, NetlinkError), Netlink(path) as inside:
            for name in inside.links():
                if name != "lo":
                    inside.delete_link(name)
    delete_netns(path)


class NetworkManager:
    """Networks, their bridges and address pools, and the endpoints of running containers."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.root = os.path.join(daemon.config["data-root"], "network", "files")
        self.networks: dict[str, Network] = {}
        self.made_bridges: set[str] = set()
        self.host: Netlink | None = None
        self.adopting = False  # at a boot after live-restore: rules the last refd left are taken over
        self._reaper: ThreadPoolExecutor | None = None  # tears the kernel side of sandboxes down
        self.pools: list[Pool] = []  # the configured default-address-pools, as libnetwork orders them
        self._forwarding: bool | None = None  # net.ipv4.ip_forward at first use (dockerd's sysinfo)

    def remaps(self, c: Container) -> bool:
        """Whether ``c`` runs in a remapped user namespace (``--userns-remap``, not ``--userns=host``)."""
        return self.daemon.idmap is not None and (c.host_config.get("UsernsMode") or "") != "host"

    @property
    def hairpin(self) -> bool:
        """``--userland-proxy=false``: published ports are reached through NAT alone, loopback included."""
        return not self.daemon.config.get("userland-proxy", True)

    @property
    def bridge_disabled(self) -> bool:
        """``--bridge=none``: no default bridge network; containers meant for it get loopback only."""
        return str(self.daemon.config.get("bridge") or "") == "none"

    # -- boot / shutdown -----------------------------------------------------------------------------
    def init(self) -> None:
        """Load records, make the predefined networks, bring every bridge up (dockerd's controller init)."""
        cfg = self.daemon.config
        problem = local_pool_problem(list(cfg.get("default-address-pool") or []))
        if problem:
            raise NetworkError(
                "Error initializing network controller: error obtaining controller instance: could not "
                f"construct local address space: {problem}"
            )
        self.pools = configured_pools(cfg.get("default-address-pool"))
        with contextlib.suppress(FileNotFoundError):
            for entry in sorted(os.listdir(self.root)):
                if entry.endswith(".json"):
                    try:
                        net = Network.load(os.path.join(self.root, entry))
                    except (OSError, ValueError, KeyError) as exc:
                        self.daemon.log.error(f"failed to load network record {entry}: {exc}")
                        continue
                    self.networks[net.id] = net
        self.adopting = bool(cfg.get("live-restore")) and self._live_sandboxes()
        try:
            self.host = Netlink()
        except OSError as exc:
            raise NetworkError(f"Error initializing network controller: netlink: {exc}") from None
        for name, driver in (("none", "null"), ("host", "host")):
            if self._by_name(name) is None:
                self._add(Network(id=secrets.token_hex(32), name=name, driver=driver, created=_now()))
        bridge_flag = str(cfg.get("bridge") or "")
        existing = self._by_name("bridge")
        if bridge_flag == "none":
            if existing is not None:
                self._forget(existing)
        else:
            self._default_bridge(existing, bridge_flag)
        self.ipv4_forwarding()  # dockerd reads its sysinfo once, after the default bridge's set-up
        for net in list(self.networks.values()):
            if net.driver == "bridge" and not net.is_default_bridge:
                try:
                    self._bring_up(net, wait=False)
                except br.BridgeError as exc:
                    self.daemon.log.error(f"failed to restore network {net.name}: {exc}")

    def _default_bridge(self, existing: Network | None, bridge_flag: str) -> None:
        """dockerd re-creates the default bridge (new id) each boot unless live-restored containers use it."""
        cfg = self.daemon.config
        keep_identity = bool(cfg.get("live-restore")) and self._live_sandboxes()
        name = bridge_flag or "docker0"
        bip = str(cfg.get("bip") or "")
        mtu = int(cfg.get("mtu") or 0) or 1500
        if bip:
            try:
                iface = ipaddress.IPv4Interface(bip)
            except ValueError:
                raise NetworkError(f"invalid bip: {bip!r}: not an IPv4 address in CIDR notation") from None
            subnet, gateway = iface.network, iface.ip
        elif bridge_flag and self.host is not None and self.host.exists(name):
            addrs = self.host.addresses(name)
            if not addrs:
                raise NetworkError(
                    f'Error initializing network controller: Error creating default "bridge" network: '
                    f"bridge {name} has no IPv4 address"
                )
            iface = ipaddress.IPv4Interface(addrs[0])
            subnet, gateway = iface.network, iface.ip
        elif existing is not None and existing.pool is not None and not bridge_flag:
            subnet, gateway = existing.pool.subnet, existing.pool.gateway  # type: ignore[assignment]
        else:
            try:
                subnet = next_free_subnet(self._host_networks(exclude={name}), self.pools)
            except ApiError as exc:  # the configured pools have none to give
                raise NetworkError(f"{_NO_DEFAULT_BRIDGE}{exc.message}") from None
            gateway = subnet.network_address + 1
        # moby getDefaultBridgeIPAMConf: the IPv4 entry is configured (shown first) when --bip,
        # --fixed-cidr or an address already on the bridge chose it, else it is the allocator's
        v4_configured = bool(bip or cfg.get("fixed-cidr")) or bool(
            self.host is not None and self.host.exists(name) and self.host.addresses(name)
        )
        ip_range = None
        if cfg.get("fixed-cidr"):
            try:
                ip_range = ipaddress.IPv4Network(str(cfg["fixed-cidr"]), strict=False)
            except ValueError:
                raise NetworkError(f"invalid fixed-cidr: {cfg['fixed-cidr']!r}") from None
        pool6, v6_entry, v6_configured = (
            self._default_bridge_v6(name) if cfg.get("ipv6") else (None, {}, False)
        )
        options = dict(DEFAULT_BRIDGE_OPTIONS)
        options["com.docker.network.bridge.name"] = name
        options["com.docker.network.driver.mtu"] = str(mtu)
        options["com.docker.network.bridge.enable_icc"] = "true" if cfg.get("icc", True) else "false"
        # moby verifyDaemonSettings: --iptables=false turns --ip-masq off too
        masquerade = cfg.get("ip-masq", True) and cfg.get("iptables", True)
        options["com.docker.network.bridge.enable_ip_masquerade"] = "true" if masquerade else "false"
        v4_entry = {"Subnet": str(subnet), "Gateway": str(gateway)}
        if ip_range is not None:
            v4_entry["IPRange"] = str(ip_range)
        net = Network(
            id=existing.id if existing is not None and keep_identity else secrets.token_hex(32),
            name="bridge",
            driver="bridge",
            created=existing.created if existing is not None and keep_identity else _now(),
            ipam_config=_ipam_order((v4_entry, v4_configured), (v6_entry, v6_configured)),
            options=options,
            enable_ipv6=pool6 is not None,
            pool=AddressPool(subnet=subnet, gateway=gateway, ip_range=ip_range),
            pool6=pool6,
            user_subnet=v4_configured,  # moby: a static address needs a configured IPv4 pool
        )
        if existing is not None:
            self.networks.pop(existing.id, None)
        self._add(net)
        try:
            self._bring_up(net, create=not bridge_flag or bridge_flag == "docker0", wait=False)
        except br.BridgeError as exc:
            raise NetworkError(
                f'Error initializing network controller: Error creating default "bridge" network: {exc}'
            ) from None

    def _default_bridge_v6(self, name: str) -> tuple[AddressPool, dict[str, str], bool]:
        """``--ipv6`` on the default bridge: its pool, its IPAM entry and whether it was configured
        (``--fixed-cidr-v6``, ``--bip6``) rather than taken from the daemon's ULA pool."""
        cfg = self.daemon.config
        fixed, bip6 = str(cfg.get("fixed-cidr-v6") or ""), str(cfg.get("bip6") or "")
        ip_range: ipaddress.IPv6Network | None = None
        try:
            if fixed:
                ip_range = ipaddress.IPv6Network(fixed, strict=False)
            if bip6:
                iface = ipaddress.IPv6Interface(bip6)
                subnet, gateway = iface.network, iface.ip
            elif ip_range is not None:
                subnet, gateway = ip_range, ip_range.network_address + 1
            else:
                subnet = next_free_subnet6(
                    self._host_networks(exclude={name}), self.daemon.engine_id, self.pools
                )
                gateway = subnet.network_address + 1
        except ValueError as exc:
            raise NetworkError(f"invalid IPv6 configuration of the default bridge: {exc}") from None
        except ApiError as exc:  # the configured IPv6 pools have none to give
            raise NetworkError(f"{_NO_DEFAULT_BRIDGE}{exc.message}") from None
        entry = {"Subnet": str(subnet)}
        if bip6 or not fixed:
            entry["Gateway"] = str(gateway)
        if ip_range is not None:
            entry["IPRange"] = str(ip_range)
        pool = AddressPool(subnet=subnet, gateway=gateway, ip_range=ip_range)
        return pool, entry, bool(fixed or bip6)

    def _live_sandboxes(self) -> bool:
        """Whether containers outlived the previous daemon (live-restore): their shims still run."""
        root = os.path.join(self.daemon.config["exec-root"], "containers")
        with contextlib.suppress(OSError):
            for cid in os.listdir(root):
                pidfile = os.path.join(root, cid, "shim.pid")
                with contextlib.suppress(OSError, ValueError):
                    with open(pidfile) as fh:
                        os.kill(int(fh.read().strip()), 0)
                    return True
        return False

    def _bring_up(self, net: Network, create: bool = True, wait: bool = True) -> None:
        """The bridge up with its address; unless ``wait``, its iptables run is left to Firewall.settle."""
        assert self.host is not None and net.pool is not None
        existed = self.host.exists(net.bridge_name)
        br.ensure_bridge(
            self.host, net.bridge_name, net.bridge_cidr, net.mtu, create, net.bridge_cidr6, self.hairpin
        )
        if not existed or (self.adopting and create):  # after a live-restore the bridges are still ours
            self.made_bridges.add(net.bridge_name)
        if self.daemon.config.get("ip-forward", True):  # libnetwork's setupIPv4Forwarding, per bridge network
            with contextlib.suppress(OSError), open("/proc/sys/net/ipv4/ip_forward", "w") as fh:
                fh.write("1")
            if net.pool6 is not None:  # and setupIPv6Forwarding for an IPv6 one
                for key in ("default", "all"):
                    with (
                        contextlib.suppress(OSError),
                        open(f"/proc/sys/net/ipv6/conf/{key}/forwarding", "w") as fh,
                    ):
                        fh.write("1")
        firewall = getattr(self.daemon, "firewall", None)
        if firewall is not None:
            firewall.network_up(net, adopt=self.adopting, wait=wait)

    def _host_networks(
        self,
        exclude: set[str] = frozenset(),  # type: ignore[assignment]
    ) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """Subnets already on this host's interfaces and refd's networks (pools must not overlap them)."""
        taken = [n.pool.subnet for n in self.networks.values() if n.pool is not None]
        taken += [n.pool6.subnet for n in self.networks.values() if n.pool6 is not None]
        if self.host is not None:
            with contextlib.suppress(NetlinkError):
                for name in self.host.links():
                    if name in exclude or name == "lo":
                        continue
                    for cidr in self.host.addresses(name):
                        taken.append(ipaddress.IPv4Interface(cidr).network)
                    for cidr in self.host.addresses(name, version=6):
                        if not cidr.startswith("fe80:"):
                            taken.append(ipaddress.IPv6Interface(cidr).network)
        return taken

    def shutdown(self, keep_running: bool = False) -> None:
        """Remove the bridges refd made (unless live-restore keeps containers on them)."""
        self.drain()
        if self.host is None:
            return
        firewall = getattr(self.daemon, "firewall", None)
        if not keep_running:
            bridges = [net for net in self.networks.values() if net.driver == "bridge"]
            rules_gone = firewall.networks_down(bridges) if firewall is not None else None
            try:
                for name in sorted(self.made_bridges):  # while iptables-restore removes their rules
                    br.remove_bridge(self.host, name)
                self.made_bridges.clear()
            finally:
                if rules_gone is not None:
                    rules_gone()
        self.host.close()
        self.host = None

    # -- lookup --------------------------------------------------------------------------------------
    def _add(self, net: Network) -> None:
        self.networks[net.id] = net
        net.save(self.root)

    def _forget(self, net: Network) -> None:
        self.networks.pop(net.id, None)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.root, f"{net.id}.json"))

    def _by_name(self, name: str) -> Network | None:
        return next((n for n in self.networks.values() if n.name == name), None)

    def find(self, ref: str) -> Network | None:
        """dockerd's order: full id, then full name, then a unique id prefix."""
        if ref in self.networks:
            return self.networks[ref]
        named = self._by_name(ref)
        if named is not None:
            return named
        matches = [n for i, n in self.networks.items() if ref and i.startswith(ref)]
        return matches[0] if len(matches) == 1 else None

    def get(self, ref: str) -> Network:
        net = self.find(ref)
        if net is None:
            raise not_found(f"network {ref} not found")
        return net

    # -- create / remove / prune ---------------------------------------------------------------------
    def create(self, body: dict[str, Any]) -> Network:
        name = body.get("Name")
        if not isinstance(name, str) or not name:
            raise invalid("invalid name: name is empty")
        if name in PREDEFINED:
            raise ApiError(403, f"operation is not permitted on predefined {name} network ")
        if self._by_name(name) is not None:
            raise conflict(f"network with name {name} already exists")
        driver = body.get("Driver") or "bridge"
        if driver != "bridge":
            if driver in ("host", "null"):
                raise ApiError(403, f'only one instance of "{driver}" network is allowed')
            raise not_found(f'plugin "{driver}" not found')
        ipam = body.get("IPAM") or {}
        if (ipam.get("Driver") or "default") != "default":
            raise not_found(f'plugin "{ipam["Driver"]}" not found')
        configs = [c for c in ipam.get("Config") or [] if isinstance(c, dict)]
        options = {str(k): str(v) for k, v in (body.get("Options") or {}).items()}
        bridge_name = options.get("com.docker.network.bridge.name", "")
        if bridge_name and any(n.bridge_name == bridge_name for n in self.networks.values() if n.pool):
            raise ApiError(403, f"bridge name {bridge_name} already in use")
        v4 = [c for c in configs if ":" not in (c.get("Subnet") or "")]
        enable_ipv6 = self._wants_ipv6(body, options)
        modes = [options.get(f"com.docker.network.bridge.gateway_mode_ipv{v}", "") for v in (4, 6)]
        if "isolated" in modes and not body.get("Internal"):
            raise ApiError(500, "gateway mode 'isolated' can only be used for an internal network")
        inhibit = options.get("com.docker.network.bridge.inhibit_ipv4", "").lower() in ("1", "t", "true")
        # libnetwork GetSkipGwAlloc: no gateway address is taken for an isolated network, nor for an
        # internal one whose bridge has no IPv4 address (unless the user names one)
        skip_gw4 = modes[0] == "isolated" or (inhibit and bool(body.get("Internal")))
        pool6, v6_entry = self._user_pool6(configs, modes[1] == "isolated") if enable_ipv6 else (None, {})
        aux: dict[str, Any] = {}
        if v4 and v4[0].get("Subnet"):
            subnet, ip_range, gateway = validate_config(v4[0])
            aux = aux_addresses(v4[0], subnet)
            for extra in v4[1:]:  # moby's ValidateIPAM checks every entry before the driver refuses them
                aux_addresses(extra, validate_config(extra)[0])
            for other in self._host_networks():
                if subnet.overlaps(other):
                    raise ApiError(
                        403, "invalid pool request: Pool overlaps with other one on this address space"
                    )
        else:
            subnet = next_free_subnet(self._host_networks(), self.pools)
            ip_range, gateway = None, None
        if gateway is None and not skip_gw4:
            gateway = subnet.network_address + 1
        config: dict[str, Any] = {"Subnet": str(subnet)}
        if ip_range is not None:
            config["IPRange"] = str(ip_range)
        user_gateway = bool(v4 and v4[0].get("Gateway"))
        if gateway is not None and (user_gateway or not (v4 and v4[0].get("Subnet"))):
            # dockerd 28 echoes a user subnet as given; the chosen gateway shows once reloaded from its store
            config["Gateway"] = str(gateway)
        if aux:
            config["AuxiliaryAddresses"] = {k: str(v) for k, v in v4[0]["AuxiliaryAddresses"].items()}
        pool = AddressPool(subnet=subnet, gateway=gateway, ip_range=ip_range)
        pool.reserve_aux(aux)
        if len(v4) > 1:  # libnetwork's bridge driver, after the pools were allocated
            raise ApiError(403, "bridge driver doesn't support multiple subnets")
        net = Network(
            id=secrets.token_hex(32),
            name=name,
            driver="bridge",
            created=_now(),
            ipam_config=_ipam_order(
                (config, bool(v4 and v4[0].get("Subnet"))),
                (v6_entry, any(":" in (c.get("Subnet") or "") for c in configs)),
            ),
            ipam_options=dict(ipam["Options"]) if isinstance(ipam.get("Options"), dict) else None,
            internal=bool(body.get("Internal")),
            attachable=bool(body.get("Attachable")),
            options=options,
            labels={str(k): str(v) for k, v in (body.get("Labels") or {}).items()},
            pool=pool,
            user_subnet=bool(v4 and v4[0].get("Subnet")),
            enable_ipv6=enable_ipv6,
            pool6=pool6,
        )
        try:
            self._bring_up(net)
        except br.BridgeError as exc:
            raise ApiError(500, f"failed to create network {name}: {exc}") from None
        self._add(net)
        self._event(net, "create")
        return net

    @staticmethod
    def _wants_ipv6(body: dict[str, Any], options: dict[str, str]) -> bool:
        """``EnableIPv6``, or the ``com.docker.network.enable_ipv6`` driver option it replaces (moby
        daemon/network.go: the field wins and the option is dropped)."""
        key = "com.docker.network.enable_ipv6"
        if body.get("EnableIPv6") is not None:
            options.pop(key, None)
            return bool(body["EnableIPv6"])
        if key in options:
            text = options.pop(key)
            if text.lower() not in ("1", "t", "true", "0", "f", "false"):
                raise invalid(f'driver-opt "{key}" is not a valid bool')
            return text.lower() in ("1", "t", "true")
        return False

    def _user_pool6(
        self, configs: list[dict[str, Any]], skip_gateway: bool = False
    ) -> tuple[AddressPool, dict[str, Any]]:
        """The IPv6 pool of a new ``EnableIPv6`` network: the IPv6 entry given (checked as dockerd does),
        else the next /64 of the daemon's ULA prefix; with the IPAM entry inspect shows."""
        v6 = [c for c in configs if ":" in (c.get("Subnet") or "")]
        aux: dict[str, Any] = {}
        entry: dict[str, Any]
        if v6:
            subnet, ip_range, gateway = validate_config(v6[0])
            aux = aux_addresses(v6[0], subnet)
            for other in self._host_networks():
                if subnet.overlaps(other):
                    raise ApiError(
                        403, "invalid pool request: Pool overlaps with other one on this address space"
                    )
            entry = {"Subnet": str(subnet)}
            if ip_range is not None:
                entry["IPRange"] = str(ip_range)
            if gateway is not None:
                entry["Gateway"] = str(gateway)
            if aux:
                entry["AuxiliaryAddresses"] = {k: str(v) for k, v in v6[0]["AuxiliaryAddresses"].items()}
        else:
            subnet = next_free_subnet6(self._host_networks(), self.daemon.engine_id, self.pools)
            ip_range, gateway = None, None
            entry = {"Subnet": str(subnet)}
        if gateway is None and not skip_gateway:
            gateway = subnet.network_address + 1
            if not v6:
                entry["Gateway"] = str(gateway)
        pool = AddressPool(subnet=subnet, gateway=gateway, ip_range=ip_range)
        pool.reserve_aux(aux)
        return pool, entry

    def active_endpoints(self, net: Network) -> list[tuple[Container, dict[str, Any]]]:
        out = []
        for c in self.daemon.containers.by_id.values():
            ep = (c.network_settings.get("Networks") or {}).get(net.name)
            if ep and ep.get("EndpointID") and ep.get("NetworkID") == net.id:
                out.append((c, ep))
        return out

    def remove(self, ref: str) -> Network:
        net = self.get(ref)
        if net.predefined:
            raise ApiError(403, f"{net.name} is a pre-defined network and cannot be removed")
        active = self.active_endpoints(net)
        if active:
            c, ep = active[0]
            raise ApiError(
                403,
                f"error while removing network: network {net.name} has active endpoints "
                f'(name:"{c.name.removeprefix("/")}" id:"{ep["EndpointID"][:12]}")',
            )
        firewall = getattr(self.daemon, "firewall", None)
        if firewall is not None:
            firewall.network_down(net)
        if self.host is not None and net.bridge_name in self.made_bridges:
            br.remove_bridge(self.host, net.bridge_name)
            self.made_bridges.discard(net.bridge_name)
        self._forget(net)
        self._event(net, "destroy")
        return net

    def _event(self, net: Network, action: str, **extra: str) -> None:
        from ..events import make_event

        attrs = {"name": net.name, "type": net.driver, **extra}
        self.daemon.events.publish(make_event("network", action, net.id, attrs))

    def containers_doc(self, net: Network) -> dict[str, Any]:
        """``Containers`` of a network's inspect: its running endpoints."""
        out: dict[str, Any] = {}
        for c, ep in self.active_endpoints(net):
            out[c.id] = {
                "Name": c.name.removeprefix("/"),
                "EndpointID": ep["EndpointID"],
                "MacAddress": ep["MacAddress"],
                "IPv4Address": f"{ep['IPAddress']}/{ep['IPPrefixLen']}" if ep["IPAddress"] else "",
                "IPv6Address": (
                    f"{ep['GlobalIPv6Address']}/{ep['GlobalIPv6PrefixLen']}"
                    if ep.get("GlobalIPv6Address")
                    else ""
                ),
            }
        return out

    # -- container side ------------------------------------------------------------------------------
    def ipv4_forwarding(self) -> bool:
        """Whether ``net.ipv4.ip_forward`` was on at boot, after the default bridge's set-up (dockerd reads
        its sysinfo once): off for the daemon's life with ``--bridge=none``, whatever networks come later."""
        if self._forwarding is None:
            try:
                with open("/proc/sys/net/ipv4/ip_forward") as fh:
                    self._forwarding = fh.read().strip() == "1"
            except OSError:
                self._forwarding = False
        return self._forwarding

    def create_warnings(self, host_config: dict[str, Any]) -> list[str]:
        """moby verifyPlatformContainerSettings: forwarding off does not matter to host or none only."""
        mode = str(host_config.get("NetworkMode") or "bridge")
        if mode in ("host", "none") or self.ipv4_forwarding():
            return []
        return ["IPv4 forwarding is disabled. Networking will not work."]

    def check_rename(self, c: Container) -> None:
        """moby rename.go: a container with a sandbox renames its endpoints, so each of its networks must
        exist (``--bridge=none``: a container first started for the default bridge cannot be renamed)."""
        if not c.network_settings.get("SandboxID") or not c.running:
            return
        for name in c.network_settings.get("Networks") or {}:
            if self.find(name) is None:
                raise not_found(f"network {name} not found")

    def initial_networks(self, host_config: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        """``NetworkSettings.Networks`` at create, as moby's updateContainerNetworkSettings: the networks
        NetworkingConfig names when it names any (a network that does not exist yet is kept, and refused
        when the container starts), else the NetworkMode's; each endpoint's settings checked as moby's
        validateNetworkingConfig does."""
        mode = host_config.get("NetworkMode") or "bridge"
        endpoints = ((body.get("NetworkingConfig") or {}).get("EndpointsConfig")) or {}
        self._check_endpoints(endpoints)
        if mode.startswith("container:"):
            return {}
        out: dict[str, Any] = {}
        for key, cfg in endpoints.items():
            net = self.find(key)
            out[net.name if net is not None else key] = empty_endpoint(cfg)
        if not out:
            name = "bridge" if mode == "default" else mode
            net = self.find(name)
            out[net.name if net is not None else name] = empty_endpoint()
        return out

    def _check_endpoints(self, endpoints: dict[str, Any]) -> None:
        """Every endpoint's settings, each problem named, joined as moby's multierror."""
        problems: list[str] = []
        for key, cfg in endpoints.items():
            if cfg is None:
                problems.append(f"invalid config for network {key}: EndpointsConfig is nil")
                continue
            net = self.find(key)
            try:
                if net is not None:
                    self._check_endpoint_config(net, cfg)
                elif (
                    key == "bridge"
                ):  # --bridge=none: moby validates the settings by the network's name alone
                    self._check_predefined_endpoint(key, cfg)
                else:
                    self._check_unknown_endpoint(key, cfg)
            except ApiError as exc:
                problems.append(exc.message)
        if len(problems) == 1:
            raise invalid(problems[0])
        if problems:
            raise invalid("* " + "\n* ".join(p.replace("\n", "\n\t") for p in problems))

    @staticmethod
    def _check_unknown_endpoint(name: str, config: dict[str, Any]) -> None:
        """A network that does not exist yet: only what moby checks without it (addresses' syntax, MAC)."""
        ipam = config.get("IPAMConfig") or {}
        problems = []
        v4 = str(ipam.get("IPv4Address") or "")
        if v4 and not _go_ip(v4, version=4):
            problems.append(f"invalid IPv4 address: {v4}")
        v6 = str(ipam.get("IPv6Address") or "")
        if v6 and not _go_ip(v6, version=6):
            problems.append(f"invalid IPv6 address: {v6}")
        problems += [
            f"invalid link-local IP address: {a}"
            for a in ipam.get("LinkLocalIPs") or []
            if not _go_ip(str(a))
        ]
        if problems:
            text = problems[0] if len(problems) == 1 else "* " + "\n* ".join(problems)
            raise invalid(f"invalid config for network {name}: invalid endpoint settings:\n{text}")
        mac = str(config.get("MacAddress") or "")
        if mac and parse_mac(mac) is None:
            raise invalid(f"invalid config for network {name}: invalid MAC address {mac}")

    @staticmethod
    def _check_predefined_endpoint(name: str, config: dict[str, Any]) -> None:
        if ((config.get("IPAMConfig") or {}).get("IPv4Address")) or "":
            raise invalid(
                f"invalid config for network {name}: invalid endpoint settings:\n"
                "user specified IP address is supported on user defined networks only"
            )

    def _check_endpoint_config(self, net: Network, config: dict[str, Any]) -> None:
        self._check_endpoint_addresses(net, config)
        mac = str(config.get("MacAddress") or "")
        if mac and parse_mac(mac) is None:
            raise invalid(f"invalid config for network {net.name}: invalid MAC address {mac}")

    def _check_endpoint_addresses(self, net: Network, config: dict[str, Any]) -> None:
        wanted = ((config.get("IPAMConfig") or {}).get("IPv4Address")) or ""
        if not wanted:
            return
        problems = []
        if not net.user_defined:
            problems.append("user specified IP address is supported on user defined networks only")
        if net.driver != "bridge" or not net.user_subnet or net.pool is None:
            problems.append(
                "user specified IP address is supported only when connecting to networks with user "
                "configured subnets"
            )
        if problems:
            text = problems[0] if len(problems) == 1 else "\n".join(f"* {p}" for p in problems)
            raise invalid(f"invalid config for network {net.name}: invalid endpoint settings:\n{text}")
        try:
            addr = ipaddress.IPv4Address(wanted)
        except ValueError:
            raise invalid(
                f"invalid config for network {net.name}: invalid endpoint settings:\n"
                f"invalid IPv4 address: {wanted}"
            ) from None
        if net.pool is not None and addr not in net.pool.subnet:
            raise invalid(
                f"invalid config for network {net.name}: invalid endpoint settings:\n"
                f"no configured subnet or ip-range contain the IP address {wanted}"
            )

    def uses_embedded_dns(self, c: Container) -> bool:
        """Containers on a user-defined network resolve through 127.0.0.11."""
        for name in c.network_settings.get("Networks") or {}:
            net = self.find(name)
            if net is not None and net.user_defined:
                return True
        return False

    def sandbox_up(self, c: Container) -> str | None:
        """Make the container's sandbox and its endpoints; returns the netns path to join (None: not ours)."""
        mode = c.host_config.get("NetworkMode") or "bridge"
        if mode.startswith("container:"):
            return None
        settings = c.network_settings
        sandbox_id = secrets.token_hex(32)
        if mode == "host":
            # dockerd's host sandbox: the daemon's own namespace, keyed "default"
            settings["SandboxID"] = sandbox_id
            settings["SandboxKey"] = os.path.join(self.daemon.config["exec-root"], "netns", "default")
            for name, ep in (settings.get("Networks") or {}).items():
                net = self.find(name)
                if net is not None:
                    ep.update(NetworkID=net.id, EndpointID=secrets.token_hex(32))
                    self._event(net, "connect", container=c.id)
            return None
        if self.bridge_disabled and c.config.get("NetworkDisabled"):
            return None  # moby initializeNetworking: no sandbox; the runtime's own netns (loopback only)
        path = netns_path(self.daemon.config["exec-root"], sandbox_id)
        nets = dict(settings.get("Networks") or {})
        resolved: list[tuple[Network, dict[str, Any]]] = []
        for name, ep in nets.items():
            if name == "bridge" and self.bridge_disabled:
                # moby connectToNetwork: the default bridge is off, so the container's network is disabled
                c.config["NetworkDisabled"] = True
                continue
            net = self.find(name)
            if net is None or (net.pool is None and net.driver == "bridge"):
                raise ApiError(404, f"failed to set up container networking: network {name} not found")
            if net.name != name:
                nets.pop(name)
            resolved.append((net, ep))
        try:
            if self.remaps(c):  # the netns belongs to the container's user namespace, as under dockerd
                create_userns(userns_path(self.daemon.config["exec-root"], c.id), self.daemon.idmap, path)
            else:
                create_netns(path)
        except OSError as exc:
            raise ApiError(
                500, f"failed to set up container networking: failed to create netns {path}: {exc}"
            ) from None
        settings["SandboxID"] = sandbox_id
        settings["SandboxKey"] = path
        try:
            for net, ep in resolved:
                if net.driver == "null":
                    ep.update(NetworkID=net.id, EndpointID=secrets.token_hex(32))
                    self._event(net, "connect", container=c.id)
                    continue
                self._attach(c, net, ep, path)
            self._update_gateways(c)
        except BaseException:
            self.sandbox_down(c)
            raise
        self._sync_primary(c)
        return path

    def _update_gateways(self, c: Container) -> None:
        """libnetwork's gateway endpoint after any join or leave: the endpoints ordered as its Less (higher
        GwPriority, then not internal, then with more gateways, then the network's name) and the first
        dual-stack one, else the first with each family's gateway, gives the default routes."""
        sandbox = c.network_settings.get("SandboxKey") or ""
        if not sandbox or sandbox.endswith("/netns/default"):
            return
        candidates = []
        for name, ep in (c.network_settings.get("Networks") or {}).items():
            net = self.find(name)
            if net is None or net.driver != "bridge" or not ep.get("EndpointID"):
                continue
            gw4 = bool(ep.get("Gateway") and ep.get("IPAddress"))
            gw6 = bool(ep.get("IPv6Gateway") and ep.get("GlobalIPv6Address"))
            key = (-int(ep.get("GwPriority") or 0), net.internal, -(int(gw4) + int(gw6)), net.name)
            candidates.append((key, ep, gw4, gw6))
        chosen4: dict[str, Any] | None = None
        chosen6: dict[str, Any] | None = None
        for _, ep, gw4, gw6 in sorted(candidates, key=lambda item: item[0]):
            if gw4 and gw6:
                chosen4, chosen6 = ep, ep
                break
            if gw4 and chosen4 is None:
                chosen4 = ep
            if gw6 and chosen6 is None:
                chosen6 = ep
        br.set_gateways(
            sandbox,
            (chosen4["Gateway"], chosen4["IPAddress"]) if chosen4 else None,
            (chosen6["IPv6Gateway"], chosen6["GlobalIPv6Address"]) if chosen6 else None,
        )

    def _attach(self, c: Container, net: Network, ep: dict[str, Any], sandbox: str) -> None:
        """Connect one endpoint inside a running sandbox (its default routes: :meth:`_update_gateways`)."""
        assert net.pool is not None and self.host is not None
        wanted = ((ep.get("IPAMConfig") or {}).get("IPv4Address")) or ""
        wanted6 = ((ep.get("IPAMConfig") or {}).get("IPv6Address")) or ""
        try:
            addr = net.pool.allocate(wanted)
        except IPAMError as exc:
            raise ApiError(exc.status, f"failed to set up container networking: {exc.message}") from None
        addr6 = None
        if net.pool6 is not None:
            try:
                addr6 = net.pool6.allocate(wanted6)
            except IPAMError as exc:
                net.pool.release(str(addr))
                raise ApiError(exc.status, f"failed to set up container networking: {exc.message}") from None
        desired = parse_mac(c.desired_macs.get(net.name, "")) or ""
        # netlabel.Ifname: the endpoint's interface name in the container, chosen by the user
        ifname = str((ep.get("DriverOpts") or {}).get("com.docker.network.endpoint.ifname") or "")
        try:
            mac = br.attach_endpoint(
                self.host,
                sandbox,
                net.bridge_name,
                ifname or br.next_ifname(sandbox),
                f"{addr}/{net.pool.subnet.prefixlen}",
                None,
                net.mtu,
                desired,
                f"{addr6}/{net.pool6.subnet.prefixlen}" if addr6 is not None and net.pool6 else "",
                None,
                self.hairpin,
            )
        except br.BridgeError as exc:
            net.pool.release(str(addr))
            if addr6 is not None and net.pool6 is not None:
                net.pool6.release(str(addr6))
            raise ApiError(500, f"failed to set up container networking: {exc}") from None
        net.save(self.root)
        ep.update(
            NetworkID=net.id,
            EndpointID=secrets.token_hex(32),
            Gateway="" if net.internal or net.pool.gateway is None else str(net.pool.gateway),
            IPAddress=str(addr),
            IPPrefixLen=net.pool.subnet.prefixlen,
            IPv6Gateway="" if net.internal or addr6 is None else net.gateway6,
            GlobalIPv6Address=str(addr6) if addr6 is not None else "",
            GlobalIPv6PrefixLen=net.pool6.subnet.prefixlen if addr6 is not None and net.pool6 else 0,
            MacAddress=mac,
            DNSNames=self._dns_names(c, ep) if net.user_defined else None,
        )
        c.network_settings.setdefault("Networks", {})[net.name] = ep
        self._event(net, "connect", container=c.id)

    @staticmethod
    def _dns_names(c: Container, ep: dict[str, Any]) -> list[str]:
        """moby buildEndpointDNSNames: the name, the aliases, the short ID and the host name, once each."""
        names = [c.name.removeprefix("/"), *(ep.get("Aliases") or []), c.id[:12]]
        if c.config.get("Hostname"):
            names.append(str(c.config["Hostname"]))
        out: list[str] = []
        for n in names:
            if n not in out:
                out.append(n)
        return out

    def _sync_primary(self, c: Container) -> None:
        """The legacy top-level fields mirror the default bridge's endpoint, as dockerd's do."""
        settings = c.network_settings
        ep = (settings.get("Networks") or {}).get("bridge") or {}
        for key in (
            "EndpointID",
            "Gateway",
            "IPAddress",
            "IPPrefixLen",
            "MacAddress",
            "IPv6Gateway",
            "GlobalIPv6Address",
            "GlobalIPv6PrefixLen",
        ):
            settings[key] = ep.get(key, 0 if key.endswith("PrefixLen") else "")

    def sandbox_down(self, c: Container) -> None:
        """Release every endpoint and the sandbox; inspect then shows the stopped shape (no addresses)."""
        settings = c.network_settings
        path = settings.get("SandboxKey") or ""
        for name, ep in (settings.get("Networks") or {}).items():
            net = self.find(name)
            if ep.get("IPAddress") and net is not None and net.pool is not None:
                net.pool.release(ep["IPAddress"])
            if ep.get("GlobalIPv6Address") and net is not None and net.pool6 is not None:
                net.pool6.release(ep["GlobalIPv6Address"])
            if ep.get("EndpointID") and net is not None:
                self._event(net, "disconnect", container=c.id)
            ep.update(
                NetworkID=ep.get("NetworkID") if ep.get("EndpointID") else ep.get("NetworkID", ""),
                EndpointID="",
                Gateway="",
                IPAddress="",
                IPPrefixLen=0,
                IPv6Gateway="",
                GlobalIPv6Address="",
                GlobalIPv6PrefixLen=0,
                MacAddress="",
            )
        if path and not path.endswith("/netns/default"):
            # the kernel side goes in the background: deleting a veth waits out RCU grace periods
            # (20-35 ms per container here) and nothing needs it gone now (addresses and settings
            # are released above; sandbox paths are never reused)
            if self._reaper is None:
                from concurrent.futures import ThreadPoolExecutor  # on the first teardown, not at boot

                self._reaper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="refd-sandbox-reaper")
            self._reaper.submit(destroy_sandbox, path)
        settings.update(SandboxID="", SandboxKey="", Ports={})
        self._sync_primary(c)

    def drain(self) -> None:
        """Wait until every sandbox handed to the background reaper is gone."""
        if self._reaper is not None:
            self._reaper.shutdown(wait=True)
            self._reaper = None

    def restore(self, c: Container) -> None:
        """A live-restored container keeps its addresses: mark them used again."""
        for name, ep in (c.network_settings.get("Networks") or {}).items():
            net = self.find(name)
            if net is not None and net.pool is not None and ep.get("IPAddress"):
                net.pool.reserve(ep["IPAddress"])
            if net is not None and net.pool6 is not None and ep.get("GlobalIPv6Address"):
                net.pool6.reserve(ep["GlobalIPv6Address"])

    # -- connect / disconnect ------------------------------------------------------------------------
    def connect(self, c: Container, ref: str, config: dict[str, Any]) -> None:
        net = self.get(ref)
        mode = c.host_config.get("NetworkMode") or "bridge"
        if net.driver == "host":
            raise invalid(
                "cannot connect container to host network - container must be created in host network mode"
            )
        if mode == "host":
            raise invalid("container cannot be disconnected from host network or connected to host network")
        if mode == "none" or net.driver == "null":
            raise invalid(
                "container cannot be connected to multiple networks with one of the networks in private "
                "(none) mode"
            )
        networks = c.network_settings.setdefault("Networks", {})
        if net.name in networks:
            raise ApiError(
                403, f"endpoint with name {c.name.removeprefix('/')} already exists in network {net.name}"
            )
        self._check_endpoint_config(net, config)
        ep = empty_endpoint(config)
        if c.running and c.network_settings.get("SandboxKey"):
            self._attach(c, net, ep, c.network_settings["SandboxKey"])
            self._update_gateways(c)
        else:
            networks[net.name] = ep
            if ep["MacAddress"]:  # used when the container starts (a running one's is not changed)
                c.desired_macs[net.name] = ep["MacAddress"]
        self._sync_primary(c)
        c.save()

    def disconnect(self, c: Container, ref: str, force: bool = False) -> None:
        net = self.find(ref)
        networks = c.network_settings.get("Networks") or {}
        if net is None:
            if force and ref in networks:
                networks.pop(ref)
                c.save()
                return
            raise not_found(f"network {ref} not found")
        mode = c.host_config.get("NetworkMode") or "bridge"
        if net.driver == "host" or mode == "host":
            raise invalid("container cannot be disconnected from host network or connected to host network")
        if net.name not in networks:
            raise ApiError(500, f"container {c.id} is not connected to network {net.name}")
        ep = networks.pop(net.name)
        c.desired_macs.pop(net.name, None)
        if ep.get("EndpointID") and c.network_settings.get("SandboxKey"):
            if ep.get("IPAddress"):
                br.detach_endpoint(c.network_settings["SandboxKey"], ep["IPAddress"])
                if net.pool is not None:
                    net.pool.release(ep["IPAddress"])
                if net.pool6 is not None and ep.get("GlobalIPv6Address"):
                    net.pool6.release(ep["GlobalIPv6Address"])
            self._event(net, "disconnect", container=c.id)
            self._update_gateways(c)
        self._sync_primary(c)
        c.save()

    # -- list ----------------------------------------------------------------------------------------
    def matches(self, net: Network, filters: dict[str, list[str]]) -> bool:
        checks: dict[str, Callable[[str], bool]] = {
            "name": lambda v: v in net.name,
            "id": lambda v: net.id.startswith(v),
            "driver": lambda v: v == net.driver,
            "scope": lambda v: v == "local",
            "type": lambda v: (v == "custom") != net.predefined,
            "dangling": lambda v: (
                (v.lower() in ("true", "1")) == (not net.predefined and not self._in_use(net))
            ),
        }
        for key, values in filters.items():
            if key == "label":
                for wanted in values:
                    k, _, v = wanted.partition("=")
                    if k not in net.labels or ("=" in wanted and net.labels[k] != v):
                        return False
                continue
            check = checks.get(key)
            if check is not None and values and not any(check(v) for v in values):
                return False
        return True

    def _in_use(self, net: Network) -> bool:
        return any(
            net.name in (c.network_settings.get("Networks") or {})
            for c in self.daemon.containers.by_id.values()
        )

    def ordered(self) -> list[Network]:
        """dockerd lists in its store's order; refd: predefined none, host, bridge, then by creation."""
        rank = {"none": 0, "host": 1, "bridge": 2}
        return sorted(self.networks.values(), key=lambda n: (rank.get(n.name, 3), n.created, n.name))
