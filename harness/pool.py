"""Warm pools for the fixture service: default daemons booted ahead of time per (target, backend).

Booting a daemon takes about a second (refd) to several seconds (a dockerd in its rootfs); a suite that leases
many throwaway daemons pays that per lease. A pool keeps ``size`` daemons booted exactly as a default lease
boots one (an empty ``DaemonSpec``, a work directory of its own), so a lease taken from it differs from a
fresh one only in how long it took. After each hand-out a background thread boots a replacement.

A pooled daemon is checked before it is handed out (still running, answers ``/_ping``); one that died while
waiting is torn down and the next one (or a fresh boot) is used instead. Every pooled daemon is recorded in
the harness ledger when booted, like any other, so a later session reaps them if the service is killed.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Booted", "WarmPool"]

#: how often the filler looks for pooled daemons that died while waiting
CHECK_INTERVAL = 5.0
#: the longest pause after boot failures (doubling from 1 s), so a broken target does not spin
MAX_BACKOFF = 60.0


@dataclass
class Booted:
    """A booted daemon: its handle and the backend that tears it down."""

    handle: Any
    backend: Any
    booted_at: float = field(default_factory=time.time)


def _answers(booted: Booted) -> bool:
    from .wait import ping_once

    handle = booted.handle
    if handle.returncode is not None or handle.endpoint is None:
        return False
    try:
        return ping_once(handle.endpoint) == 200
    except OSError:
        return False


class WarmPool:
    """``size`` booted default daemons of one (target, backend), refilled by a background thread."""

    def __init__(
        self,
        key: tuple[str, str],
        size: int,
        boot: Callable[[], Booted],
        teardown: Callable[[Booted], None],
        log: Callable[[str], object] | None = None,
    ) -> None:
        self.key = key
        self.size = size
        self._boot = boot
        self._teardown = teardown
        self._log = log
        self._ready: deque[Booted] = deque()
        self._booting = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.failures = 0
        self.last_error = ""
        self._wake.set()
        self._thread = threading.Thread(target=self._fill_loop, daemon=True, name=f"pool-{key[0]}-{key[1]}")
        self._thread.start()

    def __repr__(self) -> str:
        return f"WarmPool({self.key[0]}/{self.key[1]}, size={self.size})"

    def status(self) -> dict[str, Any]:
        with self._lock:
            status: dict[str, Any] = {
                "size": self.size,
                "ready": len(self._ready),
                "booting": self._booting,
                "pids": [b.handle.pid for b in self._ready],
            }
        if self.last_error:
            status["last_error"] = self.last_error
        return status

    def take(self) -> Booted | None:
        """A live pooled daemon, or None (the caller boots a fresh one); a refill starts either way."""
        try:
            while True:
                with self._lock:
                    if not self._ready:
                        return None
                    booted = self._ready.popleft()
                if _answers(booted):
                    return booted
                self._say(f"pooled daemon pid {booted.handle.pid} died while waiting; not handed out")
                self._discard(booted)
        finally:
            self._wake.set()

    def close(self, timeout: float = 120.0) -> None:
        """Stop refilling and tear every pooled daemon down (one still booting is torn down when it is up)."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        with self._lock:
            ready = list(self._ready)
            self._ready.clear()
        for booted in ready:
            self._discard(booted)

    # -- the filler thread ----------------------------------------------------------------------------
    def _fill_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(CHECK_INTERVAL)
            self._wake.clear()
            self._prune()
            while not self._stop.is_set() and self._missing() > 0:
                if not self._fill_one():
                    delay = min(MAX_BACKOFF, 2.0 ** (self.failures - 1))
                    self._stop.wait(delay)

    def _missing(self) -> int:
        with self._lock:
            return self.size - len(self._ready) - self._booting

    def _fill_one(self) -> bool:
        with self._lock:
            self._booting += 1
        try:
            booted = self._boot()
        except Exception as exc:  # any boot failure: reported, retried after a pause
            self.failures += 1
            self.last_error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self._say(f"booting a pooled daemon failed ({self.failures} in a row): {self.last_error}")
            return False
        finally:
            with self._lock:
                self._booting -= 1
        self.failures = 0
        self.last_error = ""
        if self._stop.is_set():  # closed while it booted
            self._discard(booted)
            return True
        with self._lock:
            self._ready.append(booted)
        return True

    def _prune(self) -> None:
        """Tear down pooled daemons that exited while waiting (the loop then boots replacements)."""
        with self._lock:
            dead = [b for b in self._ready if b.handle.returncode is not None]
            for booted in dead:
                self._ready.remove(booted)
        for booted in dead:
            self._say(f"pooled daemon pid {booted.handle.pid} exited while waiting; replacing it")
            self._discard(booted)

    def _discard(self, booted: Booted) -> None:
        try:
            self._teardown(booted)
        except Exception as exc:  # a teardown error must not stop the others
            self._say(f"tearing down pooled daemon pid {booted.handle.pid} failed: {exc}")

    def _say(self, text: str) -> None:
        line = f"harness serve: pool {self.key[0]}/{self.key[1]}: {text}\n"
        (self._log or sys.stderr.write)(line)
