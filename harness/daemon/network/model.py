"""A network as refd keeps it and as the Engine API shows it (``GET /networks/{id}``, dockerd 28's shape)."""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass, field
from typing import Any

from .ipam import AddressPool, aux_addresses

__all__ = ["PREDEFINED", "Network"]

#: Networks every daemon has; they cannot be created, removed or pruned.
PREDEFINED = ("bridge", "host", "none")
DEFAULT_BRIDGE_OPTIONS = {
    "com.docker.network.bridge.default_bridge": "true",
    "com.docker.network.bridge.enable_icc": "true",
    "com.docker.network.bridge.enable_ip_masquerade": "true",
    "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
    "com.docker.network.bridge.name": "docker0",
    "com.docker.network.driver.mtu": "1500",
}


@dataclass
class Network:
    id: str
    name: str
    driver: str
    created: str
    ipam_config: list[dict[str, str]] | None = None
    ipam_options: dict[str, str] | None = None
    internal: bool = False
    attachable: bool = False
    options: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    enable_ipv6: bool = False
    pool: AddressPool | None = None
    user_subnet: bool = False  # static endpoint addresses need a subnet the user chose
    pool6: AddressPool | None = None  # the IPv6 subnet of an EnableIPv6 network

    @property
    def predefined(self) -> bool:
        return self.name in PREDEFINED

    @property
    def is_default_bridge(self) -> bool:
        return self.name == "bridge" and self.driver == "bridge"

    @property
    def user_defined(self) -> bool:
        """User-defined bridge networks get the embedded DNS and DNSNames; the default bridge does not."""
        return self.driver == "bridge" and not self.is_default_bridge

    @property
    def bridge_name(self) -> str:
        return self.options.get("com.docker.network.bridge.name") or f"br-{self.id[:12]}"

    @property
    def mtu(self) -> int:
        text = self.options.get("com.docker.network.driver.mtu") or ""
        return int(text) if text.isdigit() else 0

    @property
    def prefixlen(self) -> int:
        return self.pool.subnet.prefixlen if self.pool else 0

    @property
    def gateway(self) -> str:
        return str(self.pool.gateway) if self.pool and self.pool.gateway else ""

    @property
    def gateway6(self) -> str:
        return str(self.pool6.gateway) if self.pool6 and self.pool6.gateway else ""

    @property
    def isolated4(self) -> bool:
        """libnetwork's bridge gateway mode ``isolated`` for IPv4: no address on the bridge, no gateway."""
        return self.options.get("com.docker.network.bridge.gateway_mode_ipv4") == "isolated"

    @property
    def isolated6(self) -> bool:
        return self.options.get("com.docker.network.bridge.gateway_mode_ipv6") == "isolated"

    @property
    def inhibit_ipv4(self) -> bool:
        """``com.docker.network.bridge.inhibit_ipv4``: the bridge gets no IPv4 address."""
        return self.options.get("com.docker.network.bridge.inhibit_ipv4", "").lower() in ("1", "t", "true")

    @property
    def bridge_cidr(self) -> str:
        """The IPv4 address the bridge holds ("" for none)."""
        if self.pool is None or self.pool.gateway is None or self.isolated4 or self.inhibit_ipv4:
            return ""
        return f"{self.pool.gateway}/{self.pool.subnet.prefixlen}"

    @property
    def bridge_cidr6(self) -> str:
        if self.pool6 is None or self.pool6.gateway is None or self.isolated6:
            return ""
        return f"{self.pool6.gateway}/{self.pool6.subnet.prefixlen}"

    def document(self, containers: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "Name": self.name,
            "Id": self.id,
            "Created": self.created,
            "Scope": "local",
            "Driver": self.driver,
            "EnableIPv4": True,
            "EnableIPv6": self.enable_ipv6,
            "IPAM": {"Driver": "default", "Options": self.ipam_options, "Config": self.ipam_config},
            "Internal": self.internal,
            "Attachable": self.attachable,
            "Ingress": False,
            "ConfigFrom": {"Network": ""},
            "ConfigOnly": False,
            "Containers": containers if containers is not None else {},
            "Options": self.options,
            "Labels": self.labels,
        }

    # -- persistence ---------------------------------------------------------------------------------
    def record(self) -> dict[str, Any]:
        doc = self.document()
        doc.pop("Containers")
        for key, pool in (("_pool", self.pool), ("_pool6", self.pool6)):
            if pool is not None:
                doc[key] = {
                    "subnet": str(pool.subnet),
                    "gateway": str(pool.gateway) if pool.gateway else "",
                    "ip_range": str(pool.ip_range) if pool.ip_range else "",
                    "last": pool.last,
                }
        doc["_user_subnet"] = self.user_subnet
        return doc

    def save(self, root: str) -> None:
        os.makedirs(root, mode=0o700, exist_ok=True)
        path = os.path.join(root, f"{self.id}.json")
        tmp = f"{path}.tmp"
        with open(tmp, "w") as fh:
            json.dump(self.record(), fh)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str) -> Network:
        with open(path) as fh:
            doc = json.load(fh)
        pool, pool6 = _load_pool(doc.get("_pool")), _load_pool(doc.get("_pool6"))
        ipam_config = doc["IPAM"].get("Config")
        for entry in ipam_config or []:
            # reloaded from the store, a subnet given without a gateway shows the one chosen (as on dockerd)
            chosen = pool6 if ":" in str(entry.get("Subnet") or "") else pool
            if chosen is not None and entry.get("Subnet") == str(chosen.subnet):
                if chosen.gateway is not None:
                    entry.setdefault("Gateway", str(chosen.gateway))
                chosen.reserve_aux(aux_addresses(entry, chosen.subnet))
        return cls(
            id=doc["Id"],
            name=doc["Name"],
            driver=doc["Driver"],
            created=doc["Created"],
            ipam_config=ipam_config,
            ipam_options=doc["IPAM"].get("Options"),
            internal=bool(doc.get("Internal")),
            attachable=bool(doc.get("Attachable")),
            options=dict(doc.get("Options") or {}),
            labels=dict(doc.get("Labels") or {}),
            enable_ipv6=bool(doc.get("EnableIPv6")),
            pool=pool,
            user_subnet=bool(doc.get("_user_subnet")),
            pool6=pool6,
        )


def _load_pool(p: dict[str, Any] | None) -> AddressPool | None:
    if not p:
        return None
    return AddressPool(
        subnet=ipaddress.ip_network(p["subnet"]),
        gateway=ipaddress.ip_address(p["gateway"]) if p.get("gateway") else None,
        ip_range=ipaddress.ip_network(p["ip_range"]) if p.get("ip_range") else None,
        last=int(p.get("last") or 0),
    )
