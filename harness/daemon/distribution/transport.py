"""HTTP(S) requests to registries, failing with Go ``net/http``'s error texts.

One connection per request (dockerd's registry transport sets ``DisableKeepAlives``), redirects
followed for GET and HEAD, no proxies. Errors are ``TransportError``s worded as Go's ``*url.Error``:

    Get "http://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused
    Get "https://h:5000/v2/": tls: failed to verify certificate: x509: certificate signed by unknown authority
    Get "https://h:5000/v2/": http: server gave HTTP response to HTTPS client
    Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io on 10.0.0.53:53: ...
"""

from __future__ import annotations

import errno
import http.client
import ipaddress
import os
import platform
import socket
import ssl
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..goformat import go_arch
from .errors import DistributionError, TransportError

__all__ = ["Response", "Transport", "go_errno_text", "split_host_port"]

_USER_AGENT = (
    "docker/28.5.2-refd go/go1.24 git-commit/refd kernel/{kernel} os/linux arch/{arch} UpstreamClient(refd)"
)


def go_errno_text(err: int) -> str:
    """Go's syscall.Errno strings are C's, lower-cased at the start (``connection refused``)."""
    text = os.strerror(err)
    return text[:1].lower() + text[1:]


def split_host_port(netloc: str, scheme: str) -> tuple[str, int]:
    parsed = urllib.parse.urlsplit(f"{scheme}://{netloc}")
    return parsed.hostname or "", parsed.port or (443 if scheme == "https" else 80)


def _nameserver() -> str:
    try:
        with open("/etc/resolv.conf") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver":
                    return parts[1]
    except OSError:
        pass
    return "127.0.0.1"


