"""``docker diff``: go-archive's ChangesDirs rules on plain trees, then a container's layer (both drivers)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.daemon.containers.changes import changes_dirs, container_changes
from harness.daemon.images.service import ImageService

from .conftest import load_archive, make_tar, save_archive


def _tree(root: Path) -> None:
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0\n")
    (root / "etc" / "group").write_text("root:x:0:\n")
    (root / "bin").mkdir()
    (root / "bin" / "sh").write_text("#!\n")
    (root / "home" / "user").mkdir(parents=True)
    (root / "home" / "user" / "notes").write_text("n\n")
    (root / "var" / "log").mkdir(parents=True)
    (root / "var" / "log" / "old").write_text("o\n")


def _pair(tmp_path: Path) -> tuple[Path, Path]:
    old, new = tmp_path / "old", tmp_path / "new"
    _tree(old)
    shutil.copytree(old, new, symlinks=True)  # copy2 keeps modes and times: no difference yet
    return old, new


def _kinds(changes: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(c["Path"], c["Kind"]) for c in changes]


def test_identical_trees_have_no_changes(tmp_path: Path) -> None:
    old, new = _pair(tmp_path)
    assert changes_dirs(str(new), str(old)) == []
    assert changes_dirs(str(old), str(old)) == []  # same inodes on the same device: pruned


def test_adds_modifies_deletes_in_dockerds_shape(tmp_path: Path) -> None:
    old, new = _pair(tmp_path)
    (new / "etc" / "passwd").write_text("root:x:0:0\nuser:x:1000:1000\n")
    (new / "etc" / "group").unlink()
    (new / "bin" / "sh").chmod(0o700)
    shutil.rmtree(new / "home")
    (new / "a" / "b").mkdir(parents=True)
    (new / "a" / "b" / "f").write_text("x")
    os.symlink("/nowhere", new / "lnk")
    os.mkfifo(new / "fifo")
    os.utime(new / "var", (1, 1))  # a directory's times are no change
    assert _kinds(changes_dirs(str(new), str(old))) == [
        ("/a", 1),
        ("/a/b", 1),
        ("/a/b/f", 1),
        ("/bin", 0),
        ("/bin/sh", 0),
        ("/etc", 0),
        ("/etc/passwd", 0),
        ("/etc/group", 2),
        ("/fifo", 1),
        ("/lnk", 1),
        ("/home", 2),  # its children are not listed
    ]


def test_a_file_replacing_a_directory_is_a_modification(tmp_path: Path) -> None:
    old, new = _pair(tmp_path)
    shutil.rmtree(new / "var" / "log")
    (new / "var" / "log").write_text("now a file")
    assert _kinds(changes_dirs(str(new), str(old))) == [("/var", 0), ("/var/log", 0)]


def test_same_second_with_zero_nanoseconds_is_no_change(tmp_path: Path) -> None:
    old, new = _pair(tmp_path)
    secs = 1_700_000_000
    os.utime(old / "bin" / "sh", ns=(secs * 10**9, secs * 10**9))  # as unpacked from a tar: no ns
    os.utime(new / "bin" / "sh", ns=(secs * 10**9 + 5, secs * 10**9 + 5))
    assert changes_dirs(str(new), str(old)) == []
    os.utime(new / "bin" / "sh", ns=((secs + 1) * 10**9, (secs + 1) * 10**9))
    assert _kinds(changes_dirs(str(new), str(old))) == [("/bin", 0), ("/bin/sh", 0)]


def test_a_capability_change_is_a_modification(tmp_path: Path) -> None:
    old, new = _pair(tmp_path)
    try:
        os.setxattr(new / "bin" / "sh", "security.capability", b"\x01\x00\x00\x02" + b"\x00" * 16)
    except OSError as exc:
        pytest.skip(f"cannot set security.capability here: {exc}")
    assert _kinds(changes_dirs(str(new), str(old))) == [("/bin", 0), ("/bin/sh", 0)]


BASE = make_tar(
    [
        ("bin/", "d", ""),
        ("bin/sh", "f", "#!/bin/sh\n"),
        ("bin/ls", "f", "ls\n"),
        ("etc/", "d", ""),
        ("etc/passwd", "f", "root:x:0:0\n"),
        ("var/", "d", ""),
        ("var/tmp/", "d", ""),
        ("var/tmp/cache", "f", "c"),
    ]
)


@pytest.mark.parametrize("driver", ["overlay2", "vfs"])
def test_container_changes_against_the_init_layer(no_mounts_left: Path, driver: str) -> None:
    store = ImageService(str(no_mounts_left / "root"), driver)
    load_archive(store, save_archive([BASE], ["diff:1"]))
    store.layers.create_rw_layer("c" * 64, store.resolve("diff:1").top_chain)
    daemon = SimpleNamespace(images=store)
    c = SimpleNamespace(id="c" * 64, name="/diffme")
    assert container_changes(daemon, c) is None  # type: ignore[arg-type]
    rootfs = Path(store.layers.mount_rootfs("c" * 64))
    try:
        (rootfs / "bin" / "ls").unlink()  # a whiteout on overlay2
        shutil.rmtree(rootfs / "var")  # then recreated: an opaque directory on overlay2
        (rootfs / "var").mkdir()
        (rootfs / "var" / "new").write_text("n")
        (rootfs / "etc" / "hosts").write_text("127.0.0.1 x\n")  # an init-layer file written in place
        (rootfs / "added").write_text("a")
        found = container_changes(daemon, c)  # type: ignore[arg-type]
    finally:
        store.layers.unmount_rootfs("c" * 64)
    assert found is not None
    assert _kinds(found) == [
        ("/added", 1),
        ("/bin", 0),
        ("/bin/ls", 2),
        ("/etc", 0),
        ("/etc/hosts", 0),
        ("/var", 0),
        ("/var/new", 1),
        ("/var/tmp", 2),
    ]
    store.layers.remove_rw_layer("c" * 64)


def test_container_without_a_layer_is_an_error(tmp_path: Path) -> None:
    store = ImageService(str(tmp_path / "root"), "vfs")
    with pytest.raises(OSError, match="RWLayer of container gone is unexpectedly nil"):
        container_changes(SimpleNamespace(images=store), SimpleNamespace(id="x", name="/gone"))  # type: ignore[arg-type]
