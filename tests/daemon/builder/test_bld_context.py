"""The build context: tarsums, .dockerignore patterns, Go's filepath.Match, Dockerfile lookup."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from harness.daemon.builder.context import (
    ArchiveContext,
    LazySource,
    PatternMatcher,
    dockerfile,
    go_match,
    read_ignore_file,
)
from harness.daemon.builder.stream import BuildError


def _tar(files: dict[str, bytes | None], gz: bool = False) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def test_tarsum_matches_dockerd(tmp_path: Path) -> None:
    # dockerd 28.5 names this file "file:8582af4d..." in COPY's history
    ctx = ArchiveContext.extract(_tar({"f": b"hi\n", "d": None}, gz=True), str(tmp_path))
    try:
        assert ctx.hash("f") == "8582af4daeaf0680f84231b3cb3c1b3f178576b5a6a8982837583d5676f28428"
        assert ctx.hash("./f") == ctx.hash("f")
        assert ctx.hash("missing") == "missing"
    finally:
        ctx.close()
    assert not os.listdir(tmp_path)


def test_lazy_source_hashes_files_on_disk(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"hi\n")
    os.chmod(tmp_path / "f", 0o644)
    assert (
        LazySource(str(tmp_path)).hash("f")
        == "8582af4daeaf0680f84231b3cb3c1b3f178576b5a6a8982837583d5676f28428"
    )


def test_dockerfile_lookup_and_ignore(tmp_path: Path) -> None:
    files = {"dockerfile": b"FROM x\n", ".dockerignore": b"# c\ndockerfile\n.dockerignore\n", "keep": b"k"}
    ctx = ArchiveContext.extract(_tar(files), str(tmp_path))
    try:
        assert [n.value for n in dockerfile(ctx, "Dockerfile").nodes] == ["FROM"]
        assert sorted(os.listdir(ctx.root)) == ["keep"]
        with pytest.raises(BuildError, match="Cannot locate specified Dockerfile: Nope"):
            dockerfile(ctx, "Nope")
    finally:
        ctx.close()


def test_empty_dockerfile_is_a_400(tmp_path: Path) -> None:
    ctx = ArchiveContext.extract(_tar({"Dockerfile": b""}), str(tmp_path))
    try:
        with pytest.raises(BuildError) as exc:
            dockerfile(ctx, "Dockerfile")
        assert (exc.value.status, exc.value.message) == (400, "the Dockerfile (Dockerfile) cannot be empty")
    finally:
        ctx.close()


@pytest.mark.parametrize(
    ("pattern", "name", "hit"),
    [
        ("*.txt", "a.txt", True),
        ("*", "a/b", False),
        ("a?c", "abc", True),
        ("[a-c]x", "bx", True),
        ("[^a]x", "bx", True),
        ("\\*", "*", True),
    ],
)
def test_go_match(pattern: str, name: str, hit: bool) -> None:
    assert go_match(pattern, name) is hit


def test_go_match_bad_pattern() -> None:
    with pytest.raises(ValueError, match="syntax error in pattern"):
        go_match("[", "x")


def test_ignore_patterns() -> None:
    patterns = read_ignore_file(b"\xef\xbb\xbf# comment\n/secret\n**/*.log\n!keep.log\n\n  sub/  \n")
    assert patterns == ["secret", "**/*.log", "!keep.log", "sub"]
    matcher = PatternMatcher(patterns)
    hits = {
        p: matcher.matches_or_parent_matches(p) for p in ["secret", "a/b.log", "keep.log", "sub/x", "other"]
    }
    assert hits == {"secret": True, "a/b.log": True, "keep.log": False, "sub/x": True, "other": False}


def test_tar_without_final_padding(tmp_path: Path) -> None:
    """The docker CLI's context for `-f -` ends right after the last file's data (Go's reader accepts it)."""
    raw = _tar({"Dockerfile": b"FROM x\n", "last": b"22 bytes of dockerfile"}).getvalue()
    cut = raw.index(b"22 bytes of dockerfile") + 22
    ctx = ArchiveContext.extract(io.BytesIO(raw[:cut]), str(tmp_path))
    try:
        assert sorted(os.listdir(ctx.root)) == ["Dockerfile", "last"]
        with open(os.path.join(ctx.root, "last"), "rb") as fh:
            assert fh.read() == b"22 bytes of dockerfile"
    finally:
        ctx.close()
