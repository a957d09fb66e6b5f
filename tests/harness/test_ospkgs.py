"""OS package checks: probes first, dpkg as fallback; without root the missing packages are named."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from harness import ospkgs


@pytest.fixture
def probes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    present = tmp_path / "present-tool"
    present.write_text("")
    table = {"here": str(present), "gone": str(tmp_path / "no-such-tool-anywhere")}
    monkeypatch.setattr(ospkgs, "PROBES", table)
    return table


def _only_apt_get(tool: str) -> str | None:
    return "/usr/bin/apt-get" if tool == "apt-get" else None


def test_missing_uses_the_probes(probes: dict[str, str]) -> None:
    assert ospkgs.missing(["here", "gone"]) == ["gone"]


def test_nothing_missing_needs_nothing(probes: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("nothing should run"))
    assert ospkgs.ensure(["here"]) == 0


def test_without_root_the_packages_are_named(
    probes: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert ospkgs.ensure(["here", "gone"]) == 1
    assert "missing OS packages: gone; install them (e.g. apt-get install gone)" in capsys.readouterr().err


def test_unprobed_package_without_dpkg_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_dpkg(*args: object, **kwargs: object) -> None:
        raise FileNotFoundError("dpkg")

    monkeypatch.setattr(subprocess, "run", no_dpkg)
    assert ospkgs.missing(["some-package"]) == ["some-package"]


def test_a_failed_install_is_reported(
    probes: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr("harness.ospkgs.shutil.which", _only_apt_get)
    calls: list[list[str]] = []

    def fake_run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0 if "update" in argv else 100)

    monkeypatch.setattr(subprocess, "run", fake_run)
    assert ospkgs.ensure(["gone"]) == 1
    assert calls[-1][-1] == "gone" and "install" in calls[-1]
    assert "apt-get install gone failed (exit 100)" in capsys.readouterr().err


def test_an_install_that_does_not_provide_the_probe_is_reported(
    probes: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr("harness.ospkgs.shutil.which", _only_apt_get)
    monkeypatch.setattr(subprocess, "run", lambda argv, **kw: subprocess.CompletedProcess(argv, 0))
    assert ospkgs.ensure(["gone"]) == 1
    assert "still missing: gone" in capsys.readouterr().err


def test_another_roots_packages_are_looked_up_in_its_files(
    probes: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A root directory is judged by its own files: a probe's tool anywhere on a root login's PATH there
    counts, the host's own files do not."""
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/ip").write_text("")
    monkeypatch.setattr(ospkgs, "PROBES", {"iproute2": "/usr/sbin/ip", "here": probes["here"]})
    assert ospkgs.missing(["iproute2", "here"], root=str(root)) == ["here"]
    assert ospkgs.missing(["iproute2"], root=str(tmp_path / "empty")) == ["iproute2"]
