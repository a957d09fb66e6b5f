"""tarsafe: hostile archives are refused and write nothing outside; whiteouts convert per driver."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import stat
from pathlib import Path

import pytest

from harness.daemon.images.tarsafe import (
    ArchiveError,
    UnsafeArchiveError,
    decompress,
    extract,
    go_clean,
    resolve_in_scope,
)

from .conftest import Sandbox, make_tar, snapshot


def _extract(data: bytes, dest: Path, **kwargs: object) -> int:
    return extract(io.BytesIO(data), str(dest), **kwargs)  # type: ignore[arg-type]


# -- must fail, and prove nothing was written outside ------------------------------------------------
HOSTILE = {
    "dotdot": (
        [("../../../outside/pwned", "f", b"x")],
        UnsafeArchiveError,
        'invalid entry name "../../../outside/pwned"',
    ),
    "dotdot-inner": ([("a/../../../../outside/pwned", "f", b"x")], UnsafeArchiveError, "invalid entry name"),
    "dotdot-dot": ([("./../x", "f", b"x")], UnsafeArchiveError, 'invalid entry name "./../x"'),
    "absolute": ([("/tmp/refd-abs-pwned", "f", b"x")], UnsafeArchiveError, "absolute path"),
    "symlink-abs-then-write": (
        [("evil", "l", "{outside}"), ("evil/pwned", "f", b"x")],
        UnsafeArchiveError,
        'path goes through symlink "evil"',
    ),
    "symlink-rel-then-write": (
        [("evil", "l", "../../../outside"), ("evil/pwned", "f", b"x")],
        UnsafeArchiveError,
        "path goes through symlink",
    ),
    "symlink-chain": (
        [("a", "l", "b"), ("b", "l", "{outside}"), ("a/pwned", "f", b"x")],
        UnsafeArchiveError,
        "path goes through symlink",
    ),
    "symlink-dir-then-mkdir": (
        [("evil", "l", "{outside}"), ("evil/sub", "d", b"")],
        UnsafeArchiveError,
        "path goes through symlink",
    ),
    "symlink-then-hardlink-into": (
        [("evil", "l", "{outside}"), ("hl", "h", "evil/secret")],
        UnsafeArchiveError,
        "path goes through symlink",
    ),
    "hardlink-escape": (
        [("hl", "h", "../../../outside/secret")],
        UnsafeArchiveError,
        "invalid hardlink target",
    ),
    "hardlink-missing": ([("hl", "h", "nope")], ArchiveError, "linkat nope hl: no such file or directory"),
    "hardlink-absolute-host": ([("hl", "h", "{outside}/secret")], ArchiveError, "no such file or directory"),
    "symlink-whiteout": (
        [("evil", "l", "{outside}"), ("evil/.wh.secret", "f", b"")],
        UnsafeArchiveError,
        "path goes through symlink",
    ),
}


@pytest.mark.parametrize("whiteouts", ["keep", "overlay", "apply"])
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archive_refused(sandbox: Sandbox, case: str, whiteouts: str) -> None:
    entries, error, text = HOSTILE[case]
    entries = [
        (n, k, p.replace("{outside}", str(sandbox.outside)) if isinstance(p, str) else p)
        for n, k, p in entries
    ]
    before = sandbox.outside_snapshot()
    with pytest.raises(error) as info:
        _extract(make_tar(entries), sandbox.target, whiteouts=whiteouts)
    assert text in str(info.value)
    assert sandbox.outside_snapshot() == before
    assert not os.path.exists("/tmp/refd-abs-pwned")
    assert (sandbox.outside / "secret").stat().st_nlink == 1


def test_refusal_message_names_entry(sandbox: Sandbox) -> None:
    with pytest.raises(UnsafeArchiveError, match=r'^invalid entry name "\.\./x"$'):
        _extract(make_tar([("../x", "f", b"")]), sandbox.target)
    with pytest.raises(UnsafeArchiveError, match=r'^invalid entry name "/x": absolute path$'):
        _extract(make_tar([("/x", "f", b"")]), sandbox.target)
    with pytest.raises(UnsafeArchiveError, match=r'^invalid hardlink target "\.\./\.\./y"$'):
        _extract(make_tar([("hl", "h", "../../y")]), sandbox.target)
    with pytest.raises(
        UnsafeArchiveError, match=r'^invalid archive entry "e/f": path goes through symlink "e" -> "/x"$'
    ):
        _extract(make_tar([("e", "l", "/x"), ("e/f", "f", b"")]), sandbox.target)


def test_pre_existing_symlink_followed_inside_scope(sandbox: Sandbox) -> None:
    """A vfs layer is a copy of its parent: its older links resolve inside the layer, like a chroot."""
    (sandbox.target / "usr" / "lib").mkdir(parents=True)
    os.symlink("/usr/lib", sandbox.target / "lib")
    os.symlink("../../../../../..", sandbox.target / "up")
    before = sandbox.outside_snapshot()
    _extract(make_tar([("lib/new.so", "f", b"so"), ("up/escaped", "f", b"no")]), sandbox.target)
    assert (sandbox.target / "usr" / "lib" / "new.so").read_bytes() == b"so"
    assert (sandbox.target / "escaped").read_bytes() == b"no"
    assert sandbox.outside_snapshot() == before


def test_existing_symlink_replaced_not_followed(sandbox: Sandbox) -> None:
    os.symlink(str(sandbox.outside / "secret"), sandbox.target / "file")
    _extract(make_tar([("file", "f", b"new")]), sandbox.target)
    assert not os.path.islink(sandbox.target / "file")
    assert (sandbox.outside / "secret").read_text() == "host secret\n"


# -- what is allowed ---------------------------------------------------------------------------------
def test_regular_entries_and_metadata(sandbox: Sandbox) -> None:
    data = make_tar(
        [
            ("bin", "d", b""),
            ("bin/tool", "f", b"#!/bin/sh\n"),
            ("bin/abs", "l", "/etc/passwd"),
            ("bin/rel", "l", "../../../../escape"),
            ("bin/hard", "h", "bin/tool"),
            ("fifo", "p", b""),
            ("dev", "d", b""),
            ("dev/null", "c", b""),
            ("./", "d", b""),
        ]
    )
    size = _extract(data, sandbox.target)
    t = sandbox.target
    assert size == len(b"#!/bin/sh\n")
    assert (
        os.readlink(t / "bin" / "abs") == "/etc/passwd"
        and os.readlink(t / "bin" / "rel") == "../../../../escape"
    )
    assert os.stat(t / "bin" / "hard").st_ino == os.stat(t / "bin" / "tool").st_ino
    assert stat.S_ISFIFO(os.lstat(t / "fifo").st_mode)
    st = os.lstat(t / "dev" / "null")
    assert stat.S_ISCHR(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 3)
    assert stat.S_IMODE(os.stat(t / "bin" / "tool").st_mode) == 0o644
    assert os.stat(t / "bin" / "tool").st_mtime == 1_000_000_000
    assert os.stat(t / "bin").st_mtime == 1_000_000_000


def test_devices_skipped_when_not_allowed(sandbox: Sandbox) -> None:
    _extract(make_tar([("dev", "d", b""), ("dev/null", "c", b"")]), sandbox.target, allow_devices=False)
    assert not os.path.lexists(sandbox.target / "dev" / "null")


def test_missing_parents_created(sandbox: Sandbox) -> None:
    _extract(make_tar([("a/b/c/file", "f", b"x")]), sandbox.target)
    assert (sandbox.target / "a" / "b" / "c" / "file").read_bytes() == b"x"


def test_pax_xattrs_applied(sandbox: Sandbox) -> None:
    data = make_tar([("f", "f", b"x")], pax={"f": {"SCHILY.xattr.user.test": "value"}})
    _extract(data, sandbox.target)
    assert os.getxattr(sandbox.target / "f", "user.test") == b"value"


def test_empty_and_garbage_streams(sandbox: Sandbox) -> None:
    assert _extract(b"", sandbox.target) == 0
    with pytest.raises(ArchiveError, match="invalid tar archive"):
        _extract(b"this is not a tar archive at all" * 20, sandbox.target)


# -- whiteouts -----------------------------------------------------------------------------------------
def test_overlay_whiteouts_become_char_devices_and_opaque_xattr(sandbox: Sandbox) -> None:
    _extract(
        make_tar(
            [
                ("etc", "d", b""),
                ("etc/.wh.passwd", "f", b""),
                ("opq", "d", b""),
                ("opq/.wh..wh..opq", "f", b""),
                ("opq/kept", "f", b"k"),
            ]
        ),
        sandbox.target,
        whiteouts="overlay",
    )
    st = os.lstat(sandbox.target / "etc" / "passwd")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)
    assert not os.path.lexists(sandbox.target / "etc" / ".wh.passwd")
    assert os.getxattr(sandbox.target / "opq", "trusted.overlay.opaque") == b"y"
    assert not os.path.lexists(sandbox.target / "opq" / ".wh..wh..opq")
    assert (sandbox.target / "opq" / "kept").read_bytes() == b"k"


def test_apply_whiteouts_delete(sandbox: Sandbox) -> None:
    t = sandbox.target
    (t / "etc").mkdir()
    (t / "etc" / "passwd").write_text("root")
    (t / "gone").mkdir()
    (t / "gone" / "deep").write_text("x")
    (t / "opq").mkdir()
    (t / "opq" / "old").write_text("old")
    (t / "opq" / "olddir").mkdir()
    _extract(
        make_tar(
            [
                ("etc/.wh.passwd", "f", b""),
                (".wh.gone", "f", b""),
                ("opq", "d", b""),
                ("opq/.wh..wh..opq", "f", b""),
                ("opq/new", "f", b"new"),
            ]
        ),
        t,
        whiteouts="apply",
    )
    assert not os.path.lexists(t / "etc" / "passwd") and not os.path.lexists(t / "gone")
    assert sorted(os.listdir(t / "opq")) == ["new"]
    assert not any(n.startswith(".wh.") for _, dirs, files in os.walk(t) for n in dirs + files)


def test_apply_whiteout_of_symlink_removes_link_only(sandbox: Sandbox) -> None:
    os.symlink(str(sandbox.outside), sandbox.target / "link")
    before = snapshot(sandbox.outside)
    _extract(make_tar([(".wh.link", "f", b"")]), sandbox.target, whiteouts="apply")
    assert not os.path.lexists(sandbox.target / "link") and snapshot(sandbox.outside) == before


@pytest.mark.parametrize("whiteouts", ["overlay", "apply"])
@pytest.mark.parametrize("name", ["dir/.wh.", "dir/.wh..", ".wh."])
def test_whiteout_without_a_name_refused(sandbox: Sandbox, whiteouts: str, name: str) -> None:
    (sandbox.target / "dir").mkdir()
    (sandbox.target / "dir" / "keep").write_text("k")
    with pytest.raises(ArchiveError, match="a whiteout must name a file"):
        _extract(make_tar([(name, "f", b"")]), sandbox.target, whiteouts=whiteouts)
    assert (sandbox.target / "dir" / "keep").read_text() == "k"


def test_keep_whiteouts_are_plain_files(sandbox: Sandbox) -> None:
    _extract(make_tar([(".wh.x", "f", b"")]), sandbox.target, whiteouts="keep")
    assert (sandbox.target / ".wh.x").is_file()


def test_aufs_metadata_skipped(sandbox: Sandbox) -> None:
    _extract(
        make_tar([(".wh..wh.plnk", "d", b""), (".wh..wh.plnk/123.4", "f", b"x")]),
        sandbox.target,
        whiteouts="overlay",
    )
    assert os.listdir(sandbox.target) == []


# -- helpers -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw,clean",
    [
        ("", "."),
        ("a//b", "a/b"),
        ("./a/./b/", "a/b"),
        ("a/../../b", "../b"),
        ("/../x", "/x"),
        ("/", "/"),
        ("..", ".."),
        ("a/b/..", "a"),
    ],
)
def test_go_clean(raw: str, clean: str) -> None:
    assert go_clean(raw) == clean


def test_resolve_in_scope(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    os.symlink("/real", tmp_path / "abs")
    os.symlink("../../../../real", tmp_path / "climb")
    assert resolve_in_scope(str(tmp_path), "abs/f") == str(tmp_path / "real" / "f")
    assert resolve_in_scope(str(tmp_path), "climb/f") == str(tmp_path / "real" / "f")
    assert resolve_in_scope(str(tmp_path), "../../etc/passwd") == str(tmp_path / "etc" / "passwd")


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress, lambda b: b])
def test_decompress_detects_format(compress: object, sandbox: Sandbox) -> None:
    data = make_tar([("f", "f", b"payload")])
    stream = decompress(io.BufferedReader(io.BytesIO(compress(data))))  # type: ignore[operator]
    assert stream.read() == data


def test_an_id_map_shifts_each_entrys_owner(tmp_path: Path) -> None:
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("f")
        info.uid, info.gid = 1000, 50
        tar.addfile(info, io.BytesIO(b""))
    buf.seek(0)
    extract(buf, str(tmp_path / "out"), id_map=lambda uid, gid: (uid + 100000, gid + 100000))
    st = (tmp_path / "out" / "f").stat()
    assert (st.st_uid, st.st_gid) == (101000, 100050)
