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

Many shims share one loop, so none of them may block it: the streams (stdio, log, clients,
back-pressure) are :mod:`.shimio`'s; the records it leaves in the state dir are :mod:`.shimstate`'s.

Protocol on ``<state-dir>/shim.sock``: the client sends one JSON line, then
- ``attach`` {stdin, stdout, stderr}: the stream (multiplexed frames unless tty) follows;
- ``start``: answers {"pid": n} or {"error": msg};
- ``wait``: answers {"exit_code", "oom_killed", "finished_at"} once the container exited;
- ``kill`` {signal, target?}, ``resize`` {height, width}: answer {"ok": true} or {"error": msg}
  (``target``: an exec id instead of the container's process);
- ``exec`` {id, process, tty, stdin}: answers {"pid": n} or {"error": msg}, then streams;
- ``abandon``: a container that will not be started after all (its start failed before the ``start``
  op): the shim ends, answering {"ok": true} ({"error": msg} once the container runs). A shim never
  started also ends by itself when its state dir is removed or made anew, or after a minute.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import selectors
import signal
import socket
import struct
import sys
import termios
from collections.abc import Callable
from typing import Any

from .gotime import now_rfc3339
from .logs.jsonfile import JsonFileWriter, parse_log_options
from .shimio import Client, ShimStreams, Stdio, close_child_side, make_stdio
from .shimstate import EXIT, SOCKET, SPEC, STATE, exec_path, read_exec, write_record
from .unixpath import short_unix_path

__all__ = ["Shim", "main"]

PR_SET_CHILD_SUBREAPER = 36
_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE
#: seconds between a never-started shim's looks at its state dir
ORPHAN_CHECK_INTERVAL = 2.0
#: seconds a shim waits for its container's start before it gives the container up
UNSTARTED_LIMIT = 60.0


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
        self.streams = ShimStreams(self.sel, self, self._maybe_finish)
        self.pids: dict[str, int] = {}
        self.pidfds: dict[int, str] = {}
        self.waiters: list[socket.socket] = []
        self.pending: dict[int, tuple[socket.socket, bytearray]] = {}  # connections still sending a request
        self.exit: dict[str, Any] | None = None
        self.done = False
        self.deadline_after_exit: float | None = None
        self.dir_ino = os.stat(state_dir).st_ino
        self.orphan_check = 0.0  # when a never-started shim next looks whether its state dir is still its own
        self.unstarted_since: float | None = None  # the first round that found it not started
        self.listener: socket.socket | None = None

    def _watch(self, fd: int | socket.socket, events: int, kind: str, data: Any) -> None:
        self.sel.register(fd, events, (kind, data, self))

    # -- set-up -----------------------------------------------------------------------------------
    def prepare(self) -> None:
        log = self.spec.get("log") or {}
        if log.get("driver", "json-file") == "json-file" and log.get("path"):
            self.streams.log = JsonFileWriter(log["path"], parse_log_options(log.get("opts") or {}))
        elif log.get("driver") == "local" and log.get("path"):
            from .logs.local import LocalWriter, parse_local_options

            self.streams.log = LocalWriter(log["path"], parse_local_options(log.get("opts") or {}))
        proc = self.spec["process"]
        self.streams.add(
            "main",
            make_stdio(
                bool(proc.get("tty")), bool(self.spec.get("open_stdin")), bool(self.spec.get("stdin_once"))
            ),
        )
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

        stdio = self.streams.stdio[name]
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
        close_child_side(stdio)
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
        self.streams.swap_console(name, fds[0])
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
        stdio = make_stdio(bool(req.get("tty")), bool(req.get("stdin")))
        stdio.raw = bool(req.get("raw", stdio.tty))  # the start's Tty frames the stream, not the process's
        self.streams.add(exec_id, stdio)
        try:
            pid = self._spawn(exec_id, req["process"], exec_into=main)
        except Exception as exc:
            self.streams.drop(exec_id)
            failed = {"running": False, "exit_code": 126, "pid": 0, "error": str(exc)}
            write_record(exec_path(self.dir, exec_id), failed)
            return {"error": str(exc)}
        write_record(exec_path(self.dir, exec_id), {"running": True, "exit_code": None, "pid": pid})
        return {"pid": pid}

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
        stdio = self.streams.stdio.get(name)
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
            self.streams.output(fd, data)
        elif kind == "client":
            if mask & _WRITE:
                self.streams.flush(data)
            if mask & _READ and data.sock.fileno() in self.streams.clients:
                self.streams.client_input(data)
        elif kind == "stdin":
            self.streams.flush_stdin(data)
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
        """After each round: finish a container whose output outlives it, or one that will never start;
        the next deadline, if any."""
        if self.done:
            return None
        if self.exit is None and "main" not in self.pids:
            return self._unstarted(now)
        if self.exit is None:
            return None
        if "main" in self.streams.paused:  # its output is still flowing to a slow client: not stuck
            self.deadline_after_exit = None
            return None
        # the container's init is gone: give remaining output a moment, then finish
        if self.deadline_after_exit is None:
            self.deadline_after_exit = now + 2
        if now <= self.deadline_after_exit:
            return self.deadline_after_exit
        self.streams.drain("main")
        self._maybe_finish("main")
        return None

    def _unstarted(self, now: float) -> float | None:
        """A shim whose container was never started ends once its state dir is gone or made anew (refd
        removed the container, or launched another shim for its next start), or when no start came for
        :data:`UNSTARTED_LIMIT` seconds (refd sends it right after the attached clients, so a refd that
        stopped or failed in between never will): nobody will start it."""
        if self.unstarted_since is None:
            self.unstarted_since = now
        if now < self.orphan_check:
            return self.orphan_check
        self.orphan_check = now + ORPHAN_CHECK_INTERVAL
        try:
            same = os.stat(self.dir).st_ino == self.dir_ino
        except OSError:
            same = False
        if same and now - self.unstarted_since < UNSTARTED_LIMIT:
            return self.orphan_check
        self.abandon()
        return None

    def abandon(self) -> bool:
        """Give up a container that was never started (its clients' streams end); False once it runs."""
        if "main" in self.pids or self.exit is not None:
            return False
        self.streams.detach_all("main")
        self.done = True
        return True

    @property
    def finished(self) -> bool:
        """Done, and every client has been sent what it was owed."""
        return self.done and not self.streams.owed()

    def close(self) -> None:
        """Release everything left (the host drops a finished shim, or ends)."""
        self.streams.close()
        for conn, _ in list(self.pending.values()):
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(conn)
            conn.close()
        self.pending.clear()
        for waiter in self.waiters:
            waiter.close()
        self.waiters.clear()
        for fd in list(self.pidfds):
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(fd)
            os.close(fd)
        self.pidfds.clear()
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

    # -- requests -------------------------------------------------------------------------------
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
        """One request: answered at once, later (``wait``) or with a stream (``attach``, ``exec``)."""
        op = _OPS.get(str(req.get("op")))
        if op is None:
            self._reply(conn, {"error": f"unknown op {req.get('op')!r}"})
            return
        op(self, conn, req)

    def _op_start(self, conn: socket.socket, req: dict[str, Any]) -> None:
        self._reply(conn, self.start())

    def _op_wait(self, conn: socket.socket, req: dict[str, Any]) -> None:
        if self.exit is not None:
            self._reply(conn, self.exit)
        else:
            self.waiters.append(conn)

    def _op_kill(self, conn: socket.socket, req: dict[str, Any]) -> None:
        self._reply(conn, self.kill(int(req.get("signal", signal.SIGKILL)), str(req.get("target", "main"))))

    def _op_resize(self, conn: socket.socket, req: dict[str, Any]) -> None:
        target, height, width = (
            str(req.get("target", "main")),
            int(req.get("height", 0)),
            int(req.get("width", 0)),
        )
        self._reply(conn, self.resize(target, height, width))

    def _op_abandon(self, conn: socket.socket, req: dict[str, Any]) -> None:
        if self.abandon():
            self._reply(conn, {"ok": True})
        else:
            self._reply(conn, {"error": "the container was started"})

    def _op_ping(self, conn: socket.socket, req: dict[str, Any]) -> None:
        self._reply(conn, {"ok": True, "pid": self.pids.get("main", 0)})

    def _op_attach(self, conn: socket.socket, req: dict[str, Any]) -> None:
        if self.exit is not None and "main" not in self.streams.stdio:
            conn.close()
            return
        stdout, stderr = bool(req.get("stdout", True)), bool(req.get("stderr", True))
        self.streams.attach(Client(conn, stdin=bool(req.get("stdin")), stdout=stdout, stderr=stderr))

    def _op_exec(self, conn: socket.socket, req: dict[str, Any]) -> None:
        result = self._exec(req)
        self._reply(conn, result, close="error" in result)
        if "error" not in result:
            output = bool(req.get("attach", True))
            target = str(req["id"])
            self.streams.attach(
                Client(conn, stdin=bool(req.get("stdin")), stdout=output, stderr=output, target=target)
            )

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
        """Once a process has exited and its output ended: its clients go; for the container's own
        process, the log is closed, ``exit.json`` written and the waiters answered."""
        exited = (self.exit is not None) if name == "main" else name not in self.pids
        if not exited or self.streams.has_output(name):
            return
        self.streams.detach_all(name)
        if name != "main":
            self.streams.drop(name)
            return
        self.streams.close_log()
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


_OPS: dict[str, Callable[[Shim, socket.socket, dict[str, Any]], None]] = {
    "start": Shim._op_start,
    "wait": Shim._op_wait,
    "kill": Shim._op_kill,
    "resize": Shim._op_resize,
    "ping": Shim._op_ping,
    "abandon": Shim._op_abandon,
    "attach": Shim._op_attach,
    "exec": Shim._op_exec,
}


if __name__ == "__main__":
    sys.exit(main())
