"""A shim's streams: the stdio of the container's process and its execs, the json-file (or local) log,
and the clients attached to them (moby's ``container/stream``, containerd-shim's io).

Output is read in one read(2) of at most 64 KiB per ready descriptor and round, written to the log
(the container's own process only) and fanned out to the clients attached to that process,
multiplexed unless it has a TTY. Nothing here blocks the shim host's loop: client sockets and the
process's stdin are written without blocking, with a per-client (per-stdin) buffer; a client more than
``HIGH_WATER`` bytes behind pauses reading that process's output (back-pressure on that process only)
until it is below ``LOW_WATER``.

Everything is registered in the host's selector as ``(kind, data, owner)`` with ``owner`` the
:class:`~.shim.Shim`, which hands ``output``, ``client`` and ``stdin`` events back here.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import pty
import selectors
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .logs.jsonfile import LineSplitter, frame

__all__ = ["HIGH_WATER", "LOW_WATER", "Client", "LogWriter", "ShimStreams", "Stdio", "make_stdio"]

#: a client this far behind pauses reading its process's output; below LOW_WATER it resumes
HIGH_WATER = 1 << 20
LOW_WATER = 256 << 10
_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE


class LogWriter(Protocol):
    """A log driver's writer (json-file's or local's)."""

    def write(self, stream: str, data: bytes, ts: str | None = None) -> None: ...

    def write_many(self, stream: str, pieces: list[bytes]) -> None: ...

    def close(self) -> None: ...


@dataclass
class Client:
    sock: socket.socket
    stdin: bool = False
    stdout: bool = True
    stderr: bool = True
    target: str = "main"  # "main" or an exec id
    out: bytearray = field(default_factory=bytearray)  # what the socket did not take yet
    reading: bool = True  # watching the socket for input (stdin) and its EOF
    events: int = 0  # what the selector watches now
    closing: bool = False  # close once ``out`` is sent


@dataclass
class Stdio:
    """One process's stdio as seen by the shim."""

    tty: bool
    #: output relayed to clients as it is (a terminal's, or an exec started with Tty), not in frames
    raw: bool = False
    stdin_w: int = -1  # where client stdin goes (pipe write end, or a duplicate of the pty master)
    outputs: dict[int, str] = field(default_factory=dict)  # fd -> stream name
    child_fds: tuple[int, int, int] = (-1, -1, -1)
    master: int = -1
    stdin_once: bool = False
    stdin_buf: bytearray = field(default_factory=bytearray)  # what the process did not read yet
    stdin_close: bool = False  # close stdin once ``stdin_buf`` is written


def make_stdio(tty: bool, open_stdin: bool, stdin_once: bool = False) -> Stdio:
    if tty:
        master, slave = pty.openpty()
        set_nonblock(master)
        return Stdio(
            tty=True,
            raw=True,
            # a duplicate, so writes to the process can be watched apart from its output
            stdin_w=os.dup(master) if open_stdin else -1,
            outputs={master: "stdout"},
            child_fds=(slave, slave, slave),  # stdin is the pty too, even without OpenStdin,
            master=master,
            stdin_once=stdin_once,
        )
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    if open_stdin:
        in_r, in_w = os.pipe()
        set_nonblock(in_w)
    else:
        in_r, in_w = os.open(os.devnull, os.O_RDONLY), -1
    for fd in (out_r, err_r):
        set_nonblock(fd)
    return Stdio(
        tty=False,
        stdin_w=in_w,
        outputs={out_r: "stdout", err_r: "stderr"},
        child_fds=(in_r, out_w, err_w),
        stdin_once=stdin_once,
    )


def set_nonblock(fd: int) -> None:
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)


def close_child_side(stdio: Stdio) -> None:
    for fd in set(stdio.child_fds):
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
    # forget them: closing the same numbers again later would close whatever reused them (a pidfd)
    stdio.child_fds = (-1, -1, -1)


