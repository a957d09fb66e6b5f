"""``-H`` specs to bound sockets: unix (mode 0660, group), tcp, tls and systemd ``fd://``.

Listeners are bound before daemon init and served only after it, as dockerd does
(spec 3.5), so a client connecting early waits instead of being refused.
"""

from __future__ import annotations

import contextlib
import grp
import ipaddress
import os
import socket
import stat
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .log import Logger

if TYPE_CHECKING:
    import asyncio
    import ssl
else:
    from .lazy import asyncio, ssl  # imported on first use: refd answers its first /_ping without them

__all__ = ["Listener", "ListenerError", "bind_listeners", "serve_listener", "tcp_warnings"]

Handler = Callable[["asyncio.StreamReader", "asyncio.StreamWriter"], Awaitable[None]]

#: strong references to TLS connection tasks (asyncio keeps only weak ones)
_CONNECTIONS: set[asyncio.Task[None]] = set()
_HTTP_ON_TLS = {b"GET /", b"HEAD ", b"POST ", b"PUT /", b"OPTIO"}
#: asyncio 3.13+ unlinks a unix server's path when it closes; close_listener unlinks refd's own sockets, and a
#: socket systemd passed (fd://) must stay where the socket unit made it, as dockerd leaves it
_KEEP_PATH: dict[str, Any] = {"cleanup_socket": False} if sys.version_info >= (3, 13) else {}
_GO_HTTP_TO_HTTPS = b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"


class ListenerError(Exception):
    """A listener could not be created; ``str()`` is dockerd's text after ``failed to load listeners: ``."""


@dataclass
class Listener:
    spec: str
    sock: socket.socket
    display: str
    tls: ssl.SSLContext | None = None
    unix_path: str = ""


def _bind_unix(path: str, group: str, log: Logger) -> Listener:
    try:
        if stat.S_ISDIR(os.lstat(path).st_mode):
            raise ListenerError(f"can't create unix socket {path}: is a directory")
        os.unlink(path)
    except FileNotFoundError:
        pass
    gid: int | None = None
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        if group.isdigit():
            gid = int(group)
        elif group != "docker":
            raise ListenerError(f"group {group} not found") from None
        else:
            log.warning(f"could not change group {path} to docker: group docker not found")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o777)  # the socket must never exist with looser permissions, even briefly
    try:
        sock.bind(path)
    except OSError as exc:
        sock.close()
        raise ListenerError(
            f"can't create unix socket {path}: {(exc.strerror or str(exc)).lower()}"
        ) from None
    finally:
        os.umask(old)
    if gid is not None:
        os.chown(path, 0, gid)
    os.chmod(path, 0o660)
    sock.listen(1024)
    return Listener(f"unix://{path}", sock, path, unix_path=path)


def _bind_tcp(addr: str, tls: ssl.SSLContext | None) -> Listener:
    host, _, port = addr.rpartition(":")
    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ListenerError(f"listen tcp: lookup {host}: {exc.strerror}") from None
    family, _, _, _, sockaddr = infos[0]
    sock = _dual_stack(int(port)) if host in ("", "0.0.0.0", "::") else None
    if sock is not None:  # Go's "tcp" listener on a wildcard: one IPv6 socket taking IPv4 too, "[::]:port"
        family = socket.AF_INET6
    else:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(sockaddr)
        except OSError as exc:
            sock.close()
            raise ListenerError(f"listen tcp {addr}: bind: {(exc.strerror or str(exc)).lower()}") from None
    sock.listen(1024)
    bound = sock.getsockname()
    display = f"[{bound[0]}]:{bound[1]}" if family == socket.AF_INET6 else f"{bound[0]}:{bound[1]}"
    return Listener(f"tcp://{addr}", sock, display, tls=tls)


def _dual_stack(port: int) -> socket.socket | None:
    """An AF_INET6 socket with IPV6_V6ONLY off bound to ``[::]:port``, as Go's net.Listen("tcp",
    "0.0.0.0:port") makes one; None without a usable IPv6 stack (the wildcard is then bound as given)."""
    if not socket.has_ipv6:
        return None
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError:
        return None
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("::", port))
    except OSError:
        sock.close()
        return None
    return sock


def _activated_sockets() -> list[socket.socket]:
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return []
    try:
        count = int(os.environ.get("LISTEN_FDS", "0"))
    except ValueError:
        return []
    for var in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(var, None)
    socks = []
    for fd in range(3, 3 + count):
        os.set_inheritable(fd, False)
        socks.append(socket.socket(fileno=fd))
    return socks


