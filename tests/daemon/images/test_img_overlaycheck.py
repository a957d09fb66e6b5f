"""The overlay probe's cache: a success is remembered per kernel and filesystem, a failure never."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.daemon.images import overlaycheck


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    where = tmp_path / "cache"
    monkeypatch.setattr(overlaycheck, "CACHE_DIR", str(where))
    monkeypatch.setattr(overlaycheck, "_overlay_loaded", lambda: True)
    return where


def _counting_probe(monkeypatch: pytest.MonkeyPatch, verdict: str) -> list[str]:
    calls: list[str] = []

    def probe(home: str) -> str:
        calls.append(home)
        return verdict

    monkeypatch.setattr(overlaycheck, "_probe", probe)
    return calls


def test_a_success_is_remembered_and_the_next_check_does_not_mount(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _counting_probe(monkeypatch, "")
    root = str(tmp_path / "data")
    assert overlaycheck.overlay_supported(root, "extfs") == ""
    assert overlaycheck.overlay_supported(str(tmp_path / "other-root"), "extfs") == ""
    assert calls == [root]  # the second data-root is on the same mount: no second probe
    assert os.listdir(cache) == [overlaycheck.probe_key(root)]


def test_a_failure_is_not_remembered_and_is_reported_every_time(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _counting_probe(monkeypatch, "failed to mount overlay: no such device")
    root = str(tmp_path / "data")
    for _ in range(2):
        assert overlaycheck.overlay_supported(root, "extfs") == "failed to mount overlay: no such device"
    assert len(calls) == 2
    assert not cache.exists()


def test_over_overlayfs_is_refused_without_a_probe(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _counting_probe(monkeypatch, "")
    assert (
        overlaycheck.overlay_supported(str(tmp_path), "overlayfs")
        == "'overlay' is not supported over overlayfs"
    )
    assert calls == []


def test_the_key_follows_the_kernel_and_the_backing_mount(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mount = ("/data", "ext4", "/dev/vda", "rw,discard")
    monkeypatch.setattr(overlaycheck, "backing_mount", lambda _path: mount)
    first = overlaycheck.probe_key("/data/docker")
    assert first and overlaycheck.probe_key("/data/other") == first
    mount = ("/data", "ext4", "/dev/vdb", "rw,discard")
    assert overlaycheck.probe_key("/data/docker") not in ("", first)
    mount = ("/data", "xfs", "/dev/vda", "rw,discard")
    assert overlaycheck.probe_key("/data/docker") not in ("", first)
    real = os.uname()
    monkeypatch.setattr(os, "uname", lambda: os.uname_result((*real[:2], "0.0.0-other", *real[3:])))
    mount = ("/data", "ext4", "/dev/vda", "rw,discard")
    assert overlaycheck.probe_key("/data/docker") not in ("", first)


def test_no_key_and_so_no_cache_when_overlay_is_not_loaded(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(overlaycheck, "_overlay_loaded", lambda: False)
    assert overlaycheck.probe_key(str(tmp_path)) == ""
    calls = _counting_probe(monkeypatch, "")
    for _ in range(2):
        assert overlaycheck.overlay_supported(str(tmp_path / "data"), "extfs") == ""
    assert len(calls) == 2 and not cache.exists()


def test_the_real_probe_mounts_and_leaves_nothing(tmp_path: Path, cache: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the test mount needs root")
    root = tmp_path / "data"
    assert overlaycheck.overlay_supported(str(root), "extfs") == ""
    assert os.listdir(root) == []  # the probe's directories are gone
    assert len(os.listdir(cache)) == 1
