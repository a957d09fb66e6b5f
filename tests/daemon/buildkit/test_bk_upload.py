"""BuildKit through POST /build?version=2: the uploaded context stands in for a client session."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from harness.daemon.buildkit.session import SessionError
from harness.daemon.buildkit.upload import UploadSession


def _context(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "Dockerfile").write_text("FROM busybox\n")
    (root / "keep.txt").write_text("keep")
    (root / "skip.log").write_text("skip")
    (root / "sub" / "inner.txt").write_text("inner")
    return root


def test_the_context_is_copied_less_its_excludes(tmp_path: Path) -> None:
    ctx = _context(tmp_path / "ctx")
    dest = tmp_path / "dest"
    dest.mkdir()
    seen: list[int] = []
    sent = asyncio.run(
        UploadSession(str(ctx), str(ctx)).fetch_dir("context", str(dest), ["*.log"], None, seen.append)
    )
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == [
        "Dockerfile",
        "keep.txt",
        "sub",
        "sub/inner.txt",
    ]
    assert sent == seen[0] == len("FROM busybox\n") + len("keep") + len("inner")


def test_the_dockerfile_directory_gives_only_the_names_asked_for(tmp_path: Path) -> None:
    ctx = _context(tmp_path / "ctx")
    dest = tmp_path / "dest"
    dest.mkdir()
    session = UploadSession(str(ctx), str(ctx))
    asyncio.run(session.fetch_dir("dockerfile", str(dest), follow=["Dockerfile", "Dockerfile.dockerignore"]))
    assert [p.name for p in dest.iterdir()] == ["Dockerfile"]
    with pytest.raises(SessionError):
        asyncio.run(session.fetch_dir("other", str(dest)))
    assert asyncio.run(session.secret("x")) is None and asyncio.run(session.credentials("h")) == ("", "")
