"""save: the dockerd 25+ archive (manifest.json + OCI layout), the names it selects, a load round trip."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from typing import Any

import pytest

from harness.daemon.errors import ApiError
from harness.daemon.images.delete import delete
from harness.daemon.images.save import save
from harness.daemon.images.service import ImageService

from .conftest import BASE, TOP, load_archive, save_archive


def _saved(service: ImageService, names: list[str]) -> tuple[bytes, dict[str, bytes]]:
    path = save(service, names)
    try:
        with open(path, "rb") as fh:
            archive = fh.read()
    finally:
        os.unlink(path)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
    return archive, files


def test_save_round_trip(service: ImageService) -> None:
    events: list[tuple[str, str]] = []
    service.events = lambda action, actor, _attrs: events.append((action, actor))
    load_archive(service, save_archive([BASE, TOP], ["rt:1"]))
    image = service.resolve("rt:1")
    archive, files = _saved(service, ["rt:1"])
    assert {"manifest.json", "index.json", "oci-layout", "repositories"} <= set(files)
    manifest = json.loads(files["manifest.json"])
    assert manifest[0]["RepoTags"] == ["rt:1"] and manifest[0]["Config"] == f"blobs/sha256/{image.id[7:]}"
    for path, diff_id in zip(manifest[0]["Layers"], image.diff_ids, strict=True):
        assert "sha256:" + hashlib.sha256(files[path]).hexdigest() == diff_id
    index = json.loads(files["index.json"])
    assert index["manifests"][0]["annotations"] == {
        "io.containerd.image.name": "docker.io/library/rt:1",
        "org.opencontainers.image.ref.name": "1",
    }
    assert json.loads(files["repositories"]) == {"rt": {"1": image.diff_ids[-1][7:]}}
    assert events[-1] == ("save", image.id)
    assert os.listdir(service.tmp_root) == []  # the export's work files went
    delete(service, "rt:1")
    assert load_archive(service, archive) == ["Loaded image: rt:1\n"]
    assert service.resolve("rt:1").id == image.id


def _items(files: dict[str, bytes]) -> list[dict[str, Any]]:
    return json.loads(files["manifest.json"])  # type: ignore[no-any-return]


def test_names_select_as_dockerd(service: ImageService) -> None:
    load_archive(service, save_archive([BASE], ["app:1", "app:2"]))
    load_archive(service, save_archive([BASE, TOP], ["other:1"]))
    app = service.resolve("app:1")
    _, files = _saved(service, ["app"])  # a bare name: all its tags
    assert [item["RepoTags"] for item in _items(files)] == [["app:1", "app:2"]]
    _, files = _saved(service, [app.id[7:19], "other:1"])  # an ID prefix: no tags
    assert [item["RepoTags"] for item in _items(files)] == [None, ["other:1"]]
    assert "repositories" in files
    _, files = _saved(service, [app.id])
    assert "repositories" not in files and len(json.loads(files["index.json"])["manifests"]) == 1
    for names, status, message in [
        (["nosuch:1"], 404, "reference does not exist"),
        (["nosuch"], 404, "No such image: nosuch"),
        (["sha256:" + "0" * 64], 500, "failed to get digest sha256:"),
        (["Bad Name"], 500, "invalid reference format"),
    ]:
        with pytest.raises(ApiError) as info:
            save(service, names)
        assert info.value.status == status and info.value.message.startswith(message)
    assert os.listdir(service.tmp_root) == []
