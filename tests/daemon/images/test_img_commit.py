"""Diffs of read-write layers and committed child images (the builder's and docker commit's storage side)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from harness.daemon.images.commit import ScratchLayer, child_image_config, commit_layer, spooled_diff
from harness.daemon.images.diff import EMPTY_LAYER, changes_diff, overlay_diff
from harness.daemon.images.service import ImageService

from .conftest import DRIVERS, load_archive, make_tar, save_archive


def _names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getnames()


def test_empty_diff_is_dockerds_empty_tar(tmp_path: Path) -> None:
    out = io.BytesIO()
    overlay_diff(str(tmp_path), out)
    assert out.getvalue() == b"\0" * 1024
    assert "sha256:" + hashlib.sha256(out.getvalue()).hexdigest() == EMPTY_LAYER


def test_overlay_diff_converts_whiteouts(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc" / "new").write_text("n")
    os.mknod(upper / "etc" / "gone", 0o020000, os.makedev(0, 0))
    (upper / "opq").mkdir()
    os.setxattr(upper / "opq", "trusted.overlay.opaque", b"y")
    out = io.BytesIO()
    overlay_diff(str(upper), out)
    assert _names(out.getvalue()) == ["etc", "etc/.wh.gone", "etc/new", "opq", "opq/.wh..wh..opq"]


def test_naive_diff(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    for root in (old, new):
        (root / "d").mkdir(parents=True)
        (root / "same").write_text("s")
        os.utime(root / "same", (1, 1))
    (old / "d" / "removed").write_text("r")
    (new / "d" / "added").write_text("a")
    out = io.BytesIO()
    changes_diff(str(new), str(old), out)
    assert _names(out.getvalue()) == ["d", "d/added", "d/.wh.removed"]  # sorted by path, as ExportChanges


def test_child_config_shape() -> None:
    raw = child_image_config(
        None,
        os_name="linux",
        config={"Cmd": ["sh"], "Healthcheck": {"Retries": 3, "Test": ["NONE"]}},
        container_config={"Cmd": ["/bin/sh", "-c", "#(nop) ", 'CMD ["sh"]']},
        container_id="c" * 64,
        author="me",
        comment="msg",
        diff_id=None,
        created="2020-01-01T00:00:00Z",
        arch="amd64",
    )
    doc = json.loads(raw)
    assert list(doc) == sorted(doc)
    assert doc["history"] == [
        {
            "created": "2020-01-01T00:00:00Z",
            "created_by": '/bin/sh -c #(nop)  CMD ["sh"]',
            "author": "me",
            "comment": "msg",
            "empty_layer": True,
        }
    ]
    assert doc["rootfs"] == {"type": "layers"}
    assert "comment" not in doc and doc["author"] == "me"
    assert list(doc["config"]["Healthcheck"]) == ["Test", "Retries"]


@pytest.mark.parametrize("driver", DRIVERS)
def test_scratch_layer_commit(no_mounts_left: Path, driver: str) -> None:
    store = ImageService(str(no_mounts_left / "root"), driver)
    base = make_tar([("etc", "d", b""), ("etc/passwd", "f", b"root:x:0:0\n"), ("keep", "f", b"k")])
    load_archive(store, save_archive([base], ["base:latest"]))
    parent = store.resolve("base")
    layer = ScratchLayer(store, parent)
    try:
        with open(os.path.join(layer.root, "added"), "w") as fh:
            fh.write("new")
        os.unlink(os.path.join(layer.root, "keep"))
        with spooled_diff(store, layer.diff) as (path, digest):
            child = commit_layer(
                store, parent, path, digest, os_name="linux", config={"Cmd": ["sh"]}, container_config={}
            )
    finally:
        layer.release()
    assert len(child.diff_ids) == 2 and child.parent == parent.id
    assert store.images.is_built_locally(child.id) and not store.images.is_built_locally(parent.id)
    names = _names(b"".join(store.layers.tar(child.top_chain)))
    assert names == ["added", ".wh.keep"]
    assert set(store.layers.driver.ids()) == {layer.cache_id for layer in store.layers.all_layers()}
