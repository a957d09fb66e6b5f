"""``-H`` address parsing with dockerd's defaults and messages (moby ``opts/hosts.go``).

refd follows the newest dockerd (28/29): ``invalid bind address (x): ...`` messages.
dockerd 20.10 words the same failures ``Invalid bind address format: x``; scenarios
record that as a known divergence of the older daemon.
"""

from __future__ import annotations

import re

from .log import go_quote

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_NAMED_PIPE",
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
DEFAULT_NAMED_PIPE = "//./pipe/docker_engine"
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
        return _parse_simple(addr, "unix", rest, DEFAULT_UNIX_SOCKET)
    if proto == "npipe":  # parses on Linux too; the listener refuses it later (invalid protocol format)
        return _parse_simple(addr, "npipe", rest, DEFAULT_NAMED_PIPE)
    if proto == "fd":
        return addr
    raise HostError(f"invalid bind address ({addr}): unsupported proto '{proto}'")


def _parse_simple(address: str, proto: str, addr: str, default: str) -> str:
    """moby parseSimpleProtoAddr, wrapped as parseDaemonHost wraps it."""
    if "://" in addr:
        raise HostError(f"invalid bind address ({address}): invalid {proto} address: {addr}")
    return f"{proto}://{addr or default}"


_PORT = re.compile(r"^(:[0-9]*)?$")
#: ASCII bytes Go's url.Parse accepts in a host name unescaped (shouldEscape with encodeHost).
_HOST_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!$&'()*+,;=:[]<>\"-_.~%")


def _check_host_chars(address: str, host: str) -> None:
    for ch in host:
        if ch.isascii() and ch not in _HOST_OK:
            raise HostError(f"parse {go_quote(address)}: invalid character {go_quote(ch)} in host name")


def _split_url_host(address: str) -> tuple[str, str, str]:
    """Return (hostname, port, path) of ``tcp://...`` with Go url.Parse's checks."""
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in address):
        raise HostError(f"parse {go_quote(address)}: net/url: invalid control character in URL")
    rest = address.partition("://")[2]
    rest = rest.partition("#")[0].partition("?")[0]
    authority, slash, path = rest.partition("/")
    path = slash + path
    if "@" in authority:
        authority = authority.rsplit("@", 1)[1]
    if authority.startswith("["):
        end = authority.rfind("]")
        if end < 0:
            raise HostError(f"parse {go_quote(address)}: missing ']' in host")
        hostname, tail = authority[1:end], authority[end + 1 :]
        if not _PORT.match(tail):
            raise HostError(f"parse {go_quote(address)}: invalid port {go_quote(tail)} after host")
        _check_host_chars(address, hostname)
        return hostname, tail[1:], path
    hostname, colon, port = authority.rpartition(":")
    if not colon:
        hostname, port = authority, ""
    if not _PORT.match(colon + port):
        raise HostError(f"parse {go_quote(address)}: invalid port {go_quote(colon + port)} after host")
    _check_host_chars(address, authority)
    return hostname, port, path


def _parse_tcp(try_addr: str) -> str:
    address = try_addr if "://" in try_addr else f"tcp://{try_addr}"
    scheme = address.partition("://")[0]
    try:
        if scheme != "tcp":
            raise HostError(f"unsupported proto '{scheme}'")
        hostname, port, path = _split_url_host(address)
        if path:
            raise HostError("should not contain a path element")
        if port and not 0 < int(port) < 1 << 63:  # strconv.Atoi: zero and overflow are refused
            raise HostError(f"invalid port: {port}")
    except HostError as exc:
        raise HostError(f"invalid bind address ({try_addr}): {exc}") from None
    hostname = hostname or "localhost"
    port = port or str(DEFAULT_HTTP_PORT)
    if ":" in hostname:
        return f"tcp://[{hostname}]:{port}"
    return f"tcp://{hostname}:{port}"
