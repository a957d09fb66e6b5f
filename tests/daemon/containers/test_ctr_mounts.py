"""Mount wiring: inspect's Mounts from Binds, Mounts and the image's Volumes; the rootfs and volumes
mounted at start and released at exit; anonymous volumes taken along by rm -v."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness.daemon.containers.mounts import MountWiring, volume_names
from harness.daemon.errors import ApiError

from .conftest import make_container


@dataclass
class _Volume:
    name: str
    anonymous: bool


class FakeVolumes:
    """What the wiring asks of the volume store, recorded."""

    def __init__(self, root: Path, fail_mount: str = "") -> None:
        self.root = root
        self.volumes: dict[str, _Volume] = {}
        self.active: dict[str, set[str]] = {}
        self.calls: list[tuple[str, ...]] = []
        self.fail_mount = fail_mount
        self.count = 0

    def create(self, name: str, anonymous: bool = False) -> _Volume:
        if not name:
            self.count += 1
            name = f"anon{self.count}"
        return self.volumes.setdefault(name, _Volume(name, anonymous))

    def path(self, name: str) -> str:
        return str(self.root / name / "_data")

    def mount(self, name: str, cid: str) -> None:
        if name == self.fail_mount:
            raise OSError("mount failed")
        self.calls.append(("mount", name))

    def unmount(self, name: str, cid: str) -> None:
        self.calls.append(("unmount", name))

    def copy_up(self, name: str, source: str) -> None:
        self.calls.append(("copy_up", name, source))

    def remove(self, name: str) -> None:
        self.calls.append(("remove", name))
        del self.volumes[name]


class FakeLayers:
    def __init__(self, rootfs: str) -> None:
        self.rootfs = rootfs
        self.calls: list[tuple[str, str]] = []

    def mount_rootfs(self, cid: str) -> str:
        self.calls.append(("mount_rootfs", cid))
        return self.rootfs

    def unmount_rootfs(self, cid: str) -> None:
        self.calls.append(("unmount_rootfs", cid))

    def remove_rw_layer(self, cid: str) -> None:
        self.calls.append(("remove_rw_layer", cid))


def _wiring(tmp_path: Path, **volume_options: Any) -> tuple[MountWiring, FakeVolumes, FakeLayers]:
    volumes = FakeVolumes(tmp_path / "volumes", **volume_options)
    layers = FakeLayers(str(tmp_path / "rootfs"))
    daemon = SimpleNamespace(volumes=volumes, images=SimpleNamespace(layers=layers))
    return MountWiring(daemon), volumes, layers  # type: ignore[arg-type]


def test_binds_mounts_and_image_volumes_become_inspects_mounts(tmp_path: Path) -> None:
    wiring, volumes, _ = _wiring(tmp_path)
    c = make_container(str(tmp_path), Volumes={"/data": {}, "/cache": {}})
    c.host_config["Binds"] = ["/srv:/srv:ro,rshared", "named:/data"]
    c.host_config["Mounts"] = [
        {"Type": "volume", "Target": "/v", "VolumeOptions": {"NoCopy": True}},
        {"Type": "bind", "Source": "/etc", "Target": "/host-etc", "ReadOnly": True},
        {"Type": "tmpfs", "Target": "/run"},
        {"Type": "npipe", "Target": "/ignored"},
    ]
    points = wiring.mount_points(c)
    assert points[0] == {
        "Type": "bind",
        "Source": "/srv",
        "Destination": "/srv",
        "Mode": "ro,rshared",
        "RW": False,
        "Propagation": "rshared",
    }
    assert (points[1]["Name"], points[1]["Destination"], points[1]["Mode"], points[1]["RW"]) == (
        "named",
        "/data",
        "z",
        True,
    )
    assert points[2]["Name"] == "anon1" and points[2]["NoCopy"] is True and volumes.volumes["anon1"].anonymous
    assert points[3]["Propagation"] == "rprivate" and points[3]["RW"] is False
    assert points[4] == {
        "Type": "tmpfs",
        "Source": "",
        "Destination": "/run",
        "Mode": "",
        "RW": True,
        "Propagation": "",
    }
    # /data is taken by the bind: only /cache gets an anonymous volume from the image
    assert [(p["Destination"], p["Name"]) for p in points[5:]] == [("/cache", "anon2")]
    c.mounts = points
    assert volume_names(c) == ["named", "anon1", "anon2"]


@pytest.mark.parametrize("bind", ["/only-one-part", ":/x", "/x:"])
def test_a_bad_bind_is_dockerds_400(tmp_path: Path, bind: str) -> None:
    wiring, _, _ = _wiring(tmp_path)
    c = make_container(str(tmp_path))
    c.host_config["Binds"] = [bind]
    with pytest.raises(ApiError) as err:
        wiring.mount_points(c)
    assert (err.value.status, err.value.message) == (400, f"invalid volume specification: '{bind}'")


def test_start_mounts_rootfs_then_volumes_and_fills_them_unless_nocopy(tmp_path: Path) -> None:
    wiring, volumes, layers = _wiring(tmp_path)
    c = make_container(str(tmp_path))
    c.mounts = [
        {"Type": "volume", "Name": "a", "Destination": "/a"},
        {"Type": "volume", "Name": "b", "Destination": "/b", "NoCopy": True},
        {"Type": "bind", "Source": "/srv", "Destination": "/srv"},
    ]
    assert wiring.mount(c) == str(tmp_path / "rootfs")
    assert layers.calls == [("mount_rootfs", c.id)]
    assert volumes.calls == [
        ("mount", "a"),
        ("mount", "b"),
        ("copy_up", "a", os.path.join(tmp_path, "rootfs", "a")),
    ]
    volumes.calls.clear()
    wiring.unmount_volumes(c)
    wiring.unmount_rootfs(c)
    assert volumes.calls == [("unmount", "a"), ("unmount", "b")]
    assert layers.calls[-1] == ("unmount_rootfs", c.id)


def test_a_volume_that_fails_to_mount_releases_the_ones_before_it(tmp_path: Path) -> None:
    wiring, volumes, _ = _wiring(tmp_path, fail_mount="b")
    c = make_container(str(tmp_path))
    c.mounts = [{"Type": "volume", "Name": n, "Destination": f"/{n}"} for n in ("a", "b", "c")]
    with pytest.raises(OSError):
        wiring.mount(c)
    assert volumes.calls == [("mount", "a"), ("unmount", "a")]


def test_rm_v_takes_only_unused_anonymous_volumes(tmp_path: Path) -> None:
    wiring, volumes, layers = _wiring(tmp_path)
    for name, anonymous in (("anon", True), ("shared", True), ("named", False)):
        volumes.create(name, anonymous=anonymous)
    c = make_container(str(tmp_path))
    c.mounts = [{"Type": "volume", "Name": n} for n in ("anon", "shared", "named")]
    wiring.remove_layer(c)
    wiring.remove_anonymous_volumes(c, lambda name: ["other"] if name == "shared" else [])
    assert layers.calls == [("remove_rw_layer", c.id)]
    assert volumes.calls == [("remove", "anon")] and set(volumes.volumes) == {"shared", "named"}


def test_live_restore_marks_the_volumes_still_mounted(tmp_path: Path) -> None:
    wiring, volumes, _ = _wiring(tmp_path)
    c = make_container(str(tmp_path))
    c.mounts = [{"Type": "volume", "Name": "a"}]
    wiring.restore(c)
    assert volumes.active == {"a": {c.id}}


def test_without_volumes_or_layers_nothing_is_mounted(tmp_path: Path) -> None:
    wiring = MountWiring(SimpleNamespace())  # type: ignore[arg-type]
    c = make_container(str(tmp_path))
    c.mounts = [{"Type": "volume", "Name": "a", "Destination": "/a"}]
    assert wiring.mount(c) == ""
    c.host_config["Binds"] = ["named:/x"]
    with pytest.raises(ApiError) as err:
        wiring.mount_points(c)
    assert err.value.message == "volumes are not available"
