"""``POST /containers/create`` and ``GET /containers/json`` on a live refd, for what depends on the API
version or the daemon's state: the platform asked for, several networks before 1.44, volumes-from a
container that does not exist, annotations in the list from 1.46."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .livedaemon import LiveRefd, running_as_root

pytestmark = pytest.mark.skipif(not running_as_root(), reason="running containers needs root")


@pytest.fixture(scope="module")
def refd() -> Iterator[LiveRefd]:
    daemon = LiveRefd("api-create")
    try:
        yield daemon
    finally:
        daemon.close()


def _arch(refd: LiveRefd) -> str:
    return str(refd.client.get(f"/images/{refd.image}/json").json()["Architecture"])


def test_an_image_for_another_platform_is_not_found(refd: LiveRefd) -> None:
    arch = _arch(refd)
    body = {"Image": refd.image, "Cmd": ["true"]}
    other = refd.client.post(f"/containers/create?platform=linux/{arch}DifferentArch", json=body)
    assert (other.status_code, other.json()["message"]) == (
        404,
        f"image with reference {refd.image} was found but its platform (linux/{arch}) does not match the "
        f"specified platform (linux/{arch.lower()}differentarch)",
    )
    assert refd.client.post(f"/containers/create?platform=linux/{arch}", json=body).status_code == 201
    older = refd.client.post(f"/v1.40/containers/create?platform=linux/{arch}DifferentArch", json=body)
    assert older.status_code == 201  # the parameter came with API 1.41
    bad = refd.client.post("/containers/create?platform=linux/a*", json=body)
    assert bad.status_code == 400


def test_several_networks_at_create_need_api_1_44(refd: LiveRefd) -> None:
    endpoints = {"EndpointsConfig": {"net1": {}, "net2": {}}}
    old = refd.create(["true"], version="v1.43", NetworkingConfig=endpoints)
    assert old.status_code == 400
    assert old.json()["message"].startswith("Container cannot be created with multiple network endpoints: ")
    assert refd.create(["true"], version="v1.44", NetworkingConfig=endpoints).status_code == 201


def test_volumes_from_a_missing_container_is_a_400(refd: LiveRefd) -> None:
    missing = refd.create(["true"], HostConfig={"VolumesFrom": ["nosuchcontainer"]})
    assert (missing.status_code, missing.json()["message"]) == (400, "No such container: nosuchcontainer")
    source = refd.create(["true"]).json()["Id"]
    assert refd.create(["true"], HostConfig={"VolumesFrom": [f"{source}:ro"]}).status_code == 201
    mode = refd.create(["true"], HostConfig={"VolumesFrom": [f"{source}:rshared"]})
    assert (mode.status_code, mode.json()["message"]) == (400, "invalid mode: rshared")


def test_annotations_are_listed_from_api_1_46(refd: LiveRefd) -> None:
    annotations = {"foo": "bar"}
    cid = refd.create(["true"], HostConfig={"Annotations": annotations}).json()["Id"]
    query = f'?all=1&filters={{"id":["{cid}"]}}'
    (new,) = refd.client.get(f"/v1.46/containers/json{query}").json()
    assert new["HostConfig"]["Annotations"] == annotations
    (old,) = refd.client.get(f"/v1.44/containers/json{query}").json()
    assert "Annotations" not in old["HostConfig"]
    older = refd.create(["true"], version="v1.42", HostConfig={"Annotations": annotations}).json()["Id"]
    assert refd.inspect(older)["HostConfig"].get("Annotations") is None  # came with API 1.43
