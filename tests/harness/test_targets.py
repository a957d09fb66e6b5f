"""Targets: lookup by name, availability checks that say what to install, versions."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from harness.errors import TargetUnavailable
from harness.targets import KNOWN_TARGETS, Target, default_targets, resolve_target


def test_known_targets_resolve() -> None:
    refd = resolve_target("refd")
    assert refd.is_refd and refd.argv[:4] == (sys.executable, "-S", "-m", "harness.daemon")
    assert resolve_target("dockerd").kind == "dockerd"
    assert resolve_target("external").kind == "external"
    assert set(KNOWN_TARGETS) == {"refd", "dockerd", "dockerd-20.10", "dockerd-26", "dockerd-28", "external"}


def test_refd_keeps_its_bytecode_when_the_environment_says_not_to() -> None:
    # compiling refd's source again at every boot was 72 % of its boot's instructions
    refd = resolve_target("refd")
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **refd.env}
    probe = [*refd.argv[:2], "-c", "import sys; print(sys.dont_write_bytecode)"]
    out = subprocess.run(probe, env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_unknown_target_lists_the_known_ones() -> None:
    with pytest.raises(
        TargetUnavailable, match="'podman' is unavailable: unknown target; choose from refd, dockerd"
    ):
        resolve_target("podman")


@pytest.mark.skipif(os.geteuid() != 0, reason="the check wants root first")
def test_refd_is_available_here() -> None:
    resolve_target("refd").check_available()


def test_missing_binary_names_its_package() -> None:
    hint = "apt-get install docker.io (Debian/Ubuntu)"
    gone = Target("dockerd", "dockerd", ("/nonexistent/dockerd",), hint)
    with pytest.raises(TargetUnavailable) as info:
        gone.check_available()
    assert info.value.fix == hint
    assert str(info.value).endswith(f"binary /nonexistent/dockerd not found; {hint}")


def test_relative_binary_is_not_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    with pytest.raises(TargetUnavailable, match="binary dockerd not found"):
        Target("dockerd", "dockerd", ("dockerd",)).check_available()


def test_non_root_is_told_to_run_as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(TargetUnavailable, match=r"needs root.*run the tests as root"):
        resolve_target("refd").check_available()


def test_missing_namespace_tools_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr("harness.targets.shutil.which", lambda tool: None if tool == "unshare" else "/bin/x")
    with pytest.raises(
        TargetUnavailable, match="unshare is not installed; apt-get install util-linux iproute2"
    ):
        resolve_target("refd").check_available()


def test_external_needs_docker_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    with pytest.raises(TargetUnavailable, match="DOCKER_HOST is not set"):
        resolve_target("external").check_available()
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:2375")
    resolve_target("external").check_available()


def test_default_targets_follow_dockerd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("harness.targets.shutil.which", lambda tool: None)
    monkeypatch.setattr("harness.targets.os.path.exists", lambda path: False)
    assert default_targets() == ["refd"]
    monkeypatch.setattr("harness.targets.shutil.which", lambda tool: "/usr/sbin/dockerd")
    assert default_targets() == ["refd", "dockerd"]


def test_versions() -> None:
    from harness.daemon import ENGINE_VERSION

    assert resolve_target("refd").version == ENGINE_VERSION
    assert resolve_target("external").version == ""
    assert Target("x", "dockerd", ("/nonexistent/dockerd",)).version == ""  # no binary, no version, no crash


@pytest.mark.skipif(not os.access("/usr/sbin/dockerd", os.X_OK), reason="dockerd is not installed")
def test_dockerd_version_is_parsed() -> None:
    version = Target("dockerd", "dockerd", ("/usr/sbin/dockerd",)).version
    assert version.split(".")[0].isdigit() and "," not in version
