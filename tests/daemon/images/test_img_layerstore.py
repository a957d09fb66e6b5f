"""LayerStore: layers by chain ID, tar-split, references (images, pins, children, containers), rw layers."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
from pathlib import Path

import pytest

from harness.daemon.errors import ApiError
from harness.daemon.images.layers import DRIVERS as DRIVER_TYPES
from harness.daemon.images.layerstore import LayerStore, chain_ids

from .conftest import BASE, DRIVERS, TOP


def _store(root: Path, driver: str) -> LayerStore:
    return LayerStore(str(root / "image" / driver), DRIVER_TYPES[driver](str(root / driver)))


@pytest.fixture(params=DRIVERS)
def layers(request: pytest.FixtureRequest, no_mounts_left: Path) -> LayerStore:
    store = _store(no_mounts_left / "root", request.param)
    store.restore()
    return store


def test_chain_ids() -> None:
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    assert chain_ids([]) == []
    assert chain_ids([a]) == [a]
    assert chain_ids([a, b]) == [a, "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()]


# -- layers and tar-split ---------------------------------------------------------------------------
@pytest.mark.parametrize("compress", [False, True])
def test_layer_tar_reassembled_byte_for_byte(layers: LayerStore, compress: bool) -> None:
    base = layers.register(io.BytesIO(gzip.compress(BASE) if compress else BASE))
    top = layers.register(io.BytesIO(TOP), base.chain_id)
    assert base.diff_id == "sha256:" + hashlib.sha256(BASE).hexdigest()
    assert b"".join(layers.tar(base.chain_id)) == BASE
    assert b"".join(layers.tar(top.chain_id)) == TOP
    assert top.chain_id == chain_ids([base.diff_id, top.diff_id])[-1]
    assert layers.get(top.chain_id).parent == base.chain_id
    assert layers.size([base.chain_id, top.chain_id]) == base.size + top.size
    assert layers.size([base.chain_id, "sha256:" + "0" * 64]) == base.size  # missing layers count nothing


def test_overlay_diff_dirs_and_sizes(no_mounts_left: Path) -> None:
    layers = _store(no_mounts_left / "root", "overlay2")
    base = layers.register(io.BytesIO(BASE))
    top = layers.register(io.BytesIO(TOP), base.chain_id)
    diff = Path(layers.driver.root(top.cache_id))
    assert stat.S_ISCHR(os.lstat(diff / "etc" / "passwd").st_mode)
    assert os.getxattr(diff / "opq", "trusted.overlay.opaque") == b"y"
    # overlay2 sizes are disk usage: files once per inode plus symlink target lengths
    assert base.size == len(b"#!shell\n" * 100) + len(b"root:x:0:0\n") + len("passwd") + 3 + 4
    root = no_mounts_left / "root"
    assert (
        root / "image" / "overlay2" / "layerdb" / "sha256" / top.chain_id[7:] / "cache-id"
    ).read_text() == top.cache_id
    assert (root / "overlay2" / top.cache_id / "lower").read_text().startswith("l/")
    dirs = layers.layer_dirs([base.chain_id, top.chain_id])
    assert dirs == [layers.driver.root(base.cache_id), layers.driver.root(top.cache_id)]
    assert layers.metadata(top.chain_id)["UpperDir"] == str(diff)  # type: ignore[index]


def test_vfs_layers_are_full_copies_with_whiteouts_applied(no_mounts_left: Path) -> None:
    layers = _store(no_mounts_left / "root", "vfs")
    base = layers.register(io.BytesIO(BASE))
    top = layers.register(io.BytesIO(TOP), base.chain_id)
    layer_dir = Path(layers.driver.root(top.cache_id))
    assert not (layer_dir / "etc" / "passwd").exists() and (layer_dir / "bin" / "sh").exists()
    assert sorted(os.listdir(layer_dir / "opq")) == ["new"]
    assert base.size == len(b"#!shell\n" * 100) + len(b"root:x:0:0\n") + 3 + 4  # tar header sizes
    assert os.readlink(Path(layers.driver.root(base.cache_id)) / "etc" / "link") == "passwd"
    assert layers.layer_dirs([base.chain_id, top.chain_id]) == [str(layer_dir)]  # only the top: a full copy
    assert layers.layer_dirs([]) == []


def test_same_layer_registered_once(layers: LayerStore) -> None:
    first = layers.register(io.BytesIO(BASE))
    second = layers.register(io.BytesIO(BASE))
    assert first == second and len(layers.driver.ids()) == 1


# -- references ----------------------------------------------------------------------------------------
def test_released_layers_go_with_their_unreferenced_ancestors(layers: LayerStore) -> None:
    base = layers.register(io.BytesIO(BASE))
    top = layers.register(io.BytesIO(TOP), base.chain_id)
    layers.retain(top.chain_id)
    layers.retain(top.chain_id)  # two images on the same top layer
    assert layers.release(top.chain_id) == []
    assert top.chain_id in layers and base.chain_id in layers
    assert layers.release(top.chain_id) == [top, base]  # top first
    assert layers.all_layers() == [] and layers.driver.ids() == []
    assert (
        os.listdir(os.path.join(layers.root, "sha256")) == []
        and os.listdir(os.path.join(layers.root, "tmp")) == []
    )


def test_a_held_ancestor_stays(layers: LayerStore) -> None:
    base = layers.register(io.BytesIO(BASE))
    top = layers.register(io.BytesIO(TOP), base.chain_id)
    layers.retain(base.chain_id)  # an image of the base layer alone
    layers.retain(top.chain_id)
    assert layers.release(top.chain_id) == [top]
    assert [layer.chain_id for layer in layers.all_layers()] == [base.chain_id]


def test_pins_hold_layers_until_the_block_ends(layers: LayerStore) -> None:
    with layers.pinned() as pin:
        base = layers.register(io.BytesIO(BASE), pin=pin)
        top = layers.register(io.BytesIO(TOP), base.chain_id, pin=pin)
        layers.retain(top.chain_id)  # an image came to hold it
    assert top.chain_id in layers and base.chain_id in layers
    with layers.pinned() as pin:
        layers.register(io.BytesIO(gzip.compress(BASE)), pin=pin)  # pins only what it registered
    assert len(layers.all_layers()) == 2
    with pytest.raises(RuntimeError), layers.pinned() as pin:
        other = layers.register(io.BytesIO(TOP), pin=pin)  # TOP alone: a layer of its own
        assert other.chain_id in layers
        raise RuntimeError("the load failed")
    assert other.chain_id not in layers  # released when the block failed


# -- restore ---------------------------------------------------------------------------------------------
def test_restore_reads_layers_back_and_drops_crash_leftovers(layers: LayerStore, tmp_path: Path) -> None:
    base = layers.register(io.BytesIO(BASE))
    top = layers.register(io.BytesIO(TOP), base.chain_id)
    layers.create_rw_layer("c1", top.chain_id)
    os.mkdir(os.path.join(layers.root, "tmp", "write-set-dead"))  # a half-assembled layer
    os.mkdir(os.path.join(layers.root, "sha256", "not-a-digest"))
    torn = os.path.join(layers.root, "sha256", "e" * 64)
    os.mkdir(torn)  # a layer directory without its files
    layers.driver.create("f" * 64, None)  # a driver directory nothing refers to
    os.makedirs(os.path.join(layers.root, "mounts", "c2"))  # a container whose layers never came
    reopened = LayerStore(os.path.dirname(layers.root), type(layers.driver)(layers.driver.home))
    reopened.restore()
    assert sorted(reopened.all_layers(), key=lambda layer: layer.chain_id) == sorted(
        [base, top], key=lambda layer: layer.chain_id
    )
    assert reopened.rw_layer("c1") == layers.rw_layer("c1") and reopened.rw_layer("c2") is None
    assert os.listdir(os.path.join(layers.root, "tmp")) == []
    assert sorted(os.listdir(os.path.join(layers.root, "sha256"))) == sorted(
        [base.chain_id[7:], top.chain_id[7:]]
    )
    assert os.listdir(os.path.join(layers.root, "mounts")) == ["c1"]
    assert "f" * 64 not in reopened.driver.ids()
    reopened.remove_rw_layer("c1")


# -- read-write layers --------------------------------------------------------------------------------------
def test_rw_layer_on_an_image_layer(layers: LayerStore) -> None:
    base = layers.register(io.BytesIO(BASE))
    rw = layers.create_rw_layer("c1", base.chain_id)
    assert layers.create_rw_layer("c1", base.chain_id) == rw  # created once
    assert rw.init_id == rw.mount_id + "-init" and rw.parent == base.chain_id
    rootfs = Path(layers.mount_rootfs("c1"))
    try:
        assert (rootfs / "bin" / "sh").exists() and (rootfs / ".dockerenv").exists()
        assert os.readlink(rootfs / "etc" / "mtab") == "/proc/mounts"
    finally:
        layers.unmount_rootfs("c1")
    assert layers.graph_driver("c1")["Name"] == layers.driver.name
    assert layers.graph_driver("gone") == {"Data": None, "Name": layers.driver.name}
    assert layers.release(base.chain_id) == []  # the container's layer holds it
    layers.remove_rw_layer("c1")
    assert layers.all_layers() == [] and layers.driver.ids() == []  # its last holder went
    layers.remove_rw_layer("c1")  # twice is nothing
    with pytest.raises(ApiError) as info:
        layers.mount_rootfs("c1")
    assert (info.value.status, info.value.message) == (404, "No such container: c1")


def test_rw_layer_on_nothing(layers: LayerStore) -> None:
    rw = layers.create_rw_layer("scratch", "")
    assert rw.parent == "" and not os.path.exists(os.path.join(layers.root, "mounts", "scratch", "parent"))
    layers.remove_rw_layer("scratch")
    assert layers.driver.ids() == []


def test_rw_layer_without_init_files(layers: LayerStore) -> None:
    """An image mount's layer: read-write on the image, none of the init layer's /.dockerenv or /etc/mtab."""
    base = layers.register(io.BytesIO(BASE))
    rw = layers.create_rw_layer("c1-image", base.chain_id, init=False)
    assert rw.init_id == "" and rw.parent == base.chain_id
    rootfs = Path(layers.mount_rootfs("c1-image"))
    try:
        assert (rootfs / "bin" / "sh").exists() and not (rootfs / ".dockerenv").exists()
    finally:
        layers.unmount_rootfs("c1-image")
    layers.restore()  # read back without an init-id
    assert layers.rw_layer("c1-image") == rw
    layers.release(base.chain_id)
    layers.remove_rw_layer("c1-image")
    assert layers.all_layers() == [] and layers.driver.ids() == []
