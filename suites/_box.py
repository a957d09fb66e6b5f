"""Helpers for scenarios that run in a systemd box (``systemd_box`` fixture): an admin's commands, as root."""

from __future__ import annotations

import json
import re
import shlex
import time
from dataclasses import dataclass
from typing import Any

from harness.errors import HarnessError
from harness.systemd_box import BoxResult, SystemdBox

__all__ = [
    "HandRun",
    "api_json",
    "edit_unit",
    "hand_run",
    "logrus_messages",
    "main_pid",
    "ping",
    "unit_exec_start",
]

_LOGRUS = re.compile(r'level=(\w+) msg="((?:[^"\\]|\\.)*)"|level=(\w+) msg=(\S+)')


def logrus_messages(text: str, level: str | None = None) -> list[str]:
    """The ``msg`` of every logrus line in ``text`` (of one ``level`` if given), unescaped."""
    found = []
    for match in _LOGRUS.finditer(text):
        lvl = match.group(1) or match.group(3)
        msg = match.group(2) if match.group(2) is not None else match.group(4)
        if level is None or lvl == level:
            found.append(msg.replace('\\"', '"').replace("\\\\", "\\"))
    return found


def api_json(box: SystemdBox, path: str, socket: str | None = None) -> Any:
    """``GET path`` over the unix socket with curl, decoded; None when it fails."""
    sock = socket or box.flavour.socket
    res = box.sh(f"curl -sS --max-time 10 --unix-socket {sock} 'http://localhost{path}'", timeout=20)
    if res.code != 0:
        return None
    try:
        return json.loads(res.out)
    except ValueError:
        return None


def ping(box: SystemdBox, socket: str | None = None, timeout: int = 10) -> str:
    """``curl --unix-socket SOCKET http://localhost/_ping``: ``OK``, or ``curl exit N``."""
    sock = socket or box.flavour.socket
    res = box.sh(
        f"curl -sS --max-time {timeout} --unix-socket {sock} http://localhost/_ping", timeout=timeout + 5
    )
    return res.out if res.code == 0 else f"curl exit {res.code}"


def main_pid(box: SystemdBox, unit: str | None = None) -> int:
    return int(box.show(unit or box.flavour.unit, "MainPID").get("MainPID", "0") or 0)


def unit_exec_start(box: SystemdBox) -> str:
    """The ExecStart= command line of the daemon's unit file as packaged (``systemctl cat``, no drop-ins)."""
    res = box.sh(f"systemctl cat {box.flavour.unit}.service")
    first = res.out.split("\n# /", 1)[0]  # drop-ins follow the unit file, each under a '# /path' line
    lines = [ln.split("=", 1)[1] for ln in first.splitlines() if ln.startswith("ExecStart=")]
    return lines[-1] if lines else ""


def edit_unit(box: SystemdBox, override: str, unit: str | None = None) -> BoxResult:
    """``sudo systemctl edit UNIT`` where the admin types ``override`` into the editor.

    systemctl edit wants a terminal (``Cannot edit units if not on a tty``): the command gets one, and the
    "editor" copies the text over the temporary file systemctl opens: its last argument (systemd 262 puts a
    ``+LINE`` argument before it, as vim and nano take).
    """
    box.write("/root/override.conf", override)
    box.write("/root/editor", '#!/bin/sh\nfor last; do :; done\nexec cp /root/override.conf "$last"\n', 0o755)
    return box.sh(f"SYSTEMD_EDITOR=/root/editor sudo -E systemctl edit {unit or box.flavour.unit}", tty=True)


@dataclass
class HandRun:
    """A daemon started by hand in the box (``sudo dockerd ...`` in the background)."""

    box: SystemdBox
    pid: int
    log_path: str
    started: float
    ready_after: float | None  # seconds until the awaited log line, None if it never came

    def log(self) -> str:
        return self.box.read(self.log_path)

    def stop(self, timeout: int = 30) -> int | None:
        """SIGTERM, wait; the exit status (None if it would not stop)."""
        res = self.box.sh(
            f"kill -TERM {self.pid} 2>/dev/null; for _ in $(seq {timeout * 10}); do "
            f"kill -0 {self.pid} 2>/dev/null || exit 0; sleep 0.1; done; exit 1",
            timeout=timeout + 5,
        )
        return 0 if res.code == 0 else None


def hand_run(
    box: SystemdBox,
    command: str,
    ready: str = "API listen on",
    timeout: float = 60,
    log_path: str = "",
    ready_socket: str = "",
) -> HandRun:
    """Run ``command`` (the tutorial's ``sudo dockerd ...``) in the background as an admin would.

    Its output goes to ``log_path``; returns once a line containing ``ready`` appears (with
    ``ready_socket``: once ``/_ping`` answers there), or after ``timeout`` seconds, or when the daemon
    exits, with the time it took.
    """
    log_path = log_path or f"/root/hand-{int(time.time() * 1000)}.log"
    pid_path = f"{log_path}.pid"
    # the pid goes to a file, read through /proc/<pid>/root: no dependence on the exec's output stream
    res = box.sh(f"nohup {command} > {shlex.quote(log_path)} 2>&1 < /dev/null & echo $! > {pid_path}")
    pid = 0
    for _ in range(50):
        text = box.read(pid_path).strip()
        if text.isdigit():
            pid = int(text)
            break
        time.sleep(0.05)
    if not pid:
        raise HarnessError(f"{command!r} did not start in the box (exit {res.code}): {res.text.strip()}")
    started = time.monotonic()
    ready_after = None
    while time.monotonic() - started < timeout:
        if (ping(box, ready_socket, 2) == "OK") if ready_socket else (ready in box.read(log_path)):
            ready_after = time.monotonic() - started
            break
        if box.sh(f"kill -0 {pid}").code != 0:
            break
        time.sleep(0.1)
    return HandRun(box, pid, log_path, started, ready_after)
