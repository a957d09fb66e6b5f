"""Stage bookkeeping, platforms, WORKDIR paths and directories made inside a root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.daemon.builder.platforms import format_platform, parse_platform
from harness.daemon.builder.run import make_dirs_in_root, workdir_path
from harness.daemon.builder.state import Stages
from harness.daemon.builder.stream import BuildError


def test_stages_by_name_and_index() -> None:
    stages = Stages()
    stages.commit("Build", {"Image": "a"})
    stages.commit("", {"Image": "b"})
    assert stages.get("build") == {"Image": "a"} and stages.get("1") == {"Image": "b"}
    assert stages.get("other") is None
    with pytest.raises(BuildError, match="refers to current build stage"):
        stages.get("2")
    with pytest.raises(BuildError, match="index out of bounds"):
        stages.get("5")
    with pytest.raises(BuildError, match="BUILD stage name already used"):
        stages.check_name("BUILD")


def test_workdir_paths() -> None:
    assert workdir_path("", "a/b") == "/a/b"
    assert workdir_path("/a", "../c/./d") == "/c/d"
    assert workdir_path("/a", "/x//y/") == "/x/y"
    with pytest.raises(BuildError, match="cannot normalize nothing"):
        workdir_path("/a", "")


def test_make_dirs_in_root_stays_inside(tmp_path: Path) -> None:
    os.symlink("/etc", tmp_path / "escape")
    make_dirs_in_root(str(tmp_path), "/escape/new/dir")
    assert (tmp_path / "etc" / "new" / "dir").is_dir()  # the symlink resolved inside the root
    assert oct((tmp_path / "etc" / "new").stat().st_mode & 0o777) == "0o755"


def test_platform_round_trip() -> None:
    assert format_platform(parse_platform("linux/arm/7")) == "linux/arm/v7"
    assert format_platform(parse_platform("Linux/AMD64")) == "linux/amd64"
