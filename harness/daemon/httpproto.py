"""The asyncio side of refd's HTTP server: a connection's protocol, fast path first (httpd.FastConnection).

Its own module so that :mod:`.httpd` (parsing, framing, the fast path) imports without asyncio: refd's
boot loop serves the first requests with it (:mod:`.bootloop`) and hands its connections over here.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from .httpd import App, FastApp, FastConnection, Request, Response, _serve, _serve_one

if TYPE_CHECKING:
    from .bootloop import Adopted

__all__ = ["HttpProtocol"]


class HttpProtocol(FastConnection, asyncio.StreamReaderProtocol):
    """One connection: requests a :data:`FastApp` can answer at once are served right in
    ``data_received`` (no task, no stream reader); anything else (a body, ``Expect``, an async
    handler, a stream, a hijack, a malformed head) hands the connection, buffered bytes first, to
    :func:`handle_connection`'s loop in a task, for good. Both paths share the parsing and framing
    code, so they answer alike.
    """

    def __init__(
        self, app: App, fast: FastApp | None, limit: int = 1 << 20, adopted: Adopted | None = None
    ) -> None:
        self._reader = asyncio.StreamReader(limit=limit)
        asyncio.StreamReaderProtocol.__init__(self, self._reader)
        self._app = app
        self._fast = fast
        self._buf = bytearray()
        self._slow = fast is None
        self._after_post = False
        self._adopted = adopted
        if adopted is not None:  # a connection the boot loop served first: its state carries over
            self._buf += adopted.buf
            self._after_post = adopted.after_post
        self._transport: asyncio.Transport | None = None
        self._write_paused = False
        self.task: asyncio.Task[None] | None = None

    def pause_writing(self) -> None:
        self._write_paused = True
        super().pause_writing()

    def resume_writing(self) -> None:
        self._write_paused = False
        super().resume_writing()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._transport = transport  # type: ignore[assignment]
        adopted, self._adopted = self._adopted, None
        if adopted is not None:
            if adopted.unsent:
                self._transport.write(adopted.unsent)  # type: ignore[union-attr]
            if adopted.pending is not None:
                self._go_slow(*adopted.pending)
                return
        if self._slow:
            self._go_slow()
        elif self._buf:
            self._serve_fast()

    def data_received(self, data: bytes) -> None:
        if self._slow:
            super().data_received(data)
            return
        self._buf += data
        self._serve_fast()

    def eof_received(self) -> bool | None:
        if not self._slow:
            if not self._buf:
                return False  # a clean EOF between requests: close, as the loop would
            self._go_slow()  # a partial head: the loop answers it as Go does
        return super().eof_received()

    def _go_slow(self, resp: Response | None = None, req: Request | None = None, keep: bool = True) -> None:
        self._slow = True
        transport = self._transport
        assert transport is not None
        if self._buf:
            self._reader.feed_data(bytes(self._buf))
            self._buf.clear()
        writer = asyncio.StreamWriter(transport, self, self._reader, asyncio.get_running_loop())

        async def run() -> None:
            after_post = self._after_post
            if req is not None:
                req.reader, req.writer = self._reader, writer
                try:
                    if not await _serve_one(req, keep, self._app, resp):
                        with contextlib.suppress(Exception):
                            writer.close()
                        return
                except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    with contextlib.suppress(Exception):
                        writer.close()
                    return
                after_post = req.method == "POST"
            await _serve(self._reader, writer, self._app, after_post)

        self.task = asyncio.get_running_loop().create_task(run())

    def _fast_write(self, data: bytes) -> None:
        assert self._transport is not None
        self._transport.write(data)

    def _fast_close(self) -> None:
        assert self._transport is not None
        self._transport.close()

    def _write_blocked(self) -> bool:
        return self._write_paused
