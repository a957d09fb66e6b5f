"""The ``local`` log driver: dockerd's protobuf-framed ``local-logs/container.log`` files.

Each record is ``[4-byte big-endian size][LogEntry protobuf][same size again]`` (moby
``daemon/logger/local``), LogEntry being ``source`` (1, the stream name), ``time_nano`` (2),
``line`` (3, without its newline), ``partial`` (4) and ``partial_log_metadata`` (5: ``id`` and
``ordinal``) for a message that did not end in a newline. Defaults as dockerd's: 20 MB files, 5 of
them, rotated ones gzip-compressed. Reading yields the same dicts as the json-file reader.
"""

from __future__ import annotations

import io
import os
import secrets
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from ..protowire import field_bytes as _field_bytes
from ..protowire import field_varint as _field_varint
from ..protowire import iter_fields
from .jsonfile import LogOptionError, from_human_size, open_log_for_append, rotate_log_files

__all__ = [
    "LocalOptions",
    "LocalWriter",
    "check_local_option_keys",
    "complete_records",
    "parse_local_options",
    "parse_records",
    "read_local_file",
]

_ALLOWED = ("max-size", "max-file", "compress")


@dataclass(frozen=True)
class LocalOptions:
    max_size: int = 20 * 1024 * 1024
    max_file: int = 5
    compress: bool = True


def check_local_option_keys(opts: dict[str, str]) -> None:
    """What dockerd checks at create: only known keys."""
    for key in opts:
        if key not in _ALLOWED:
            raise LogOptionError(f"unknown log opt '{key}' for log driver local")


def parse_local_options(opts: dict[str, str]) -> LocalOptions:
    """moby daemon/logger/local New: values, with its messages (checked when the container starts)."""
    check_local_option_keys(opts)
    max_size = LocalOptions.max_size
    if opts.get("max-size"):
        max_size = from_human_size(opts["max-size"])
    max_file = LocalOptions.max_file
    if "max-file" in opts:
        try:
            max_file = int(opts["max-file"])
        except ValueError:
            raise LogOptionError(f'strconv.Atoi: parsing "{opts["max-file"]}": invalid syntax') from None
        if max_file < 0:
            raise LogOptionError("max-file cannot be less than 0")
    compress = True
    if "compress" in opts:
        value = opts["compress"]
        if value in ("1", "t", "T", "TRUE", "true", "True"):
            compress = True
        elif value in ("0", "f", "F", "FALSE", "false", "False"):
            compress = False
        else:
            raise LogOptionError(f'strconv.ParseBool: parsing "{value}": invalid syntax')
    if max_file <= 1 and compress:
        raise LogOptionError("compression cannot be enabled when max file count is 1")
    return LocalOptions(max_size, max(max_file, 1), compress)


# -- protobuf (refd's one codec: protowire) ------------------------------------------------------------
def encode_entry(source: str, time_nano: int, line: bytes, partial_id: str = "", ordinal: int = 0) -> bytes:
    body = _field_bytes(1, source.encode()) + _field_varint(2, time_nano) + _field_bytes(3, line)
    if partial_id:
        meta = _field_bytes(2, partial_id.encode()) + _field_varint(3, ordinal)
        body += _field_varint(4, 1) + _field_bytes(5, meta)
    size = struct.pack(">I", len(body))
    return size + body + size


def decode_entry(body: bytes) -> dict[int, Any]:
    """A LogEntry's fields by number (the last of a repeated one wins)."""
    return {number: value for number, _, value in iter_fields(body)}


# -- writing ----------------------------------------------------------------------------------------
class LocalWriter:
    """Appends records with the local driver's rotation (``container.log.N``, gzip when compress)."""

    def __init__(self, path: str, options: LocalOptions) -> None:
        self.path = path
        self.options = options
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        self._fh = self._open()
        self.size = os.fstat(self._fh.fileno()).st_size

    def _open(self) -> IO[bytes]:
        return open_log_for_append(self.path)

    def _record(self, stream: str, data: bytes) -> bytes:
        now = time.time_ns()
        if data.endswith(b"\n"):
            return encode_entry(stream, now, data[:-1])
        return encode_entry(stream, now, data, secrets.token_hex(32), 1)

    def write(self, stream: str, data: bytes, ts: str | None = None) -> None:
        if self.options.max_size > 0 and self.size >= self.options.max_size:
            self._rotate()
        record = self._record(stream, data)
        self._fh.write(record)
        self.size += len(record)

    def write_many(self, stream: str, pieces: list[bytes]) -> None:
        for piece in pieces:
            self.write(stream, piece)

    def _rotate(self) -> None:
        self._fh.close()
        rotate_log_files(self.path, self.options.max_file, self.options.compress)
        self._fh = self._open()
        self.size = 0

    def close(self) -> None:
        self._fh.close()


# -- reading ----------------------------------------------------------------------------------------
def _rfc3339(time_nano: int) -> str:
    secs, frac = divmod(time_nano, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    return f"{base}.{f'{frac:09d}'.rstrip('0')}Z" if frac else f"{base}Z"


def _entry(body: bytes) -> dict[str, Any] | None:
    """One record's LogEntry as a json-file-style dict; None if it does not decode."""
    try:
        fields = decode_entry(body)
    except (ValueError, IndexError):
        return None
    line = bytes(fields.get(3, b""))
    partial = bool(fields.get(4))
    return {
        "log": (line if partial else line + b"\n").decode("utf-8", errors="replace"),
        "stream": bytes(fields.get(1, b"stdout")).decode(),
        "time": _rfc3339(int(fields.get(2, 0))),
    }


def read_local_file(fh: IO[bytes]) -> Iterator[dict[str, Any]]:
    """Records of one file as json-file-style dicts; a torn record at the end (a crash) stops the file."""
    while True:
        head = fh.read(4)
        if len(head) < 4:
            return
        (size,) = struct.unpack(">I", head)
        body = fh.read(size)
        tail = fh.read(4)
        if len(body) < size or len(tail) < 4:
            return
        entry = _entry(body)
        if entry is None:
            return
        yield entry


def complete_records(data: bytes) -> int:
    """How many bytes at the start of ``data`` are whole records (a follower takes those, the rest waits)."""
    pos = 0
    while pos + 4 <= len(data):
        (size,) = struct.unpack_from(">I", data, pos)
        end = pos + size + 8
        if end > len(data):
            break
        pos = end
    return pos


def parse_records(data: bytes) -> Iterator[dict[str, Any]]:
    """The entries of ``data``, whole records as :func:`complete_records` measured them."""
    return read_local_file(io.BytesIO(data))
