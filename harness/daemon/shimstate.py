"""The files of a container's shim state directory (``<exec-root>/containers/<id>/``): the on-disk half
of the shim protocol, shared by the shim that writes them and refd that reads them.

- ``spec.json``: what to run (refd writes it before it launches the shim);
- ``shim.sock``: the shim's socket (the protocol in :mod:`.shim`); ``shim.pid``: its process (a host's);
- ``state.json``: ``{"pid", "started_at", "shim_pid"}`` once the container's process runs;
- ``exit.json``: ``{"exit_code", "oom_killed", "finished_at"}`` once it ended, so a refd that was down then
  (kill -9, live-restore) still learns how it ended;
- ``exec-<id>.json``: ``{"running", "exit_code", "pid"}`` (and ``error`` when it never started) per exec.

Records are written by temp file + rename (a kill -9 never leaves a torn one); their fsync is deferred
(:func:`sync_written`) so no disk flush sits between a process's start or exit and the shim's answer.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

from .fsutil import fsync_path

__all__ = [
    "EXIT",
    "LOG",
    "PID",
    "SOCKET",
    "SPEC",
    "STATE",
    "exec_path",
    "read_exec",
    "read_exit",
    "read_state_pid",
    "shim_alive",
    "sync_written",
    "write_record",
]

SPEC, SOCKET, PID, LOG = "spec.json", "shim.sock", "shim.pid", "shim.log"
STATE, EXIT = "state.json", "exit.json"

#: records renamed into place whose fsync is still due (see sync_written)
_UNSYNCED: list[str] = []


def write_record(path: str, data: Any) -> None:
    """Temp file + rename; the fsync follows the answer.

    state.json and exit.json are written just before the shim answers ``start`` and ``wait``: an
    fsync there put a disk flush (0.4 ms idle, 5-10 ms on a busy disk) on every start and exit.
    The shim's loop syncs what was written once its answers are out (:func:`sync_written`).
    """
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)
    _UNSYNCED.append(path)


def sync_written() -> None:
    """fsync the records written since the last call (a record removed meanwhile is skipped)."""
    while _UNSYNCED:
        fsync_path(_UNSYNCED.pop())


def exec_path(state_dir: str, exec_id: str) -> str:
    return os.path.join(state_dir, f"exec-{exec_id}.json")


def _read(path: str) -> dict[str, Any] | None:
    try:
        with open(path) as fh:
            record = json.load(fh)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def read_exit(state_dir: str) -> dict[str, Any] | None:
    """``exit.json``: how the container's process ended; None before it did (or if unreadable)."""
    return _read(os.path.join(state_dir, EXIT))


def read_exec(state_dir: str, exec_id: str) -> dict[str, Any] | None:
    return _read(exec_path(state_dir, exec_id))


def read_state_pid(state_dir: str) -> int:
    """The container process's pid from ``state.json``; 0 if it never started."""
    record = _read(os.path.join(state_dir, STATE)) or {}
    with contextlib.suppress(TypeError, ValueError):
        return int(record.get("pid") or 0)
    return 0


def shim_alive(state_dir: str) -> bool:
    """The shim named in ``shim.pid`` still runs and its socket is there."""
    try:
        with open(os.path.join(state_dir, PID)) as fh:
            pid = int(fh.read().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return os.path.exists(os.path.join(state_dir, SOCKET))
