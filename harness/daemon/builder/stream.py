"""The build's JSON progress stream, as dockerd's ``streamformatter`` writes it for ``POST /build``.

Every write to the build's stdout is one ``{"stream": ...}`` line, a write to its stderr the same
wrapped in ``\\x1b[91m`` ... ``\\x1b[0m``; ``aux`` lines carry the image ID (API >= 1.30); raw lines
(a pull's progress) pass through; an error ends the stream with ``errorDetail`` (and its ``code``
for a failed RUN). Lines are ``\\r\\n``-terminated, Go's JSON (HTML characters escaped).

With ``q`` (quiet) nothing is streamed while building: the lines are kept and, on success, only
the image ID is sent (``{"stream": "sha256:...\\n"}``); on failure the kept lines and the error.

``BuildOutput`` is written from the event loop or from worker threads; ``lines()`` is what the
HTTP response streams. ``started`` tells whether anything went out yet: an error before that is
an ordinary HTTP error response (dockerd's ``WriteFlusher`` was never flushed).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

from ..goformat import go_json

__all__ = ["BuildError", "BuildOutput", "error_line"]

_END = object()


class BuildError(Exception):
    """A failed build: ``str()`` is dockerd's message; ``status`` the HTTP status if nothing was sent yet;
    ``code`` a failed RUN's exit code (``errorDetail.code``)."""

    def __init__(self, message: str, status: int = 500, code: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


def error_line(message: str, code: int = 0) -> bytes:
    detail: dict[str, Any] = {"code": code, "message": message} if code else {"message": message}
    return go_json({"errorDetail": detail, "error": message}) + b"\r\n"


class BuildOutput:
    """Queue of encoded lines between the builder and the HTTP response."""

    def __init__(self, loop: asyncio.AbstractEventLoop, quiet: bool = False, aux: bool = True) -> None:
        self.loop = loop
        self.quiet = quiet
        self.want_aux = aux
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.kept: list[bytes] = []
        self.started = asyncio.Event()
        self.lock = threading.Lock()

    # -- writers (any thread) -------------------------------------------------------------------
    def _put(self, line: bytes) -> None:
        with self.lock:
            if self.quiet:
                self.kept.append(line)
                return
        if self._on_loop():
            self._deliver(line)
        else:
            self.loop.call_soon_threadsafe(self._deliver, line)

    def _on_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self.loop
        except RuntimeError:
            return False

    def _deliver(self, item: Any) -> None:
        self.queue.put_nowait(item)
        self.started.set()

    def stdout(self, text: str) -> None:
        if text:
            self._put(go_json({"stream": text}) + b"\r\n")

    def stderr(self, text: str) -> None:
        if text:
            self._put(go_json({"stream": "\x1b[91m" + text + "\x1b[0m"}) + b"\r\n")

    def aux(self, obj: Any, id_: str = "") -> None:
        if not self.want_aux:
            return
        doc: dict[str, Any] = {"id": id_} if id_ else {}
        doc["aux"] = obj
        self._put(go_json(doc) + b"\r\n")

    def raw(self, line: bytes) -> None:
        self._put(line)

    # -- ends (event loop) ------------------------------------------------------------------------
    def finish(self, image_id: str) -> None:
        if self.quiet:
            self._deliver(go_json({"stream": image_id + "\n"}) + b"\r\n")
        self._deliver(_END)

    def fail(self, exc: BuildError) -> None:
        if self.quiet and self.kept:
            for line in self.kept:
                self._deliver(line)
            self.kept = []
        if self.started.is_set():
            self._deliver(error_line(exc.message, exc.code))
        self.queue.put_nowait(_END)

    def close(self) -> None:
        """End the stream without a last line (a cancelled build)."""
        self.queue.put_nowait(_END)

    async def lines(self) -> AsyncIterator[bytes]:
        while True:
            item = await self.queue.get()
            if item is _END:
                return
            yield item
