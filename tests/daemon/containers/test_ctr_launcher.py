"""refd's shim launcher handing containers to shim hosts: a host the zygote just forked is not handed a
container before it listens.

The zygote is replaced by an in-process stand-in that answers the new host's pid at once, as the real
one does after its fork, and brings the host (a real :class:`~harness.daemon.shimhost.Host` on its
control socket, its rounds in a thread) up only when the test says so. No container process is
started (adopting one only prepares its stdio and ``shim.sock``), so no root is needed.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

from harness.daemon.containers.launcher import ShimLauncher
from harness.daemon.shimhost import Host

SPEC = {"process": {"args": ["true"], "tty": False}}


class SlowZygote:
    """Forks "hosts" that come up only once ``boot`` is set (``asked``: it was asked for one)."""

    def __init__(self) -> None:
        self.boot = asyncio.Event()
        self.asked = asyncio.Event()
        self.hosts: list[Host] = []
        self.booting: list[asyncio.Future[None]] = []
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []

    async def __call__(self, request: dict[str, str], sync_fd: int, log_fd: int, locked: bool = False) -> int:
        assert "host" in request, request  # only new hosts come from the zygote when hosts are on
        fds = (os.dup(sync_fd), os.dup(log_fd))  # the real zygote's child holds its own copies
        self.booting.append(asyncio.ensure_future(self._come_up(request, *fds)))
        self.asked.set()
        return os.getpid()

    async def _come_up(self, request: dict[str, str], sync_fd: int, log_fd: int) -> None:
        await self.boot.wait()
        host = Host(request["host"])
        self.hosts.append(host)
        host.adopt(request["state_dir"], sync_fd, log_fd)
        thread = threading.Thread(target=self._serve, args=(host,), daemon=True)
        self.threads.append(thread)
        thread.start()

    def _serve(self, host: Host) -> None:
        while not self.stop.is_set():
            host._round(0.05)

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(10)
        for host in self.hosts:
            host.close()


class WatchedLock(asyncio.Lock):
    """The launcher's lock, telling when a start has to wait for it."""

    def __init__(self, contended: asyncio.Event) -> None:
        super().__init__()
        self.contended = contended

    async def acquire(self) -> bool:
        if self.locked():
            self.contended.set()
        return await super().acquire()


def test_a_start_while_a_new_host_comes_up_joins_that_host(tmp_path: Path) -> None:
    """Two starts at once: the first gets a new host; the second waits until that host listens and is
    handed to it, instead of finding no socket (or one not yet listening, which the launcher removed as
    a dead host's) and forking a second host.

    The forked host comes up as soon as the second start either waits for its turn or tries a host."""
    seen: dict[str, Any] = {}

    async def run() -> None:
        launcher = ShimLauncher(str(tmp_path / "shim-hosts"), use_hosts=True)
        zygote = seen["zygote"] = SlowZygote()
        handed: list[tuple[str, bool]] = []
        seen["handed"] = handed
        hand_to_host = launcher._hand_to_host

        async def spy(path: str, state_dir: str, sync_fd: int, log_fd: int) -> int | None:
            handed.append((os.path.basename(state_dir), any(h.control_path == path for h in zygote.hosts)))
            zygote.boot.set()
            return await hand_to_host(path, state_dir, sync_fd, log_fd)

        launcher.lock = WatchedLock(zygote.boot)
        launcher._from_zygote = zygote  # type: ignore[method-assign]
        launcher._hand_to_host = spy  # type: ignore[method-assign]
        try:
            first = asyncio.ensure_future(launcher.launch(str(tmp_path / "first"), SPEC))
            await zygote.asked.wait()
            second = asyncio.ensure_future(launcher.launch(str(tmp_path / "second"), SPEC))
            await asyncio.wait_for(asyncio.gather(first, second), 30)
            seen["adopted"] = [sorted(os.path.basename(s.dir) for s in h.shims) for h in zygote.hosts]
        finally:
            zygote.close()

    asyncio.run(run())
    assert seen["handed"] == [("second", True)]  # handed only to a host that was up
    assert seen["adopted"] == [["first", "second"]]  # one host, both its containers
    for name in ("first", "second"):
        assert (tmp_path / name / "shim.pid").read_text() == str(os.getpid())
