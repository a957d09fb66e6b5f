"""moby's getUIDGID for ``docker cp --archive``: who owns what the copy writes, from ``Config.User``."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.daemon.runtime.users import UserLookupError, copy_owner


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\ntestuser:x:2375:2376::/h:/bin/sh\n")
    (tmp_path / "etc" / "group").write_text("root:x:0:\ntestgroup:x:2376:testuser\n")
    return tmp_path


@pytest.mark.parametrize(
    ("user", "owner"),
    [
        ("7777:", (7777, 0)),
        (":7777", (0, 7777)),
        ("2375", (2375, 2376)),  # a known uid brings its primary group
        ("7777", (7777, 0)),  # an unknown uid is taken as it is, with gid 0
        ("2375:2376", (2375, 2376)),
        ("testuser:testgroup", (2375, 2376)),
        ("testuser", (2375, 2376)),
        ("testuser:7777", (2375, 7777)),
        ("7777:testgroup", (7777, 2376)),
        ("2147483648", None),  # past MaxInt32: a name, and there is none
    ],
)
def test_the_cases_moby_tests(root: Path, user: str, owner: tuple[int, int] | None) -> None:
    if owner is None:
        with pytest.raises(UserLookupError, match="no matching entries in passwd file"):
            copy_owner(str(root), user)
    else:
        assert copy_owner(str(root), user) == owner


def test_unknown_names_and_missing_files_are_errors(root: Path) -> None:
    with pytest.raises(UserLookupError) as err:
        copy_owner(str(root), "testuser:nogroup")
    assert (
        str(err.value) == 'failed to look up group "nogroup" in container: no matching entries in group file'
    )
    (root / "etc" / "passwd").unlink()
    assert copy_owner(str(root), "42") == (42, 0)  # a uid needs no passwd file
    with pytest.raises(UserLookupError) as err:
        copy_owner(str(root), "testuser")
    assert str(err.value) == (
        'failed to look up user "testuser" in container: open /etc/passwd: no such file or directory'
    )
