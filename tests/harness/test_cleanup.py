"""The ledger reaps what a dead session left behind, and never what a live one owns."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.cleanup import SESSION_ID, Ledger, _start_time
from harness.wait import wait_until

from .conftest import pids_in_netns

HOST_NETNS = os.stat("/proc/self/ns/net").st_ino


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A daemon stand-in in its own session, as the local backend starts daemons."""
    proc = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


@pytest.fixture
def dead_owner() -> tuple[int, str]:
    """pid and start time of a process that has exited (a killed pytest session)."""
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    start = _start_time(proc.pid)
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(timeout=10)
    return proc.pid, start


def _write_record(ledger: Ledger, pid: int, owner: tuple[int, str], workdir: str, netns: int = 0) -> Path:
    os.makedirs(ledger.directory, exist_ok=True)
    path = Path(ledger.directory, f"{pid}.json")
    path.write_text(
        json.dumps(
            {
                "pid": pid,
                "start": _start_time(pid),
                "workdir": workdir,
                "session": "crashed",
                "owner": owner[0],
                "owner_start": owner[1],
                "netns": netns,
            }
        )
    )
    return path


def _workdir(tmp_path: Path, name: str = "harness-refd-abc") -> str:
    workdir = tmp_path / name
    (workdir / "root").mkdir(parents=True)
    (workdir / "daemon.json").write_text("{}")
    return str(workdir)


def test_reap_kills_a_dead_sessions_daemon(
    tmp_path: Path, sleeper: subprocess.Popen[bytes], dead_owner: tuple[int, str]
) -> None:
    ledger = Ledger(str(tmp_path / "ledger"))
    workdir = _workdir(tmp_path)
    record = _write_record(ledger, sleeper.pid, dead_owner, workdir)
    assert ledger.reap() == [f"pid {sleeper.pid} ({workdir})"]
    assert sleeper.wait(timeout=5) == -signal.SIGKILL
    assert not record.exists()
    assert not os.path.exists(workdir)


def test_reap_leaves_a_live_sessions_daemon_alone(tmp_path: Path, sleeper: subprocess.Popen[bytes]) -> None:
    ledger = Ledger(str(tmp_path / "ledger"))
    workdir = _workdir(tmp_path)
    record = _write_record(ledger, sleeper.pid, (os.getpid(), _start_time(os.getpid())), workdir)
    assert ledger.reap() == []
    assert sleeper.poll() is None
    assert record.exists() and os.path.exists(workdir)


def test_record_and_forget_by_this_session(tmp_path: Path, sleeper: subprocess.Popen[bytes]) -> None:
    ledger = Ledger(str(tmp_path / "ledger"))
    ledger.record_daemon(sleeper.pid, str(tmp_path / "harness-x"))
    record = json.loads(Path(ledger.directory, f"{sleeper.pid}.json").read_text())
    assert record["owner"] == os.getpid() and record["session"] == SESSION_ID
    assert record["start"] == _start_time(sleeper.pid)
    assert record["netns"] == 0  # the same netns as ours: nothing to sweep
    assert ledger.reap() == []  # we are alive: our own daemon stays
    assert sleeper.poll() is None
    ledger.forget_daemon(sleeper.pid)
    assert os.listdir(ledger.directory) == []
    ledger.forget_daemon(sleeper.pid)  # forgetting twice is fine


def test_reap_does_not_kill_a_recycled_pid(
    tmp_path: Path, sleeper: subprocess.Popen[bytes], dead_owner: tuple[int, str]
) -> None:
    ledger = Ledger(str(tmp_path / "ledger"))
    record = _write_record(ledger, sleeper.pid, dead_owner, _workdir(tmp_path))
    data = json.loads(record.read_text())
    record.write_text(json.dumps({**data, "start": "1"}))  # the pid now belongs to another process
    assert len(ledger.reap()) == 1
    assert sleeper.poll() is None
    assert not record.exists()


def test_reap_only_removes_harness_workdirs(
    tmp_path: Path, sleeper: subprocess.Popen[bytes], dead_owner: tuple[int, str]
) -> None:
    ledger = Ledger(str(tmp_path / "ledger"))
    precious = _workdir(tmp_path, "home-of-someone")
    _write_record(ledger, sleeper.pid, dead_owner, precious)
    assert len(ledger.reap()) == 1
    assert os.path.isdir(precious)


def test_reap_drops_unreadable_records(tmp_path: Path) -> None:
    ledger = Ledger(str(tmp_path / "ledger"))
    os.makedirs(ledger.directory)
    Path(ledger.directory, "123.json").write_text("{not json")
    assert ledger.reap() == []
    assert os.listdir(ledger.directory) == []
    assert Ledger(str(tmp_path / "never-created")).reap() == []


@pytest.fixture
def netns_family() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A daemon stand-in in its own netns that started a member escaping its process group (setsid)."""
    proc = subprocess.Popen(
        ["unshare", "--net", "sh", "-c", "setsid sleep 30 & exec sleep 30"], start_new_session=True
    )
    ino = 0
    try:

        def switched() -> bool:
            try:
                return os.stat(f"/proc/{proc.pid}/ns/net").st_ino != HOST_NETNS
            except OSError:
                return False

        assert wait_until(switched, 5)
        ino = os.stat(f"/proc/{proc.pid}/ns/net").st_ino
        assert wait_until(lambda: len(pids_in_netns(ino)) == 2, 5)
        yield proc, ino
    finally:
        if ino and ino != HOST_NETNS:
            for pid in pids_in_netns(ino):
                os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


@pytest.mark.skipif(os.geteuid() != 0, reason="unshare --net needs root")
def test_reap_sweeps_the_daemons_netns(
    tmp_path: Path, netns_family: tuple[subprocess.Popen[bytes], int], dead_owner: tuple[int, str]
) -> None:
    proc, ino = netns_family
    ledger = Ledger(str(tmp_path / "ledger"))
    _write_record(ledger, proc.pid, dead_owner, _workdir(tmp_path), netns=ino)
    assert len(ledger.reap()) == 1
    assert proc.wait(timeout=5) == -signal.SIGKILL
    assert wait_until(lambda: pids_in_netns(ino) == [], 5)  # the setsid member went too


@pytest.mark.skipif(os.geteuid() != 0, reason="unshare --net needs root")
def test_netns_sweep_refuses_the_callers_own_namespace() -> None:
    """Run in a throwaway netns: if the guard failed, only that one process would die."""
    code = (
        "import os; from harness.backends.local import kill_netns_members; "
        "print(kill_netns_members(os.stat('/proc/self/ns/net').st_ino), kill_netns_members(0))"
    )
    out = subprocess.run(
        ["unshare", "--net", sys.executable, "-c", code], capture_output=True, text=True, timeout=30
    )
    assert (out.returncode, out.stdout) == (0, "0 0\n"), out.stderr
