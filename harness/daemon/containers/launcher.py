"""refd's side of the shim zygote (:mod:`..zygote`) and of the shim hosts (:mod:`..shimhost`).

With shim hosts (the default; ``REFD_SHIM_HOST=0`` in refd's environment turns them off, and
``REFD_SHIM_HOST_CAPACITY=n`` sets how many containers one host takes, 16 unless set) a new
container goes to the current host through its control socket; when there is none, or it is
dead or refuses (full, winding down), the zygote forks a new host for it, which becomes the
current one once its first container is ready (it listens before that; until then the other starts
wait for it, so none is handed to a host still coming up). Without hosts the zygote forks one shim per
container. Where the zygote cannot serve
(it died, failed to start, or is not ready within 10 s) ``spawn`` returns None and the caller
starts the shim as a fresh interpreter, so a container start never depends on the zygote.

:meth:`ShimLauncher.launch` is what a container start calls: the shim's spec written, a shim for it
from wherever one can be had, and its ``ready`` awaited.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import sys
from typing import TYPE_CHECKING, Any

from ..errors import system
from ..shimstate import LOG, SPEC
from ..unixpath import short_unix_path

if TYPE_CHECKING:
    import asyncio
    import subprocess
else:
    from ..lazy import asyncio  # imported on first use: refd answers its first /_ping without it

__all__ = ["HOST_READY_TIMEOUT", "ShimLauncher", "hosts_enabled", "runtime_start_error"]

#: how long the other starts wait for a newly forked host's first container before going elsewhere
HOST_READY_TIMEOUT = 10.0


def runtime_start_error(inner: str) -> tuple[str, int]:
    """dockerd's wrapping of a process that did not start, and the exit code it records (127 not found,
    126 not executable, 128 otherwise)."""
    message = (
        "failed to create task for container: failed to create shim task: OCI runtime create failed: runc "
        f"create failed: unable to start container process: error during container init: {inner}: unknown"
    )
    if "executable file not found" in message or "no such file or directory" in message:
        return message, 127
    if "permission denied" in message:
        return message, 126
    return message, 128


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _read_line_async(fd: int) -> bytes:
    """One line from a pipe without a thread: up to the newline, or all there is before EOF."""
    os.set_blocking(fd, False)
    loop = asyncio.get_running_loop()
    data = b""
    while not data.endswith(b"\n"):
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            readable: asyncio.Future[None] = loop.create_future()
            loop.add_reader(fd, _wake, readable)
            try:
                await readable
            finally:
                loop.remove_reader(fd)
            continue
        if not chunk:
            break
        data += chunk
    return data


def hosts_enabled() -> bool:
    """Shim hosts unless refd's environment says ``REFD_SHIM_HOST=0`` (one shim process per container)."""
    return os.environ.get("REFD_SHIM_HOST", "1").strip().lower() not in ("0", "false", "no", "off")


