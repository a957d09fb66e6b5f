"""Zero runs stored as holes: spooled layer tars and unpacked files stay as sparse as their source.

A RUN that makes an 8 GiB sparse file gives a layer tar holding 8 GiB of zero bytes (go-archive
writes regular files whole, so the diff ID hashes every one of them). Written to disk as they
are, the commit spools 8 GiB, reads it back and unpacks 8 GiB more. Here a write of a whole
zero chunk only moves the file position: the bytes a reader sees, and every digest of them, are
unchanged; only the blocks on disk are not allocated.
"""

from __future__ import annotations

import errno
import io
import os
from collections.abc import Iterator
from typing import IO, Any

__all__ = ["CHUNK", "HoleWriter", "copy_with_holes", "file_chunks"]

#: the unit tested for zeros: TarWriter and the extractor move file contents in chunks of this size
CHUNK = 1 << 20
_ZEROS = bytes(CHUNK)


class HoleWriter(io.RawIOBase):
    """Writes to a seekable file, a chunk of ``CHUNK`` zero bytes as a seek; ``hash`` (if given) sees
    every byte. ``finish()`` sets the file's size (a trailing hole needs it)."""

    def __init__(self, out: IO[bytes], hash: Any = None) -> None:
        super().__init__()
        self.out = out
        self.hash = hash
        self.start = out.tell()
        self.size = 0
        self.holes = False

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        n = len(data)
        if self.hash is not None:
            self.hash.update(data)
        if n == CHUNK and data == _ZEROS:
            self.out.seek(n, io.SEEK_CUR)
            self.holes = True
        else:
            self.out.write(data)
        self.size += n
        return n

    def finish(self) -> None:
        if self.holes:
            self.out.truncate(self.start + self.size)


def copy_with_holes(src: IO[bytes], out: IO[bytes]) -> None:
    """shutil.copyfileobj into a new file, zero chunks left as holes."""
    sink = HoleWriter(out)
    while chunk := src.read(CHUNK):
        sink.write(chunk)
    sink.finish()


def file_chunks(fd: int, size: int) -> Iterator[bytes]:
    """The first ``size`` bytes of an open file, its holes (SEEK_DATA/SEEK_HOLE) given as zero chunks
    without reading them; raises OSError when the file is shorter than ``size``."""
    actual = os.fstat(fd).st_size
    if actual < size:
        raise OSError(errno.EIO, f"file shrank to {actual} bytes before it was read (expected {size})")
    pos = 0
    while pos < size:
        try:
            data = min(os.lseek(fd, pos, os.SEEK_DATA), size)
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # ENXIO: no data after pos, a hole up to the end
                raise
            data = size
        while pos < data:
            n = min(CHUNK, data - pos)
            yield _ZEROS if n == CHUNK else bytes(n)
            pos += n
        if pos >= size:
            break
        hole = min(os.lseek(fd, pos, os.SEEK_HOLE), size)
        while pos < hole:
            chunk = os.pread(fd, min(CHUNK, hole - pos), pos)
            if not chunk:
                raise OSError(errno.EIO, f"file shrank to {pos} bytes while it was read (expected {size})")
            yield chunk
            pos += len(chunk)
