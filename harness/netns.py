"""Reach TCP listeners inside a daemon's private network namespace from the host, and the other way round.

Every local daemon boots in its own netns so daemons never fight over bridges, ports or
iptables. A Forwarder listens on host loopback and opens the matching connection from a
thread that has entered the daemon's netns (sockets keep the namespace they were made in).
An Inbound is the opposite direction: a listener made inside the daemon's netns (for example
``127.0.0.1:5000``, where a registry should be) relaying each connection to a host address, so
a service the harness runs on the host (a registry) is reachable by the daemon at that address.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future

__all__ = ["Forwarder", "Inbound", "NetnsConnector", "add_address", "setns"]

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def setns(path: str, nstype: int = CLONE_NEWNET) -> None:
    """Move the calling thread into the namespace at ``path``."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, nstype) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


class NetnsConnector:
    """A worker thread living in one netns that makes connected sockets on request."""

    def __init__(self, netns_path: str) -> None:
        self.netns_path = netns_path
        self._jobs: list[tuple[Callable[[], socket.socket], Future[socket.socket]]] = []
        self._cond = threading.Condition()
        self._closed = False
        ready: Future[None] = Future()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="netns-connector", daemon=True)
        self._thread.start()
        ready.result(timeout=10)

    def _run(self, ready: Future[None]) -> None:
        try:
            setns(self.netns_path)
        except OSError as exc:
            with self._cond:
                self._closed = True
            ready.set_exception(exc)
            return
        ready.set_result(None)
        while True:
            with self._cond:
                while not self._jobs and not self._closed:
                    self._cond.wait()
                if self._closed:
                    for _, fut in self._jobs:
                        fut.set_exception(OSError(f"netns connector for {self.netns_path} is closed"))
                    self._jobs.clear()
                    return
                job, fut = self._jobs.pop(0)
            try:
                fut.set_result(job())
            except BaseException as exc:  # handed to the waiting caller, never lost
                fut.set_exception(exc)

    def connect(self, host: str, port: int, timeout: float = 10) -> socket.socket:
        """A TCP socket connected to host:port *inside* the namespace."""

        def job() -> socket.socket:
            return socket.create_connection((host, port), timeout=timeout)

        fut: Future[socket.socket] = Future()
        with self._cond:
            if self._closed:
                raise OSError(f"netns connector for {self.netns_path} is closed")
            self._jobs.append((job, fut))
            self._cond.notify()
        return fut.result(timeout=timeout + 5)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)


def _pump(src: socket.socket, dst: socket.socket, done: Callable[[], None]) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)
        done()


class _Relay:
    """A listener whose every accepted connection is paired with an upstream one and pumped both ways.

    Subclasses make the listener (in whichever namespace it belongs) and say how to reach upstream; the accept
    loop, the pair bookkeeping and a close() that cuts every relayed connection are shared.
    """

    listener: socket.socket
    name: str

    def _start(self) -> None:
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._accept, name=self.name, daemon=True)
        self._thread.start()

    def _connect_upstream(self) -> socket.socket:
        raise NotImplementedError

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = self._connect_upstream()
                upstream.settimeout(None)
            except OSError:
                client.close()  # nothing listens upstream: the client sees a reset, like a refused port
                continue
            with self._lock:
                if self._closed:
                    client.close()
                    upstream.close()
                    return
                self._open.update((client, upstream))
            done = functools.partial(self._pump_done, (client, upstream), [2])
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(
                    target=_pump, args=(src, dst, done), daemon=True, name=f"{self.name}-pump"
                ).start()

    def _pump_done(self, pair: tuple[socket.socket, socket.socket], pending: list[int]) -> None:
        """Called by each of a connection's two pumps; the second one closes both sockets."""
        with self._lock:
            pending[0] -= 1
            if pending[0] or pair[0] not in self._open:
                return  # the other direction still runs, or close() already took the sockets
            self._open.difference_update(pair)
        for sock in pair:
            sock.close()

    def close(self) -> None:
        """Stop accepting and cut every relayed connection."""
        with self._lock:
            self._closed = True
            open_socks, self._open = list(self._open), set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        with contextlib.suppress(OSError):
            self.listener.close()
        for sock in open_socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the pumps blocked in recv()
            with contextlib.suppress(OSError):
                sock.close()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)


class Forwarder(_Relay):
    """Host ``127.0.0.1:<ephemeral>`` relayed to ``target_host:target_port`` in a netns."""

    def __init__(self, connector: NetnsConnector, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.connector = connector
        self.target = (target_host, target_port)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port: int = self.listener.getsockname()[1]
        self.name = f"forward-{self.port}"
        self._start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _connect_upstream(self) -> socket.socket:
        return self.connector.connect(*self.target)


def _in_netns(netns_path: str, job: Callable[[], socket.socket]) -> socket.socket:
    """Run ``job`` on a short-lived thread inside the netns (the thread is discarded afterwards)."""
    fut: Future[socket.socket] = Future()

    def run() -> None:
        try:
            setns(netns_path)
            fut.set_result(job())
        except BaseException as exc:
            fut.set_exception(exc)

    thread = threading.Thread(target=run, name="netns-listen", daemon=True)
    thread.start()
    thread.join()
    return fut.result(timeout=0)


def add_address(netns_path: str, address: str) -> None:
    """Add ``address``/32 to ``lo`` inside the netns (idempotent), so a listener can bind it there."""
    import subprocess

    proc = subprocess.run(
        ["nsenter", f"--net={netns_path}", "ip", "addr", "add", f"{address}/32", "dev", "lo"],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0 and "File exists" not in proc.stderr:
        raise OSError(f"adding {address} to lo in {netns_path}: {proc.stderr.strip()}")


class Inbound(_Relay):
    """``listen_host:listen_port`` inside a netns relayed to ``target`` in this process's own netns.

    The listening socket is made by a thread that entered the netns; accepted connections belong
    to that namespace, and the upstream connection is made from ordinary threads, in the host's.
    The socket keeps the namespace alive, so a daemon restarted into the same netns still sees it.
    """

    def __init__(self, netns_path: str, target: tuple[str, int], listen: tuple[str, int]) -> None:
        self.target = target
        self.listen = listen

        def make() -> socket.socket:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(listen)
                sock.listen(128)
            except BaseException:
                sock.close()
                raise
            return sock

        self.listener = _in_netns(netns_path, make)
        self.name = f"inbound-{listen[1]}"
        self._start()

    @property
    def address(self) -> str:
        return f"{self.listen[0]}:{self.listen[1]}"

    def _connect_upstream(self) -> socket.socket:
        return socket.create_connection(self.target, timeout=10)
