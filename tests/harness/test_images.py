"""The busybox test image: deterministic, cached by recipe, complete, loadable as a docker save tarball."""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import posixpath
import stat
import tarfile
from pathlib import Path

import pytest

from harness import images
from harness.daemon.images.tarsafe import extract
from harness.errors import ImageBuildError


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("HARNESS_CACHE", str(cache))
    return cache


@pytest.fixture(scope="module")
def busybox() -> str:
    try:
        return images.find_busybox()
    except ImageBuildError as exc:
        pytest.skip(str(exc))


def _members(path: str) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_two_builds_are_byte_identical(busybox: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = images.busybox_rootfs()
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "other-cache"))
    second = images.busybox_rootfs()
    assert first.path != second.path
    assert first.digest == second.digest
    assert first.digest == "sha256:" + hashlib.sha256(Path(second.path).read_bytes()).hexdigest()


def test_a_changed_recipe_builds_a_new_image(busybox: str, monkeypatch: pytest.MonkeyPatch) -> None:
    first = images.busybox_rootfs()
    monkeypatch.setitem(images._FILES, "etc/motd", "changed\n")
    second = images.busybox_rootfs()
    assert second.path != first.path and second.digest != first.digest
    assert "etc/motd" in _members(second.path)


def test_second_call_reuses_the_cache(busybox: str, monkeypatch: pytest.MonkeyPatch) -> None:
    first = images.busybox_rootfs()
    mtime = os.stat(first.path).st_mtime_ns
    os.utime(first.path, ns=(mtime - 10**9, mtime - 10**9))  # a rebuild would move it forward again

    def no_rebuild(_: str) -> bytes:
        raise AssertionError("the cached rootfs was rebuilt")

    monkeypatch.setattr(images, "_rootfs_bytes", no_rebuild)
    second = images.busybox_rootfs()
    assert (second.path, second.digest) == (first.path, first.digest)
    assert os.stat(second.path).st_mtime_ns == mtime - 10**9
    assert os.listdir(os.path.dirname(first.path)) == [os.path.basename(first.path)]  # no temp file left


def test_a_missing_cache_entry_is_rebuilt(busybox: str) -> None:
    first = images.busybox_rootfs()
    os.unlink(first.path)
    assert images.busybox_rootfs().digest == first.digest


def test_rootfs_contents(busybox: str) -> None:
    members = _members(images.busybox_rootfs().path)
    busybox_member = members["bin/busybox"]
    assert busybox_member.isreg() and busybox_member.mode == 0o755
    assert busybox_member.size == os.path.getsize(busybox)
    assert members["bin/sh"].issym() and members["bin/sh"].linkname == "busybox"
    bracket = members["usr/bin/["]
    assert bracket.issym()
    assert posixpath.normpath(posixpath.join("usr/bin", bracket.linkname)) == "bin/busybox"
    assert members["tmp"].isdir() and stat.S_IMODE(members["tmp"].mode) == 0o1777
    assert members["etc/passwd"].isreg()
    assert {(m.uid, m.gid, m.mtime) for m in members.values()} == {(0, 0, 0)}


def _links_leaving(tar: tarfile.TarFile) -> list[str]:
    """Members whose link target lies outside the archive's root (what tarfile's 'data' filter refuses,
    checked here by hand: Debian 12's Python 3.11.2 has no extraction filters)."""
    bad = []
    for m in tar.getmembers():
        if m.issym() or m.islnk():
            base = posixpath.dirname(m.name) if m.issym() else ""
            target = posixpath.normpath(posixpath.join(base, m.linkname))
            if m.linkname.startswith("/") or target == ".." or target.startswith("../"):
                bad.append(f"{m.name} -> {m.linkname}")
    return bad


def test_rootfs_extracts_safely_and_links_resolve(busybox: str, tmp_path: Path) -> None:
    """Every applet link stays inside the root and resolves to busybox once extracted (refd's extractor)."""
    dest = tmp_path / "rootfs"
    with tarfile.open(images.busybox_rootfs().path) as tar:
        assert _links_leaving(tar) == []
    with open(images.busybox_rootfs().path, "rb") as fh:
        extract(fh, str(dest))
    real_busybox = (dest / "bin/busybox").resolve()
    for applet in ("bin/sh", "usr/bin/[", "sbin/ifconfig", "usr/sbin/chroot", "linuxrc"):
        if (dest / applet).is_symlink():
            assert (dest / applet).resolve() == real_busybox, applet
    assert (dest / "etc/passwd").read_text().startswith("root:x:0:0:root:/root:/bin/sh\n")


def test_a_link_climbing_out_of_the_root_is_found_by_that_check() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.addfile(images._info("linuxrc", tarfile.SYMTYPE, 0o777, link="../bin/busybox"))
        tar.addfile(images._info("bin/sh", tarfile.SYMTYPE, 0o777, link="busybox"))
        tar.addfile(images._info("bin/abs", tarfile.SYMTYPE, 0o777, link="/bin/busybox"))
        tar.addfile(images._info("usr/bin/up", tarfile.SYMTYPE, 0o777, link="../../bin/busybox"))
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tar:
        assert _links_leaving(tar) == ["linuxrc -> ../bin/busybox", "bin/abs -> /bin/busybox"]


def test_missing_busybox_names_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(images, "BUSYBOX_PATHS", (str(tmp_path / "bin/busybox"),))
    with pytest.raises(ImageBuildError, match=r"busybox-static \(apt-get install busybox-static\)"):
        images.busybox_rootfs()
    assert not os.listdir(images.image_cache_dir())


def test_a_dynamic_busybox_is_not_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    if shutil.which("file") is None:
        pytest.skip("needs file(1) to tell static from dynamic binaries")
    monkeypatch.setattr(images, "BUSYBOX_PATHS", ("/bin/ls",))
    with pytest.raises(ImageBuildError, match=r"/bin/ls is dynamically linked.*busybox-static"):
        images.find_busybox()


def test_save_tarball_is_a_loadable_docker_save(busybox: str) -> None:
    image = images.busybox_rootfs()
    saved = images.save_tarball(image, "harness/busybox:test")
    with tarfile.open(fileobj=io.BytesIO(saved)) as tar:
        names = set(tar.getnames())
        extracted = tar.extractfile("manifest.json")
        assert extracted is not None
        manifest = json.load(extracted)
        assert len(manifest) == 1 and manifest[0]["RepoTags"] == ["harness/busybox:test"]
        entry = manifest[0]
        assert entry["Config"] in names and all(layer in names for layer in entry["Layers"])
        config_file = tar.extractfile(entry["Config"])
        layer_file = tar.extractfile(entry["Layers"][0])
        assert config_file is not None and layer_file is not None
        config_raw, layer = config_file.read(), layer_file.read()
    assert entry["Config"] == hashlib.sha256(config_raw).hexdigest() + ".json"
    config = json.loads(config_raw)
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(layer).hexdigest()]
    assert config["rootfs"]["diff_ids"] == [image.digest]
    assert config["config"]["Cmd"] == ["sh"] and config["os"] == "linux"
    goarch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), config["architecture"])
    assert config["architecture"] == goarch
    assert images.save_tarball(image, "harness/busybox:test") == saved  # deterministic too


def test_save_tarball_of_a_different_image_differs(busybox: str, monkeypatch: pytest.MonkeyPatch) -> None:
    first = images.save_tarball(images.busybox_rootfs(), "harness/busybox:test")
    monkeypatch.setitem(images._FILES, "etc/motd", "changed\n")
    second = images.save_tarball(images.busybox_rootfs(), "harness/busybox:test")
    assert first != second
