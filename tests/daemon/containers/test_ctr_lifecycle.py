"""Lifecycle on a live refd, as moby's restart and kill: a restarted auto-removed container is kept, a kill
with the stop signal (or SIGKILL) is the last exit whatever the restart policy, another signal is not."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from harness.wait import wait_until

from .livedaemon import LiveRefd, running_as_root

pytestmark = pytest.mark.skipif(not running_as_root(), reason="running containers needs root")

TOP = ["top"]


@pytest.fixture(scope="module")
def refd() -> Iterator[LiveRefd]:
    daemon = LiveRefd("lifecycle")
    try:
        yield daemon
    finally:
        daemon.close()


@pytest.mark.parametrize("end", ["kill", "stop?t=0"])
def test_an_auto_removed_container_survives_a_restart(refd: LiveRefd, end: str) -> None:
    cid = refd.run(TOP, HostConfig={"AutoRemove": True})
    restarted = refd.client.post(f"/containers/{cid}/restart?t=0")
    assert restarted.status_code == 204, restarted.text
    assert refd.inspect(cid)["State"]["Status"] == "running"
    assert refd.client.post(f"/containers/{cid}/{end}").status_code == 204
    refd.wait_gone(cid)


@pytest.mark.parametrize(
    ("stop_signal", "signal", "status"),
    [
        ("TERM", "TERM", "exited"),  # the stop signal: the restart manager is cancelled
        ("CONT", "TERM", "running"),  # another one: the always policy starts it again
        ("", "TERM", "exited"),  # no stop signal set: any signal
    ],
)
def test_a_kill_with_the_stop_signal_ends_an_always_restarted_container(
    refd: LiveRefd, stop_signal: str, signal: str, status: str
) -> None:
    config = {"StopSignal": stop_signal} if stop_signal else {}
    # PID 1 of a PID namespace only gets the signals it handles: kill once the trap is set
    script = "trap 'exit 3' TERM; touch /trapped; while :; do sleep 1; done"
    cid = refd.run(["sh", "-c", script], HostConfig={"RestartPolicy": {"Name": "always"}}, **config)
    assert wait_until(lambda: os.path.exists(f"/proc/{refd.pid(cid)}/root/trapped"), 30, interval=0.05)
    assert refd.client.post(f"/containers/{cid}/kill?signal={signal}").status_code == 204
    if status == "running":
        refd.wait_status(cid, "running")

        def restarted() -> bool:
            return int(refd.inspect(cid)["RestartCount"]) >= 1

        assert wait_until(restarted, 30, interval=0.05)
    else:
        refd.wait_status(cid, "exited")
        assert refd.inspect(cid)["RestartCount"] == 0


def test_a_started_process_is_settled_once_it_handles_a_signal_or_sleeps() -> None:
    """lifecycle._settled reads /proc/<pid>/status: a sleeping process (State S) or one with handlers
    (SigCgt) is settled; a gone one too (nothing left to wait for)."""
    import asyncio
    import subprocess

    from harness.daemon.containers.lifecycle import _proc_status, _settled

    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        assert wait_until(lambda: (_proc_status(sleeper.pid) or ("",))[0] == "S", 10, interval=0.01)
        asyncio.run(_settled(sleeper.pid))
        state = _proc_status(os.getpid())
        assert state is not None and state[1] != 0  # pytest's Python handles SIGINT
    finally:
        sleeper.kill()
        sleeper.wait()
    assert _proc_status(sleeper.pid) is None
    asyncio.run(_settled(sleeper.pid))
