"""tarsafe: sparse members stay sparse, over-long names are an archive error (found by tests/reliability).

A GNU sparse entry declaring 1 TiB with 512 bytes of data was written out as 1 TiB of zeros (Python's
tar reader fills holes; Go's seeks over them when writing a file). An entry whose path passes PATH_MAX
under the layer directory answered ``500 OSError: [Errno 36] File name too long: '<data-root path>'``.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from harness.daemon.images.tarsafe import ArchiveError, extract


def _sparse_tar(name: str, real_size: int, data: bytes) -> bytes:
    block = data.ljust(512, b"\0")
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = 512, 0o644, 1_000_000_000
    header = bytearray(info.tobuf(format=tarfile.GNU_FORMAT))
    header[156:157] = b"S"

    def num(n: int, width: int) -> bytes:
        if n < 8 ** (width - 1):
            return (b"%0*o" % (width - 1, n)) + b"\0"
        return b"\x80" + n.to_bytes(width - 1, "big")

    header[386:398] = num(real_size - 512, 12)
    header[398:410] = num(512, 12)
    header[483:495] = num(real_size, 12)
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header) + block + b"\0" * 1024


def test_sparse_member_keeps_its_holes(tmp_path: Path) -> None:
    extract(io.BytesIO(_sparse_tar("sparse", 1 << 40, b"tail")), str(tmp_path / "x"))
    st = os.stat(tmp_path / "x" / "sparse")
    assert st.st_size == 1 << 40
    assert st.st_blocks * 512 < 1 << 20
    with open(tmp_path / "x" / "sparse", "rb") as fh:
        fh.seek((1 << 40) - 512)
        assert fh.read(4) == b"tail"


def test_name_past_path_max_is_an_archive_error(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo("a/" * 2100 + "f")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(ArchiveError) as exc:
        extract(io.BytesIO(buf.getvalue()), str(tmp_path / "x"))
    assert "file name too long" in str(exc.value)
    assert str(tmp_path) not in str(exc.value)
    import subprocess

    subprocess.run(["rm", "-rf", str(tmp_path / "x")], check=True)
