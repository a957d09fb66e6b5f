"""summaries: the image list of docker images and system df, its filters, shared sizes, API versions."""

from __future__ import annotations

import json
import time

import pytest

from harness.daemon.errors import ApiError
from harness.daemon.images.reference import parse_normalized_named
from harness.daemon.images.service import ImageService
from harness.daemon.images.summaries import ListOptions, for_api_version, layers_size, summaries

from .conftest import BASE, TOP, load_archive, save_archive


def _ids(service: ImageService, **kw: object) -> list[str]:
    return [s["Id"] for s in summaries(service, ListOptions(**kw))]  # type: ignore[arg-type]


@pytest.fixture
def three(service: ImageService) -> ImageService:
    """old:1 (2001, label a=1), new:1 (2021, on old's base layer), a dangling image (2011)."""
    load_archive(
        service,
        save_archive(
            [BASE], ["old:1"], {"created": "2001-01-01T00:00:00Z", "config": {"Labels": {"a": "1"}}}
        ),
    )
    load_archive(service, save_archive([BASE, TOP], ["new:1"], {"created": "2021-01-01T00:00:00.5Z"}))
    load_archive(service, save_archive([TOP], None, {"created": "2011-01-01T00:00:00Z"}))
    return service


def test_newest_first_with_names_and_sizes(three: ImageService) -> None:
    service = three
    old, new = service.resolve("old:1"), service.resolve("new:1")
    listed = summaries(service, ListOptions())
    assert [s["RepoTags"] for s in listed] == [["new:1"], None, ["old:1"]]
    first = listed[0]
    assert first["Id"] == new.id and first["Size"] == service.images.size(new) and first["SharedSize"] == -1
    assert first["Created"] == new.created_unix and first["ParentId"] == "" and first["Containers"] == 0
    assert listed[2]["Labels"] == {"a": "1"}
    shared = summaries(service, ListOptions(shared_size=True))
    base_size = service.layers.get(old.top_chain).size
    assert [s["SharedSize"] for s in shared] == [base_size, 0, base_size]
    dangling = service.resolve(listed[1]["Id"])
    assert layers_size(service) == service.images.size(new) + service.images.size(dangling)  # BASE once


def test_filters(three: ImageService) -> None:
    service = three
    old, new = service.resolve("old:1"), service.resolve("new:1")
    dangling = [i.id for i in service.images.all_images() if i.id not in (old.id, new.id)]
    assert _ids(service, filters={"dangling": ["true"]}) == dangling
    assert _ids(service, filters={"dangling": ["false"]}) == [new.id, old.id]
    assert _ids(service, filters={"label": ["a=1"]}) == [old.id]
    assert _ids(service, filters={"before": ["new:1"]}) == [*dangling, old.id]
    assert _ids(service, filters={"since": ["old:1"]}) == [new.id, *dangling]
    assert _ids(service, filters={"until": ["2015-01-01T00:00:00Z"]}) == [*dangling, old.id]
    assert _ids(service, filters={"until": [str(time.time() + 60)], "reference": ["n*"]}) == [new.id]
    for filters, status, message in [
        ({"dangling": ["maybe"]}, 400, "invalid filter 'dangling=[maybe]'"),
        ({"dangling": []}, 400, "invalid filter 'dangling'"),
        ({"before": ["nosuch"]}, 404, "No such image: nosuch:latest"),
        ({"reference": ["["]}, 500, "syntax error in pattern"),
        ({"until": ["yesterday"]}, 400, 'failed to parse value as time or duration: "yesterday"'),
    ]:
        with pytest.raises(ApiError) as info:
            summaries(service, ListOptions(filters=filters))
        assert (info.value.status, info.value.message) == (status, message)


def test_intermediate_images_only_with_all(service: ImageService) -> None:
    load_archive(service, save_archive([BASE], None))
    parent = service.images.all_images()[0]
    child = service.images.create(
        json.dumps({"rootfs": {"type": "layers", "diff_ids": parent.diff_ids}, "x": 1}).encode()
    )
    service.images.set_parent(child, parent)
    service.tag(child, parse_normalized_named("child"))
    assert _ids(service) == [child.id]
    assert sorted(_ids(service, all=True)) == sorted([child.id, parent.id])
    assert _ids(service, filters={"dangling": ["true"]}) == []  # an untagged parent is not dangling


def test_for_api_version() -> None:
    def one() -> list[dict[str, object]]:
        return [{"RepoTags": None, "RepoDigests": None, "Size": 5, "Containers": 2}]

    assert for_api_version(one(), (1, 51)) == [
        {"RepoTags": [], "RepoDigests": [], "Size": 5, "Containers": 2}
    ]
    assert for_api_version(one(), (1, 44)) == [
        {"RepoTags": [], "RepoDigests": [], "Size": 5, "Containers": -1}
    ]
    assert for_api_version(one(), (1, 42)) == [
        {
            "RepoTags": ["<none>:<none>"],
            "RepoDigests": ["<none>@<none>"],
            "Size": 5,
            "Containers": -1,
            "VirtualSize": 5,
        }
    ]
