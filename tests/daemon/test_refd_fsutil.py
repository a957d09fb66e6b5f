"""fsutil: removal and walks of trees deeper than Python's recursion limit and PATH_MAX.

A container can nest directories thousands deep; shutil.rmtree/os.walk raised RecursionError there and
``docker rm`` answered 500 with the layer half removed (found by tests/reliability/test_rel_archives.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.daemon.fsutil import atomic_write, fsync_path, read_record, rmtree, walk

DEPTH = 3000  # 2 bytes a level: deeper than PATH_MAX too


def _deep(root: Path) -> None:
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(DEPTH):
            os.mkdir("a", dir_fd=fd)
            fd2 = os.open("f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
            os.close(fd2)
            os.symlink("/etc", "link", dir_fd=fd)
            child = os.open("a", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
    finally:
        os.close(fd)


def test_rmtree_removes_any_depth_and_never_follows_links(tmp_path: Path) -> None:
    victim = tmp_path / "outside"
    victim.mkdir()
    (victim / "keep").write_text("x")
    root = tmp_path / "deep"
    root.mkdir()
    (root / "escape").symlink_to(victim)
    _deep(root)
    rmtree(str(root))
    assert not root.exists()
    assert (victim / "keep").read_text() == "x"


def test_rmtree_ignore_errors_and_missing(tmp_path: Path) -> None:
    rmtree(str(tmp_path / "nope"), ignore_errors=True)
    single = tmp_path / "file"
    single.write_text("x")
    rmtree(str(tmp_path))
    assert not tmp_path.exists()


def test_walk_is_iterative_and_skips_links(tmp_path: Path) -> None:
    root = tmp_path / "deep"
    root.mkdir()
    _deep(root)
    dirs = files = 0
    for _, dirnames, filenames in walk(str(root)):
        dirs += len(dirnames)
        files += len(filenames)
    # every level's 'a' up to PATH_MAX is seen; deeper paths cannot be opened by name and are skipped
    assert dirs > 1000 and files == 2 * dirs
    rmtree(str(root))


def test_walk_prunes_like_os_walk(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "c").mkdir()
    seen = []
    for dirpath, dirnames, _ in walk(str(tmp_path)):
        seen.append(os.path.relpath(dirpath, tmp_path))
        dirnames[:] = [d for d in dirnames if d != "a"]
    assert sorted(seen) == [".", "c"]


def test_fsync_path_syncs_a_record_and_skips_one_removed_since(tmp_path: Path) -> None:
    record = tmp_path / "state.json"
    record.write_text("{}")
    fsync_path(str(record))  # an existing record: synced, no error
    assert record.read_text() == "{}"
    fsync_path(str(tmp_path / "removed.json"))  # replaced or removed meanwhile: nothing to sync, no error
    open_fds = len(os.listdir("/proc/self/fd"))
    for _ in range(50):
        fsync_path(str(record))
    assert len(os.listdir("/proc/self/fd")) == open_fds  # every descriptor it opened is closed


def test_atomic_write_replaces_whole_with_the_exact_mode(tmp_path: Path) -> None:

    path = tmp_path / "record"
    atomic_write(str(path), b" first\n", 0o600)
    assert read_record(str(path)) == "first"
    assert path.stat().st_mode & 0o777 == 0o600
    atomic_write(str(path), b"second")
    assert path.read_bytes() == b"second" and path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["record"]  # no temporary file left behind
    assert read_record(str(tmp_path / "missing")) is None
    assert read_record(str(path / "under-a-file")) is None


def test_atomic_write_failure_keeps_the_old_content(tmp_path: Path) -> None:

    path = tmp_path / "record"
    path.write_bytes(b"old")
    with pytest.raises(TypeError):
        atomic_write(str(path), "not bytes")  # type: ignore[arg-type]
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["record"]
