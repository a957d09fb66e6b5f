"""The pidfile: refuse a live owner, overwrite a stale file, remove only our own (spec 3.6)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.daemon import pidfile


def test_write_creates_parents_and_remove_deletes(tmp_path: Path) -> None:
    path = tmp_path / "run" / "docker" / "d.pid"
    pidfile.write(str(path))
    assert path.read_text() == str(os.getpid())
    assert not list(path.parent.glob("*.tmp"))
    pidfile.remove(str(path))
    assert not path.exists()


def test_live_pid_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "d.pid"
    live = os.getppid()
    path.write_text(f"{live}\n")
    with pytest.raises(pidfile.PidfileError) as info:
        pidfile.write(str(path))
    assert str(info.value) == (
        f"failed to start daemon, ensure docker is not running or delete {path}: "
        f"process with PID {live} is still running"
    )
    assert path.read_text() == f"{live}\n"  # untouched


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("content", ["{dead}", "{dead}\n", "garbage", "", "0", "-5"])
def test_stale_or_malformed_pidfile_is_overwritten(tmp_path: Path, content: str) -> None:
    path = tmp_path / "d.pid"
    path.write_text(content.format(dead=_dead_pid()))
    pidfile.write(str(path))
    assert path.read_text() == str(os.getpid())


def test_our_own_pid_is_not_a_conflict(tmp_path: Path) -> None:
    path = tmp_path / "d.pid"
    path.write_text(str(os.getpid()))
    pidfile.write(str(path))
    assert path.read_text() == str(os.getpid())


def test_remove_keeps_another_daemons_pidfile(tmp_path: Path) -> None:
    path = tmp_path / "d.pid"
    path.write_text(str(os.getppid()))
    pidfile.remove(str(path))
    assert path.read_text() == str(os.getppid())


def test_remove_of_a_missing_file_is_quiet(tmp_path: Path) -> None:
    pidfile.remove(str(tmp_path / "absent.pid"))
