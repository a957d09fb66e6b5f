"""delete and prune: dockerd's ImageDelete records, conflicts and messages; ImagesPrune."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness.daemon.errors import ApiError
from harness.daemon.images.delete import delete, prune
from harness.daemon.images.reference import parse_normalized_named
from harness.daemon.images.service import ImageService

from .conftest import BASE, TOP, load_archive, save_archive


def test_untag_then_delete_with_the_layers(service: ImageService) -> None:
    load_archive(service, save_archive([BASE, TOP], ["busybox:latest"]))
    image = service.resolve("busybox")
    service.tag(image, parse_normalized_named("other:v1"))
    assert delete(service, "other:v1") == [{"Untagged": "other:v1"}]
    records = delete(service, "busybox")
    chains = image.chain
    assert records == [
        {"Untagged": "busybox:latest"},
        {"Deleted": image.id},
        {"Deleted": chains[1]},
        {"Deleted": chains[0]},
    ]
    assert (
        service.images.count() == 0
        and service.layers.driver.ids() == []
        and service.layers.all_layers() == []
    )
    root = Path(service.root)
    assert os.listdir(root / "imagedb" / "content" / "sha256") == []
    assert json.loads((root / "repositories.json").read_text()) == {"Repositories": {}}
    with pytest.raises(ApiError) as info:
        delete(service, "busybox")
    assert (info.value.status, info.value.message) == (404, "No such image: busybox:latest")


def test_delete_conflicts(service: ImageService) -> None:
    load_archive(service, save_archive([BASE], ["one:latest"]))
    image = service.resolve("one")
    service.tag(image, parse_normalized_named("two"))
    with pytest.raises(ApiError) as info:
        delete(service, image.id[7:19])
    assert info.value.status == 409 and "image is referenced in multiple repositories" in info.value.message
    service.in_use_by = lambda image_id: ["c" * 64] if image_id == image.id else []
    service.container_running = lambda cid: True
    with pytest.raises(ApiError) as info:
        delete(service, image.id, force=True)
    assert info.value.message == (
        f"conflict: unable to delete {image.id[7:19]} (cannot be forced) - image is "
        f"being used by running container {'c' * 12}"
    )
    service.container_running = lambda cid: False
    delete(service, "two")
    with pytest.raises(ApiError) as info:
        delete(service, "one")
    assert info.value.message == (
        f'conflict: unable to remove repository reference "one" (must force) - container {"c" * 12} '
        f"is using its referenced image {image.id[7:19]}"
    )
    records = delete(service, "one", force=True)  # a stopped container's image goes with force
    assert records == [{"Untagged": "one:latest"}, {"Deleted": image.id}, {"Deleted": image.top_chain}]


def test_rw_layer_keeps_force_deleted_image_layers(no_mounts_left: Path) -> None:
    service = ImageService(str(no_mounts_left / "root"), "vfs")
    load_archive(service, save_archive([BASE], ["gone:1"]))
    image = service.resolve("gone:1")
    service.layers.create_rw_layer("c2", image.top_chain)
    rootfs = service.layers.mount_rootfs("c2")
    assert (Path(rootfs) / "bin" / "sh").exists() and (Path(rootfs) / ".dockerenv").exists()
    assert delete(service, "gone:1", force=True) == [{"Untagged": "gone:1"}, {"Deleted": image.id}]
    assert service.layers.all_layers()  # still held by the container's layer
    service.layers.remove_rw_layer("c2")
    assert service.layers.all_layers() == [] and service.layers.driver.ids() == []


def test_delete_prunes_dangling_parents(service: ImageService) -> None:
    load_archive(service, save_archive([BASE], None))
    parent = service.images.all_images()[0]
    child = service.images.create(
        json.dumps(
            {"os": "linux", "rootfs": {"type": "layers", "diff_ids": parent.diff_ids}, "c": 1}
        ).encode()
    )
    service.images.set_parent(child, parent)
    service.tag(child, parse_normalized_named("child:1"))
    with pytest.raises(ApiError, match=r"\(cannot be forced\) - image has dependent child images"):
        delete(service, parent.id)
    records = delete(service, "child:1", prune=False)
    assert records == [{"Untagged": "child:1"}, {"Deleted": child.id}] and parent.id in service.images
    service.images.set_parent(service.images.create(child.raw), parent)
    records = delete(service, child.id)
    assert records[-2:] == [{"Deleted": parent.id}, {"Deleted": parent.top_chain}]  # the parent went too


def test_prune_dangling_then_all(service: ImageService) -> None:
    load_archive(service, save_archive([BASE], ["tagged:1"]))
    load_archive(service, save_archive([TOP], None))
    dangling = next(i for i in service.images.all_images() if not service.references.references(i.id))
    size = service.images.size(dangling)
    records, reclaimed = prune(service, True, lambda _image: False)
    assert records == [{"Deleted": dangling.id}, {"Deleted": dangling.top_chain}] and reclaimed == size > 0
    kept, reclaimed = prune(service, False, lambda image: True)  # a filter that keeps everything
    assert (kept, reclaimed) == ([], 0)
    records, _ = prune(service, False, lambda _image: False)
    assert records[0] == {"Untagged": "tagged:1"} and service.images.count() == 0
