"""The daemon pidfile: refuse to start over a live daemon, overwrite a stale file (spec 3.6)."""

from __future__ import annotations

import os

__all__ = ["PidfileError", "remove", "write"]


class PidfileError(Exception):
    """Another live process owns the pidfile."""


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not "running"
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def write(path: str) -> None:
    """Write our pid, or raise PidfileError with dockerd 28's message."""
    try:
        with open(path) as fh:
            text = fh.read().strip()
        pid = int(text) if text.isdigit() else 0
        if pid and pid != os.getpid() and _alive(pid):
            raise PidfileError(
                f"failed to start daemon, ensure docker is not running or delete {path}: "
                f"process with PID {pid} is still running"
            )
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as fh:
        fh.write(str(os.getpid()))
    os.replace(tmp, path)


def remove(path: str) -> None:
    try:
        with open(path) as fh:
            if fh.read().strip() != str(os.getpid()):
                return  # not ours any more: never delete another daemon's pidfile
        os.unlink(path)
    except OSError:
        pass
