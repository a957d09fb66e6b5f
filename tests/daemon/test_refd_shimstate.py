"""The shim state dir's records: written whole (temp file + rename), synced later, read back safely."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from harness.daemon import shimstate


def test_records_are_replaced_whole_and_synced_later(tmp_path: Path) -> None:
    path = str(tmp_path / shimstate.EXIT)
    shimstate.write_record(path, {"exit_code": 3, "oom_killed": False, "finished_at": "x"})
    assert not os.path.exists(path + ".tmp")
    assert shimstate.read_exit(str(tmp_path)) == {"exit_code": 3, "oom_killed": False, "finished_at": "x"}
    os.unlink(path)  # a record removed before its sync is skipped, not an error
    shimstate.sync_written()
    assert shimstate.read_exit(str(tmp_path)) is None


def test_unreadable_records_read_as_absent(tmp_path: Path) -> None:
    (tmp_path / shimstate.EXIT).write_text("{torn")
    (tmp_path / shimstate.STATE).write_text('["not", "an", "object"]')
    (tmp_path / "exec-abc.json").write_text(json.dumps({"running": True, "pid": 7}))
    assert shimstate.read_exit(str(tmp_path)) is None
    assert shimstate.read_state_pid(str(tmp_path)) == 0
    assert shimstate.read_exec(str(tmp_path), "abc") == {"running": True, "pid": 7}
    assert shimstate.read_exec(str(tmp_path), "other") is None


def test_state_pid(tmp_path: Path) -> None:
    shimstate.write_record(str(tmp_path / shimstate.STATE), {"pid": 42, "started_at": "t", "shim_pid": 1})
    assert shimstate.read_state_pid(str(tmp_path)) == 42


def test_shim_alive_needs_a_live_pid_and_the_socket(tmp_path: Path) -> None:
    state_dir = str(tmp_path)
    assert not shimstate.shim_alive(state_dir)
    (tmp_path / shimstate.PID).write_text(str(os.getpid()))
    assert not shimstate.shim_alive(state_dir)  # no socket
    (tmp_path / shimstate.SOCKET).touch()
    assert shimstate.shim_alive(state_dir)
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / shimstate.PID).write_text(str(dead.pid))
    assert not shimstate.shim_alive(state_dir)
