"""The shim host: one supervisor process that runs the shims of many containers in one selector loop.

With a process per container, 20 running containers cost 20 Python interpreters (refd's RSS with
20 containers was 0.77x dockerd's). A host keeps one interpreter for up to :data:`CAPACITY`
containers; each container still has its own :class:`~.shim.Shim` and its own protocol on
``<state-dir>/shim.sock``, ``state.json`` and ``exit.json``, so refd speaks to a container the same
way whether its shim is alone in a process or shares a host (``shim.pid`` names the host's pid).

How the pieces fit (docs/refd.md, "Shim hosts", says the same for users):

- **Handing a container to a host.** refd's launcher (:mod:`.containers.launcher`) keeps one
  *current* host. To start a container it connects to that host's control socket
  ``<exec-root>/shim-hosts/<token>.sock`` and sends ``{"state_dir": ...}`` with the shim's sync pipe
  and log file (SCM_RIGHTS), as it sends them to the zygote. The host builds the shim, writes
  ``ready`` on the sync pipe and answers ``{"pid": <host pid>}``; it refuses with ``{"error": ...}``
  when it is full or winding down, and drops a hand-off whose sender has hung up (refd waits 10 s
  for the answer, then goes elsewhere: a late adoption would give the container two supervisors).
  When there is no current host, it is dead, or it refuses, refd asks the zygote to fork a new host
  for this container (``{"state_dir", "host": <control path>}``), which becomes the current one when
  that container is ready (the host listens before it adopts it; other starts wait meanwhile);
  when the zygote cannot serve either, refd starts ``python -m harness.daemon.shim`` (a host with
  that one container and no control socket).
- **Children.** Every container process and exec is the host's own child (the host is a child
  subreaper, so the runtime's double fork re-parents them to it, and so do orphans of
  ``--pid host`` containers). SIGCHLD only wakes the loop (``signal.set_wakeup_fd``); after each round
  the host reaps with ``waitpid(-1, WNOHANG)`` and offers each status to its shims
  (:meth:`.Shim.child_exited`): the owner records it, others ignore it, an orphan nobody owns is
  just reaped.
- **Cgroups.** Unchanged: the runtime's intermediate child joins the container's cgroup before it
  forks the container process (and ``exec_in`` joins the cgroups of the container's PID 1), so the
  host itself stays in refd's cgroup and each container lands in its own.
- **Fairness.** Each ready descriptor gets one read of at most 64 KiB per round, so a chatty
  container cannot starve a quiet one. Nothing in the loop blocks on a peer: client sockets and
  stdin pipes are written without blocking, and a slow client pauses only its own process's
  output (see :mod:`.shim`). Starting a process (fork, namespaces, up to ``execve``) is done in the
  loop, as before in each shim: a few milliseconds during which the host's other containers wait.
  The price is parallelism: one host's containers share one core for their output. 8 containers
  writing 100 MiB between them took 2.1-5.7 s through one host against 1.3-1.9 s through 8 shim
  processes (the same 1.4 s of CPU; the host waited for a core), while a ticking neighbour kept
  logging at its rate throughout.
- **Blast radius.** A fault in one shim's handler is written to that container's ``shim.log`` and
  only the descriptor of that event is dropped. If the host process itself dies (SIGKILL, OOM
  killer), its containers lose their supervisor at once, as a container did when its own shim
  died: refd's monitor sees the shim socket close, finds no ``exit.json`` and marks the container
  exited with code 137 (``docker inspect`` shows the time refd noticed); their processes, if still
  alive, run on unsupervised, as with a dead shim before. :data:`CAPACITY` bounds
  how many containers one death takes along.
- **Lifetime.** A host exits once its last container is done (its exit recorded, its waiters and
  attached clients served, or, never started, given up: see :meth:`.Shim.abandon`): it closes its
  control socket first, so a hand-off that races the exit is refused and refd forks a new host.
  Hosts run in their own session and outlive refd (live-restore); a restarted refd re-adopts their
  containers through each ``shim.sock`` as before, but hands new containers to a fresh host of its
  own, never to a previous refd's host (which may run older code and is already on its way out).
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import sys
import time
import traceback
from typing import Any

from .shim import PR_SET_CHILD_SUBREAPER, Shim
from .shimstate import PID, sync_written
from .unixpath import short_unix_path

__all__ = ["CAPACITY", "Host", "become_subreaper", "serve"]

#: containers per host: one interpreter's worth of savings against how many a host's death takes along
CAPACITY = 16
_READ = selectors.EVENT_READ


def become_subreaper() -> None:
    """Orphans of the containers (and their processes, after the runtime's double fork) come to us."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _hung_up(conn: socket.socket) -> bool:
    """The peer closed its end (a non-blocking peek sees EOF)."""
    try:
        return conn.recv(1, socket.MSG_PEEK) == b""
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True


class Host:
    """The loop: the shims' events, the control socket, reaping."""

    def __init__(self, control_path: str = "", capacity: int = CAPACITY) -> None:
        self.sel = selectors.DefaultSelector()
        self.shims: list[Shim] = []
        self.capacity = capacity
        self.control_path = control_path
        self.control: socket.socket | None = None
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.sel.register(self.wake_r, _READ, ("wake", None, self))
        if control_path:
            self.control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(control_path)
            with short_unix_path(control_path) as address:
                self.control.bind(address)
            os.chmod(control_path, 0o600)
            self.control.listen(64)
            self.control.setblocking(False)
            self.sel.register(self.control, _READ, ("control", None, self))

    # -- containers -------------------------------------------------------------------------------
    def adopt(self, state_dir: str, sync_fd: int, log_fd: int) -> bool:
        """Build the shim of ``state_dir`` and report ``ready`` (or its error) on ``sync_fd``."""
        shim: Shim | None = None
        try:
            shim = Shim(state_dir, self.sel, log_fd)
            shim.prepare()
            with open(os.path.join(state_dir, PID), "w") as fh:
                fh.write(str(os.getpid()))
        except Exception as exc:
            if shim is not None:
                shim.close()
            elif log_fd > 2:
                os.close(log_fd)
            if sync_fd >= 0:
                with contextlib.suppress(OSError):
                    os.write(sync_fd, json.dumps({"error": str(exc) or type(exc).__name__}).encode() + b"\n")
                os.close(sync_fd)
            return False
        if sync_fd >= 0:
            with contextlib.suppress(OSError):
                os.write(sync_fd, b'{"ready": true}\n')
            os.close(sync_fd)
        self.shims.append(shim)
        return True

    def _control_accept(self) -> None:
        assert self.control is not None
        try:
            conn, _ = self.control.accept()
        except (BlockingIOError, InterruptedError):
            return
        conn.setblocking(False)
        self.sel.register(conn, _READ, ("request", conn, self))

    def _control_request(self, conn: socket.socket) -> None:
        """One hand-off: a JSON line and its two fds, sent in one message by refd."""
        self.sel.unregister(conn)
        fds: list[int] = []
        try:
            data, fds, _flags, _addr = socket.recv_fds(conn, 65536, 2)
            if _hung_up(conn):  # refd gave up waiting (this loop was busy) and went elsewhere: not ours
                return
            if len(self.shims) >= self.capacity:
                reply: dict[str, Any] = {"error": f"this shim host is full ({self.capacity} containers)"}
            elif not data.endswith(b"\n") or len(fds) != 2:
                reply = {"error": "a hand-off is one JSON line with the sync and log fds"}
            else:
                state_dir = str(json.loads(data)["state_dir"])
                sync_fd, log_fd = fds
                fds = []
                self.adopt(state_dir, sync_fd, log_fd)  # a shim that fails says so on its sync pipe
                reply = {"pid": os.getpid()}
            with contextlib.suppress(OSError):
                conn.sendall(json.dumps(reply).encode() + b"\n")
        except (OSError, ValueError, KeyError, TypeError):
            pass
        finally:
            for fd in fds:
                os.close(fd)
            conn.close()

    def _fault(self, shim: Shim, kind: str, fd: int) -> None:
        """A shim's handler raised: note it in that container's shim.log and drop the event's fd only."""
        with contextlib.suppress(OSError):
            os.write(shim.log_fd, f"shim host: error handling {kind} on fd {fd}:\n".encode())
            os.write(shim.log_fd, traceback.format_exc().encode())
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(fd)

    # -- the loop ---------------------------------------------------------------------------------
    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            for shim in self.shims:
                try:
                    if shim.child_exited(pid, status):
                        break
                except Exception:
                    self._fault(shim, "an exit", -1)
                    break

    def _round(self, timeout: float | None) -> None:
        for key, mask in self.sel.select(timeout):
            kind, data, owner = key.data
            if owner is self:
                if kind == "wake":
                    with contextlib.suppress(OSError):
                        while os.read(self.wake_r, 4096):
                            pass
                elif kind == "control":
                    self._control_accept()
                elif kind == "request":
                    self._control_request(data)
                continue
            try:
                owner.handle(kind, data, key.fd, mask)
            except Exception:
                self._fault(owner, kind, key.fd)

    def run(self) -> int:
        """Serve until the last container is done; 0."""
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        signal.set_wakeup_fd(self.wake_w)
        deadline: float | None = None
        while self.shims:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            self._round(timeout)
            self._reap()
            now, deadline = time.monotonic(), None
            for shim in list(self.shims):
                try:
                    due = shim.tick(now)
                except Exception:
                    self._fault(shim, "the exit deadline", -1)
                    shim.done = True
                    due = None
                if due is not None:
                    deadline = due if deadline is None else min(deadline, due)
            sync_written()  # this round's answers are out: now make its records durable
            for shim in [s for s in self.shims if s.finished]:
                self.shims.remove(shim)
                shim.close()
        self.close()
        return 0

    def close(self) -> None:
        """Stop taking containers (the control socket goes first), then release the rest."""
        if self.control is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(self.control)
            self.control.close()
            self.control = None
            with contextlib.suppress(OSError):
                os.unlink(self.control_path)
        for shim in self.shims:
            shim.close()
        self.shims.clear()
        signal.set_wakeup_fd(-1)
        for fd in (self.wake_r, self.wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)


def serve(state_dir: str, sync_fd: int, log_fd: int, control_path: str, capacity: int = CAPACITY) -> int:
    """In a process of its own session: become a host listening on ``control_path`` with its first container.

    The host's own messages (not a container's) go to ``<control path>.log``, the file removed with
    the socket when it is empty.
    """
    become_subreaper()
    log_path = control_path.removesuffix(".sock") + ".log"
    own_log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    os.dup2(own_log, 2)
    os.close(own_log)
    try:
        host = Host(control_path, capacity)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.write(sync_fd, json.dumps({"error": f"shim host on {control_path}: {exc}"}).encode() + b"\n")
        return 1
    if not host.adopt(state_dir, sync_fd, log_fd):
        host.close()
        code = 1
    else:
        code = host.run()
    sys.stderr.flush()
    with contextlib.suppress(OSError):
        if os.path.getsize(log_path) == 0:
            os.unlink(log_path)
    return code