def _bind_fd(addr: str, tls: ssl.SSLContext | None, group: str) -> list[Listener]:
    socks = _activated_sockets()
    if not socks:
        raise ListenerError(
            "no sockets found via socket activation: make sure the service was started by systemd"
        )
    if addr in ("", "*"):
        chosen = socks
    else:
        try:
            fd = int(addr)
        except ValueError:
            raise ListenerError(f"failed to parse systemd fd address: should be a number: {addr}") from None
        if fd < 3 or fd - 3 >= len(socks):
            raise ListenerError("too few socket activated files passed in by systemd")
        chosen = [s for s in socks if s.fileno() == fd]
        for other in socks:
            if other.fileno() != fd:
                other.close()
    out = []
    for sock in chosen:
        name = sock.getsockname()
        is_unix = sock.family == socket.AF_UNIX
        display = name if is_unix else f"{name[0]}:{name[1]}"
        out.append(Listener(f"fd://{addr}", sock, str(display), tls=None if is_unix else tls))
    return out


def bind_listeners(hosts: list[str], group: str, tls: ssl.SSLContext | None, log: Logger) -> list[Listener]:
    """Bind every normalised host; closes what was bound if a later one fails."""
    bound: list[Listener] = []
    try:
        for host in hosts:
            proto, sep, addr = host.partition("://")
            if not sep:
                raise ListenerError(f"bad format {host}, expected PROTO://ADDR")
            if proto == "unix":
                bound.append(_bind_unix(addr, group, log))
            elif proto == "tcp":
                bound.append(_bind_tcp(addr, tls))
            elif proto == "fd":
                bound.extend(_bind_fd(addr, tls, group))
            else:
                raise ListenerError(f'invalid protocol format: "{proto}"')
    except BaseException:
        for listener in bound:
            close_listener(listener)
        raise
    return bound


def close_listener(listener: Listener) -> None:
    with contextlib.suppress(OSError):
        listener.sock.close()
    if listener.unix_path:
        with contextlib.suppress(OSError):
            os.unlink(listener.unix_path)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return all(
            ipaddress.ip_address(info[4][0]).is_loopback
            for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        )
    except (OSError, ValueError):
        return False


def tcp_warnings(
    hosts: list[str],
    tls_verify: bool,
    tls_explicit: bool,
    log: Logger,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """dockerd 28's warnings and delays for TCP without client verification (spec 3.3)."""
    for host in hosts:
        if not host.startswith("tcp://") or tls_verify:
            continue
        log.warning(
            "Binding to IP address without --tlsverify is insecure and gives root access on this "
            "machine to everyone who has access to your network.",
            host=host,
        )
        log.warning(
            "Binding to an IP address, even on localhost, can also give access to scripts run in a "
            "browser. Be safe out there!",
            host=host,
        )
        log.warning(
            "[DEPRECATION NOTICE] In future versions this will be a hard failure preventing the daemon "
            "from starting! Learn more at: https://docs.docker.com/go/api-security/",
            host=host,
        )
        sleep(1)
        address = host.removeprefix("tcp://").rpartition(":")[0].strip("[]")
        if not tls_explicit and not _is_loopback(address):
            log.warning(
                "Binding to an IP address without --tlsverify is deprecated. Startup is intentionally "
                "being slowed down to show this message",
                host=host,
            )
            log.warning(
                "Please consider generating tls certificates with client validation to prevent exposing "
                "unauthenticated root access to your network",
                host=host,
            )
            log.warning(
                "You can override this by explicitly specifying '--tls=false' or '--tlsverify=false'",
                host=host,
            )
            log.warning(
                "Support for listening on TCP without authentication or explicit intent to run without "
                "authentication will be removed in the next release",
                host=host,
            )
            sleep(15)


async def _wait_readable(sock: socket.socket, timeout: float) -> bool:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not fut.done():
            fut.set_result(None)

    loop.add_reader(sock.fileno(), ready)
    try:
        await asyncio.wait_for(fut, timeout)
        return True
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(sock.fileno())


async def _tls_handshake(
    conn: socket.socket, ctx: ssl.SSLContext
) -> tuple[ssl.SSLObject, ssl.MemoryBIO, ssl.MemoryBIO]:
    """Server handshake over memory BIOs so a failure still flushes the TLS alert, as Go does."""
    loop = asyncio.get_running_loop()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_side=True)
    while True:
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            if pending := outgoing.read():
                await loop.sock_sendall(conn, pending)
            data = await asyncio.wait_for(loop.sock_recv(conn, 65536), 30)
            if not data:
                raise ConnectionResetError("EOF") from None
            incoming.write(data)
        except ssl.SSLError:
            if pending := outgoing.read():
                with contextlib.suppress(OSError):
                    await loop.sock_sendall(conn, pending)
            raise
    if pending := outgoing.read():
        await loop.sock_sendall(conn, pending)
    return obj, incoming, outgoing


