"""harness.upstream.build without a Go build: engine patches, safe extraction, versions, the cache."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from harness.upstream import build
from harness.upstream.build import BuildError, safe_extract

ENGINE_PATCH = """From: t
--- docker.io.orig/engine/hello.txt
+++ docker.io/engine/hello.txt
@@ -1 +1 @@
-hello
+hello, patched
"""
CLI_PATCH = """--- docker.io.orig/cli/x.txt
+++ docker.io/cli/x.txt
@@ -1 +1 @@
-x
+y
"""
BOTH_PATCH = ENGINE_PATCH.replace("hello.txt", "other.txt") + CLI_PATCH


@pytest.mark.skipif(shutil.which("patch") is None, reason="needs patch (apt-get install patch)")
def test_only_patches_of_the_engine_alone_are_applied(tmp_path: Path) -> None:
    tree = tmp_path / "engine"
    tree.mkdir()
    (tree / "hello.txt").write_text("hello\n")
    patches = tmp_path / "patches"
    patches.mkdir()
    (patches / "engine.patch").write_text(ENGINE_PATCH)
    (patches / "cli.patch").write_text(CLI_PATCH)
    (patches / "both.patch").write_text(BOTH_PATCH)
    (patches / "series").write_text("# comment\ncli.patch\nengine.patch\n\nboth.patch\n#disabled.patch\n")
    assert build._patch(tree, patches) == ["engine.patch"]
    assert (tree / "hello.txt").read_text() == "hello, patched\n"
    (patches / "series").write_text("engine.patch\n")  # applied already: patch refuses, and says which
    with pytest.raises(BuildError, match=r"Debian's patch engine\.patch does not apply"):
        build._patch(tree, patches)


def _tarball(path: Path, *members: tarfile.TarInfo) -> Path:
    with tarfile.open(path, "w:xz") as tar:
        for m in members:
            tar.addfile(m, io.BytesIO(b"x" * m.size) if m.isfile() else None)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = 1 if kind == tarfile.REGTYPE else 0
    return info


def test_extraction_refuses_what_would_land_outside(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    ok = _tarball(
        tmp_path / "ok.tar.xz", _member("./top/engine/a.go"), _member("./top/l", tarfile.SYMTYPE, "engine")
    )
    safe_extract(ok, dest)
    assert (dest / "top/engine/a.go").read_text() == "x" and (dest / "top/l").is_symlink()
    for name, member in {
        "dotdot": _member("../evil"),
        "absolute-link": _member("link", tarfile.SYMTYPE, "/etc"),
        "climbing-link": _member("a/link", tarfile.SYMTYPE, "../../.."),
    }.items():
        with pytest.raises(BuildError, match=r"outside|leaves"):
            safe_extract(_tarball(tmp_path / f"{name}.tar.xz", member), dest)
    assert not (tmp_path / "evil").exists()


def test_the_version_is_pinned_or_the_dockerd_28_rootfs_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_UPSTREAM_MOBY_VERSION", "28.5.2+dfsg9-1")
    assert build.target_version() == "28.5.2+dfsg9-1"
    status = tmp_path / "var/lib/dpkg/status"
    status.parent.mkdir(parents=True)
    status.write_text(
        "Package: docker-cli\nVersion: 1\n\nPackage: docker.io\nStatus: install ok installed\n"
        "Version: 28.5.2+dfsg4-5\n\nPackage: docker.iox\nVersion: 2\n"
    )
    assert build._installed_version(tmp_path, "docker.io") == "28.5.2+dfsg4-5"
    assert build._installed_version(tmp_path, "containerd") == ""
    assert build._installed_version(tmp_path / "nowhere", "docker.io") == ""


def test_cached_builds_are_found_by_version_newest_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    for name, version, stamp in (("a", "28.5.2-1", 1), ("b", "28.5.2-1", 2), ("c", "27.5-1", 3)):
        entry = tmp_path / "upstream-moby" / name
        entry.mkdir(parents=True)
        meta = {"schema": build.SCHEMA, "version": version, "go_version": "1.27.3-1", "packages": {}}
        (entry / "meta.json").write_text(json.dumps(meta))
        os.utime(entry / "meta.json", (stamp, stamp))
    (tmp_path / "upstream-moby" / ".work-x").mkdir()  # unfinished: no meta.json
    assert [b.path.name for b in build.cached_builds("28.5.2-1")] == ["b", "a"]
    assert [b.path.name for b in build.cached_builds()] == ["c", "b", "a"]
    assert build.ensure_build(out=None, version="27.5-1").path.name == "c"  # no network: it is cached
