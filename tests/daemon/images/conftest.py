"""Image store test fixtures: tar builders, a sandbox proving nothing leaks outside, mount cleanup."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.daemon.runtime.mountinfo import mounts_under


def make_tar(
    entries: list[tuple[str, str, bytes | str]],
    fmt: int = tarfile.PAX_FORMAT,
    pax: dict[str, dict[str, str]] | None = None,
) -> bytes:
    """(name, kind, data or link) -> tar bytes; kind: f file, d dir, l symlink, h hardlink, c chr, p fifo."""
    kinds = {
        "f": tarfile.REGTYPE,
        "d": tarfile.DIRTYPE,
        "l": tarfile.SYMTYPE,
        "h": tarfile.LNKTYPE,
        "c": tarfile.CHRTYPE,
        "p": tarfile.FIFOTYPE,
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for name, kind, payload in entries:
            info = tarfile.TarInfo(name)
            info.type = kinds[kind]
            info.mode = 0o755 if kind == "d" else 0o644
            info.mtime = 1_000_000_000
            data = b""
            if kind in ("l", "h"):
                info.linkname = str(payload)
            elif kind == "c":
                info.devmajor, info.devminor = 1, 3
            elif kind == "f":
                data = payload if isinstance(payload, bytes) else payload.encode()
                info.size = len(data)
            if pax and name in pax:
                info.pax_headers = pax[name]
            tar.addfile(info, io.BytesIO(data) if data else None)
    return buf.getvalue()


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under root with (mode, size, nlink): compared before/after to prove nothing was written."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            out[path] = (st.st_mode, st.st_size, st.st_nlink)
    return out


@dataclass
class Sandbox:
    """``target`` is where extraction goes; ``outside`` holds host files an escape would hit."""

    base: Path
    target: Path
    outside: Path

    def outside_snapshot(self) -> dict[str, tuple[int, int, int]]:
        return {p: s for p, s in snapshot(self.base).items() if not p.startswith(str(self.target))}


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("host secret\n")
    target = tmp_path / "deep" / "er" / "target"
    target.mkdir(parents=True)
    return Sandbox(tmp_path, target, outside)


@pytest.fixture
def no_mounts_left(tmp_path: Path) -> Iterator[Path]:
    """Fail the test if a mount under tmp_path survives it (and unmount it so nothing leaks)."""
    yield tmp_path
    from harness.daemon.runtime.syscalls import MNT_DETACH, umount2

    left = [m.mountpoint for m in mounts_under(str(tmp_path))]
    for point in sorted(left, key=len, reverse=True):
        umount2(point, MNT_DETACH)
    assert left == [], f"mounts left behind: {left}"
