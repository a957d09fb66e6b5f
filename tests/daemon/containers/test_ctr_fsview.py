"""The container filesystem docker cp sees: which mounts make the view, where an extraction may write, and
the private mount namespace the view lives in (root: it mounts)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.daemon.containers.archive import check_writable, stat_path
from harness.daemon.containers.fsview import ViewMount, in_container_fs, view_mounts
from harness.daemon.errors import ApiError

from .conftest import make_container


def test_view_mounts_are_volumes_binds_and_network_files_parents_first(tmp_path: Path) -> None:
    c = make_container(str(tmp_path))
    vol, bind = tmp_path / "vol", tmp_path / "bind"
    vol.mkdir()
    bind.mkdir()
    c.mounts = [
        {"Type": "bind", "Source": str(bind), "Destination": "/data/inner", "RW": False},
        {"Type": "volume", "Source": str(vol), "Destination": "/data", "RW": True},
        {"Type": "tmpfs", "Source": "", "Destination": "/scratch", "RW": True},
        {"Type": "bind", "Source": str(tmp_path / "gone"), "Destination": "/gone", "RW": True},
    ]
    os.makedirs(c.root)
    Path(c.file("hostname")).write_text("box\n")
    assert view_mounts(c) == [
        ViewMount(str(vol), "/data", True),
        ViewMount(str(bind), "/data/inner", False),
        ViewMount(c.file("hostname"), "/etc/hostname", True),
    ]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/ro", "mounted volume is marked read-only"),
        ("/ro/sub/", "mounted volume is marked read-only"),
        ("/rw/../ro", "mounted volume is marked read-only"),
        ("/tmp", "container rootfs is marked read-only"),
        ("/rwx", "container rootfs is marked read-only"),
        ("/ro/../rw", None),
        ("/rw/sub", None),
    ],
)
def test_where_an_extraction_may_write(tmp_path: Path, path: str, message: str | None) -> None:
    c = make_container(str(tmp_path))
    c.host_config["ReadonlyRootfs"] = True
    c.mounts = [
        {"Type": "volume", "Destination": "/ro", "RW": False},
        {"Type": "volume", "Destination": "/rw", "RW": True},
    ]
    if message is None:
        check_writable(c, path)
        return
    with pytest.raises(ApiError) as err:
        check_writable(c, path)
    assert (err.value.status, err.value.message) == (400, message)


class _Layers:
    def __init__(self, rootfs: str) -> None:
        self.rootfs, self.mounted = rootfs, 0

    def mount_rootfs(self, cid: str) -> str:
        self.mounted += 1
        return self.rootfs

    def unmount_rootfs(self, cid: str) -> None:
        self.mounted -= 1


@pytest.mark.skipif(os.geteuid() != 0, reason="binds mounts in a private mount namespace: needs root")
def test_the_view_binds_mounts_in_a_namespace_nobody_else_sees(tmp_path: Path) -> None:
    rootfs, vol = tmp_path / "rootfs", tmp_path / "vol"
    (rootfs / "etc").mkdir(parents=True)
    vol.mkdir()
    (vol / "in-volume").write_text("v\n")
    c = make_container(str(tmp_path))
    c.mounts = [{"Type": "volume", "Source": str(vol), "Destination": "/data", "RW": False}]
    layers = _Layers(str(rootfs))
    daemon = SimpleNamespace(images=SimpleNamespace(layers=layers), volumes=None)

    def look(root: str) -> tuple[str, bool]:
        _, _, doc = stat_path(c, root, "/data/in-volume")
        try:
            (Path(root) / "data" / "new").write_text("x")
            writable = True
        except OSError:
            writable = False
        return doc["name"], writable

    assert asyncio.run(in_container_fs(daemon, c, look)) == ("in-volume", False)  # type: ignore[arg-type]
    assert layers.mounted == 0
    assert (rootfs / "data").is_dir() and not (rootfs / "data" / "in-volume").exists()
    assert not os.path.ismount(rootfs / "data")
    with open("/proc/self/mountinfo") as fh:
        assert str(rootfs) not in fh.read()


@pytest.mark.skipif(os.geteuid() != 0, reason="binds mounts in a private mount namespace: needs root")
def test_the_view_shows_a_subpath_and_an_image_mount_and_refuses_an_escaping_subpath(tmp_path: Path) -> None:
    rootfs, vol, image = tmp_path / "rootfs", tmp_path / "vol", tmp_path / "image"
    (rootfs / "etc").mkdir(parents=True)
    (vol / "sub").mkdir(parents=True)
    (vol / "sub" / "inside.txt").write_text("sub\n")
    (vol / "out").symlink_to("/")
    (image / "www").mkdir(parents=True)
    (image / "www" / "index.html").write_text("img\n")
    c = make_container(str(tmp_path))
    c.mounts = [
        {
            "Type": "volume",
            "Source": str(vol),
            "Destination": "/v",
            "RW": True,
            "Spec": {"VolumeOptions": {"Subpath": "sub"}},
        },
        {
            "Type": "image",
            "Source": "",
            "Destination": "/image",
            "RW": False,
            "LayerID": "c-image",
            "Spec": {"ImageOptions": {"Subpath": "www"}},
        },
    ]

    class Layers(_Layers):
        def mount_rootfs(self, cid: str) -> str:
            self.mounted += 1
            return str(rootfs) if cid == c.id else str(image)

    layers = Layers(str(rootfs))
    daemon = SimpleNamespace(images=SimpleNamespace(layers=layers), volumes=None)

    def look(root: str) -> list[str]:
        return [stat_path(c, root, p)[2]["name"] for p in ("/v/inside.txt", "/image/index.html")]

    assert asyncio.run(in_container_fs(daemon, c, look)) == ["inside.txt", "index.html"]  # type: ignore[arg-type]
    assert layers.mounted == 0
    c.mounts[0]["Spec"] = {"VolumeOptions": {"Subpath": "out"}}
    with pytest.raises(ApiError) as err:
        asyncio.run(in_container_fs(daemon, c, look))  # type: ignore[arg-type]
    assert err.value.status == 400 and "escapes the base directory" in err.value.message
    assert layers.mounted == 0
