"""docker cp and export on a rootfs directory: path stats as dockerd shows them, tars, extraction with
dockerd's refusals, and the whole-rootfs export."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from harness.daemon.containers.archive import (
    archive_path,
    export_rootfs,
    extract_to_dir,
    go_file_mode,
    stat_path,
)
from harness.daemon.errors import ApiError

from .conftest import make_container


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hostname").write_text("box\n")
    (root / "etc" / "link").symlink_to("hostname")
    (root / "escape").symlink_to("/etc")
    return root


def test_stat_of_a_file_a_directory_and_a_symlink(rootfs: Path, tmp_path: Path) -> None:
    c = make_container(str(tmp_path))
    _, _, doc = stat_path(c, str(rootfs), "/etc/hostname")
    assert (doc["name"], doc["size"], doc["linkTarget"]) == ("hostname", 4, "")
    assert doc["mode"] == go_file_mode(os.lstat(rootfs / "etc" / "hostname").st_mode)
    assert stat_path(c, str(rootfs), "/etc")[2]["mode"] & (1 << 31)  # Go's ModeDir
    assert stat_path(c, str(rootfs), "etc/link")[2]["linkTarget"] == "/etc/hostname"
    assert stat_path(c, str(rootfs), "/")[2]["name"] == "/"


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("", 400, "Path cannot be empty"),
        ("/nope", 404, "Could not find the file /nope in container box"),
        ("/etc/hostname/", 400, "lstat /etc/hostname/: not a directory"),
        ("/a\0b", 500, "lstat /a\0b: invalid argument"),
    ],
)
def test_stat_errors_are_dockerds(rootfs: Path, tmp_path: Path, path: str, status: int, message: str) -> None:
    c = make_container(str(tmp_path))
    with pytest.raises(ApiError) as err:
        stat_path(c, str(rootfs), path)
    assert (err.value.status, err.value.message) == (status, message)


def test_symlinks_resolve_inside_the_rootfs(rootfs: Path, tmp_path: Path) -> None:
    c = make_container(str(tmp_path))
    host, _, _ = stat_path(c, str(rootfs), "/escape/hostname")  # /escape -> /etc of the container
    assert host == str(rootfs / "etc" / "hostname")


def test_a_tar_of_a_path_names_it_as_asked(rootfs: Path, tmp_path: Path) -> None:
    tmp = archive_path(str(rootfs / "etc"), "etc", str(tmp_path))
    try:
        with tarfile.open(tmp) as tar:
            assert sorted(tar.getnames()) == ["etc", "etc/hostname", "etc/link"]
    finally:
        os.unlink(tmp)


def _tar(*members: tuple[str, bytes | None]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_extraction_and_its_refusals(rootfs: Path, tmp_path: Path) -> None:
    c = make_container(str(tmp_path))
    archive = tmp_path / "in.tar"
    archive.write_bytes(_tar(("new.txt", b"hi"), ("sub", None)))
    extract_to_dir(c, str(rootfs), "/etc", str(archive), no_overwrite=False)
    assert (rootfs / "etc" / "new.txt").read_bytes() == b"hi" and (rootfs / "etc" / "sub").is_dir()
    archive.write_bytes(_tar(("sub", b"now a file")))
    with pytest.raises(ApiError) as err:
        extract_to_dir(c, str(rootfs), "/etc", str(archive), no_overwrite=True)
    assert err.value.message == 'cannot overwrite directory "sub" with non-directory "/etc"'
    assert (rootfs / "etc" / "sub").is_dir()  # refused before anything was written
    with pytest.raises(ApiError) as err:
        extract_to_dir(c, str(rootfs), "/etc/hostname", str(archive), no_overwrite=False)
    assert (err.value.status, err.value.message) == (400, "extraction point is not a directory")
    with pytest.raises(ApiError) as err:
        extract_to_dir(c, str(rootfs), "/missing", str(archive), no_overwrite=False)
    assert err.value.status == 404


def test_export_is_the_whole_rootfs_sorted_depth_first(rootfs: Path, tmp_path: Path) -> None:
    tmp = export_rootfs(str(rootfs), str(tmp_path))
    try:
        with tarfile.open(tmp) as tar:
            assert tar.getnames() == ["escape", "etc", "etc/hostname", "etc/link"]
            assert tar.getmember("escape").issym() and tar.getmember("escape").linkname == "/etc"
    finally:
        os.unlink(tmp)
