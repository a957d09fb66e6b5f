"""A warm process that forks container shims, instead of a fresh Python interpreter per container.

A shim started as ``python -m harness.daemon.shim`` spends ~40 ms importing (its interpreter,
the runtime, ctypes) before it can start a container, and keeps ~15 MiB of its own pages. refd
instead starts this zygote once (``python -m harness.daemon.zygote FD``, right after it serves):
it imports everything a shim runs, freezes its heap (``gc.freeze``: the collector then never
writes to those objects, so forked shims keep sharing their pages copy-on-write), then waits on
the unix socket ``FD`` (one end of a socket pair; refd holds the other).

Protocol: refd sends one JSON line ``{"state_dir": ...}`` carrying two fds (SCM_RIGHTS): the
shim's sync pipe (write end) and its log file. The zygote forks; the child becomes the shim
exactly as ``python -m harness.daemon.shim`` would run (new session, stdin and stdout on
/dev/null, stderr on the log) and the parent answers ``{"pid": n}``, then reaps the shim when it
ends. With ``"host": <control socket path>`` in the request the child becomes a shim host
(:mod:`.shimhost`) with this container as its first, listening on that path for more (at most
``"capacity"`` containers, if given). EOF on
the socket (refd is gone) ends the zygote; running shims and hosts go on in their sessions.

Used by refd's :class:`~.containers.launcher.ShimLauncher`; where the zygote cannot serve (it
died, or never started), the launcher falls back to a fresh interpreter, so a container start
never depends on it.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import socket
import sys
import traceback
from typing import Any

__all__ = ["main", "serve"]

_MAX_FDS = 2


def _reap(*_: Any) -> None:
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _become_shim(
    state_dir: str, sync_fd: int, log_fd: int, channel: socket.socket, host: str = "", capacity: int = 0
) -> int:
    """In the forked child: the shim's process setup, then its main loop (a host's, with ``host``)."""
    channel.close()
    os.setsid()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.dup2(log_fd, 2)
    if host:
        os.dup2(null, 2)  # the host's own log is next to its socket; the container's is its own
        os.close(null)
        from . import shimhost

        return shimhost.serve(state_dir, sync_fd, log_fd, host, capacity or shimhost.CAPACITY)
    for fd in (null, log_fd):
        if fd > 2:
            os.close(fd)
    from . import shim

    return shim.main([state_dir], sync_fd=sync_fd)


def serve(channel: socket.socket) -> int:
    """The zygote's loop: one fork per request until refd closes its end."""
    signal.signal(signal.SIGCHLD, _reap)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a ^C to refd's terminal is refd's to handle
    buf = b""
    while True:
        try:
            data, fds, _flags, _addr = socket.recv_fds(channel, 65536, _MAX_FDS)
        except OSError:
            return 0
        if not data:
            return 0
        buf += data
        if not buf.endswith(b"\n") or len(fds) != _MAX_FDS:
            for fd in fds:
                os.close(fd)
            if buf.endswith(b"\n"):
                buf = b""
                channel.sendall(b'{"error": "a request needs its sync and log fds"}\n')
            continue
        line, buf = buf, b""
        sync_fd, log_fd = fds
        try:
            request = json.loads(line)
            state_dir = str(request["state_dir"])
            host = str(request.get("host") or "")
            capacity = int(request.get("capacity") or 0)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            os.close(sync_fd)
            os.close(log_fd)
            channel.sendall(json.dumps({"error": f"bad request: {exc}"}).encode() + b"\n")
            continue
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = _become_shim(state_dir, sync_fd, log_fd, channel, host, capacity)
            except BaseException:
                with contextlib.suppress(Exception):
                    traceback.print_exc()
            finally:
                with contextlib.suppress(Exception):
                    sys.stderr.flush()
                os._exit(code)
        os.close(sync_fd)
        os.close(log_fd)
        channel.sendall(json.dumps({"pid": pid}).encode() + b"\n")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    channel = socket.socket(fileno=int(args[0]))
    channel.setblocking(True)
    from . import shim, shimhost  # noqa: F401 - warm: everything a shim runs is imported once, here
    from .runtime import cgroups, process  # noqa: F401

    gc.collect()
    gc.freeze()
    channel.sendall(b'{"ready": true}\n')
    return serve(channel)


if __name__ == "__main__":
    sys.exit(main())
