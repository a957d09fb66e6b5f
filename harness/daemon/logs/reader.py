"""Reading a container's log as ``docker logs`` and attach's ``logs=1`` do (moby ``daemon/logs.go``,
``logger/loggerutils/follow.go``), for the json-file and the local driver alike.

What is on disk comes first: rotated files oldest first, then the current one, filtered by
``since``/``until`` and cut to the last ``tail``. A follower then polls the current file from the
byte where that read ended, so a record written meanwhile is neither lost nor sent twice; it goes on
across rotations (the file it holds is drained before it moves to the new one) and ends once
``until`` has passed or the container has stopped for three quiet polls in a row.

Records are the json-file's ``{"log", "stream", "time"}`` dicts whatever the driver; each driver
module says what a whole record is (:func:`.jsonfile.complete_lines`, :func:`.local.complete_records`)
and how to parse them.
"""

from __future__ import annotations

import asyncio
import calendar
import gzip
import os
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import IO, Any

from . import jsonfile, local

__all__ = ["POLL_INTERVAL", "LogReader", "entry_time", "log_files", "read_entries", "replay"]

#: how often a follower looks at the file again once it has sent all there was
POLL_INTERVAL = 0.05
_QUIET_POLLS = 3  # polls with nothing new after the container stopped before a follow ends
Entry = dict[str, Any]


def _is_local(path: str) -> bool:
    return os.path.basename(os.path.dirname(path)) == "local-logs"


def _format(path: str) -> tuple[Callable[[bytes], int], Callable[[bytes], Iterable[Entry]]]:
    """(how many leading bytes are whole records, their entries) for the driver that wrote ``path``."""
    if _is_local(path):
        return local.complete_records, local.parse_records
    return jsonfile.complete_lines, lambda data: jsonfile.parse_lines(data.splitlines())


def log_files(path: str) -> list[str]:
    """Rotated files oldest first (``path.N[.gz]``, highest N first), then the current file."""
    rotated = []
    directory, base = os.path.split(path)
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    for name in names:
        match = re.fullmatch(re.escape(base) + r"\.(\d+)(\.gz)?", name)
        if match:
            rotated.append((int(match.group(1)), os.path.join(directory, name)))
    return [p for _, p in sorted(rotated, reverse=True)] + ([path] if os.path.exists(path) else [])


def _open(path: str) -> IO[bytes]:
    if path.endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def entry_time(entry: Entry) -> float:
    """An entry's time in seconds since the epoch (0 if it has none)."""
    text = str(entry.get("time", ""))
    main, _, frac = text.rstrip("Z").partition(".")
    try:
        return calendar.timegm(time.strptime(main, "%Y-%m-%dT%H:%M:%S")) + (
            float("0." + frac) if frac else 0.0
        )
    except ValueError:
        return 0.0


def _file_entries(path: str, name: str, mark: dict[str, int] | None) -> Iterator[Entry]:
    """One file's entries. With ``mark``, the current file is read in one go up to its last whole
    record, and ``mark`` gets that offset and the file's inode (where a follower goes on)."""
    local_driver = _is_local(path)
    with _open(name) as fh:
        if mark is not None and name == path:
            complete, parse = _format(path)
            data = fh.read()
            used = complete(data)
            mark["position"] = used
            mark["inode"] = os.fstat(fh.fileno()).st_ino
            yield from parse(data[:used])
        elif local_driver:
            yield from local.read_local_file(fh)
        else:
            yield from jsonfile.parse_lines(fh)


