"""gRPC over an HTTP/2 connection that an HTTP/1.1 request handed over (``Upgrade: h2c``), framed by ``h2``.

``/grpc`` makes refd the server side (the client sends the connection preface); ``/session`` makes
refd the client of the services the CLI exposes on its own hijacked connection. Both are one
``Peer``: a read loop feeding ``h2``, calls as streams (``Call``: ``recv()`` one message, ``send()``
one, ``finish()`` with a gRPC status), flow control acknowledged as data is consumed and respected
when sending. Messages are length-prefixed (1 flag byte, 4 length bytes); a gzip-flagged message is
inflated. Errors a handler raises as ``GrpcError`` become ``grpc-status``/``grpc-message`` trailers.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import struct
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

from . import require_h2

require_h2()  # before h2: the site directories of a refd started with -S

import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.errors  # noqa: E402
import h2.events  # noqa: E402
import h2.exceptions  # noqa: E402
import h2.settings  # noqa: E402

__all__ = ["UNIMPLEMENTED", "UNKNOWN", "Call", "GrpcError", "Peer"]

CANCELLED, UNKNOWN, INVALID_ARGUMENT, NOT_FOUND, UNIMPLEMENTED, INTERNAL, UNAVAILABLE = 1, 2, 3, 5, 12, 13, 14
_WINDOW = 16 * 1024 * 1024  # what refd lets a peer send ahead (Go's gRPC grows its window the same way)
_MAX_MESSAGE = 64 * 1024 * 1024

Handler = Callable[["Call"], Awaitable[None]]


def _str_headers(headers: Any) -> list[tuple[str, str]]:
    """h2 hands headers over decoded (``header_encoding``); typed as text here."""
    return [(str(k), str(v)) for k, v in headers]


class GrpcError(Exception):
    """A call that ends with a non-OK gRPC status."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Call:
    """One gRPC call (an HTTP/2 stream), from either side."""

    def __init__(self, peer: Peer, stream_id: int, headers: list[tuple[str, str]]) -> None:
        self.peer = peer
        self.stream_id = stream_id
        self.headers = headers
        self.path = dict(headers).get(":path", "")
        self.inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.buffer = bytearray()
        self.ended = False
        self.status: tuple[int, str] | None = None  # the peer's trailers (client side)
        self.response_headers: list[tuple[str, str]] | None = None
        self.headers_sent = False
        self.closed = False  # nothing more can be sent (our side ended, or the stream was reset)

    def metadata(self, key: str) -> list[str]:
        """The values of one request header (gRPC metadata), in order."""
        return [v for k, v in self.headers if k == key]

    async def recv(self) -> bytes | None:
        """The next message, or None when the peer ended its side (a client call raises its error status)."""
        item = await self.inbox.get()
        if item is None:
            self.inbox.put_nowait(None)  # stays ended for later reads
            if self.status is not None and self.status[0] != 0:
                raise GrpcError(*self.status)
        return item

    async def send(self, message: bytes) -> None:
        await self.peer._send_message(self, message)

    async def finish(self, code: int = 0, message: str = "") -> None:
        """Server: the trailers with the status. Client: the end of the request stream."""
        await self.peer._finish(self, code, message)

    def _feed(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= 5:
            flag, size = struct.unpack(">BI", self.buffer[:5])
            if size > _MAX_MESSAGE:
                raise GrpcError(
                    INTERNAL, f"grpc: received message larger than max ({size} vs. {_MAX_MESSAGE})"
                )
            if len(self.buffer) < 5 + size:
                return
            payload = bytes(self.buffer[5 : 5 + size])
            del self.buffer[: 5 + size]
            self.inbox.put_nowait(gzip.decompress(payload) if flag & 1 else payload)

    def _end(self) -> None:
        if not self.ended:
            self.ended = True
            self.inbox.put_nowait(None)


class Peer:
    """An HTTP/2 connection carrying gRPC calls; ``serve`` runs it until either side closes it."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        client_side: bool,
        handlers: dict[str, Handler] | None = None,
        fallback: Handler | None = None,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.client_side = client_side
        self.handlers = handlers or {}
        self.fallback = fallback
        config = h2.config.H2Configuration(client_side=client_side, header_encoding="utf-8")
        self.conn = h2.connection.H2Connection(config=config)
        self.calls: dict[int, Call] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.window_changed = asyncio.Event()
        self.closed = asyncio.Event()
        self.started = False

    # -- the connection ---------------------------------------------------------------------------------
    async def start(self, initial: bytes = b"") -> None:
        """Send our preface and settings; ``initial`` is what the upgrade's reader already buffered."""
        self.conn.initiate_connection()
        self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _WINDOW})
        self.conn.increment_flow_control_window(_WINDOW)
        self.started = True
        await self._flush()
        if initial:
            await self._receive(initial)

    async def serve(self) -> None:
        """Read until the connection ends; every call still open then ends with an error."""
        try:
            while not self.closed.is_set():
                data = await self.reader.read(1 << 16)
                if not data:
                    break
                await self._receive(data)
        except (ConnectionError, OSError, h2.exceptions.ProtocolError, asyncio.IncompleteReadError):
            pass
        finally:
            await self.close()

    async def close(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for call in list(self.calls.values()):
            if call.status is None:
                call.status = (UNAVAILABLE, "connection closed")
            call._end()
        for task in list(self.tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            self.conn.close_connection()
            self.writer.write(self.conn.data_to_send())
        with contextlib.suppress(Exception):
            self.writer.close()
        self.window_changed.set()

    async def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data and not self.writer.is_closing():
            self.writer.write(data)
            with contextlib.suppress(ConnectionError, OSError):
                await self.writer.drain()

    async def _receive(self, data: bytes) -> None:
        for event in self.conn.receive_data(data):
            self._dispatch(event)
        await self._flush()

    def _dispatch(self, event: Any) -> None:
        if isinstance(event, h2.events.RequestReceived):
            call = Call(self, event.stream_id, _str_headers(event.headers))
            self.calls[event.stream_id] = call
            self._spawn(self._handle(call))
        elif isinstance(event, h2.events.ResponseReceived):
            call_or_none = self.calls.get(event.stream_id)
            if call_or_none is not None:
                call_or_none.response_headers = _str_headers(event.headers)
                self._trailer_status(call_or_none, event.headers)  # a trailers-only answer
        elif isinstance(event, h2.events.DataReceived):
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            call_or_none = self.calls.get(event.stream_id)
            if call_or_none is not None:
                try:
                    call_or_none._feed(event.data)
                except GrpcError as exc:
                    call_or_none.status = (exc.code, exc.message)
                    call_or_none._end()
        elif isinstance(event, h2.events.TrailersReceived):
            call_or_none = self.calls.get(event.stream_id)
            if call_or_none is not None:
                self._trailer_status(call_or_none, event.headers)
        elif isinstance(event, h2.events.StreamEnded):
            call_or_none = self.calls.get(event.stream_id)
            if call_or_none is not None:
                call_or_none._end()
        elif isinstance(event, h2.events.StreamReset):
            call_or_none = self.calls.pop(event.stream_id, None)
            if call_or_none is not None:
                if call_or_none.status is None:
                    call_or_none.status = (CANCELLED, "stream reset by the peer")
                call_or_none.closed = True
                call_or_none._end()
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            self.window_changed.set()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.closed.set()
            for call in list(self.calls.values()):
                if call.status is None and self.client_side:
                    call.status = (UNAVAILABLE, "the connection was closed by the peer")
                call._end()

    @staticmethod
    def _trailer_status(call: Call, headers: Any) -> None:
        values = dict(headers)
        if "grpc-status" in values:
            code = int(values["grpc-status"] or 0)
            call.status = (code, urllib.parse.unquote(values.get("grpc-message", "")))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # -- serving --------------------------------------------------------------------------------------
    async def _handle(self, call: Call) -> None:
        handler = self.handlers.get(call.path) or self.fallback
        try:
            if handler is None:
                service = call.path.lstrip("/").rpartition("/")[0]
                raise GrpcError(UNIMPLEMENTED, f"unknown service {service}")
            await handler(call)
            if not call.closed:
                await self._finish(call, 0, "")
        except GrpcError as exc:
            await self._finish(call, exc.code, exc.message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not take the connection down: the call fails with it
            await self._finish(call, UNKNOWN, f"{type(exc).__name__}: {exc}")

    async def _send_headers(self, call: Call) -> None:
        if call.headers_sent:
            return
        call.headers_sent = True
        self.conn.send_headers(call.stream_id, [(":status", "200"), ("content-type", "application/grpc")])
        await self._flush()

    async def _send_message(self, call: Call, message: bytes) -> None:
        if call.closed or self.closed.is_set():
            raise GrpcError(CANCELLED, "the call is closed")
        if not self.client_side:
            await self._send_headers(call)
        await self._send_data(call.stream_id, struct.pack(">BI", 0, len(message)) + message)

    async def _send_data(self, stream_id: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self.closed.is_set():
                raise GrpcError(UNAVAILABLE, "connection closed")
            try:
                window = min(
                    self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size
                )
            except (h2.exceptions.StreamClosedError, h2.exceptions.NoSuchStreamError):
                raise GrpcError(CANCELLED, "the peer closed the stream") from None
            if window <= 0:
                self.window_changed.clear()
                await self.window_changed.wait()
                continue
            chunk, view = view[:window], view[window:]
            try:
                self.conn.send_data(stream_id, bytes(chunk))
            except h2.exceptions.StreamClosedError:
                raise GrpcError(CANCELLED, "the peer closed the stream") from None
            await self._flush()

    async def _finish(self, call: Call, code: int, message: str) -> None:
        if call.closed or self.closed.is_set():
            return
        call.closed = True
        try:
            if self.client_side:
                self.conn.end_stream(call.stream_id)  # the response still comes
            else:
                await self._send_headers(call)
                trailers = [("grpc-status", str(code))]
                if message:
                    trailers.append(
                        ("grpc-message", urllib.parse.quote(message, safe=" !#$&'()*+,/:;=?@[]~"))
                    )
                self.conn.send_headers(call.stream_id, trailers, end_stream=True)
                self.calls.pop(call.stream_id, None)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            self.calls.pop(call.stream_id, None)
        await self._flush()

    # -- calling ----------------------------------------------------------------------------------------
    async def open(self, path: str, metadata: list[tuple[str, str]] | None = None) -> Call:
        """Start a call on the peer's services (we are the client side)."""
        if self.closed.is_set():
            raise GrpcError(UNAVAILABLE, "the session's connection is closed")
        stream_id = self.conn.get_next_available_stream_id()
        headers = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", "localhost"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            *(metadata or []),
        ]
        call = Call(self, stream_id, headers)
        self.calls[stream_id] = call
        self.conn.send_headers(stream_id, headers)
        await self._flush()
        return call

    async def unary(self, path: str, request: bytes, metadata: list[tuple[str, str]] | None = None) -> bytes:
        """One request, one response."""
        call = await self.open(path, metadata)
        try:
            await call.send(request)
            await call.finish()
            response = await call.recv()
            if response is None:
                raise GrpcError(*(call.status or (INTERNAL, f"{path}: no response")))
            return response
        finally:
            self.calls.pop(call.stream_id, None)

    async def cancel(self, call: Call) -> None:
        """Reset a call we no longer want (client side)."""
        self.calls.pop(call.stream_id, None)
        with contextlib.suppress(Exception):
            self.conn.reset_stream(call.stream_id, h2.errors.ErrorCodes.CANCEL)
            await self._flush()
