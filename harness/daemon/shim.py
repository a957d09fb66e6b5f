"""The per-container supervisor ("shim"): one small process per running container.

refd starts ``python -m harness.daemon.shim <state-dir>`` in its own session so the
container outlives a refd restart (live-restore). The shim owns the container's stdio:
it writes the json-file log, fans output out to attached clients, feeds stdin, resizes
the pty, delivers signals, runs execs, and records the exit status in ``exit.json`` so
a refd that was down when the container died still learns how it ended.

Start is two-phase so ``docker run`` loses no output: the shim prepares stdio and its
socket, reports ``ready`` on the sync fd, refd connects the clients already attached to
the created container, then sends ``start``.

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
import time
from dataclasses import dataclass, field
from typing import Any

from .logs.jsonfile import JsonFileWriter, LineSplitter, frame, parse_log_options
from .unixpath import short_unix_path

__all__ = ["main"]

PR_SET_CHILD_SUBREAPER = 36


def _now() -> str:
    ns = time.time_ns()
    secs, frac = divmod(ns, 1_000_000_000)
    digits = f"{frac:09d}".rstrip("0")
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + (f".{digits}" if digits else "") + "Z"


#: records renamed into place whose fsync is still due (see _sync_written)
_UNSYNCED: list[str] = []


def _atomic_json(path: str, data: Any) -> None:
    """Temp file + rename (a kill -9 never leaves a torn record); the fsync follows the answer.

    state.json and exit.json are written just before the shim answers ``start`` and ``wait``: an
    fsync there put a disk flush (0.4 ms idle, 5-10 ms on a busy disk) on every start and exit.
    The main loop syncs what was written once its answers are out (:func:`_sync_written`).
    """
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)
    _UNSYNCED.append(path)


def _sync_written() -> None:
    """fsync the records written since the last call (a record removed meanwhile is skipped)."""
    while _UNSYNCED:
        path = _UNSYNCED.pop()
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)


@dataclass
class Client:
    sock: socket.socket
    stdin: bool = False
    stdout: bool = True
    stderr: bool = True
    target: str = "main"  # "main" or an exec id
    out: bytearray = field(default_factory=bytearray)


@dataclass
class Stdio:
    """One process's stdio as seen by the shim."""

    tty: bool
    stdin_w: int = -1  # where client stdin goes (pipe write end or pty master)
    outputs: dict[int, str] = field(default_factory=dict)  # fd -> stream name
    child_fds: tuple[int, int, int] = (-1, -1, -1)
    master: int = -1
    stdin_once: bool = False


