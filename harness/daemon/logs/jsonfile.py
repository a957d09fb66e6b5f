"""The json-file log driver: dockerd's line format, rotation and reading (spec 5.2).

Writer (used by the per-container shim): one ``{"log":...,"stream":...,"time":...}`` object
per line, rotation checked *before* each write once the file reached ``max-size`` (so a
file may exceed it by one entry), ``.1``..``.N`` shifting, optional gzip of rotated files.
Reading and following, for both drivers, is :mod:`.reader`; this module knows the json-file
line format it reads (:func:`complete_lines`, :func:`parse_lines`).
"""

from __future__ import annotations

import gzip
import json
import os
import re
import struct
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

__all__ = [
    "JsonFileWriter",
    "LineSplitter",
    "LogOptionError",
    "LogOptions",
    "complete_lines",
    "frame",
    "parse_lines",
    "parse_log_options",
]

ALLOWED = frozenset({"max-file", "max-size", "compress", "labels", "labels-regex", "env", "env-regex", "tag"})
MAX_LINE = 16 * 1024
_SIZE = re.compile(r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15}


class LogOptionError(ValueError):
    """A bad log option; the text is dockerd's."""


def from_human_size(text: str) -> int:
    """go-units FromHumanSize: decimal units, ``1k`` is 1000 bytes."""
    match = _SIZE.match(text)
    if not match:
        raise LogOptionError(f"invalid size: '{text}'")
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "").lower()])


@dataclass(frozen=True)
class LogOptions:
    max_size: int = -1
    max_file: int = 1
    compress: bool = False


def parse_log_options(opts: dict[str, str], driver: str = "json-file") -> LogOptions:
    """Validate json-file options as dockerd's ValidateLogOpt and New do."""
    for key in opts:
        if key not in ALLOWED:
            raise LogOptionError(f"unknown log opt '{key}' for {driver} log driver")
    max_size = -1
    if opts.get("max-size"):
        max_size = from_human_size(opts["max-size"])
        if max_size <= 0:
            raise LogOptionError("max-size must be a positive number")
    max_file = 1
    if opts.get("max-file"):
        try:
            max_file = int(opts["max-file"])
        except ValueError:
            raise LogOptionError(f'strconv.Atoi: parsing "{opts["max-file"]}": invalid syntax') from None
        if max_file < 1:
            raise LogOptionError("max-file cannot be less than 1")
    compress = False
    if opts.get("compress"):
        value = opts["compress"]
        if value in ("1", "t", "T", "TRUE", "true", "True"):
            compress = True
        elif value not in ("0", "f", "F", "FALSE", "false", "False"):
            raise LogOptionError(f'strconv.ParseBool: parsing "{value}": invalid syntax')
        if compress and (max_file < 2 or max_size < 0):
            raise LogOptionError(
                "compress cannot be true when max-file is less than 2 or max-size is not set"
            )
    return LogOptions(max_size, max_file, compress)


_second: tuple[int, str] = (-1, "")


def _now() -> str:
    """Go's RFC3339Nano (nanoseconds, trailing zeros trimmed); the date part is cached per second."""
    global _second
    secs, frac = divmod(time.time_ns(), 1_000_000_000)
    if _second[0] != secs:
        _second = (secs, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)))
    if not frac:
        return _second[1] + "Z"
    return f"{_second[1]}.{f'{frac:09d}'.rstrip('0')}Z"


_dumps = json.JSONEncoder(ensure_ascii=False).encode


class JsonFileWriter:
    """Appends entries to ``<id>-json.log`` with dockerd's rotation rules."""

    def __init__(self, path: str, options: LogOptions) -> None:
        self.path = path
        self.options = options
        self._fh: IO[bytes] = open_log_for_append(path)
        self.size = os.fstat(self._fh.fileno()).st_size

    def write(self, stream: str, data: bytes, ts: str | None = None) -> None:
        if self.options.max_size > 0 and self.size >= self.options.max_size:
            self._rotate()
        line = _entry(stream, data, ts or _now())
        self._fh.write(line)
        self.size += len(line)

    def write_many(self, stream: str, pieces: list[bytes]) -> None:
        """``write`` for each piece, each with its own timestamp; one write(2) when nothing rotates."""
        if self.options.max_size > 0:
            for piece in pieces:
                self.write(stream, piece)
            return
        data = b"".join([_entry(stream, piece, _now()) for piece in pieces])
        self._fh.write(data)
        self.size += len(data)

    def _rotate(self) -> None:
        self._fh.close()
        rotate_log_files(self.path, self.options.max_file, self.options.compress)
        self._fh = open_log_for_append(self.path)
        self.size = 0

    def close(self) -> None:
        self._fh.close()


def open_log_for_append(path: str) -> IO[bytes]:
    """A log file opened as dockerd's drivers open theirs: append-only, mode 0640, unbuffered."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
    os.fchmod(fd, 0o640)
    return os.fdopen(fd, "ab", buffering=0)


def rotate_log_files(path: str, keep: int, compress: bool) -> None:
    """Shift ``path`` to ``path.1`` (gzipped with ``compress``), older files up, the oldest out.

    Shared by the json-file and local drivers, which rotate alike. With ``keep`` <= 1 dockerd 28 truncates the
    single file by unlinking it.
    """
    if keep <= 1:
        os.unlink(path)
        return
    suffix = ".gz" if compress else ""
    last = f"{path}.{keep - 1}{suffix}"
    if os.path.exists(last):
        os.unlink(last)
    for i in range(keep - 2, 0, -1):
        src = f"{path}.{i}{suffix}"
        if os.path.exists(src):
            os.replace(src, f"{path}.{i + 1}{suffix}")
    os.replace(path, f"{path}.1")
    if compress:
        with open(f"{path}.1", "rb") as src_fh, gzip.open(f"{path}.1.gz.tmp", "wb") as dst:
            dst.write(src_fh.read())
        os.replace(f"{path}.1.gz.tmp", f"{path}.1.gz")
        os.unlink(f"{path}.1")


def _entry(stream: str, data: bytes, ts: str) -> bytes:
    """One json-file line: what json.dumps of {"log", "stream", "time"} gives, composed directly."""
    text = _dumps(data.decode("utf-8", errors="replace"))
    return f'{{"log":{text},"stream":{_dumps(stream)},"time":{_dumps(ts)}}}\n'.encode()


class LineSplitter:
    """Splits a byte stream into log messages: lines with their newline, partials over 16 KiB."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf + data if self._buf else data
        lines = buf.split(b"\n")
        self._buf = lines.pop()  # what follows the last newline (b"" after a complete line)
        out = [line + b"\n" for line in lines]
        while len(self._buf) >= MAX_LINE:
            out.append(self._buf[:MAX_LINE])
            self._buf = self._buf[MAX_LINE:]
        return out

    def flush(self) -> list[bytes]:
        rest, self._buf = self._buf, b""
        return [rest] if rest else []


def complete_lines(data: bytes) -> int:
    """How many bytes at the start of ``data`` are whole lines (a follower takes those, the rest waits)."""
    return data.rfind(b"\n") + 1


def parse_lines(lines: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """The entries of json-file lines; a torn line (a crash mid-write) is skipped, not fatal."""
    for raw in lines:
        try:
            yield json.loads(raw)
        except ValueError:
            continue


def frame(stream: str, payload: bytes) -> bytes:
    """One multiplexed-stream frame: [stream id, 0, 0, 0, big-endian length] + payload."""
    sid = {"stdin": 0, "stdout": 1, "stderr": 2}.get(stream, 1)
    return struct.pack(">BxxxI", sid, len(payload)) + payload
