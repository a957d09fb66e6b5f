"""Local volumes with mount options: dockerd's option checks and mount-on-first-use, unmount-on-last."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.daemon.errors import ApiError
from harness.daemon.volumes import VolumeStore


@pytest.fixture
def store(tmp_path: Path) -> VolumeStore:
    return VolumeStore(str(tmp_path / "data-root"))


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        ({"colour": "blue"}, 'create vol: invalid option: "colour"'),
        ({"type": "tmpfs"}, 'create vol: missing required option: "device"'),
        ({"device": "tmpfs"}, 'create vol: missing required option: "type"'),
        ({"o": "size=1m"}, 'create vol: missing required option: "device"'),
        ({"size": "10m"}, "create vol: quota size requested but no quota support"),
    ],
)
def test_options_are_checked_at_create(store: VolumeStore, opts: dict[str, str], message: str) -> None:
    with pytest.raises(ApiError) as info:
        store.create("vol", options=opts)
    assert (info.value.status, info.value.message) == (400, message)
    assert "vol" not in store.volumes


def test_plain_volume_needs_no_mount(store: VolumeStore) -> None:
    store.create("plain")
    store.mount("plain", "c1")
    assert store.active == {"plain": {"c1"}}
    store.unmount("plain", "c1")
    store.unmount("plain", "c1")  # twice is harmless
    assert store.active == {}


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")
def test_tmpfs_volume_is_mounted_for_its_users_only(store: VolumeStore) -> None:
    store.create("tv", options={"type": "tmpfs", "device": "tmpfs", "o": "size=1m,nodev"})
    path = store.path("tv")

    def mounted() -> bool:
        with open("/proc/self/mountinfo") as fh:
            return any(line.split()[4] == os.path.realpath(path) for line in fh)

    store.mount("tv", "c1")
    store.mount("tv", "c2")
    assert mounted()
    Path(path, "f").write_text("x")
    store.unmount("tv", "c1")
    assert mounted()  # c2 still uses it
    store.unmount("tv", "c2")
    assert not mounted() and not os.listdir(path)  # the tmpfs and its content are gone


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")
def test_mount_failure_names_device_target_and_flags(store: VolumeStore, tmp_path: Path) -> None:
    store.create("bv", options={"type": "none", "o": "bind", "device": str(tmp_path / "missing")})
    with pytest.raises(ApiError) as info:
        store.mount("bv", "c1")
    target = store.path("bv")
    assert info.value.message == (
        f"error while mounting volume '{target}': failed to mount local volume: "
        f"mount {tmp_path / 'missing'}:{target}, flags: 0x1000: no such file or directory"
    )
    assert store.active == {}


def test_a_volume_named_by_the_daemon_is_labelled_anonymous(store: VolumeStore) -> None:
    anonymous = store.create("", labels={"a": "b"})
    assert len(anonymous.name) == 64 and anonymous.anonymous
    assert anonymous.labels == {"a": "b", "com.docker.volume.anonymous": ""}
    assert store.create("named").labels == {}


def test_copy_up_fills_only_an_empty_directory(store: VolumeStore, tmp_path: Path) -> None:
    image_dir = tmp_path / "image-bin"
    image_dir.mkdir()
    (image_dir / "busybox").write_text("#!")
    target = tmp_path / "vol-sub"
    target.mkdir()
    store.copy_up_into(str(target), str(image_dir))
    assert (target / "busybox").read_text() == "#!"
    (image_dir / "later").write_text("x")
    store.copy_up_into(str(target), str(image_dir))
    assert not (target / "later").exists()
