"""Resource ledger and reaper: nothing a test session boots outlives it.

Each daemon is recorded under ``/run/harness-ledger`` with the pid of the session that
owns it. Teardown forgets it; a later session reaps entries whose owner died (a killed
pytest, a CI timeout) by killing the daemon, its namespace members and its files.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import uuid

__all__ = ["LEDGER", "SESSION_ID", "Ledger"]

SESSION_ID = uuid.uuid4().hex[:12]
LEDGER_DIR = os.environ.get("HARNESS_LEDGER_DIR", "/run/harness-ledger")


def _start_time(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _alive(pid: int, start: str) -> bool:
    return bool(start) and _start_time(pid) == start


class Ledger:
    """A directory of JSON records, one per live daemon."""

    def __init__(self, directory: str = LEDGER_DIR) -> None:
        self.directory = directory

    def _path(self, pid: int) -> str:
        return os.path.join(self.directory, f"{pid}.json")

    def record_daemon(self, pid: int, workdir: str) -> None:
        try:
            os.makedirs(self.directory, exist_ok=True)
            record = {
                "pid": pid,
                "start": _start_time(pid),
                "workdir": workdir,
                "session": SESSION_ID,
                "owner": os.getpid(),
                "owner_start": _start_time(os.getpid()),
                "netns": _netns_ino(pid),
            }
            with open(self._path(pid), "w") as fh:
                json.dump(record, fh)
        except OSError:
            pass  # the ledger is a safety net; failing to write it must not fail a test

    def forget_daemon(self, pid: int) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self._path(pid))

    def reap(self) -> list[str]:
        """Kill daemons whose owning session is gone; returns what was reaped."""
        reaped: list[str] = []
        try:
            names = os.listdir(self.directory)
        except OSError:
            return reaped
        for name in names:
            path = os.path.join(self.directory, name)
            try:
                with open(path) as fh:
                    record = json.load(fh)
            except (OSError, ValueError):
                with contextlib.suppress(OSError):
                    os.unlink(path)
                continue
            if _alive(record.get("owner", 0), record.get("owner_start", "")):
                continue
            pid = int(record.get("pid", 0))
            if _alive(pid, record.get("start", "")):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if record.get("netns"):
                from .backends.local import kill_netns_members

                kill_netns_members(int(record["netns"]))
            workdir = record.get("workdir", "")
            if workdir and os.path.basename(workdir).startswith("harness-"):
                from .backends.local import release_namespaces

                release_namespaces(workdir)  # the kept namespace files are mounts: unmount before removing
                shutil.rmtree(workdir, ignore_errors=True)
            with contextlib.suppress(OSError):
                os.unlink(path)
            reaped.append(f"pid {pid} ({workdir})")
        return reaped


def _netns_ino(pid: int) -> int:
    try:
        ino = os.stat(f"/proc/{pid}/ns/net").st_ino
        return 0 if ino == os.stat("/proc/self/ns/net").st_ino else ino
    except OSError:
        return 0


LEDGER = Ledger()
