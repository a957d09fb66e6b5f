"""Legacy links over any container lookup (network/ does not know the container manager)."""

from __future__ import annotations

from typing import Any

import pytest

from harness.daemon.containers.model import Container
from harness.daemon.errors import ApiError, not_found
from harness.daemon.network.links import check_running, endpoint_link, link_env, link_hosts, normalise_links


def _container(cid: str, name: str, ip: str = "", **config: Any) -> Container:
    c = Container(
        id=cid * 64,
        name=f"/{name}",
        created="2024-01-01T00:00:00Z",
        path="sh",
        args=[],
        config=config,
        host_config={},
        image_id="sha256:" + "0" * 64,
        root="/nonexistent",
    )
    c.network_settings = {"Networks": {"bridge": {"IPAddress": ip}}}
    return c


class Lookup:
    def __init__(self, *containers: Container) -> None:
        self.by = {c.name.removeprefix("/"): c for c in containers}

    def get(self, ref: str) -> Container:
        if ref not in self.by:
            raise not_found(f"No such container: {ref}")
        return self.by[ref]

    def by_name(self, name: str) -> Container | None:
        return self.by.get(name)


def test_links_are_normalised_and_unknown_ones_refused() -> None:
    db = _container("a", "db", "172.17.0.2")
    lookup = Lookup(db)
    assert normalise_links(lookup, ["db:data", "/db:/x/y"], "web") == ["/db:/web/data", "/db:/x/y"]
    with pytest.raises(ApiError) as err:
        normalise_links(lookup, ["nope"], "web")
    assert err.value.message == "could not get container for nope: No such container: nope"


def test_hosts_and_env_of_a_running_link() -> None:
    db = _container("a", "db", "172.17.0.2", ExposedPorts={"5432/tcp": {}}, Env=["PGDATA=/d", "PATH=/bin"])
    db.set_running(1234)
    web = _container("b", "web")
    web.host_config["Links"] = ["/db:/web/data"]
    lookup = Lookup(db, web)
    check_running(lookup, web)
    assert link_hosts(lookup, web) == [f"172.17.0.2\tdata {'a' * 12} db"]
    env = link_env(lookup, web)
    assert "DATA_PORT=tcp://172.17.0.2:5432" in env
    assert "DATA_NAME=/web/data" in env
    assert "DATA_ENV_PGDATA=/d" in env
    assert not any(e.startswith("DATA_ENV_PATH") for e in env)


def test_a_stopped_link_refuses_the_start() -> None:
    db = _container("a", "db", "172.17.0.2")
    web = _container("b", "web")
    web.host_config["Links"] = ["/db:/web/data"]
    with pytest.raises(ApiError) as err:
        check_running(Lookup(db, web), web)
    assert err.value.message == "Cannot link to a non running container: /db AS /web/data"


def test_an_endpoints_links_name_containers_by_alias_or_name() -> None:
    db = _container("a", "db", "172.18.0.2")
    lookup = Lookup(db)
    assert endpoint_link(lookup, ["db:data"], "data") is db
    assert endpoint_link(lookup, ["db"], "db") is db
    assert endpoint_link(lookup, ["/db:Data"], "data") is db  # DNS names are case-insensitive
    assert endpoint_link(lookup, ["db:data"], "other") is None
    assert endpoint_link(lookup, ["gone:x"], "x") is None
    assert endpoint_link(lookup, None, "data") is None
