"""refd's side of the shim zygote (:mod:`..zygote`) and of the shim hosts (:mod:`..shimhost`).

With shim hosts (the default; ``REFD_SHIM_HOST=0`` in refd's environment turns them off, and
``REFD_SHIM_HOST_CAPACITY=n`` sets how many containers one host takes, 16 unless set) a new
container goes to the current host through its control socket; when there is none, or it is
dead or refuses (full, winding down), the zygote forks a new host for it, which becomes the
current one. Without hosts the zygote forks one shim per container. Where the zygote cannot serve
(it died, failed to start, or is not ready within 10 s) ``spawn`` returns None and the caller
starts the shim as a fresh interpreter, so a container start never depends on the zygote.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys

from ..unixpath import short_unix_path

__all__ = ["ShimLauncher", "hosts_enabled"]


def hosts_enabled() -> bool:
    """Shim hosts unless refd's environment says ``REFD_SHIM_HOST=0`` (one shim process per container)."""
    return os.environ.get("REFD_SHIM_HOST", "1").strip().lower() not in ("0", "false", "no", "off")


class ShimLauncher:
    """refd's side: hand containers to a shim host, or have the zygote fork one; else decline."""

    def __init__(self, host_dir: str = "", use_hosts: bool | None = None) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.channel: socket.socket | None = None
        self.ready: asyncio.Task[bool] | None = None
        self.lock = asyncio.Lock()
        self.failures = 0
        self.host_dir = host_dir  # where hosts' control sockets go (<exec-root>/shim-hosts)
        self.use_hosts = bool(host_dir) and (hosts_enabled() if use_hosts is None else use_hosts)
        self.host_path = ""  # the current host's control socket ("": none yet)

    def start(self) -> None:
        """Start the zygote in the background (its imports run in its own process)."""
        if self.proc is not None or self.failures >= 3:
            return
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        flags = ["-S"] if sys.flags.no_site else []  # refd's own -S (stdlib-only: no site) carries over
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
        """The pid of the host or shim that took ``state_dir``, or None (then start one yourself)."""
        if not self.use_hosts:
            return await self._from_zygote({"state_dir": state_dir}, sync_fd, log_fd)
        async with self.lock:  # one hand-off at a time: two starts must not both fork a new host
            if self.host_path:
                pid = await self._hand_to_host(self.host_path, state_dir, sync_fd, log_fd)
                if pid is not None:
                    return pid
                self.host_path = ""
            os.makedirs(self.host_dir, mode=0o700, exist_ok=True)
            path = os.path.join(self.host_dir, f"{secrets.token_hex(6)}.sock")
            request = {"state_dir": state_dir, "host": path}
            if os.environ.get("REFD_SHIM_HOST_CAPACITY"):
                request["capacity"] = os.environ["REFD_SHIM_HOST_CAPACITY"]
            pid = await self._from_zygote(request, sync_fd, log_fd, locked=True)
            if pid is not None:
                self.host_path = path
            return pid

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
