"""The CLI plugins' plumbing: fetched through debpkg, handed to the CLI by a private DOCKER_CONFIG."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness import cliplugins
from harness.cliplugins import CliPlugin, CliPluginError, plugin_dirs, write_docker_config
from harness.debpkg import DebPkgError


def _unpacked(root: Path, binary: str, executable: bool = True) -> Any:
    plugins = root / "root" / "usr" / "libexec" / "docker" / "cli-plugins"
    plugins.mkdir(parents=True)
    (plugins / binary).write_text("#!/bin/sh\n")
    os.chmod(plugins / binary, 0o755 if executable else 0o644)
    return SimpleNamespace(root=root / "root", path=root, describe=lambda: f"Debian trixie {binary}")


def test_plugin_dirs_names_each_directory_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str, str | None]] = []
    entries = {"a": _unpacked(tmp_path / "a", "docker-a"), "b": _unpacked(tmp_path / "b", "docker-b")}

    def fetch(suite: str, package: str, version: str | None = None, **_: Any) -> Any:
        calls.append((suite, package, version))
        return entries[package]

    monkeypatch.setattr(cliplugins, "fetch", fetch)
    dirs = plugin_dirs((CliPlugin("a", "docker-a", "1.2"), CliPlugin("b", "docker-b", "3")))
    assert calls == [("trixie", "a", "1.2"), ("trixie", "b", "3")]
    assert dirs == [str(entries[p].root / "usr/libexec/docker/cli-plugins") for p in ("a", "b")]


def test_a_missing_plugin_says_what_and_how(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*_: Any, **__: Any) -> Any:
        raise DebPkgError("the mirror answered 404")

    monkeypatch.setattr(cliplugins, "fetch", fail)
    with pytest.raises(
        CliPluginError, match=r"docker-buildx CLI plugin \(Debian trixie's docker-buildx 0\.13\.x\)"
    ):
        plugin_dirs()
    broken = _unpacked(tmp_path / "c", "docker-c", executable=False)
    monkeypatch.setattr(cliplugins, "fetch", lambda *a, **k: broken)
    with pytest.raises(CliPluginError, match="has no executable docker-c"):
        plugin_dirs((CliPlugin("c", "docker-c", "1"),))


def test_docker_config_keeps_other_settings(tmp_path: Path) -> None:
    config = tmp_path / ".docker"
    config.mkdir()
    (config / "config.json").write_text(json.dumps({"auths": {"r": {}}, "cliPluginsExtraDirs": ["/old"]}))
    write_docker_config(str(config), ["/p1", "/p2"])
    assert json.loads((config / "config.json").read_text()) == {
        "auths": {"r": {}},
        "cliPluginsExtraDirs": ["/p1", "/p2"],
    }
    fresh = write_docker_config(str(tmp_path / "new"), ["/p"])
    assert json.loads((Path(fresh) / "config.json").read_text()) == {"cliPluginsExtraDirs": ["/p"]}
