"""select_driver: the storage driver dockerd would pick, and its start-up errors."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from harness.daemon.images import storage_driver
from harness.daemon.images.service import ImageService
from harness.daemon.images.storage_driver import StorageInitError, select_driver

from .conftest import BASE


class _Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def warning(self, text: str) -> None:
        self.lines.append(("warning", text))

    def info(self, text: str) -> None:
        self.lines.append(("info", text))

    def error(self, text: str, **_fields: object) -> None:
        self.lines.append(("error", text))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("zfs2", "error initializing graphdriver: driver not supported: zfs2"),
        (
            "aufs",
            "error initializing graphdriver: [graphdriver] ERROR: the aufs storage-driver has been "
            "deprecated",
        ),
        (
            "btrfs",
            "error initializing graphdriver: prerequisites for driver not satisfied (wrong "
            "filesystem?): btrfs",
        ),
    ],
)
def test_configured_driver_errors(tmp_path: Path, name: str, message: str) -> None:
    log = _Log()
    with pytest.raises(StorageInitError) as info:
        select_driver(name, str(tmp_path), log)
    assert str(info.value).startswith(message)
    assert ("info", f"[graphdriver] trying configured driver: {name}") in log.lines


def test_prior_driver_is_reused(tmp_path: Path) -> None:
    ImageService(str(tmp_path), "vfs").layers.register(io.BytesIO(BASE))
    log = _Log()
    assert select_driver("", str(tmp_path), log).name == "vfs"
    assert ("info", "[graphdriver] using prior storage driver: vfs") in log.lines
    assert ImageService(str(tmp_path)).driver_name == "vfs"


def test_several_prior_drivers_need_a_choice(tmp_path: Path) -> None:
    for name in ("vfs/dir/x", "overlay2/x"):
        (tmp_path / name).mkdir(parents=True)
    with pytest.raises(StorageInitError, match="contains several valid graphdrivers: overlay2, vfs; cleanup"):
        select_driver("", str(tmp_path))


def test_falls_back_to_vfs_with_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        storage_driver, "overlay_supported", lambda _root: "failed to mount overlay: no such device"
    )
    log = _Log()
    service = ImageService(str(tmp_path), "", log)
    assert service.driver_name == "vfs" and service.driver_status() is None
    assert (
        "warning",
        "[graphdriver] overlay2 is not supported here (failed to mount overlay: no such device); "
        "falling back to vfs",
    ) in log.lines
    with pytest.raises(
        StorageInitError, match=r"^error initializing graphdriver: driver not supported: overlay2$"
    ):
        ImageService(str(tmp_path / "other"), "overlay2", log)
    assert ("error", "failed to mount overlay: no such device") in log.lines


def test_overlay2_is_the_default_here(tmp_path: Path) -> None:
    service = ImageService(str(tmp_path))
    assert service.driver_name == "overlay2"
    assert [k for k, _ in service.driver_status() or []] == [
        "Backing Filesystem",
        "Supports d_type",
        "Using metacopy",
        "Native Overlay Diff",
        "userxattr",
    ]