def read_entries(
    path: str,
    since: float = 0.0,
    until: float = 0.0,
    tail: int = -1,
    mark: dict[str, int] | None = None,
) -> Iterator[Entry]:
    """Entries on disk in order, filtered by time and limited to the last ``tail``.

    With ``mark`` (a follow), ``mark`` gets the position of the end of what was read in the current
    file, even when ``tail`` is 0 and nothing is returned.
    """

    def raw_entries() -> Iterator[Entry]:
        for name in log_files(path):
            try:
                yield from _file_entries(path, name, mark)
            except (OSError, EOFError):
                continue

    def all_entries() -> Iterator[Entry]:
        for entry in raw_entries():
            if since or until:  # parsing the time is most of the cost: only when asked
                when = entry_time(entry)
                if since and when < since:
                    continue
                if until and when > until:
                    continue
            yield entry

    if tail == 0:
        if mark is not None:
            deque(raw_entries(), maxlen=0)  # nothing to send, but the follower starts at the end
        return iter(())
    if tail > 0:
        return iter(deque(all_entries(), maxlen=tail))
    return all_entries()


def replay(path: str, stdout: bool, stderr: bool) -> Iterator[tuple[str, bytes]]:
    """(stream, data) of the whole log on the chosen streams: what attach sends with ``logs=1``."""
    for entry in read_entries(path):
        stream = entry.get("stream", "stdout")
        if (stream == "stdout" and stdout) or (stream == "stderr" and stderr):
            yield stream, str(entry.get("log", "")).encode()


def _open_current(path: str) -> IO[bytes] | None:
    try:
        return open(path, "rb")  # held across the follow loop; the reader closes it
    except FileNotFoundError:
        return None


class LogReader:
    """One ``GET /containers/{id}/logs``: the entries on disk, then (follow) the ones written next.

    ``stopped`` says whether the container has stopped for good (not restarting): a follow ends a
    few quiet polls after that, so the lines of its last moments still go out.
    """

    def __init__(
        self,
        path: str,
        since: float = 0.0,
        until: float = 0.0,
        tail: int = -1,
        follow: bool = False,
        stopped: Callable[[], bool] = lambda: True,
    ) -> None:
        self.path = path
        self.since, self.until, self.tail = since, until, tail
        self.following = follow
        self.stopped = stopped
        self.mark: dict[str, int] = {}
        self.held: IO[bytes] | None = None

    def open(self) -> None:
        """Hold the current file now (before the client sees the headers): a client that removes the
        container before it reads the stream (the SDK's run()) still gets every line."""
        if self.following:
            self.held = _open_current(self.path)

    def close(self) -> None:
        if self.held is not None:
            self.held.close()
            self.held = None

    def backlog(self) -> Iterator[Entry]:
        """What is on disk now, as asked (since, until, tail)."""
        return read_entries(
            self.path, self.since, self.until, self.tail, self.mark if self.following else None
        )

    async def follow(self) -> AsyncIterator[Entry]:
        """After :meth:`backlog`: entries as they are written, until the follow ends."""
        if not self.following or (self.until and self.until <= time.time()):
            return
        complete, parse = _format(self.path)
        position, inode = self.mark.get("position", 0), self.mark.get("inode", 0)
        held = self.held
        fh = held if held is not None and os.fstat(held.fileno()).st_ino == inode else None
        quiet = 0
        try:
            while True:
                if fh is None:
                    fh = _open_current(self.path)
                if fh is not None:
                    st = os.fstat(fh.fileno())
                    if st.st_ino != inode or st.st_size < position:
                        inode, position = st.st_ino, 0  # another file, or truncated: from its top
                    fh.seek(position)
                    chunk = fh.read()
                    used = complete(chunk)
                    if used:
                        position += used
                        for entry in parse(chunk[:used]):
                            if self.until and entry_time(entry) > self.until:
                                return
                            yield entry
                        continue
                    if self._moved(inode):  # drained, and the path names another file now: go on there
                        if fh is not held:
                            fh.close()
                        fh = None
                        continue
                if self.stopped():
                    quiet += 1
                    if quiet >= _QUIET_POLLS:
                        return
                if self.until and time.time() > self.until:
                    return
                await asyncio.sleep(POLL_INTERVAL)
        finally:
            if fh is not None and fh is not held:
                fh.close()

    def _moved(self, inode: int) -> bool:
        """The path names another file than ``inode`` (rotated, re-created); a removed file is kept,
        so the lines written before a removal still go out."""
        try:
            return os.stat(self.path).st_ino != inode
        except FileNotFoundError:
            return False
