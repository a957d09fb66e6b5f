"""A build's progress as BuildKit's Status stream carries it: vertexes, their statuses and their logs.

The CLI prints what it reads (``#3 [internal] load .dockerignore``, ``#6 0.329 out: b``, ``#7 CACHED``,
``#8 writing image sha256:... done``), so refd sends what dockerd's BuildKit sends: a vertex when a
step is known, again when it starts and when it completes (``cached`` for a cache hit, ``error``
when it failed), named sub-statuses (``transferring context: 33B``) and the output of RUN steps as
logs (stream 1 stdout, 2 stderr). Every update is kept, so a Status call that comes late (the client
opens it beside its Solve) still gets the whole build; ``close`` ends every stream.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
from collections.abc import AsyncIterator

from .messages import StatusResponse, Timestamp, Vertex, VertexLog, VertexStatus

__all__ = ["Progress", "Step"]

_counter = itertools.count()


def _now() -> Timestamp:
    return Timestamp.from_ns(time.time_ns())


class Step:
    """One vertex of the build: ``start``, ``log``, ``status``, ``done``."""

    def __init__(self, progress: Progress, name: str, inputs: list[str]) -> None:
        self.progress = progress
        self.digest = (
            "sha256:" + hashlib.sha256(f"{name}\0{next(_counter)}\0{time.time_ns()}".encode()).hexdigest()
        )
        self.vertex = Vertex(digest=self.digest, inputs=list(inputs), name=name)
        self.progress.emit(StatusResponse(vertexes=[self._copy()]))

    def _copy(self) -> Vertex:
        v = self.vertex
        return Vertex(
            digest=v.digest,
            inputs=list(v.inputs),
            name=v.name,
            cached=v.cached,
            started=v.started,
            completed=v.completed,
            error=v.error,
        )

    def start(self) -> Step:
        self.vertex.started = _now()
        self.progress.emit(StatusResponse(vertexes=[self._copy()]))
        return self

    def cached(self) -> None:
        """A cache hit: started and completed at once, marked cached (``#7 CACHED``)."""
        now = _now()
        self.vertex.cached = True
        self.vertex.started = self.vertex.started or now
        self.vertex.completed = now
        self.progress.emit(StatusResponse(vertexes=[self._copy()]))

    def done(self, error: str = "") -> None:
        if self.vertex.started is None:
            self.vertex.started = _now()
        self.vertex.completed = _now()
        self.vertex.error = error
        self.progress.emit(StatusResponse(vertexes=[self._copy()]))

    def log(self, stream: int, data: bytes) -> None:
        if data:
            self.progress.emit(
                StatusResponse(
                    logs=[VertexLog(vertex=self.digest, timestamp=_now(), stream=stream, msg=data)]
                )
            )

    def status(self, name: str) -> SubStatus:
        return SubStatus(self, name)


class SubStatus:
    """A named status of a vertex (``transferring context:``, ``writing image sha256:...``)."""

    def __init__(self, step: Step, name: str) -> None:
        self.step = step
        self.status = VertexStatus(ID=name, vertex=step.digest, name=name)
        self.status.started = _now()
        self._send()

    def _send(self) -> None:
        s = self.status
        s.timestamp = _now()
        copy = VertexStatus(
            ID=s.ID,
            vertex=s.vertex,
            name=s.name,
            current=s.current,
            total=s.total,
            timestamp=s.timestamp,
            started=s.started,
            completed=s.completed,
        )
        self.step.progress.emit(StatusResponse(statuses=[copy]))

    def update(self, current: int, total: int = 0) -> None:
        self.status.current = current
        self.status.total = total
        self._send()

    def done(self, current: int | None = None) -> None:
        if current is not None:
            self.status.current = current
        self.status.completed = _now()
        self._send()


class Progress:
    """Everything a build reported so far, and the waiting Status streams."""

    def __init__(self) -> None:
        self.history: list[StatusResponse] = []
        self.changed = asyncio.Event()
        self.closed = False

    def step(self, name: str, inputs: list[str] | None = None) -> Step:
        return Step(self, name, inputs or [])

    def emit(self, message: StatusResponse) -> None:
        if self.closed:
            return
        self.history.append(message)
        self.changed.set()

    def close(self) -> None:
        self.closed = True
        self.changed.set()

    async def stream(self) -> AsyncIterator[StatusResponse]:
        """Every message from the first, then new ones as they come, until ``close``."""
        sent = 0
        while True:
            while sent < len(self.history):
                yield self.history[sent]
                sent += 1
            if self.closed:
                return
            self.changed.clear()
            await self.changed.wait()
