"""ImageStore: image configs by digest, their layers held, parents, metadata, restore that verifies."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import pytest

from harness.daemon.errors import ApiError
from harness.daemon.images.imagestore import ImageStore
from harness.daemon.images.layers import VfsDriver
from harness.daemon.images.layerstore import LayerStore

from .conftest import BASE, TOP


def _stores(root: Path) -> tuple[ImageStore, LayerStore]:
    layers = LayerStore(str(root / "image" / "vfs"), VfsDriver(str(root / "vfs")))
    layers.restore()
    images = ImageStore(str(root / "image" / "vfs"), layers)
    images.restore()
    return images, layers


def _config(diff_ids: list[str], **extra: object) -> bytes:
    return json.dumps({"os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}, **extra}).encode()


@pytest.fixture
def stores(tmp_path: Path) -> tuple[ImageStore, LayerStore]:
    return _stores(tmp_path)


def test_create_stores_the_config_by_its_digest_and_holds_its_layer(
    stores: tuple[ImageStore, LayerStore],
) -> None:
    images, layers = stores
    base = layers.register(io.BytesIO(BASE))
    raw = _config([base.diff_id], config={"Labels": {"a": "b"}})
    image = images.create(raw)
    assert image.id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert images.create(raw) is image and images.count() == 1  # the same config twice: one image
    assert Path(images.content_path(image.id)).read_bytes() == raw
    assert image.labels == {"a": "b"} and image.chain == [base.chain_id] and image.top_chain == base.chain_id
    assert images.size(image) == base.size
    assert images[image.id] is image and images.get("sha256:" + "0" * 64) is None
    assert images.delete(image) == [base]  # the image was the holder of its layer
    assert images.count() == 0 and not os.path.exists(images.content_path(image.id))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "invalid character in image config"),
        (b'{"os": "linux"}', "invalid image JSON, no RootFS key"),
        (b"[]", "invalid image JSON, no RootFS key"),
        (_config([], history=[{"created_by": "x"}]), "too many non-empty layers in History section"),
        (_config(["sha256:" + "1" * 64]), "failed to get layer sha256:1111"),
    ],
)
def test_create_refuses_bad_configs(stores: tuple[ImageStore, LayerStore], raw: bytes, message: str) -> None:
    images, _ = stores
    with pytest.raises(ApiError, match=message) as info:
        images.create(raw)
    assert info.value.status == 400 and images.count() == 0


def test_search_children_parents_and_metadata(stores: tuple[ImageStore, LayerStore]) -> None:
    images, layers = stores
    base = layers.register(io.BytesIO(BASE))
    parent = images.create(_config([base.diff_id]))
    child = images.create(_config([base.diff_id], comment="child"))
    assert images.search(parent.id) is parent and images.search(parent.id[7:19]) is parent
    assert images.search("") is None and images.search("sha256:") is None  # ambiguous: every image
    images.set_parent(child, parent)
    assert child.parent == parent.id and images.children(parent.id) == [child.id]
    images.set_built_locally(child)
    images.set_last_updated(child, "2024-01-02T03:04:05Z")
    assert images.is_built_locally(child.id) and not images.is_built_locally(parent.id)
    reopened, _ = _stores(Path(images.root).parent.parent.parent)
    again = reopened[child.id]
    assert (again.parent, again.last_updated) == (parent.id, "2024-01-02T03:04:05Z")
    images.delete(parent)
    assert child.parent == "" and images.children(parent.id) == []


def test_restore_verifies_configs_and_their_layers(tmp_path: Path) -> None:
    images, layers = _stores(tmp_path)
    base = layers.register(io.BytesIO(BASE))
    top = layers.register(io.BytesIO(TOP), base.chain_id)
    kept = images.create(_config([base.diff_id, top.diff_id]))
    content = Path(images.content_path(kept.id)).parent
    (content / ("a" * 64)).write_bytes(b'{"rootfs":')  # torn: its digest does not match
    lost = _config(["sha256:" + "2" * 64])
    (content / hashlib.sha256(lost).hexdigest()).write_bytes(lost)  # its layer is gone
    (content / ".tmp-partial").write_bytes(b"{")
    reopened, relayers = _stores(tmp_path)
    assert [i.id for i in reopened.all_images()] == [kept.id]
    assert sorted(os.listdir(content)) == sorted([kept.id[7:], hashlib.sha256(lost).hexdigest()])
    top_layer, base_layer = relayers.get(top.chain_id), relayers.get(base.chain_id)
    assert reopened.delete(reopened[kept.id]) == [
        top_layer,
        base_layer,
    ]  # restored, it holds its layers again
