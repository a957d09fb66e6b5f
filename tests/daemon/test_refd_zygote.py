"""refd's shim zygote over its real socket: a shim forked per request, reaped, and a dead zygote replaced."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from harness.daemon.containers.launcher import ShimLauncher
from harness.wait import wait_until


def _read_all(fd: int) -> bytes:
    data = b""
    while chunk := os.read(fd, 4096):
        data += chunk
    return data


async def _spawn(launcher: ShimLauncher, state_dir: Path) -> tuple[int | None, bytes]:
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    with open(state_dir / "shim.log", "ab") as log:
        try:
            pid = await launcher.spawn(str(state_dir), write_fd, log.fileno())
        finally:
            os.close(write_fd)
    try:
        return pid, await asyncio.to_thread(_read_all, read_fd)
    finally:
        os.close(read_fd)


def _gone(pid: int, timeout: float = 30) -> bool:
    """True once ``pid`` no longer exists (the zygote reaped it: no zombie left)."""

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    return wait_until(gone, timeout, interval=0.05)


def test_the_zygote_forks_a_shim_that_reports_a_bad_state_dir_and_is_reaped(tmp_path: Path) -> None:
    """A state dir without spec.json: the forked shim fails as ``python -m harness.daemon.shim`` would.

    The zygote must reap it, so this is checked while the zygote still runs: once it is killed, a
    shim still exiting is re-parented to the nearest subreaper, which is this pytest process after
    any test that ran the runtime in-process (it never reaps), so the zombie outlived the wait
    whenever the machine was loaded enough for the shim to exit after the kill.
    """

    async def run() -> tuple[int | None, bytes, int | None, bool]:
        launcher = ShimLauncher()
        launcher.start()
        try:
            pid, sync = await _spawn(launcher, tmp_path)
            zygote = launcher.proc.pid if launcher.proc else None
            reaped = pid is not None and await asyncio.to_thread(_gone, pid)
        finally:
            launcher.close()
        return pid, sync, zygote, reaped

    pid, sync, zygote, reaped = asyncio.run(run())
    assert pid is not None and pid != zygote
    assert b"error" in sync and b"spec.json" in sync  # no "ready": refd reports this error
    assert reaped, f"shim {pid} is still there (a zombie the zygote did not reap?)"


def test_a_dead_zygote_is_replaced(tmp_path: Path) -> None:
    async def run() -> tuple[int | None, int | None, int | None]:
        launcher = ShimLauncher()
        launcher.start()
        try:
            first, _ = await _spawn(launcher, tmp_path)
            assert launcher.proc is not None
            old = launcher.proc.pid
            os.kill(old, signal.SIGKILL)
            launcher.proc.wait()
            second, _ = await _spawn(launcher, tmp_path)
            new = launcher.proc.pid if launcher.proc else None
        finally:
            launcher.close()
        assert new != old
        return first, second, new

    first, second, new = asyncio.run(run())
    assert first is not None and second is not None and new is not None


def test_without_a_zygote_spawn_declines(tmp_path: Path) -> None:
    """After repeated failures the launcher stops trying: refd then execs a fresh shim itself."""

    async def run() -> int | None:
        launcher = ShimLauncher()
        launcher.failures = 3
        return await launcher.spawn(str(tmp_path), 1, 2)

    assert asyncio.run(run()) is None


@pytest.mark.parametrize("count", [8])
def test_concurrent_spawns_each_get_a_shim(tmp_path: Path, count: int) -> None:
    async def run() -> list[int | None]:
        launcher = ShimLauncher()
        launcher.start()
        dirs = []
        for i in range(count):
            (tmp_path / str(i)).mkdir()
            dirs.append(tmp_path / str(i))
        try:
            results = await asyncio.gather(*(_spawn(launcher, d) for d in dirs))
        finally:
            launcher.close()
        return [pid for pid, _ in results]

    pids = asyncio.run(run())
    assert None not in pids and len(set(pids)) == count