async def _pump_tls(
    conn: socket.socket,
    inner: socket.socket,
    obj: ssl.SSLObject,
    incoming: ssl.MemoryBIO,
    outgoing: ssl.MemoryBIO,
) -> None:
    """Relay between the TLS socket and the plaintext end of a socketpair served as a stream."""
    loop = asyncio.get_running_loop()

    async def from_client() -> None:
        while True:
            while True:
                try:
                    plain = obj.read(65536)
                except ssl.SSLWantReadError:
                    break
                except (ssl.SSLZeroReturnError, ssl.SSLError):
                    return
                if not plain:
                    return
                await loop.sock_sendall(inner, plain)
            if pending := outgoing.read():
                await loop.sock_sendall(conn, pending)
            data = await loop.sock_recv(conn, 65536)
            if not data:
                return
            incoming.write(data)

    async def to_client() -> None:
        while data := await loop.sock_recv(inner, 65536):
            obj.write(data)
            await loop.sock_sendall(conn, outgoing.read())

    tasks = [asyncio.ensure_future(from_client()), asyncio.ensure_future(to_client())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        pass
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for sock in (conn, inner):
            with contextlib.suppress(OSError):
                sock.close()


async def _serve_tls_conn(
    conn: socket.socket, peer: str, ctx: ssl.SSLContext, handler: Handler, log: Logger
) -> None:
    try:
        if not await _wait_readable(conn, 300):
            conn.close()
            return
        head = conn.recv(5, socket.MSG_PEEK)
        if head in _HTTP_ON_TLS:
            # Go's first TLS read takes what is there (a 5-byte header plus bytes.MinRead, 576 bytes once
            # its allocator rounds up), so a small request is consumed and the close is a FIN; closing with
            # it unread would reset the connection before the client read the answer
            with contextlib.suppress(BlockingIOError, InterruptedError):
                conn.recv(576, socket.MSG_DONTWAIT)
            await asyncio.get_running_loop().sock_sendall(conn, _GO_HTTP_TO_HTTPS)
            conn.close()
            return
        obj, incoming, outgoing = await _tls_handshake(conn, ctx)
    except (OSError, ssl.SSLError, TimeoutError) as exc:
        reason = getattr(exc, "reason", None) or str(exc)
        now = time.time()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
        log.stream.write(
            f"{stamp}.{int(now * 1e6) % 1_000_000:06d} I | http: TLS handshake error "
            f"from {peer}: {_go_tls_reason(str(reason))}\n"
        )
        log.stream.flush()
        conn.close()
        return
    outer, inner = socket.socketpair()
    inner.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=outer, limit=1 << 20)
    pump = asyncio.ensure_future(_pump_tls(conn, inner, obj, incoming, outgoing))
    try:
        await handler(reader, writer)
    finally:
        with contextlib.suppress(Exception):
            writer.close()
        await pump


def _go_tls_reason(reason: str) -> str:
    lowered = reason.lower().replace("_", " ")
    if "peer did not return a certificate" in lowered or "certificate required" in lowered:
        return "tls: client didn't provide a certificate"
    if "unknown ca" in lowered or "certificate verify failed" in lowered:
        return "tls: failed to verify certificate: x509: certificate signed by unknown authority"
    if "expired" in lowered:
        return "tls: failed to verify certificate: x509: certificate has expired or is not yet valid"
    return reason


async def _accept_tls(listener: Listener, handler: Handler, log: Logger) -> None:
    loop = asyncio.get_running_loop()
    listener.sock.setblocking(False)
    assert listener.tls is not None
    while True:
        conn, addr = await loop.sock_accept(listener.sock)
        conn.setblocking(False)
        peer = f"{addr[0]}:{addr[1]}" if isinstance(addr, tuple) else str(addr)
        task = loop.create_task(_serve_tls_conn(conn, peer, listener.tls, handler, log))
        _CONNECTIONS.add(task)
        task.add_done_callback(_CONNECTIONS.discard)


async def serve_listener(
    listener: Listener,
    handler: Handler,
    log: Logger,
    protocol: Callable[[], asyncio.BaseProtocol] | None = None,
) -> asyncio.AbstractServer | None:
    """Start accepting on a bound listener. TLS listeners run their own accept loop (with ``handler``);
    plain ones use ``protocol`` (a factory) when given, else ``handler`` on asyncio streams."""
    loop = asyncio.get_running_loop()
    if listener.tls is not None:
        task = loop.create_task(_accept_tls(listener, handler, log))
        _CONNECTIONS.add(task)  # kept alive (and cancelled with the loop) like the connections
        return None
    if protocol is not None:
        if listener.sock.family == socket.AF_UNIX:
            return await loop.create_unix_server(protocol, sock=listener.sock, **_KEEP_PATH)
        return await loop.create_server(protocol, sock=listener.sock)
    if listener.sock.family == socket.AF_UNIX:
        return await asyncio.start_unix_server(handler, sock=listener.sock, limit=1 << 20, **_KEEP_PATH)
    return await asyncio.start_server(handler, sock=listener.sock, limit=1 << 20)
