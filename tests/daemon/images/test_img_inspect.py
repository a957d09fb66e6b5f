"""inspect_document and history_document: the inspect and history responses, per API version."""

from __future__ import annotations

import json

import pytest

from harness.daemon.errors import ApiError
from harness.daemon.images.inspect import history_document, inspect_document
from harness.daemon.images.reference import parse_normalized_named
from harness.daemon.images.service import ImageService

from .conftest import BASE, TOP, load_archive, save_archive

HISTORY = [
    {"created": "2024-01-01T00:00:00Z", "created_by": "ADD base", "comment": "first"},
    {"created": "2024-01-02T00:00:00Z", "created_by": "ENV x", "empty_layer": True},
    {"created": "2024-01-03T00:00:00Z", "created_by": "ADD top"},
]


def test_inspect_document_per_api_version(service: ImageService) -> None:
    extra = {
        "created": "2024-01-03T00:00:00.50Z",
        "history": HISTORY,
        "config": {"Env": ["x=1"], "Cmd": ["sh"]},
    }
    load_archive(service, save_archive([BASE, TOP], ["insp:1"], extra))
    image = service.resolve("insp:1")
    doc = inspect_document(service, image, (1, 51))
    assert doc["Id"] == image.id and doc["RepoTags"] == ["insp:1"] and doc["RepoDigests"] == []
    assert doc["Created"] == "2024-01-03T00:00:00.5Z" and doc["Comment"] == "" and doc["Os"] == "linux"
    assert (
        doc["Size"] == service.images.size(image)
        and "VirtualSize" not in doc
        and "ContainerConfig" not in doc
    )
    assert doc["GraphDriver"]["Name"] == service.driver_name
    assert doc["RootFS"] == {"Type": "layers", "Layers": image.diff_ids}
    assert doc["Metadata"] == {"LastTagTime": "0001-01-01T00:00:00Z"}  # loaded, never tagged
    assert doc["Config"] == {
        "Cmd": ["sh"],
        "Entrypoint": None,
        "Env": ["x=1"],
        "Labels": None,
        "OnBuild": None,
        "User": "",
        "Volumes": None,
        "WorkingDir": "",
    }
    old = inspect_document(service, image, (1, 43))
    assert old["VirtualSize"] == old["Size"] and "ContainerConfig" in old and "Hostname" in old["Config"]
    service.tag(image, parse_normalized_named("insp:2"))
    assert inspect_document(service, image, (1, 51))["Metadata"]["LastTagTime"] != "0001-01-01T00:00:00Z"


def test_history_document(service: ImageService) -> None:
    load_archive(service, save_archive([BASE, TOP], ["hist:1"], {"history": HISTORY}))
    image = service.resolve("hist:1")
    items = history_document(service, image)
    assert [i["CreatedBy"] for i in items] == ["ADD top", "ENV x", "ADD base"]  # newest first
    assert [i["Size"] for i in items] == [
        service.layers.get(image.chain[1]).size,
        0,
        service.layers.get(image.chain[0]).size,
    ]
    assert items[0]["Id"] == image.id and items[0]["Tags"] == ["hist:1"]  # the image itself
    assert [i["Id"] for i in items[1:]] == ["<missing>", "<missing>"]  # no parents known: loaded
    assert items[2]["Comment"] == "first" and items[2]["Created"] == 1704067200


def test_history_with_more_steps_than_layers_is_refused(service: ImageService) -> None:
    load_archive(service, save_archive([BASE], ["bad:1"]))
    image = service.resolve("bad:1")
    image.config["history"] = [{"created_by": "a"}, {"created_by": "b"}]  # as a config edited on disk
    with pytest.raises(ApiError, match="too many non-empty layers in History section"):
        history_document(service, image)
    assert json.loads(image.raw)["rootfs"]["diff_ids"] == image.diff_ids
