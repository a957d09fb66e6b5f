"""Registry settings and endpoints, as moby ``registry/config.go`` and ``service_v2.go``.

``ServiceConfig.from_daemon_config(cfg)`` reads ``registry-mirrors`` and ``insecure-registries``
(CIDRs, or ``host[:port]`` index names), with dockerd's validation messages; ``endpoints(host,
mirrors=True)`` gives what a pull tries in order: the mirrors then ``https://registry-1.docker.io``
for Docker Hub; for another registry ``https://host`` and, when it is insecure, ``http://host`` too.
An insecure registry's TLS is not verified; a secure one trusts the system roots plus every
``certs.d/<host>/*.crt`` (and presents ``*.cert``/``*.key`` pairs), read at each lookup as dockerd does.
``127.0.0.0/8`` and ``::1/128`` are always insecure.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import socket
import urllib.parse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import DistributionError

if TYPE_CHECKING:
    import ssl
else:
    from ..lazy import ssl  # imported with the first registry connection: refd boots without it

__all__ = [
    "CERTS_DIR",
    "DEFAULT_REGISTRY",
    "INDEX_NAME",
    "Endpoint",
    "ServiceConfig",
    "validate_mirror",
]

CERTS_DIR = "/etc/docker/certs.d"
DEFAULT_REGISTRY = "https://registry-1.docker.io"
INDEX_NAME = "docker.io"
INDEX_HOSTNAME = "index.docker.io"
INDEX_SERVER = "https://index.docker.io/v1/"
_HOSTPORT_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]")


class InvalidRegistryConfig(DistributionError):
    status = 400


@dataclass
class Endpoint:
    url: str  # scheme://host[:port], no trailing slash
    mirror: bool = False
    official: bool = False
    insecure_skip_verify: bool = False
    tls: ssl.SSLContext | None = None

    @property
    def scheme(self) -> str:
        return self.url.split("://", 1)[0]

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]


def validate_mirror(text: str) -> str:
    """registry.ValidateMirror: the mirror URL with one trailing slash, or dockerd's error."""
    scheme, sep, _ = text.partition("://")
    if not sep or not scheme:
        raise InvalidRegistryConfig(
            f"invalid mirror: no scheme specified for {_go_quote(text)}: must use either 'https://' or 'http://'"
        )
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise InvalidRegistryConfig(
            f"invalid mirror: unsupported scheme {_go_quote(parts.scheme)} in {_go_quote(text)}: "
            "must use either 'https://' or 'http://'"
        )
    if parts.query or parts.fragment:
        raise InvalidRegistryConfig(f"invalid mirror: query or fragment at end of the URI {_go_quote(text)}")
    if parts.username is not None:
        safe = text.replace(
            parts.netloc,
            f"{parts.username}:xxxxx@{parts.hostname}" + (f":{parts.port}" if parts.port else ""),
        )
        raise InvalidRegistryConfig(f"invalid mirror: username/password not allowed in URI {_go_quote(safe)}")
    return text.rstrip("/") + "/"


def _go_quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


@dataclass
class ServiceConfig:
    mirrors: list[str] = field(default_factory=list)
    insecure_cidrs: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(default_factory=list)
    insecure_names: list[str] = field(default_factory=list)
    certs_dir: str = CERTS_DIR

    @classmethod
    def from_daemon_config(cls, cfg: Any, certs_dir: str = CERTS_DIR) -> ServiceConfig:
        return cls.build(list(cfg["registry-mirror"]), list(cfg["insecure-registry"]), certs_dir)

    @classmethod
    def build(cls, mirrors: list[str], insecure: list[str], certs_dir: str = CERTS_DIR) -> ServiceConfig:
        unique: list[str] = []
        for mirror in mirrors:
            value = validate_mirror(mirror)
            if value not in unique:
                unique.append(value)
        conf = cls(unique, certs_dir=certs_dir)
        for entry in [*insecure, "::1/128", "127.0.0.0/8"]:
            name = entry[7:] if entry.lower().startswith("http://") else entry
            name = name[8:] if name.lower().startswith("https://") else name
            if "://" in name:
                raise InvalidRegistryConfig(f"insecure registry {entry} should not contain '://'")
            try:
                net = ipaddress.ip_network(name, strict=False) if "/" in name else None
            except ValueError:
                net = None
            if net is not None:
                if net not in conf.insecure_cidrs:
                    conf.insecure_cidrs.append(net)
            elif name not in conf.insecure_names:
                conf.insecure_names.append(name)
        return conf

    # -- security -------------------------------------------------------------------------------
    def is_secure(self, index: str) -> bool:
        """isSecureIndex: an index config decides; else insecure when the host is in an insecure CIDR."""
        if index in (INDEX_NAME, INDEX_HOSTNAME):
            return True
        if index in self.insecure_names:
            return False
        host = urllib.parse.urlsplit("//" + index).hostname or index
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            try:
                addresses = [ipaddress.ip_address(a[4][0]) for a in socket.getaddrinfo(host, None)]
            except (OSError, ValueError):
                return True
        return not any(addr in net for addr in addresses for net in self.insecure_cidrs)

    def tls_context(self, host: str, secure: bool) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if not secure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        directory = os.path.join(self.certs_dir, host)
        try:
            names = sorted(os.listdir(directory))
        except FileNotFoundError:
            return ctx
        except OSError as exc:
            raise InvalidRegistryConfig(str(exc)) from None
        for name in names:
            path = os.path.join(directory, name)
            if name.endswith(".crt"):
                with contextlib.suppress(ssl.SSLError, OSError):  # AppendCertsFromPEM ignores bad PEM
                    ctx.load_verify_locations(cafile=path)
            elif name.endswith(".cert"):
                key = name[:-5] + ".key"
                if key not in names:
                    raise InvalidRegistryConfig(
                        f"missing key {key} for client certificate {name}. "
                        "CA certificates must use the extension .crt"
                    )
                ctx.load_cert_chain(path, os.path.join(directory, key))
            elif name.endswith(".key"):
                cert = name[:-4] + ".cert"
                if cert not in names:
                    raise InvalidRegistryConfig(f"missing client certificate {cert} for key {name}")
        return ctx

    # -- endpoints -------------------------------------------------------------------------------
    def endpoints(self, hostname: str, mirrors: bool = True) -> list[Endpoint]:
        if hostname in (INDEX_NAME, INDEX_HOSTNAME):
            out = []
            if mirrors:
                for mirror in self.mirrors:
                    url = mirror if mirror.startswith(("http://", "https://")) else "https://" + mirror
                    parts = urllib.parse.urlsplit(url)
                    secure = self.is_secure(parts.netloc)
                    out.append(
                        Endpoint(
                            f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}",
                            mirror=True,
                            insecure_skip_verify=not secure,
                            tls=self.tls_context(parts.netloc, secure),
                        )
                    )
            out.append(Endpoint(DEFAULT_REGISTRY, official=True, tls=self.tls_context("", True)))
            return out
        secure = self.is_secure(hostname)
        ctx = self.tls_context(hostname, secure)
        out = [Endpoint(f"https://{hostname}", insecure_skip_verify=not secure, tls=ctx)]
        if not secure:
            out.append(Endpoint(f"http://{hostname}", insecure_skip_verify=True, tls=ctx))
        return out
