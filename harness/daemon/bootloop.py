"""refd's first loop: serves what the router's fast handlers answer (``/_ping``, ``/version``, ``/info``) with
epoll on the bound listeners, without importing asyncio.

asyncio (with ``ssl``, ``concurrent.futures`` and ``subprocess`` behind it) was more than half of what a boot
of refd executed before it could answer ``/_ping``. This loop answers through the same fast path as the
asyncio protocol (:class:`.httpd.FastConnection`: same parsing, framing and answers) and stops for good at the
first thing it does not serve: a connection that needs the asyncio loop (a body, ``Expect``, an async
handler, a stream, a hijack, a partial head at EOF, a client that stops reading) or a signal. It then
returns every open connection, with its buffered and unsent bytes, for :class:`.httpproto.HttpProtocol` to
adopt, and the signals for the daemon to handle as it always does.
"""

from __future__ import annotations

import os
import select
import signal
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import FrameType

from .httpd import FastApp, FastConnection, Request, Response

__all__ = ["Adopted", "BootLoop", "Handover"]

#: the signals the daemon handles (daemon.Daemon.serve); any of them ends the boot loop
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP)
_READ = 1 << 16


@dataclass
class Adopted:
    """An open connection handed over: bytes read but not yet answered, bytes answered but not yet sent,
    and ``pending`` (a response computed but needing the loop, and its request) when the fast path stopped."""

    sock: socket.socket
    buf: bytes = b""
    unsent: bytes = b""
    after_post: bool = False
    pending: tuple[Response | None, Request | None, bool] | None = None


@dataclass
class Handover:
    """What the boot loop leaves to the asyncio loop."""

    connections: list[Adopted] = field(default_factory=list)
    signals: list[int] = field(default_factory=list)


class _Conn(FastConnection):
    def __init__(self, sock: socket.socket, fast: FastApp) -> None:
        self.sock = sock
        self._fast = fast
        self._buf = bytearray()
        self._slow = False
        self._after_post = False
        self.closed = False
        self.unsent = b""
        self.pending: tuple[Response | None, Request | None, bool] | None = None

    def _fast_write(self, data: bytes) -> None:
        if self.unsent:  # already behind: keep the order, the loop's transport sends it
            self.unsent += data
            return
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:  # the client is gone: nothing more to answer
            self._fast_close()
            return
        self.unsent = data[sent:]

    def _fast_close(self) -> None:
        if not self.closed:
            self.closed = True
            self.sock.close()

    def _write_blocked(self) -> bool:
        return bool(self.unsent) or self.closed

    def _go_slow(self, resp: Response | None = None, req: Request | None = None, keep: bool = True) -> None:
        self._slow = True
        self.pending = (resp, req, keep)

    def received(self, data: bytes) -> None:
        self._buf += data
        self._serve_fast()

    def eof(self) -> None:
        """As HttpProtocol.eof_received: a clean EOF between requests closes; a partial head is the loop's
        (the adopting transport reads the EOF again)."""
        if self._buf:
            self._go_slow()
        else:
            self._fast_close()

    def adopted(self) -> Adopted:
        return Adopted(self.sock, bytes(self._buf), self.unsent, self._after_post, self.pending)


class BootLoop:
    """Serve ``listeners`` (listening sockets) with ``fast`` until a connection or a signal needs more."""

    def __init__(self, listeners: Iterable[socket.socket], fast: FastApp) -> None:
        self.listeners = {s.fileno(): s for s in listeners}
        self.fast = fast
        self.conns: dict[int, _Conn] = {}
        self.signals: list[int] = []
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._previous_wakeup: int | None = None

    def add_connection(self, sock: socket.socket) -> None:
        """An accepted connection to serve as if accepted here."""
        sock.setblocking(False)
        self.conns[sock.fileno()] = _Conn(sock, self.fast)

    def _on_signal(self, signo: int, _frame: FrameType | None) -> None:
        self.signals.append(signo)

    def catch_signals(self) -> None:
        """Record the daemon's signals from now on, each ending :meth:`run` (the daemon calls it before it
        says it serves). The handlers stay after :meth:`run` until the daemon installs its own, recording
        into the handover's list meanwhile, so no signal is lost in between."""
        if self._previous_wakeup is None:
            self._previous_wakeup = signal.set_wakeup_fd(self._wake_w)
            for signo in SIGNALS:
                signal.signal(signo, self._on_signal)

    def run(self) -> Handover:
        """Serve until a connection needs the asyncio loop, a caught signal arrives, or nothing is left to
        serve (no listener, no connection: tests); then return what is left."""
        poller = select.epoll()
        try:
            poller.register(self._wake_r, select.EPOLLIN)
            for fd, sock in self.listeners.items():
                sock.setblocking(False)
                poller.register(fd, select.EPOLLIN)
            for fd in self.conns:
                poller.register(fd, select.EPOLLIN)
            slow = False
            while not slow and not self.signals and (self.listeners or self.conns):
                for fd, _ in poller.poll():
                    if fd == self._wake_r:
                        self._drain_wakeups()
                    elif fd in self.listeners:
                        self._accept(self.listeners[fd], poller)
                    else:
                        slow = self._read(fd, poller) or slow
        finally:
            poller.close()
            if self._previous_wakeup is not None:
                signal.set_wakeup_fd(self._previous_wakeup)
            os.close(self._wake_r)
            os.close(self._wake_w)
        return Handover([c.adopted() for c in self.conns.values()], self.signals)

    def _drain_wakeups(self) -> None:
        try:
            while os.read(self._wake_r, 512):
                pass
        except BlockingIOError:
            pass

    def _accept(self, listener: socket.socket, poller: select.epoll) -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # EMFILE and the like: the loop's accept will meet it again
                return
            self.add_connection(sock)
            poller.register(sock.fileno(), select.EPOLLIN)

    def _read(self, fd: int, poller: select.epoll) -> bool:
        """Read from one connection and serve it; whether it now needs the asyncio loop."""
        conn = self.conns.get(fd)
        if conn is None:  # closed earlier in the same batch of events
            return False
        try:
            data = conn.sock.recv(_READ)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            data = None
        if data is None:
            conn._fast_close()
        elif data:
            conn.received(data)
        else:
            conn.eof()
        if conn.closed:  # the kernel took the closed socket out of the epoll set
            del self.conns[fd]
            return False
        return conn._slow or bool(conn.unsent)
