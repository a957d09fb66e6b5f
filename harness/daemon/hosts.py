"""``-H`` address parsing with dockerd's defaults and messages (moby ``opts/hosts.go``).

refd follows the newest dockerd (28/29): ``invalid bind address (x): ...`` messages.
dockerd 20.10 words the same failures ``Invalid bind address format: x``; scenarios
record that as a known divergence of the older daemon.
"""

from __future__ import annotations

import re

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_TCP_HOST",
    "DEFAULT_TLS_HOST",
    "DEFAULT_UNIX_SOCKET",
    "HostError",
    "normalize_hosts",
    "parse_host",
    "validate_host_flag",
]

DEFAULT_HTTP_PORT = 2375
DEFAULT_TLS_HTTP_PORT = 2376
DEFAULT_UNIX_SOCKET = "/var/run/docker.sock"
DEFAULT_HOST = f"unix://{DEFAULT_UNIX_SOCKET}"
DEFAULT_TCP_HOST = f"tcp://localhost:{DEFAULT_HTTP_PORT}"
DEFAULT_TLS_HOST = f"tcp://localhost:{DEFAULT_TLS_HTTP_PORT}"


class HostError(ValueError):
    """An unparseable ``-H`` value; the message is dockerd's."""


def validate_host_flag(value: str) -> str:
    """Flag-time validation: reject garbage, keep what the user typed (ParseHost runs later)."""
    if value.strip():
        _parse_daemon_host(value.strip())
    return value


def parse_host(value: str, default_to_tls: bool) -> str:
    """Normalise one host string; the empty string means the default socket."""
    host = value.strip()
    if not host:
        return DEFAULT_TLS_HOST if default_to_tls else DEFAULT_HOST
    return _parse_daemon_host(host)


def normalize_hosts(values: list[str], default_to_tls: bool) -> list[str]:
    """Parse every host, drop duplicates and sort, as dockerd 28's normalizeHosts does."""
    hosts = [parse_host(v, default_to_tls) for v in (values or [""])]
    return sorted(set(hosts))


def _parse_daemon_host(addr: str) -> str:
    proto, sep, rest = addr.partition("://")
    if not sep:
        proto, rest = "tcp", addr
    if proto == "tcp":
        return _parse_tcp(addr)
    if proto == "unix":
        return _parse_simple("unix", rest, DEFAULT_UNIX_SOCKET)
    if proto == "fd":
        return addr
    raise HostError(f"invalid bind address ({addr}): unsupported proto '{proto}'")


def _parse_simple(proto: str, addr: str, default: str) -> str:
    addr = addr.removeprefix(f"{proto}://")
    if "://" in addr:
        raise HostError(f"invalid proto, expected {proto}: {addr}")
    return f"{proto}://{addr or default}"


_PORT = re.compile(r"^:\d*$")


def _split_url_host(address: str) -> tuple[str, str, str]:
    """Return (hostname, port, path) of ``tcp://...`` with Go url.Parse's checks."""
    scheme, _, rest = address.partition("://")
    authority, slash, path = rest.partition("/")
    path = slash + path
    if "?" in authority or "#" in authority:
        authority = re.split(r"[?#]", authority, maxsplit=1)[0]
    if "@" in authority:
        authority = authority.rsplit("@", 1)[1]
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise HostError(f'parse "{address}": missing \']\' in host')
        hostname, tail = authority[1:end], authority[end + 1:]
        if tail and not _PORT.match(tail):
            raise HostError(f'parse "{address}": invalid port "{tail}" after host')
        return hostname, tail[1:], path
    if ":" in authority:
        hostname, _, port = authority.rpartition(":")
        if not port.isdigit() and port != "":
            raise HostError(f'parse "{address}": invalid port ":{port}" after host')
        return hostname, port, path
    return authority, "", path


def _parse_tcp(try_addr: str) -> str:
    address = try_addr if "://" in try_addr else f"tcp://{try_addr}"
    scheme = address.partition("://")[0]
    try:
        if scheme != "tcp":
            raise HostError(f"unsupported proto '{scheme}'")
        hostname, port, path = _split_url_host(address)
        if path:
            raise HostError("should not contain a path element")
        if port and (not port.isdigit() or int(port) == 0):
            raise HostError(f"invalid port: {port}")
    except HostError as exc:
        raise HostError(f"invalid bind address ({try_addr}): {exc}") from None
    hostname = hostname or "localhost"
    port = port or str(DEFAULT_HTTP_PORT)
    if ":" in hostname:
        return f"tcp://[{hostname}]:{port}"
    return f"tcp://{hostname}:{port}"
