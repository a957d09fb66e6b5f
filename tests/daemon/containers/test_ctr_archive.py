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
    archive_target,
    export_rootfs,
    extract_to_dir,
    go_base,
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


def _raw_names(path: str) -> list[str]:
    """Entry names as the tar headers carry them (tarfile's reader drops a directory's trailing "/",
    which is what tells "/" from "" and "./" from "." in dockerd's archives)."""
    names = []
    with tarfile.open(path) as tar:
        for member in tar:
            raw = member.pax_headers.get("path") or member.name
            names.append(raw + "/" if member.isdir() and not raw.endswith("/") else raw)
    return names


def test_a_tar_of_a_file_names_it_as_asked(rootfs: Path, tmp_path: Path) -> None:
    tmp = archive_path(str(rootfs / "etc" / "link"), "link", str(tmp_path))
    try:
        with tarfile.open(tmp) as tar:
            assert tar.getnames() == ["link"] and tar.getmember("link").issym()
    finally:
        os.unlink(tmp)


@pytest.mark.parametrize(
    ("top", "names"),
    [
        ("etc", ["etc/", "etc/hostname", "etc/link"]),
        (".", ["./", "./hostname", "./link"]),
        ("/", ["/", "/hostname", "/link"]),  # go-archive rebases "." to "" for the root: no "//hostname"
    ],
)
def test_a_tar_of_a_directory_is_rebased_as_dockerd_does(
    rootfs: Path, tmp_path: Path, top: str, names: list[str]
) -> None:
    tmp = archive_path(str(rootfs / "etc"), top, str(tmp_path), tree=True)
    try:
        assert _raw_names(tmp) == names
    finally:
        os.unlink(tmp)


def test_hard_links_in_a_tree_name_the_first_entry(rootfs: Path, tmp_path: Path) -> None:
    os.link(rootfs / "etc" / "hostname", rootfs / "etc" / "zlink")
    tmp = archive_path(str(rootfs / "etc"), "/", str(tmp_path), tree=True)
    try:
        with tarfile.open(tmp) as tar:
            member = tar.getmember("/zlink")
            assert member.islnk() and member.linkname == "/hostname"
    finally:
        os.unlink(tmp)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/", "/"),
        (".", "/."),
        ("/.", "/."),
        ("./", "/./"),
        ("/./", "/./"),
        ("bar/quux", "/bar/quux"),
        ("bar/quux/", "/bar/quux/"),
        ("bar/quux/.", "/bar/quux/."),
        ("bar//quux/../x", "/bar/x"),
    ],
)
def test_archive_target_keeps_the_trailing_dot_or_slash(path: str, expected: str) -> None:
    assert archive_target(path) == expected


@pytest.mark.parametrize(("path", "base"), [("/", "/"), ("/.", "."), ("/a/b/", "b"), ("", "."), ("//", "/")])
def test_go_base(path: str, base: str) -> None:
    assert go_base(path) == base


def test_a_trailing_slash_follows_a_final_symlink(rootfs: Path, tmp_path: Path) -> None:
    c = make_container(str(tmp_path))
    (rootfs / "etc" / "dirlink").symlink_to("/etc")
    _, _, doc = stat_path(c, str(rootfs), "/etc/dirlink")
    assert doc["linkTarget"] == "/etc" and not os.path.isdir(rootfs / "etc" / "dirlink" / "nope")
    host, _, doc = stat_path(c, str(rootfs), "/etc/dirlink/")
    assert host == str(rootfs / "etc") and doc["mode"] & (1 << 31) and doc["name"] == "dirlink"
    assert doc["linkTarget"] == ""


def test_not_found_names_the_container_as_the_request_did(rootfs: Path, tmp_path: Path) -> None:
    c = make_container(str(tmp_path))
    assert stat_path(c, str(rootfs), "/.", ref=c.id, asked=".")[2]["name"] == "."
    with pytest.raises(ApiError) as err:
        stat_path(c, str(rootfs), "/dne", ref=c.id, asked="dne")
    assert (err.value.status, err.value.message) == (404, f"Could not find the file dne in container {c.id}")


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


def test_copy_uid_gid_owns_every_entry_by_the_containers_user(rootfs: Path, tmp_path: Path) -> None:
    (rootfs / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\ntestuser:x:2375:2376::/home:/bin/sh\n")
    (rootfs / "etc" / "group").write_text("root:x:0:\ntestgroup:x:2376:\n")
    archive = tmp_path / "in.tar"
    archive.write_bytes(_tar(("owned.txt", b"hi"), ("owned-dir", None)))
    c = make_container(str(tmp_path), User="testuser:7777")
    extract_to_dir(c, str(rootfs), "/etc", str(archive), no_overwrite=False, copy_uid_gid=True)
    for name in ("owned.txt", "owned-dir"):
        st = os.lstat(rootfs / "etc" / name)
        assert (st.st_uid, st.st_gid) == (2375, 7777)
    c = make_container(str(tmp_path), User="nosuch")
    with pytest.raises(ApiError) as err:
        extract_to_dir(c, str(rootfs), "/etc", str(archive), no_overwrite=False, copy_uid_gid=True)
    assert (err.value.status, err.value.message) == (
        400,
        'failed to look up user "nosuch" in container: no matching entries in passwd file',
    )
    extract_to_dir(c, str(rootfs), "/etc", str(archive), no_overwrite=False)  # without -a: the tar's owner
    assert os.lstat(rootfs / "etc" / "owned.txt").st_uid == 0