class ShimStreams:
    """One container's stdio (the process's and each exec's, by name: ``main`` or an exec id), its log
    and its attached clients; ``on_drained(name)`` runs when a process's last output descriptor closed."""

    def __init__(self, sel: selectors.BaseSelector, owner: Any, on_drained: Callable[[str], None]) -> None:
        self.sel = sel
        self.owner = owner  # what the host hands this shim's events to
        self.on_drained = on_drained
        self.clients: dict[int, Client] = {}
        self.stdio: dict[str, Stdio] = {}
        self.splitters: dict[int, LineSplitter] = {}
        self.paused: set[str] = set()  # processes whose output waits for a slow client
        self.log: LogWriter | None = None

    def watch(self, fd: int | socket.socket, events: int, kind: str, data: Any) -> None:
        self.sel.register(fd, events, (kind, data, self.owner))

    # -- a process's stdio -------------------------------------------------------------------------------
    def add(self, name: str, stdio: Stdio) -> None:
        """Watch ``name``'s output."""
        self.stdio[name] = stdio
        for fd in stdio.outputs:
            self.watch(fd, _READ, "output", name)
            self.splitters[fd] = LineSplitter()

    def swap_console(self, name: str, master: int) -> None:
        """A TTY process's output comes from ``master`` (its own devpts's) instead of the shim's pty."""
        stdio = self.stdio[name]
        old = stdio.master
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(old)
        self.splitters.pop(old, None)
        os.close(old)
        set_nonblock(master)
        stdio.master = master
        stdio.outputs = {master: "stdout"}
        if stdio.stdin_w >= 0:  # the duplicate of the old master: writes go to the new one
            os.close(stdio.stdin_w)
            stdio.stdin_w = os.dup(master)
        self.watch(master, _READ, "output", name)
        self.splitters[master] = LineSplitter()

    def has_output(self, name: str) -> bool:
        """Whether ``name`` still has output to read."""
        stdio = self.stdio.get(name)
        return stdio is not None and bool(stdio.outputs)

    def drain(self, name: str) -> None:
        """Stop reading ``name``'s output: what is buffered is logged, the descriptors closed."""
        stdio = self.stdio[name]
        for fd in list(stdio.outputs):
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(fd)
            for piece in self.splitters.pop(fd, LineSplitter()).flush():
                self._emit(name, stdio.outputs[fd], piece)
            os.close(fd)
        stdio.outputs.clear()

    def drop(self, name: str) -> None:
        stdio = self.stdio.pop(name, None)
        if stdio is None:
            return
        self.paused.discard(name)
        for fd in list(stdio.outputs):
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(fd)
            os.close(fd)
        stdio.outputs.clear()
        self._close_stdin(stdio, force=True)
        close_child_side(stdio)

    def close_log(self) -> None:
        if self.log is not None:
            self.log.close()
            self.log = None

    def output(self, fd: int, name: str) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno != errno.EIO:  # EIO: the pty's other side closed
                raise
            data = b""
        stdio = self.stdio.get(name)
        stream = stdio.outputs.get(fd, "stdout") if stdio else "stdout"
        if not data:
            self.sel.unregister(fd)
            pieces = self.splitters.pop(fd).flush()
            for piece in pieces:
                self._emit(name, stream, piece)
            if stdio is not None:
                stdio.outputs.pop(fd, None)
            os.close(fd)
            self.on_drained(name)
            return
        pieces = self.splitters[fd].feed(data)
        if pieces and name == "main" and self.log is not None:
            self.log.write_many(stream, pieces)  # one write(2) for the whole read
        self._fan_out(name, stream, data)

    def _emit(self, name: str, stream: str, piece: bytes, log: bool = True) -> None:
        if log and name == "main" and self.log is not None:
            self.log.write(stream, piece)

    def _fan_out(self, name: str, stream: str, data: bytes) -> None:
        raw = self.stdio[name].raw if name in self.stdio else False
        for client in list(self.clients.values()):
            if (
                client.target != name
                or client.closing
                or (stream == "stdout" and not client.stdout)
                or (stream == "stderr" and not client.stderr)
            ):
                continue
            self._send(client, data if raw else frame(stream, data))

    def _send(self, client: Client, payload: bytes) -> None:
        """Queue ``payload`` for ``client``: what the socket takes goes now, the rest on EVENT_WRITE."""
        if not client.out:
            try:
                sent = client.sock.send(payload)
            except BlockingIOError:
                sent = 0
            except OSError:
                self.drop_client(client, flush=False)
                return
            if sent == len(payload):
                return
            payload = payload[sent:]
        client.out += payload
        self._update_events(client)
        if len(client.out) > HIGH_WATER:
            self._pause(client.target)

    def flush(self, client: Client) -> None:
        try:
            sent = client.sock.send(client.out)
        except BlockingIOError:
            return
        except OSError:
            self.drop_client(client, flush=False)
            return
        del client.out[:sent]
        if client.out:
            return
        if client.closing:
            self.drop_client(client, flush=False)
            return
        self._update_events(client)
        self.maybe_resume(client.target)

    def _update_events(self, client: Client) -> None:
        events = (_READ if client.reading else 0) | (_WRITE if client.out else 0)
        if events == client.events:
            return
        if client.events == 0:
            self.watch(client.sock, events, "client", client)
        elif events == 0:
            self.sel.unregister(client.sock)
        else:
            self.sel.modify(client.sock, events, ("client", client, self.owner))
        client.events = events

    def _pause(self, name: str) -> None:
        stdio = self.stdio.get(name)
        if name in self.paused or stdio is None:
            return
        self.paused.add(name)
        for fd in stdio.outputs:
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(fd)

    def maybe_resume(self, name: str) -> None:
        if name not in self.paused:
            return
        if any(c.target == name and len(c.out) > LOW_WATER for c in self.clients.values()):
            return
        self.paused.discard(name)
        stdio = self.stdio.get(name)
        for fd in stdio.outputs if stdio else ():
            self.watch(fd, _READ, "output", name)

    def client_input(self, client: Client) -> None:
        try:
            data = client.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        stdio = self.stdio.get(client.target)
        if not data:
            # moby's CloseStdin (StdinOnce, or any exec) closes the process's stdin with the client's, but
            # never a terminal's: a TTY's client that goes (or detaches) leaves the process its input
            if (
                client.stdin
                and stdio is not None
                and stdio.stdin_w >= 0
                and not stdio.tty
                and (stdio.stdin_once or client.target != "main")
            ):
                self._close_stdin(stdio)
            client.reading = False
            self._update_events(client)
            if not client.stdout and not client.stderr:
                self.drop_client(client)
            return
        if client.stdin and stdio is not None and stdio.stdin_w >= 0:
            self._write_stdin(client.target, stdio, data)

    def _write_stdin(self, name: str, stdio: Stdio, data: bytes) -> None:
        """Feed the process without blocking; while it lags, its stdin clients are not read."""
        if not stdio.stdin_buf:
            try:
                written = os.write(stdio.stdin_w, data)
            except BlockingIOError:
                written = 0
            except OSError:
                self._close_stdin(stdio, force=True)
                return
            if written == len(data):
                return
            data = data[written:]
        stdio.stdin_buf += data
        if len(stdio.stdin_buf) == len(data):  # it just started to lag
            self.watch(stdio.stdin_w, _WRITE, "stdin", name)
            self._stdin_readers(name, False)

    def flush_stdin(self, name: str) -> None:
        stdio = self.stdio.get(name)
        if stdio is None or stdio.stdin_w < 0:
            return
        try:
            written = os.write(stdio.stdin_w, stdio.stdin_buf)
        except BlockingIOError:
            return
        except OSError:
            stdio.stdin_buf.clear()
            written = 0
        del stdio.stdin_buf[:written]
        if stdio.stdin_buf:
            return
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(stdio.stdin_w)
        self._stdin_readers(name, True)
        if stdio.stdin_close:
            self._close_stdin(stdio)

    def _stdin_readers(self, name: str, reading: bool) -> None:
        for client in self.clients.values():
            if client.target == name and client.stdin and not client.closing:
                client.reading = reading
                self._update_events(client)

    def _close_stdin(self, stdio: Stdio, force: bool = False) -> None:
        if stdio.stdin_w < 0:
            return
        if stdio.stdin_buf and not force:  # EOF after what the process has not read yet
            stdio.stdin_close = True
            return
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(stdio.stdin_w)
        stdio.stdin_buf.clear()
        if stdio.tty:  # the pty's EOF is ^D; the duplicate goes, the master stays
            with contextlib.suppress(OSError):
                os.write(stdio.stdin_w, b"\x04")
        with contextlib.suppress(OSError):
            os.close(stdio.stdin_w)
        stdio.stdin_w = -1

    def drop_client(self, client: Client, flush: bool = True) -> None:
        """Forget ``client``; with ``flush``, output it is still owed is sent first."""
        if flush and client.out:
            client.closing = True
            client.reading = False
            self._update_events(client)
            return
        self.clients.pop(client.sock.fileno(), None)
        if client.events:
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(client.sock)
            client.events = 0
        with contextlib.suppress(OSError):
            client.sock.close()
        self.maybe_resume(client.target)

    # -- clients ------------------------------------------------------------------------------------------
    def attach(self, client: Client) -> None:
        """A client on its process's streams (not read while the process lags behind earlier input)."""
        stdio = self.stdio.get(client.target)
        if client.stdin and stdio is not None and stdio.stdin_buf:
            client.reading = False
        self.clients[client.sock.fileno()] = client
        self._update_events(client)

    def detach_all(self, name: str) -> None:
        """The clients of ``name``, once its output has ended, after what they are owed."""
        for client in [c for c in self.clients.values() if c.target == name]:
            self.drop_client(client)

    def owed(self) -> bool:
        """Whether some client has not been sent all its output yet."""
        return any(c.out for c in self.clients.values())

    def close(self) -> None:
        """Release everything: clients (unflushed), every stdio, the log."""
        for client in list(self.clients.values()):
            self.drop_client(client, flush=False)
        for name in list(self.stdio):
            self.drop(name)
        self.close_log()