class ShimLauncher:
    """refd's side: hand containers to a shim host, or have the zygote fork one; else decline."""

    def __init__(self, host_dir: str = "", use_hosts: bool | None = None) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.channel: socket.socket | None = None
        self.ready: asyncio.Task[bool] | None = None
        self._lock: asyncio.Lock | None = None
        self.failures = 0
        self.host_dir = host_dir  # where hosts' control sockets go (<exec-root>/shim-hosts)
        self.use_hosts = bool(host_dir) and (hosts_enabled() if use_hosts is None else use_hosts)
        self.host_path = ""  # the current host's control socket ("": none yet)
        self.reapers: set[asyncio.Future[Any]] = set()  # waits on shims started as a new interpreter

    @property
    def lock(self) -> asyncio.Lock:
        """Created on first use: refd boots without asyncio (bootloop.py)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    @lock.setter
    def lock(self, lock: asyncio.Lock) -> None:
        self._lock = lock

    async def launch(self, state_dir: str, spec: dict[str, Any]) -> None:
        """A fresh ``state_dir`` with ``spec.json``, and a shim for it that has reported ready."""
        shutil.rmtree(state_dir, ignore_errors=True)
        os.makedirs(state_dir, mode=0o700)
        with open(os.path.join(state_dir, SPEC), "w") as fh:
            json.dump(spec, fh)
        await self._spawn_shim(state_dir)

    async def _spawn_shim(self, state_dir: str) -> None:
        """A shim for ``state_dir`` (in a host, from the zygote, or a new interpreter); waits for ready.

        With hosts, starts take turns up to the shim's ready when a new host was forked for it: that host
        becomes the current one only then, as it binds and listens before its first container is ready.
        Handed out at once (on the zygote's pid), the next start connected to a socket not yet bound or
        not yet listening, took it for a dead host's, removed it and forked another host, whose
        start then failed with 'shim host on ...: No such file or directory'.
        """
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        try:
            async with self.lock if self.use_hosts else contextlib.nullcontext():
                new_host = await self._start_shim(state_dir, write_fd)
                line = b""
                if new_host:
                    with contextlib.suppress(TimeoutError):  # a host slow to come up holds up no one for long
                        line = await asyncio.wait_for(_read_line_async(read_fd), HOST_READY_TIMEOUT)
                    if line.startswith(b'{"ready"'):
                        self.host_path = new_host
            if not line:
                line = await _read_line_async(read_fd)
        finally:
            os.close(read_fd)
        if not line:
            tail = ""
            with contextlib.suppress(OSError), open(os.path.join(state_dir, LOG)) as fh:
                tail = fh.read()[-2000:]
            raise system(f"container shim failed to start: {tail or 'no output'}")
        msg = json.loads(line)
        if "error" in msg:
            raise system(f"container shim failed: {msg['error']}")

    async def _start_shim(self, state_dir: str, write_fd: int) -> str:
        """Hand ``state_dir`` with the sync pipe's ``write_fd`` (closed here) to a shim; the control
        path of the host forked for it, if one was ("" otherwise). With hosts the caller holds the lock."""
        shim_log = open(os.path.join(state_dir, LOG), "ab")  # noqa: SIM115 - handed to the shim
        new_host = ""
        try:
            if self.use_hosts:
                pid, new_host = await self._place_in_host(state_dir, write_fd, shim_log.fileno())
            else:
                pid = await self.spawn(state_dir, write_fd, shim_log.fileno())
            if pid is None:
                env = {**os.environ, "REFD_SHIM_SYNC_FD": str(write_fd)}
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    *(["-S"] if sys.flags.no_site else []),
                    "-m",
                    "harness.daemon.shim",
                    state_dir,
                    pass_fds=(write_fd,),
                    env=env,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=shim_log,
                    start_new_session=True,
                )
                # reap the shim when it ends (the zygote reaps the shims it forks)
                self.reapers.add(reaper := asyncio.ensure_future(proc.wait()))
                reaper.add_done_callback(self.reapers.discard)
        finally:
            os.close(write_fd)
            shim_log.close()
        return new_host

    def start(self) -> None:
        """Start the zygote in the background (its imports run in its own process)."""
        if self.proc is not None or self.failures >= 3:
            return
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        flags = ["-S"] if sys.flags.no_site else []  # refd's own -S (stdlib-only: no site) carries over
        import subprocess  # here, not at boot: the zygote starts once asyncio serves

        try:
            self.proc = subprocess.Popen(
                [sys.executable, *flags, "-m", "harness.daemon.zygote", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError:
            self.failures += 1
            ours.close()
            return
        finally:
            theirs.close()
        ours.setblocking(False)
        self.channel = ours
        self.ready = asyncio.get_running_loop().create_task(self._await_ready(ours))

    async def _await_ready(self, channel: socket.socket) -> bool:
        try:
            line = await self._read_line(channel)
        except OSError:
            return False
        return line.startswith(b'{"ready"')

    @staticmethod
    async def _read_line(channel: socket.socket) -> bytes:
        loop = asyncio.get_running_loop()
        data = b""
        while not data.endswith(b"\n"):
            chunk = await loop.sock_recv(channel, 4096)
            if not chunk:
                raise ConnectionError("the zygote closed its socket")
            data += chunk
        return data

    def _drop(self) -> None:
        import subprocess

        self.failures += 1
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.proc is not None:
            with contextlib.suppress(OSError):
                self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=1)
            self.proc = None
        if self.ready is not None:
            self.ready.cancel()
        self.ready = None

    async def spawn(self, state_dir: str, sync_fd: int, log_fd: int) -> int | None:
        """Without hosts: the pid of the shim the zygote forked for ``state_dir``, or None (then start one
        yourself)."""
        return await self._from_zygote({"state_dir": state_dir}, sync_fd, log_fd)

    async def _place_in_host(self, state_dir: str, sync_fd: int, log_fd: int) -> tuple[int | None, str]:
        """The pid of the host that took ``state_dir`` (None: start one yourself), and the control path of
        a host the zygote forked for it ("" when the current host took it). The caller holds the lock:
        two starts must not both fork a new host."""
        if self.host_path:
            pid = await self._hand_to_host(self.host_path, state_dir, sync_fd, log_fd)
            if pid is not None:
                return pid, ""
            self.host_path = ""
        os.makedirs(self.host_dir, mode=0o700, exist_ok=True)
        path = os.path.join(self.host_dir, f"{secrets.token_hex(6)}.sock")
        request = {"state_dir": state_dir, "host": path}
        if os.environ.get("REFD_SHIM_HOST_CAPACITY"):
            request["capacity"] = os.environ["REFD_SHIM_HOST_CAPACITY"]
        pid = await self._from_zygote(request, sync_fd, log_fd, locked=True)
        return pid, path if pid is not None else ""

    @staticmethod
    async def _hand_to_host(path: str, state_dir: str, sync_fd: int, log_fd: int) -> int | None:
        """Give ``state_dir`` to the host listening on ``path``: its pid, or None (gone, full, no answer)."""
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            with short_unix_path(path) as address:
                await asyncio.wait_for(loop.sock_connect(sock, address), 5)
            request = json.dumps({"state_dir": state_dir}).encode() + b"\n"
            socket.send_fds(sock, [request], [sync_fd, log_fd])  # a short message: the buffer takes it whole
            reply = json.loads(await asyncio.wait_for(ShimLauncher._read_line(sock), 10))
        except ConnectionRefusedError:  # nobody listens: the host died without removing its socket
            with contextlib.suppress(OSError):
                os.unlink(path)
            return None
        except (OSError, ValueError, TimeoutError):
            return None
        finally:
            sock.close()
        return int(reply["pid"]) if isinstance(reply, dict) and "pid" in reply else None

    async def _from_zygote(
        self, request: dict[str, str], sync_fd: int, log_fd: int, locked: bool = False
    ) -> int | None:
        """The zygote forks a shim (a host, with ``"host"`` in ``request``) for it: its pid, or None."""
        if self.proc is None or self.proc.poll() is not None:
            if self.proc is not None:
                self._drop()
            self.start()
        if self.ready is None or self.channel is None:
            return None
        try:
            if not await asyncio.wait_for(asyncio.shield(self.ready), 10):
                self._drop()
                return None
        except TimeoutError:
            self._drop()
            return None
        async with contextlib.nullcontext() if locked else self.lock:
            channel = self.channel
            if channel is None:  # dropped while this start waited its turn
                return None
            try:
                line = json.dumps(request).encode() + b"\n"
                socket.send_fds(channel, [line], [sync_fd, log_fd])
                reply = json.loads(await asyncio.wait_for(self._read_line(channel), 10))
            except (OSError, ValueError, TimeoutError):
                self._drop()
                return None
        if "pid" not in reply:
            return None
        return int(reply["pid"])

    def close(self) -> None:
        """End the zygote (refd's shutdown); the shims it forked keep running in their sessions.

        It holds no state, so SIGKILL: no waiting for an interpreter to wind down.
        """
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.proc is not None:
            with contextlib.suppress(OSError):
                self.proc.kill()
            self.proc.wait()
            self.proc = None
