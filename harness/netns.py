"""Reach TCP listeners inside a daemon's private network namespace from the host.

Every local daemon boots in its own netns so daemons never fight over bridges, ports or
iptables. A Forwarder listens on host loopback and opens the matching connection from a
thread that has entered the daemon's netns (sockets keep the namespace they were made in).
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future

__all__ = ["Forwarder", "NetnsConnector", "setns"]

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
            ready.set_exception(exc)
            return
        ready.set_result(None)
        while True:
            with self._cond:
                while not self._jobs and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                job, fut = self._jobs.pop(0)
            try:
                fut.set_result(job())
            except OSError as exc:
                fut.set_exception(exc)

    def connect(self, host: str, port: int, timeout: float = 10) -> socket.socket:
        """A TCP socket connected to host:port *inside* the namespace."""
        def job() -> socket.socket:
            return socket.create_connection((host, port), timeout=timeout)

        fut: Future[socket.socket] = Future()
        with self._cond:
            self._jobs.append((job, fut))
            self._cond.notify()
        return fut.result(timeout=timeout + 5)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


class Forwarder:
    """Host ``127.0.0.1:<ephemeral>`` relayed to ``target_host:target_port`` in a netns."""

    def __init__(self, connector: NetnsConnector, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.connector = connector
        self.target = (target_host, target_port)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port: int = self.listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._thread = threading.Thread(target=self._accept, name=f"forward-{self.port}", daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = self.connector.connect(*self.target)
                upstream.settimeout(None)
            except OSError:
                client.close()  # the daemon is not listening: the client sees a reset, like a refused port
                continue
            self._open.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()

    def close(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        except OSError:
            pass
        try:
            self.listener.close()
        except OSError:
            pass
        for sock in list(self._open):
            try:
                sock.close()
            except OSError:
                pass
