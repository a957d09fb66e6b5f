"""The JSON progress stream of pulls and pushes: moby ``pkg/streamformatter``, ``progress``, ``jsonmessage``.

``ProgressOutput`` turns updates into the lines dockerd writes (``\\r\\n``-terminated, Go's field order
and HTML escaping): ``{"status":"Pulling fs layer","progressDetail":{},"id":"4f964ad0c75e"}``,
``{"status":"Digest: sha256:..."}``, and ``errorDetail``/``error`` lines. ``Reader`` wraps a byte
stream and reports ``Downloading``/``Extracting``/``Pushing`` progress as ``progress.NewProgressReader``
does: every 1% (at most 512 kB), rate-limited to one update per 100 ms, plus the last one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import IO, Any

from ..goformat import error_line, human_size, json_line

__all__ = ["ProgressOutput", "Reader", "progress_bar"]


def progress_bar(current: int, total: int) -> str:
    """JSONProgress.String() for a 200-column width (no terminal), without a time estimate."""
    if current <= 0 and total <= 0:
        return ""
    if total <= 0:
        return f"{human_size(current):>8}"
    percentage = min(int(current / total * 100) // 2, 50)
    bar = f"[{'=' * percentage}>{' ' * max(50 - percentage, 0)}] "
    numbers = (
        f"{human_size(current):>8}/{human_size(total)}" if current <= total else f"{human_size(current):>8}"
    )
    return bar + numbers


class ProgressOutput:
    """Thread-safe writer of progress lines to ``sink`` (called with each encoded line)."""

    def __init__(self, sink: Callable[[bytes], None]) -> None:
        self.sink = sink
        self.lock = threading.Lock()

    def _write(self, obj: dict[str, Any]) -> None:
        with self.lock:
            self.sink(json_line(obj))

    def message(self, id_: str, text: str) -> None:
        """progress.Message: ``{"status": text, "id": id}`` (no progressDetail)."""
        obj: dict[str, Any] = {"status": text}
        if id_:
            obj["id"] = id_
        self._write(obj)

    def update(self, id_: str, action: str, current: int = 0, total: int = 0) -> None:
        """progress.Update / a progress reader's update: status, progressDetail, progress, id."""
        detail: dict[str, int] = {}
        if current:
            detail["current"] = current
        if total:
            detail["total"] = total
        obj: dict[str, Any] = {"status": action, "progressDetail": detail}
        bar = progress_bar(current, total)
        if bar:
            obj["progress"] = bar
        if id_:
            obj["id"] = id_
        self._write(obj)

    def aux(self, value: Any) -> None:
        self._write({"progressDetail": {}, "aux": value})

    def error(self, message: str) -> None:
        with self.lock:
            self.sink(error_line(message))


class Reader:
    """A progress reader over ``stream``, reporting ``action`` for ``id_`` out of ``size`` bytes."""

    def __init__(
        self, stream: IO[bytes] | Any, out: ProgressOutput, size: int, id_: str, action: str
    ) -> None:
        self.stream = stream
        self.out = out
        self.size = size
        self.id = id_
        self.action = action
        self.current = 0
        self.last_update = 0
        self._tokens = 1.0
        self._stamp = time.monotonic()
        self._eof = False

    def _allow(self) -> bool:
        now = time.monotonic()
        self._tokens = min(1.0, self._tokens + (now - self._stamp) / 0.1)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def read(self, n: int = -1) -> bytes:
        data = self.stream.read(n) if n is not None else self.stream.read()
        self.current += len(data)
        every = 512 * 1024
        if self.size > 0:
            every = min(every, int(0.01 * self.size))
        at_end = not data and n != 0 and not self._eof
        if at_end:
            self._eof = True  # readers (gzip) may read again after the end: Go's reader sees EOF once
        if self.current - self.last_update > every or at_end:
            self._update(last=at_end)
            self.last_update = self.current
        return data

    def peek(self, n: int = 0) -> bytes:
        """Peek without counting (compression detection reads the first bytes this way)."""
        peek = getattr(self.stream, "peek", None)
        return bytes(peek(n)) if callable(peek) else b""

    def readinto(self, buf: Any) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def _update(self, last: bool) -> None:
        if last or self.current == self.size or self._allow():
            self.out.update(self.id, self.action, self.current, self.size)

    def close(self) -> None:
        if self.current < self.size:
            self.current = self.size
            self._update(False)
        close = getattr(self.stream, "close", None)
        if close is not None:
            close()