def make_stdio(tty: bool, open_stdin: bool, stdin_once: bool = False) -> Stdio:
    if tty:
        master, slave = pty.openpty()
        _set_nonblock(master)
        return Stdio(
            tty=True,
            stdin_w=master if open_stdin else -1,
            outputs={master: "stdout"},
            child_fds=(slave, slave, slave),  # stdin is the pty too, even without OpenStdin,
            master=master,
            stdin_once=stdin_once,
        )
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    if open_stdin:
        in_r, in_w = os.pipe()
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
    def __init__(self, state_dir: str) -> None:
        self.dir = state_dir
        with open(os.path.join(state_dir, "spec.json")) as fh:
            self.spec: dict[str, Any] = json.load(fh)
        self.sel = selectors.DefaultSelector()
        self.clients: dict[int, Client] = {}
        self.stdio: dict[str, Stdio] = {}
        self.splitters: dict[int, LineSplitter] = {}
        self.pids: dict[str, int] = {}
        self.pidfds: dict[int, str] = {}
        self.waiters: list[socket.socket] = []
        self.exit: dict[str, Any] | None = None
        self.log: JsonFileWriter | None = None
        self.running_streams = 0
        self.done = False

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
            self.sel.register(fd, selectors.EVENT_READ, ("output", "main"))
            self.splitters[fd] = LineSplitter()
        path = os.path.join(self.dir, "shim.sock")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with short_unix_path(path) as address:
            self.listener.bind(address)
        os.chmod(path, 0o600)
        self.listener.listen(64)
        self.listener.setblocking(False)
        self.sel.register(self.listener, selectors.EVENT_READ, ("accept", None))

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
        self.sel.register(pidfd, selectors.EVENT_READ, ("exit", name))
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
        if stdio.stdin_w == old:
            stdio.stdin_w = master
        self.sel.register(master, selectors.EVENT_READ, ("output", name))
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
        _atomic_json(
            os.path.join(self.dir, "state.json"), {"pid": pid, "started_at": _now(), "shim_pid": os.getpid()}
        )
        return {"pid": pid}

    def _exec(self, req: dict[str, Any]) -> dict[str, Any]:
        main = self.pids.get("main")
        if not main or self.exit is not None:
            return {"error": "container is not running"}
        exec_id = str(req["id"])
        self.stdio[exec_id] = make_stdio(bool(req.get("tty")), bool(req.get("stdin")))
        for fd in self.stdio[exec_id].outputs:
            self.sel.register(fd, selectors.EVENT_READ, ("output", exec_id))
            self.splitters[fd] = LineSplitter()
        try:
            pid = self._spawn(exec_id, req["process"], exec_into=main)
        except Exception as exc:
            self._drop_stdio(exec_id)
            _atomic_json(
                os.path.join(self.dir, f"exec-{exec_id}.json"),
                {"running": False, "exit_code": 126, "pid": 0, "error": str(exc)},
            )
            return {"error": str(exc)}
        _atomic_json(
            os.path.join(self.dir, f"exec-{exec_id}.json"), {"running": True, "exit_code": None, "pid": pid}
        )
        return {"pid": pid}

    def _drop_stdio(self, name: str) -> None:
        stdio = self.stdio.pop(name, None)
        if stdio is None:
            return
        for fd in list(stdio.outputs):
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(fd)
            os.close(fd)
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
                or (stream == "stdout" and not client.stdout)
                or (stream == "stderr" and not client.stderr)
            ):
                continue
            payload = data if tty else frame(stream, data)
            try:
                client.sock.sendall(payload)
            except OSError:
                self._drop_client(client)

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
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(client.sock)
            if not client.stdout and not client.stderr:
                self._drop_client(client)
            return
        if client.stdin and stdio is not None and stdio.stdin_w >= 0:
            try:
                os.write(stdio.stdin_w, data)
            except OSError:
                self._close_stdin(stdio)

    def _close_stdin(self, stdio: Stdio) -> None:
        if stdio.stdin_w >= 0 and stdio.stdin_w != stdio.master:
            with contextlib.suppress(OSError):
                os.close(stdio.stdin_w)
        elif stdio.stdin_w >= 0:
            with contextlib.suppress(OSError):
                os.write(stdio.master, b"\x04")
        stdio.stdin_w = -1

    def _drop_client(self, client: Client) -> None:
        self.clients.pop(client.sock.fileno(), None)
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(client.sock)
        with contextlib.suppress(OSError):
            client.sock.close()

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except BlockingIOError:
            return
        conn.setblocking(True)
        conn.settimeout(5)
        try:
            line = b""
            while not line.endswith(b"\n"):
                chunk = conn.recv(1)
                if not chunk:
                    conn.close()
                    return
                line += chunk
            req = json.loads(line)
        except (OSError, ValueError):
            conn.close()
            return
        conn.settimeout(None)
        self._handle(conn, req)

    def _reply(self, conn: socket.socket, obj: dict[str, Any], close: bool = True) -> None:
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
            self.clients[conn.fileno()] = client
            self.sel.register(conn, selectors.EVENT_READ, ("client", client))
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
            self.exit = {"exit_code": exit_code, "oom_killed": oom, "finished_at": _now()}
        else:
            path = os.path.join(self.dir, f"exec-{name}.json")
            try:
                with open(path) as fh:
                    record = json.load(fh)
            except (OSError, ValueError):
                record = {}
            record.update(running=False, exit_code=exit_code)
            _atomic_json(path, record)
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
        _atomic_json(os.path.join(self.dir, "exit.json"), self.exit)
        for waiter in self.waiters:
            self._reply(waiter, self.exit)
        self.waiters.clear()
        self.done = True

    def _reap_orphans(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            for name, known in list(self.pids.items()):
                if known == pid and (name != "main" or self.exit is None):
                    self._reaped(name, status)

    def run(self, sync_fd: int) -> int:
        os.write(sync_fd, b'{"ready": true}\n')
        os.close(sync_fd)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        deadline_after_exit: float | None = None
        while True:
            for key, _ in self.sel.select(timeout=0.5):
                kind, data = key.data
                if kind == "accept":
                    self._accept()
                elif kind == "output":
                    self._output(key.fd, data)
                elif kind == "client":
                    self._client_input(data)
                elif kind == "exit":
                    self.sel.unregister(key.fd)
                    os.close(key.fd)
                    self._reap_orphans()
            self._reap_orphans()
            if self.exit is not None and not self.done:
                # the container's init is gone: give remaining output a moment, then finish
                deadline_after_exit = deadline_after_exit or time.monotonic() + 2
                if time.monotonic() > deadline_after_exit:
                    for fd in list(self.stdio["main"].outputs):
                        self.sel.unregister(fd)
                        os.close(fd)
                    self.stdio["main"].outputs.clear()
                    self._maybe_finish("main")
            _sync_written()  # this round's answers are out: now make its records durable
            if self.done:
                break
        self.listener.close()
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(self.dir, "shim.sock"))
        return 0


def main(argv: list[str] | None = None, sync_fd: int | None = None) -> int:
    """Run the shim for ``argv[0]`` (its state dir); ``sync_fd`` (else $REFD_SHIM_SYNC_FD) gets ``ready``."""
    args = sys.argv[1:] if argv is None else argv
    state_dir = args[0]
    if sync_fd is None:
        sync_fd = int(os.environ.pop("REFD_SHIM_SYNC_FD", "-1"))
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    shim = Shim(state_dir)
    try:
        shim.prepare()
    except Exception as exc:
        if sync_fd >= 0:
            os.write(sync_fd, json.dumps({"error": str(exc)}).encode() + b"\n")
        return 1
    with open(os.path.join(state_dir, "shim.pid"), "w") as fh:
        fh.write(str(os.getpid()))
    return shim.run(sync_fd)


if __name__ == "__main__":
    sys.exit(main())
