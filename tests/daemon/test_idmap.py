"""--userns-remap's id mapping: subordinate ranges, the next free range, and shifting ids both ways."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.daemon import idmap
from harness.daemon.idmap import IdMapping


def test_ranges_map_container_ids_to_host_ids_and_back() -> None:
    m = IdMapping(uids=((0, 100000, 65536),), gids=((0, 200000, 1000), (1000, 300000, 10)))
    assert m.root == (100000, 200000)
    assert m.to_host(1000, 1005) == (101000, 300005)
    assert m.to_container(101000, 300005) == (1000, 1005)
    assert m.to_container(5, 5) == (0, 0)  # outside the ranges: container root, as go-archive does
    with pytest.raises(ValueError):
        m.to_host(65536, 0)
    assert m.map_lines("gid") == "0 200000 1000\n1000 300000 10\n"


def test_the_next_range_starts_past_those_taken(tmp_path: Path) -> None:
    subuid = tmp_path / "subuid"
    assert idmap._next_range_start(str(subuid)) == 100000  # no file: dockerd's default start
    subuid.write_text("alice:100000:65536\nbob:165536:65536\n# carol:1:2\n")
    assert idmap._next_range_start(str(subuid)) == 231072
    subuid.write_text("alice:300000:65536\n")
    assert idmap._next_range_start(str(subuid)) == 100000  # a range elsewhere leaves the default free


def test_a_user_without_ranges_is_refused_with_dockerds_words(tmp_path: Path) -> None:
    with pytest.raises(idmap.RemapError) as info:
        idmap._mapping([], "/etc/subuid", "nobody")
    assert (
        str(info.value) == "Can't create ID mappings: no subuid ranges found for user 'nobody' in /etc/subuid"
    )


def test_remapped_root_is_made_with_traversal_for_the_remapped_group(tmp_path: Path) -> None:
    m = IdMapping(uids=((0, 100000, 65536),), gids=((0, 100000, 65536),))
    path = idmap.remapped_root(str(tmp_path / "root"), m)
    assert path == str(tmp_path / "root" / "100000.100000")
    for directory in (tmp_path / "root", tmp_path / "root" / "100000.100000"):
        st = directory.stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, 100000, 0o710)


def test_remap_notice_names_the_user_dockerd_names() -> None:
    """moby setupRemappedRoot logs the resolved user (``default`` is dockremap), and a warning for root."""
    from harness.daemon.idmap import remap_notice

    ranges = "User namespaces: ID ranges will be mapped to subuid/subgid ranges of: "
    assert remap_notice("") is None
    assert remap_notice("default") == ("info", ranges + "dockremap")
    assert remap_notice("someone:somegroup") == ("info", ranges + "someone")
    assert remap_notice("0") == (
        "warning",
        "User namespaces: root cannot be remapped with itself; user namespaces are OFF",
    )


def test_validate_prints_the_remap_line_first_whatever_the_log_settings(tmp_path: Path) -> None:
    """dockerd 28.5 resolves --userns-remap while loading its configuration, before logging is set up: the
    line is text at info even with --log-level=error --log-format=json, and precedes 'configuration OK'."""
    import contextlib
    import io
    import re

    from harness.daemon.__main__ import main

    config = tmp_path / "daemon.json"
    config.write_text("{}")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        flags = ["--userns-remap=default", "--log-level=error", "--log-format=json", "--validate"]
        code = main([*flags, "--config-file", str(config)])
    lines = err.getvalue().splitlines()
    assert code == 0, lines
    assert len(lines) == 2 and lines[1] == "configuration OK", lines
    assert re.fullmatch(
        r'time="\d{4}-\d\d-\d\dT[\d:]{8}\.\d{9}Z" level=info msg="User namespaces: ID ranges will be mapped '
        r'to subuid/subgid ranges of: dockremap"',
        lines[0],
    ), lines