def _lookup_error(host: str, exc: socket.gaierror) -> str:
    """Go's resolver error: ``lookup HOST on NS:53: <why>``."""
    ns = _nameserver()
    server = f"[{ns}]:53" if ":" in ns else f"{ns}:53"
    probe = socket.socket(socket.AF_INET6 if ":" in ns else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect((ns, 53))
    except OSError as err:
        return (
            f"lookup {host} on {server}: dial udp {server}: connect: {go_errno_text(err.errno or errno.EIO)}"
        )
    finally:
        probe.close()
    if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", -5)):
        return f"lookup {host} on {server}: no such host"
    return f"lookup {host} on {server}: server misbehaving"


@dataclass
class Response:
    """A response whose body is read lazily (``read``/``iter``), closed with ``close``."""

    status: int
    reason: str
    headers: http.client.HTTPMessage
    url: str
    raw: http.client.HTTPResponse
    conn: http.client.HTTPConnection
    _closed: bool = field(default=False)

    @property
    def status_line(self) -> str:
        return f"{self.status} {self.reason}".strip()

    def header(self, name: str) -> str:
        return self.headers.get(name) or ""

    def read(self, n: int = -1) -> bytes:
        """Body bytes; a body cut short is Go's ``unexpected EOF`` (a DistributionError, retried)."""
        try:
            return self.raw.read() if n < 0 else self.raw.read(n)
        except http.client.IncompleteRead:
            raise DistributionError("unexpected EOF") from None
        except (OSError, http.client.HTTPException) as exc:
            errno_ = getattr(exc, "errno", None)
            raise DistributionError(f"read tcp: {go_errno_text(errno_) if errno_ else exc}") from None

    def iter(self, size: int = 32 * 1024) -> Iterator[bytes]:
        while chunk := self.raw.read(size):
            yield chunk

    @property
    def length(self) -> int:
        text = self.header("Content-Length")
        return int(text) if text.isdigit() else -1

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.raw.close()
            self.conn.close()


class Transport:
    """Makes requests with one TLS configuration (None: the registry is plain HTTP or default TLS)."""

    def __init__(
        self, tls: ssl.SSLContext | None = None, timeout: float = 30.0, user_agent: str = ""
    ) -> None:
        self.tls = tls
        self.timeout = timeout
        if not user_agent:
            user_agent = _USER_AGENT.format(kernel=platform.release(), arch=go_arch())
        self.user_agent = user_agent

    def _context(self) -> ssl.SSLContext:
        if self.tls is None:
            ctx = ssl.create_default_context()
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            self.tls = ctx
        return self.tls

    def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str] | list[tuple[str, str]] | None = None,
        body: bytes | Iterator[bytes] | None = None,
        length: int | None = None,
        redirects: int = 10,
    ) -> Response:
        """Send one request; the caller closes the response. TransportError on any failure to talk HTTP."""
        parts = urllib.parse.urlsplit(url)
        host, port = split_host_port(parts.netloc, parts.scheme)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(host, port, timeout=self.timeout, context=self._context())
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
        items = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        names = {k.lower() for k, _ in items}
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            if "user-agent" not in names:
                conn.putheader("User-Agent", self.user_agent)
            for key, value in items:
                conn.putheader(key, value)
            if isinstance(body, bytes):
                conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body)
            elif body is not None:
                if length is not None:
                    conn.putheader("Content-Length", str(length))
                else:
                    conn.putheader("Transfer-Encoding", "chunked")
                conn.endheaders()
                for chunk in body:
                    if length is None:
                        conn.send(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                    else:
                        conn.send(chunk)
                if length is None:
                    conn.send(b"0\r\n\r\n")
            else:
                if method in ("POST", "PUT", "PATCH"):
                    conn.putheader("Content-Length", "0")
                conn.endheaders()
            raw = conn.getresponse()
        except BaseException as exc:
            conn.close()
            raise self._error(method, url, host, port, exc) from None
        resp = Response(raw.status, raw.reason, raw.headers, url, raw, conn)
        if method in ("GET", "HEAD") and resp.status in (301, 302, 303, 307, 308) and redirects > 0:
            location = resp.header("Location")
            resp.close()
            if location:
                target = urllib.parse.urljoin(url, location)
                same_host = urllib.parse.urlsplit(target).netloc == parts.netloc
                kept = items if same_host else [(k, v) for k, v in items if k.lower() != "authorization"]
                return self.request(method, target, kept, None, None, redirects - 1)
        return resp

    def _error(self, method: str, url: str, host: str, port: int, exc: BaseException) -> TransportError:
        addr = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        cause: str
        if isinstance(exc, ssl.SSLCertVerificationError):
            code = getattr(exc, "verify_code", 0)
            if code in (18, 19, 20, 21, 2):
                cause = "tls: failed to verify certificate: x509: certificate signed by unknown authority"
            elif code == 10:
                cause = "tls: failed to verify certificate: x509: certificate has expired or is not yet valid"
            elif code == 62:
                cause = f"tls: failed to verify certificate: x509: certificate is not valid for {host}"
            else:
                cause = f"tls: failed to verify certificate: x509: {getattr(exc, 'verify_message', exc)}"
        elif isinstance(exc, ssl.SSLError):
            reason = getattr(exc, "reason", "") or ""
            if reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "HTTP_REQUEST", "UNKNOWN_PROTOCOL"):
                cause = "http: server gave HTTP response to HTTPS client"
            else:
                cause = f"remote error: tls: {reason.lower().replace('_', ' ') or exc}"
        elif isinstance(exc, socket.gaierror):
            cause = f"dial tcp: {_lookup_error(host, exc)}"
        elif isinstance(exc, (TimeoutError, socket.timeout)):
            cause = f"dial tcp {addr}: i/o timeout"
        elif isinstance(exc, ConnectionRefusedError | ConnectionResetError | OSError) and exc.errno:
            op = (
                "connect"
                if exc.errno in (errno.ECONNREFUSED, errno.ENETUNREACH, errno.EHOSTUNREACH)
                else "read"
            )
            cause = f"dial tcp {addr}: {op}: {go_errno_text(exc.errno)}"
        elif isinstance(exc, http.client.RemoteDisconnected | http.client.BadStatusLine):
            cause = "EOF"
        else:
            cause = str(exc) or type(exc).__name__
        return TransportError(method, url, cause, exc if isinstance(exc, Exception) else None)


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True
