"""The pinned docker CLI: which binary scenarios run, the version reports name, and the errors that stop a run
instead of falling back to whatever ``docker`` the host has."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import dockercli
from harness.config import resolve_config
from harness.debpkg import DebPkgError, Unpacked
from harness.dockercli import DockerCLIError
from harness.endpoints import Endpoint
from harness.errors import ConfigValueError
from harness.fixtures import make_cli

FAKE = """#!/bin/sh
if [ "$1" = "--version" ]; then echo "Docker version {version}, build abc123"; exit 0; fi
echo "argv: $*"
"""


def _fake_cli(path: Path, version: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(FAKE.format(version=version))
    path.chmod(0o755)
    return path


@pytest.fixture(autouse=True)
def _fresh_resolution(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test resolves anew (resolve() remembers its answer for the process)."""
    monkeypatch.delenv(dockercli.ENV, raising=False)
    dockercli.resolve.cache_clear()
    yield
    dockercli.resolve.cache_clear()


def _fetched(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, version: str) -> list[tuple[str, str, str]]:
    asked: list[tuple[str, str, str]] = []

    def fake_fetch(suite: str, package: str, *, version: str | None = None, **_: object) -> Unpacked:
        asked.append((suite, package, str(version)))
        entry = tmp_path / "entry"
        return Unpacked(suite, package, f"{cli_version}-1", "amd64", False, entry)

    cli_version = version
    _fake_cli(tmp_path / "entry/root/usr/bin/docker", version)
    monkeypatch.setattr(dockercli, "fetch", fake_fetch)
    return asked


def test_the_default_is_debian_sids_docker_cli_28_5(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    asked = _fetched(monkeypatch, tmp_path, "28.5.2+dfsg4")
    cli = dockercli.resolve(dockercli.selected())
    assert asked == [("sid", "docker-cli", "28.5")]
    assert cli.path == str(tmp_path / "entry/root/usr/bin/docker")
    assert cli.describe() == "28.5.2+dfsg4 (Debian sid docker-cli 28.5.2+dfsg4-1)"


@pytest.mark.parametrize(
    ("spec", "where"), [("26.1", ("trixie", "docker-cli")), ("20.10", ("bookworm", "docker.io"))]
)
def test_older_pins_come_from_their_suites(
    spec: str, where: tuple[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    asked = _fetched(monkeypatch, tmp_path, f"{spec}.9")
    monkeypatch.setenv(dockercli.ENV, spec)
    assert dockercli.resolve(dockercli.selected()).version == f"{spec}.9"
    assert asked == [(*where, spec)]


def test_a_binary_that_is_not_the_pinned_version_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _fetched(monkeypatch, tmp_path, "29.0.1")
    with pytest.raises(DockerCLIError, match=r"says it is 29\.0\.1, not the pinned 28\.5"):
        dockercli.resolve("28.5")


def test_a_cli_that_cannot_be_fetched_stops_with_the_way_out(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*_a: object, **_k: object) -> Unpacked:
        raise DebPkgError("apt-get update (sid) failed (exit 100): the Debian mirror could not be reached")

    monkeypatch.setattr(dockercli, "fetch", offline)
    with pytest.raises(DockerCLIError) as info:
        dockercli.resolve("28.5")
    text = str(info.value)
    assert text.startswith("the pinned docker CLI 28.5 (Debian sid's docker-cli) cannot be fetched: apt-get")
    assert "Point --docker-cli (or HARNESS_DOCKER_CLI) at a docker binary" in text


def test_a_path_is_used_as_given_with_its_version(tmp_path: Path) -> None:
    fake = _fake_cli(tmp_path / "bin/docker", "27.0.3")
    cli = dockercli.resolve(str(fake))
    assert (cli.path, cli.version, cli.source) == (str(fake), "27.0.3", f"path {fake}")
    with pytest.raises(DockerCLIError, match="no executable file there"):
        dockercli.resolve(str(tmp_path / "bin/absent"))
    with pytest.raises(DockerCLIError, match=r"choose a pinned version \(28\.5, 26\.1, 20\.10"):
        dockercli.resolve("27")


def test_scenarios_run_the_pinned_cli_not_the_one_on_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pinned = _fake_cli(tmp_path / "pinned/docker", "28.5.2")
    on_path = _fake_cli(tmp_path / "path/docker", "20.10.24")
    monkeypatch.setenv("PATH", f"{on_path.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv(dockercli.ENV, str(pinned))
    run = make_cli(Endpoint("unix", "/run/nowhere.sock"), str(tmp_path / "home"))
    assert run("ps").stdout == "argv: -H unix:///run/nowhere.sock ps\n"
    assert shutil.which("docker") == str(on_path)  # the host's, never used


def test_without_a_cli_the_scenario_fails_naming_why(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(dockercli.ENV, str(tmp_path / "nothing-here"))
    run = make_cli(Endpoint("unix", "/run/nowhere.sock"), str(tmp_path / "home"))
    with pytest.raises(pytest.fail.Exception, match="no docker CLI for this scenario: --docker-cli"):
        run("ps")


def _config(**options: object) -> object:
    def option(name: str) -> object:
        return options.get(name)

    return resolve_config(option, lambda _name: "")


def test_the_option_takes_a_pin_or_a_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("harness.targets.default_targets", lambda: ["refd"])
    assert _config(targets="refd", docker_cli="26.1").docker_cli == "26.1"  # type: ignore[attr-defined]
    assert _config(targets="refd", docker_cli="/opt/docker").docker_cli == "/opt/docker"  # type: ignore[attr-defined]
    assert _config(targets="refd").docker_cli == ""  # type: ignore[attr-defined]
    with pytest.raises(ConfigValueError, match="unknown docker CLI '27' from command line: choose a pinned"):
        _config(targets="refd", docker_cli="27")


@pytest.mark.skipif(shutil.which("apt-get") is None or os.geteuid() != 0, reason="needs apt-get and root")
def test_the_real_default_cli_is_28_5_and_runs_here() -> None:
    """Debian sid's docker-cli, fetched (or from the cache), runs on this machine's libc."""
    cli = dockercli.resolve(dockercli.DEFAULT)
    assert cli.version.startswith("28.5.") and cli.source.startswith("Debian sid docker-cli 28.5.")
    res = subprocess.run([cli.path, "--help"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0 and "Usage:  docker [OPTIONS] COMMAND" in res.stdout
