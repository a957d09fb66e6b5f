"""refd's side of the shim zygote (:mod:`harness.daemon.zygote`): start it, ask it for shims.

Where the zygote cannot serve (it died, failed to start, or is not ready within 10 s) ``spawn``
returns None and the caller starts the shim as a fresh interpreter, so a container start never
depends on the zygote.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys

__all__ = ["ShimLauncher"]


class ShimLauncher:
    """refd's side: start the zygote, ask it for shims, fall back to a fresh interpreter."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.channel: socket.socket | None = None
        self.ready: asyncio.Task[bool] | None = None
        self.lock = asyncio.Lock()
        self.failures = 0

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
        """Fork a shim for ``state_dir`` from the zygote: its pid, or None (then spawn it yourself)."""
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
        async with self.lock:
            channel = self.channel
            if channel is None:  # dropped while this start waited its turn
                return None
            try:
                request = json.dumps({"state_dir": state_dir}).encode() + b"\n"
                socket.send_fds(channel, [request], [sync_fd, log_fd])
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
