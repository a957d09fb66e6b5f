"""The per-container supervisor ("shim"): the object that owns one running container.

A :class:`Shim` lives in a supervisor process of its own session, so the container outlives a
refd restart (live-restore): usually a *shim host* (:mod:`.shimhost`) that runs the shims of many
containers in one selector loop; ``python -m harness.daemon.shim <state-dir>`` (refd's fallback
when no host can be had) is a host with that one container. The shim owns the container's stdio:
it writes the json-file log, fans output out to attached clients, feeds stdin, resizes
the pty, delivers signals, runs execs, and records the exit status in ``exit.json`` so
a refd that was down when the container died still learns how it ended.

Start is two-phase so ``docker run`` loses no output: the shim prepares stdio and its
socket, reports ``ready`` on the sync fd, refd connects the clients already attached to
the created container, then sends ``start``.

Many shims share one loop, so none of them may block it: client sockets and the container's stdin
are written without blocking, with a per-client buffer; a client more than ``HIGH_WATER`` bytes
behind pauses reading that process's output (back-pressure on that container only, as a blocked
write did when each container had its own process) until it is below ``LOW_WATER``.

Protocol on ``<state-dir>/shim.sock``: the client sends one JSON line, then
- ``attach`` {stdin, stdout, stderr}: the stream (multiplexed frames unless tty) follows;
- ``start``: answers {"pid": n} or {"error": msg};
- ``wait``: answers {"exit_code", "oom_killed", "finished_at"} once the container exited;
- ``kill`` {signal, target?}, ``resize`` {height, width}: answer {"ok": true} or {"error": msg}
  (``target``: an exec id instead of the container's process);
- ``exec`` {id, process, tty, stdin}: answers {"pid": n} or {"error": msg}, then streams.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import pty
import selectors
import signal
import socket
import struct
import sys
import termios
from dataclasses import dataclass, field
from typing import Any

from .gotime import now_rfc3339
from .logs.jsonfile import JsonFileWriter, LineSplitter, frame, parse_log_options
from .shimstate import EXIT, SOCKET, SPEC, STATE, exec_path, read_exec, write_record
from .unixpath import short_unix_path

__all__ = ["HIGH_WATER", "LOW_WATER", "Shim", "main"]

PR_SET_CHILD_SUBREAPER = 36
#: a client this far behind pauses reading its process's output; below LOW_WATER it resumes
HIGH_WATER = 1 << 20
LOW_WATER = 256 << 10
_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE


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
        _set_nonblock(master)
        return Stdio(
            tty=True,
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
        _set_nonblock(in_w)
    else:
        in_r, in_w = os.open(os.devnull, os.O_RDONLY), -1
    for fd in (out_r, err_r):
        _set_nonblock(fd)
    return Stdio(
        tty=False,
        stdin_w=in_w,
        outputs={out_r: "stdout", err_r: "stderr"},
        child_fds=(in_r, out_w, err_w),
        stdin_once=stdin_once,
    )


def _set_nonblock(fd: int) -> None:
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)


def _close_child_side(stdio: Stdio) -> None:
    for fd in set(stdio.child_fds):
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
    # forget them: closing the same numbers again later would close whatever reused them (a pidfd)
    stdio.child_fds = (-1, -1, -1)


class Shim:
    """One container's supervisor; many of them share the selector of their host.

    Everything it watches is registered with ``(kind, data, self)`` so the host hands each event
    to its shim (:meth:`handle`); the host reaps every child and offers each exit to the shims
    (:meth:`child_exited`).
    """

    def __init__(self, state_dir: str, sel: selectors.BaseSelector | None = None, log_fd: int = 2) -> None:
        self.dir = state_dir
        with open(os.path.join(state_dir, SPEC)) as fh:
            self.spec: dict[str, Any] = json.load(fh)
        self.sel = sel or selectors.DefaultSelector()
        self.log_fd = log_fd  # where this shim's own errors go (its shim.log)
        self.clients: dict[int, Client] = {}
        self.stdio: dict[str, Stdio] = {}
        self.splitters: dict[int, LineSplitter] = {}
        self.pids: dict[str, int] = {}
        self.pidfds: dict[int, str] = {}
        self.waiters: list[socket.socket] = []
        self.pending: dict[int, tuple[socket.socket, bytearray]] = {}  # connections still sending a request
        self.paused: set[str] = set()  # processes whose output waits for a slow client
        self.exit: dict[str, Any] | None = None
        self.log: JsonFileWriter | None = None
        self.running_streams = 0
        self.done = False
        self.deadline_after_exit: float | None = None
        self.listener: socket.socket | None = None

    def _watch(self, fd: int | socket.socket, events: int, kind: str, data: Any) -> None:
        self.sel.register(fd, events, (kind, data, self))

    # -- set-up -----------------------------------------------------------------------------------
    def prepare(self) -> None:
        log = self.spec.get("log") or {}
        if log.get("driver", "json-file") == "json-file" and log.get("path"):
            self.log = JsonFileWriter(log["path"], parse_log_options(log.get("opts") or {}))
        elif log.get("driver") == "local" and log.get("path"):
            from .logs.local import LocalWriter, parse_local_options

            self.log = LocalWriter(log["path"], parse_local_options(log.get("opts") or {}))  # type: ignore[assignment]
        proc = self.spec["process"]
        self.stdio["main"] = make_stdio(
            bool(proc.get("tty")), bool(self.spec.get("open_stdin")), bool(self.spec.get("stdin_once"))
        )
        for fd in self.stdio["main"].outputs:
            self._watch(fd, _READ, "output", "main")
            self.splitters[fd] = LineSplitter()
        path = os.path.join(self.dir, SOCKET)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with short_unix_path(path) as address:
            self.listener.bind(address)
        os.chmod(path, 0o600)
        self.listener.listen(64)
        self.listener.setblocking(False)
        self._watch(self.listener, _READ, "accept", None)

    # -- process control --------------------------------------------------------------------------
    def _spawn(self, name: str, process: dict[str, Any], exec_into: int = 0) -> int:
        from .runtime import process as rt

        stdio = self.stdio[name]
        spec = rt.ProcessSpec.from_dict(process)
        stdin, stdout, stderr = stdio.child_fds
        if exec_into and stdio.tty:
            proc = self._spawn_with_console(rt, spec, stdio, name, exec_into)
        elif exec_into:
            proc = rt.exec_in(exec_into, spec, stdin, stdout, stderr)
        elif stdio.tty:
            proc = self._spawn_with_console(rt, spec, stdio)
        else:
            proc = rt.spawn(spec, stdin, stdout, stderr)
        _close_child_side(stdio)
        pid = int(proc.pid)
        self.pids[name] = pid
        pidfd = os.pidfd_open(pid)
        self.pidfds[pidfd] = name
        self._watch(pidfd, _READ, "exit", name)
        return pid

    def _spawn_with_console(
        self, rt: Any, spec: Any, stdio: Stdio, name: str = "main", exec_into: int = 0
    ) -> Any:
        """TTY processes get their pty from the container's own devpts (runc's console socket): swap it in."""
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            spec.console_socket = child.fileno()
            proc = rt.exec_in(exec_into, spec, -1, -1, -1) if exec_into else rt.spawn(spec, -1, -1, -1)
            child.close()
            parent.settimeout(10)
            _, fds, _, _ = socket.recv_fds(parent, 16, 1)
        finally:
            child.close()
            parent.close()
        if not fds:
            raise RuntimeError("the container did not send its console")
        master = fds[0]
        old = stdio.master
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(old)
        self.splitters.pop(old, None)
        os.close(old)
        _set_nonblock(master)
        stdio.master = master
        stdio.outputs = {master: "stdout"}
        if stdio.stdin_w >= 0:  # the duplicate of the old master: writes go to the new one
            os.close(stdio.stdin_w)
            stdio.stdin_w = os.dup(master)
        self._watch(master, _READ, "output", name)
        self.splitters[master] = LineSplitter()
        return proc

    def start(self) -> dict[str, Any]:
        if "main" in self.pids:
            return {"pid": self.pids["main"]}
        try:
            pid = self._spawn("main", self.spec["process"])
        except Exception as exc:
            self.done = True  # nothing will run: the shim ends once it has answered
            return {"error": str(exc) or type(exc).__name__}
        write_record(
            os.path.join(self.dir, STATE), {"pid": pid, "started_at": now_rfc3339(), "shim_pid": os.getpid()}
        )
        return {"pid": pid}

    def _exec(self, req: dict[str, Any]) -> dict[str, Any]:
        main = self.pids.get("main")
        if not main or self.exit is not None:
            return {"error": "container is not running"}
        exec_id = str(req["id"])
        self.stdio[exec_id] = make_stdio(bool(req.get("tty")), bool(req.get("stdin")))
        for fd in self.stdio[exec_id].outputs:
            self._watch(fd, _READ, "output", exec_id)
            self.splitters[fd] = LineSplitter()
        try:
            pid = self._spawn(exec_id, req["process"], exec_into=main)
        except Exception as exc:
            self._drop_stdio(exec_id)
            failed = {"running": False, "exit_code": 126, "pid": 0, "error": str(exc)}
            write_record(exec_path(self.dir, exec_id), failed)
            return {"error": str(exc)}
        write_record(exec_path(self.dir, exec_id), {"running": True, "exit_code": None, "pid": pid})
        return {"pid": pid}

    def _drop_stdio(self, name: str) -> None:
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
        _close_child_side(stdio)

    def kill(self, signo: int, target: str = "main") -> dict[str, Any]:
        pid = self.pids.get(target)  # "main" or an exec id (a health probe past its timeout)
        if not pid or self.exit is not None:
            return {"error": "process already finished"}
        try:
            os.kill(pid, signo)
        except ProcessLookupError:
            return {"error": "process already finished"}
        return {"ok": True}

    def resize(self, name: str, height: int, width: int) -> dict[str, Any]:
        stdio = self.stdio.get(name)
        if stdio is None or stdio.master < 0:
            return {"error": "cannot resize a process without a TTY"}
        fcntl.ioctl(stdio.master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))
        pid = self.pids.get(name)
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGWINCH)
        return {"ok": True}

    # -- events -----------------------------------------------------------------------------------
    def handle(self, kind: str, data: Any, fd: int, mask: int) -> None:
        """One selector event of this shim (the host's loop calls it)."""
        if kind == "accept":
            self._accept()
        elif kind == "request":
            self._request_input(fd)
        elif kind == "output":
            self._output(fd, data)
        elif kind == "client":
            if mask & _WRITE:
                self._flush(data)
            if mask & _READ and data.sock.fileno() in self.clients:
                self._client_input(data)
        elif kind == "stdin":
            self._flush_stdin(data)
        elif kind == "exit":
            self.sel.unregister(fd)
            os.close(fd)
            self.pidfds.pop(fd, None)

    def child_exited(self, pid: int, status: int) -> bool:
        """The host reaped ``pid``: True if it was one of this shim's processes."""
        for name, known in list(self.pids.items()):
            if known == pid and (name != "main" or self.exit is None):
                self._reaped(name, status)
                return True
        return False

    def tick(self, now: float) -> float | None:
        """After each round: finish a container whose output outlives it; the next deadline, if any."""
        if self.exit is None or self.done:
            return None
        if "main" in self.paused:  # its output is still flowing to a slow client: not stuck
            self.deadline_after_exit = None
            return None
        # the container's init is gone: give remaining output a moment, then finish
        if self.deadline_after_exit is None:
            self.deadline_after_exit = now + 2
        if now <= self.deadline_after_exit:
            return self.deadline_after_exit
        stdio = self.stdio["main"]
        for fd in list(stdio.outputs):
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(fd)
            for piece in self.splitters.pop(fd, LineSplitter()).flush():
                self._emit("main", stdio.outputs[fd], piece)
            os.close(fd)
        stdio.outputs.clear()
        self._maybe_finish("main")
        return None

    @property
    def finished(self) -> bool:
        """Done, and every client has been sent what it was owed."""
        return self.done and not any(c.out for c in self.clients.values())

    def close(self) -> None:
        """Release everything left (the host drops a finished shim, or ends)."""
        for client in list(self.clients.values()):
            self._drop_client(client, flush=False)
        for conn, _ in list(self.pending.values()):
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(conn)
            conn.close()
        self.pending.clear()
        for waiter in self.waiters:
            waiter.close()
        self.waiters.clear()
        for name in list(self.stdio):
            self._drop_stdio(name)
        for fd in list(self.pidfds):
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(fd)
            os.close(fd)
        self.pidfds.clear()
        if self.log is not None:
            self.log.close()
            self.log = None
        if self.listener is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(self.listener)
            self.listener.close()
            self.listener = None
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self.dir, SOCKET))
        if self.log_fd > 2:
            with contextlib.suppress(OSError):
                os.close(self.log_fd)
            self.log_fd = -1

    # -- I/O --------------------------------------------------------------------------------------
    def _output(self, fd: int, name: str) -> None:
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
            self._maybe_finish(name)
            return
        pieces = self.splitters[fd].feed(data)
        if pieces and name == "main" and self.log is not None:
            self.log.write_many(stream, pieces)  # one write(2) for the whole read
        self._fan_out(name, stream, data)

    def _emit(self, name: str, stream: str, piece: bytes, log: bool = True) -> None:
        if log and name == "main" and self.log is not None:
            self.log.write(stream, piece)

    def _fan_out(self, name: str, stream: str, data: bytes) -> None:
        tty = self.stdio[name].tty if name in self.stdio else False
        for client in list(self.clients.values()):
            if (
                client.target != name
                or client.closing
                or (stream == "stdout" and not client.stdout)
                or (stream == "stderr" and not client.stderr)
            ):
                continue
            self._send(client, data if tty else frame(stream, data))

    def _send(self, client: Client, payload: bytes) -> None:
        """Queue ``payload`` for ``client``: what the socket takes goes now, the rest on EVENT_WRITE."""
        if not client.out:
            try:
                sent = client.sock.send(payload)
            except BlockingIOError:
                sent = 0
            except OSError:
                self._drop_client(client, flush=False)
                return
            if sent == len(payload):
                return
            payload = payload[sent:]
        client.out += payload
        self._update_events(client)
        if len(client.out) > HIGH_WATER:
            self._pause(client.target)

    def _flush(self, client: Client) -> None:
        try:
            sent = client.sock.send(client.out)
        except BlockingIOError:
            return
        except OSError:
            self._drop_client(client, flush=False)
            return
        del client.out[:sent]
        if client.out:
            return
        if client.closing:
            self._drop_client(client, flush=False)
            return
        self._update_events(client)
        self._maybe_resume(client.target)

    def _update_events(self, client: Client) -> None:
        events = (_READ if client.reading else 0) | (_WRITE if client.out else 0)
        if events == client.events:
            return
        if client.events == 0:
            self._watch(client.sock, events, "client", client)
        elif events == 0:
            self.sel.unregister(client.sock)
        else:
            self.sel.modify(client.sock, events, ("client", client, self))
        client.events = events

    def _pause(self, name: str) -> None:
        stdio = self.stdio.get(name)
        if name in self.paused or stdio is None:
            return
        self.paused.add(name)
        for fd in stdio.outputs:
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(fd)

    def _maybe_resume(self, name: str) -> None:
        if name not in self.paused:
            return
        if any(c.target == name and len(c.out) > LOW_WATER for c in self.clients.values()):
            return
        self.paused.discard(name)
        stdio = self.stdio.get(name)
        for fd in stdio.outputs if stdio else ():
            self._watch(fd, _READ, "output", name)

    def _client_input(self, client: Client) -> None:
        try:
            data = client.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        stdio = self.stdio.get(client.target)
        if not data:
            if (
                client.stdin
                and stdio is not None
                and stdio.stdin_w >= 0
                and (stdio.stdin_once or not stdio.tty)
            ) and (stdio.stdin_once or client.target != "main"):
                self._close_stdin(stdio)
            client.reading = False
            self._update_events(client)
            if not client.stdout and not client.stderr:
                self._drop_client(client)
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
            self._watch(stdio.stdin_w, _WRITE, "stdin", name)
            self._stdin_readers(name, False)

    def _flush_stdin(self, name: str) -> None:
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

    def _drop_client(self, client: Client, flush: bool = True) -> None:
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
        self._maybe_resume(client.target)

    def _accept(self) -> None:
        assert self.listener is not None
        try:
            conn, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        conn.setblocking(False)
        self.pending[conn.fileno()] = (conn, bytearray())
        self._watch(conn, _READ, "request", None)

    def _request_input(self, fd: int) -> None:
        """Collect the request line without blocking; nothing past its newline is taken (stdin follows)."""
        conn, line = self.pending[fd]
        try:
            peek = conn.recv(4096, socket.MSG_PEEK)
            end = peek.find(b"\n")
            data = conn.recv(end + 1 if end >= 0 else len(peek)) if peek else b""
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if data:
            line += data
            if not line.endswith(b"\n"):
                if len(line) > 1 << 20:
                    data = b""  # no request is that long
                else:
                    return
        self.sel.unregister(conn)
        del self.pending[fd]
        if not data:
            conn.close()
            return
        try:
            req = json.loads(line)
        except ValueError:
            conn.close()
            return
        self._handle(conn, req)

    def _reply(self, conn: socket.socket, obj: dict[str, Any], close: bool = True) -> None:
        # answers are a short line: a fresh socket's buffer takes it whole
        with contextlib.suppress(OSError):
            conn.sendall(json.dumps(obj).encode() + b"\n")
        if close:
            conn.close()

    def _handle(self, conn: socket.socket, req: dict[str, Any]) -> None:
        op = req.get("op")
        if op == "start":
            self._reply(conn, self.start())
        elif op == "wait":
            if self.exit is not None:
                self._reply(conn, self.exit)
            else:
                self.waiters.append(conn)
        elif op == "kill":
            self._reply(
                conn, self.kill(int(req.get("signal", signal.SIGKILL)), str(req.get("target", "main")))
            )
        elif op == "resize":
            self._reply(
                conn,
                self.resize(
                    str(req.get("target", "main")), int(req.get("height", 0)), int(req.get("width", 0))
                ),
            )
        elif op in ("attach", "exec"):
            if op == "exec":
                result = self._exec(req)
                self._reply(conn, result, close="error" in result)
                if "error" in result:
                    return
                target = str(req["id"])
                want_in = bool(req.get("stdin"))
                want_out = want_err = bool(req.get("attach", True))
            else:
                if self.exit is not None and "main" not in self.stdio:
                    conn.close()
                    return
                target, want_in = "main", bool(req.get("stdin"))
                want_out, want_err = bool(req.get("stdout", True)), bool(req.get("stderr", True))
            client = Client(conn, stdin=want_in, stdout=want_out, stderr=want_err, target=target)
            stdio = self.stdio.get(target)
            if want_in and stdio is not None and stdio.stdin_buf:
                client.reading = False  # the process still lags behind an earlier client's input
            self.clients[conn.fileno()] = client
            self._update_events(client)
        elif op == "ping":
            self._reply(conn, {"ok": True, "pid": self.pids.get("main", 0)})
        else:
            self._reply(conn, {"error": f"unknown op {op!r}"})

    # -- exits ------------------------------------------------------------------------------------
    def _reaped(self, name: str, status: int) -> None:
        code = os.waitstatus_to_exitcode(status)
        exit_code = 128 - code if code < 0 else code
        if name == "main":
            oom = False
            checker = self.spec.get("oom_check")
            if checker:
                try:
                    from .runtime.cgroups import Cgroup

                    oom = Cgroup(checker).oom_killed()
                except Exception:
                    oom = False
            self.exit = {"exit_code": exit_code, "oom_killed": oom, "finished_at": now_rfc3339()}
        else:
            record = read_exec(self.dir, name) or {}
            record.update(running=False, exit_code=exit_code)
            write_record(exec_path(self.dir, name), record)
            self.pids.pop(name, None)
        self._maybe_finish(name)

    def _maybe_finish(self, name: str) -> None:
        stdio = self.stdio.get(name)
        exited = (self.exit is not None) if name == "main" else name not in self.pids
        if not exited or (stdio is not None and stdio.outputs):
            return
        for client in [c for c in self.clients.values() if c.target == name]:
            self._drop_client(client)
        if name != "main":
            self._drop_stdio(name)
            return
        if self.log is not None:
            self.log.close()
            self.log = None
        assert self.exit is not None
        write_record(os.path.join(self.dir, EXIT), self.exit)
        for waiter in self.waiters:
            self._reply(waiter, self.exit)
        self.waiters.clear()
        self.done = True


def main(argv: list[str] | None = None, sync_fd: int | None = None) -> int:
    """A host with the one shim of ``argv[0]`` (a state dir); ready goes to ``sync_fd`` or the env's."""
    args = sys.argv[1:] if argv is None else argv
    state_dir = args[0]
    if sync_fd is None:
        sync_fd = int(os.environ.pop("REFD_SHIM_SYNC_FD", "-1"))
    from .shimhost import Host, become_subreaper

    become_subreaper()
    host = Host()
    if not host.adopt(state_dir, sync_fd, 2):
        return 1
    return host.run()


if __name__ == "__main__":
    sys.exit(main())
