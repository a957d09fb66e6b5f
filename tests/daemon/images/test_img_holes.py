"""holes: a step's sparse file costs its data, not its size, in the spool and the unpacked layer.

TestBuildWithHugeFile (moby) RUNs a 8 GiB sparse file; the commit spooled 8 GiB of zeros, read them
back and unpacked 8 GiB more, all on disk. The tar's bytes and digests must stay what they were.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from harness.daemon.images.commit import spooled_diff
from harness.daemon.images.diff import overlay_diff
from harness.daemon.images.holes import CHUNK, HoleWriter, copy_with_holes, file_chunks
from harness.daemon.images.tarsafe import extract

_SIZE = 64 * CHUNK


def _allocated(path: Path) -> int:
    return os.stat(path).st_blocks * 512


def _sparse_tree(root: Path) -> Path:
    """An upper dir with a 64 MiB file holding 1 KiB of data at each 16 MiB, like the moby test's."""
    root.mkdir()
    big = root / "rnd"
    with open(big, "wb") as fh:
        for i in range(4):
            fh.seek(i * 16 * CHUNK)
            fh.write(os.urandom(1024))
        fh.truncate(_SIZE)
    return root


def test_hole_writer_keeps_bytes_and_hash_but_not_blocks(tmp_path: Path) -> None:
    parts = [b"head", bytes(CHUNK), b"middle", bytes(CHUNK), bytes(CHUNK)]
    digest = hashlib.sha256()
    path = tmp_path / "out"
    with open(path, "wb") as out:
        sink = HoleWriter(out, digest)
        for part in parts:
            assert sink.write(part) == len(part)
        sink.finish()
    whole = b"".join(parts)
    assert path.read_bytes() == whole  # the trailing hole is part of the file's size
    assert digest.hexdigest() == hashlib.sha256(whole).hexdigest()
    assert _allocated(path) < CHUNK


def test_hole_writer_writes_short_zero_runs_and_nonzero_chunks(tmp_path: Path) -> None:
    data = b"\0" * 1024 + b"x" * CHUNK
    path = tmp_path / "out"
    with open(path, "wb") as out:
        sink = HoleWriter(out)
        sink.write(data[:1024])
        sink.write(data[1024:])
        sink.finish()
    assert path.read_bytes() == data
    assert _allocated(path) >= CHUNK


def test_copy_with_holes_keeps_contents(tmp_path: Path) -> None:
    src = b"a" * 10 + bytes(3 * CHUNK) + b"b"
    dest = tmp_path / "copy"
    with open(dest, "wb") as out:
        copy_with_holes(io.BytesIO(src), out)
    assert dest.read_bytes() == src


def test_spooled_diff_of_a_sparse_file_is_the_same_tar_without_its_zeros_on_disk(tmp_path: Path) -> None:
    upper = _sparse_tree(tmp_path / "upper")
    plain = io.BytesIO()
    overlay_diff(str(upper), plain)
    store = cast(Any, SimpleNamespace(tmp_root=str(tmp_path)))
    with spooled_diff(store, lambda out: overlay_diff(str(upper), out)) as (path, digest):
        spooled = Path(path)
        assert spooled.read_bytes() == plain.getvalue()
        assert digest == "sha256:" + hashlib.sha256(plain.getvalue()).hexdigest()
        assert _allocated(spooled) < 8 * CHUNK
        with open(spooled, "rb") as fh:
            size = extract(fh, str(tmp_path / "layer"))
    unpacked = tmp_path / "layer" / "rnd"
    assert size == _SIZE
    assert unpacked.read_bytes() == (upper / "rnd").read_bytes()
    assert _allocated(unpacked) < 8 * CHUNK
    assert not spooled.exists()


def test_file_chunks_gives_holes_as_zeros_and_data_as_is(tmp_path: Path) -> None:
    path = _sparse_tree(tmp_path / "upper") / "rnd"
    fd = os.open(path, os.O_RDONLY)
    try:
        assert b"".join(file_chunks(fd, _SIZE)) == path.read_bytes()
        assert b"".join(file_chunks(fd, 100)) == path.read_bytes()[:100]
        with pytest.raises(OSError, match="shrank"):
            b"".join(file_chunks(fd, _SIZE + 1))
    finally:
        os.close(fd)
