"""Image test fixtures: tar builders, layers and save archives, an image service per driver, a sandbox proving
nothing leaks outside, mount cleanup."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.daemon.images.load import load
from harness.daemon.images.service import ImageService
from harness.daemon.runtime.mountinfo import mounts_under

DRIVERS = ["overlay2", "vfs"]


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


@pytest.fixture(params=DRIVERS)
def service(request: pytest.FixtureRequest, no_mounts_left: Path) -> ImageService:
    """An image service on each storage driver, in a data-root of its own."""
    return ImageService(str(no_mounts_left / "root"), request.param)


def save_archive(layers: list[bytes], tags: list[str] | None, config_extra: dict | None = None) -> bytes:
    """A ``docker save`` archive (manifest.json layout) of one image with these layer tars."""
    diff_ids = [
        "sha256:" + hashlib.sha256(gzip.decompress(lay) if lay[:2] == b"\x1f\x8b" else lay).hexdigest()
        for lay in layers
    ]
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            **(config_extra or {}),
        }
    ).encode()
    names = [f"l{i}/layer.tar" for i in range(len(layers))]
    manifest = json.dumps([{"Config": "config.json", "RepoTags": tags, "Layers": names}]).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in [
            ("config.json", config),
            *zip(names, layers, strict=True),
            ("manifest.json", manifest),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def load_archive(service: ImageService, archive: bytes) -> list[str]:
    """``docker load`` of ``archive``; the lines it printed."""
    lines: list[str] = []
    load(service, io.BytesIO(archive), lines.append)
    return lines


#: a base layer with a symlink, a hardlink, a directory to make opaque and a name over 100 bytes
BASE = make_tar(
    [
        ("bin", "d", b""),
        ("bin/sh", "f", b"#!shell\n" * 100),
        ("etc", "d", b""),
        ("etc/passwd", "f", b"root:x:0:0\n"),
        ("etc/link", "l", "passwd"),
        ("etc/hard", "h", "etc/passwd"),
        ("opq", "d", b""),
        ("opq/old", "f", b"old"),
        ("a/very/" + "long/" * 30 + "name", "f", b"long"),
    ]
)
#: a layer on BASE: a whiteout, an opaque directory, new files
TOP = make_tar(
    [
        ("etc/.wh.passwd", "f", b""),
        ("opq", "d", b""),
        ("opq/.wh..wh..opq", "f", b""),
        ("opq/new", "f", b"new"),
        ("etc/added", "f", b"added"),
    ]
)
