"""NetworkManager at container create: which networks a new container names, and what create refuses."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness.daemon.errors import ApiError
from harness.daemon.network.manager import NetworkManager
from harness.daemon.network.model import Network


def _manager(tmp_path: Path) -> NetworkManager:
    manager = NetworkManager(SimpleNamespace(config={"data-root": str(tmp_path)}))  # type: ignore[arg-type]
    manager.networks["f" * 64] = Network(id="f" * 64, name="web", driver="bridge", created="")
    return manager


def _networks(tmp_path: Path, mode: str, endpoints: dict[str, Any] | None) -> list[str]:
    body = {"NetworkingConfig": {"EndpointsConfig": endpoints}} if endpoints is not None else {}
    return list(_manager(tmp_path).initial_networks({"NetworkMode": mode}, body))


@pytest.mark.parametrize(
    ("mode", "endpoints", "networks"),
    [
        ("bridge", None, ["bridge"]),
        ("default", {}, ["bridge"]),
        ("web", None, ["web"]),
        ("bridge", {"web": {}}, ["web"]),  # the endpoints given replace the mode's network, as moby does
        ("web", {"bridge": {}}, ["bridge"]),
        ("bridge", {"nosuch": {}}, ["nosuch"]),  # kept, refused at start
        ("nosuch", None, ["nosuch"]),
        ("bridge", {"f" * 12: {}}, ["web"]),  # a network named by id prefix is recorded by its name
        ("container:abc", {}, []),
    ],
)
def test_the_networks_a_created_container_names(
    tmp_path: Path, mode: str, endpoints: dict[str, Any] | None, networks: list[str]
) -> None:
    assert _networks(tmp_path, mode, endpoints) == networks


@pytest.mark.parametrize(
    ("endpoints", "message"),
    [
        ({"bridge": None}, "invalid config for network bridge: EndpointsConfig is nil"),
        (
            {"nosuch": {"IPAMConfig": {"IPv4Address": "10.1.2"}}},
            "invalid config for network nosuch: invalid endpoint settings:\ninvalid IPv4 address: 10.1.2",
        ),
        (
            {"nosuch": {"IPAMConfig": {"IPv4Address": "0.0.0.0", "IPv6Address": "10.0.0.1"}}},
            "invalid config for network nosuch: invalid endpoint settings:\n"
            "* invalid IPv4 address: 0.0.0.0\n* invalid IPv6 address: 10.0.0.1",
        ),
        (
            {"nosuch": {"IPAMConfig": {"LinkLocalIPs": ["fe80::1", "x"]}}},
            "invalid config for network nosuch: invalid endpoint settings:\ninvalid link-local IP address: x",
        ),
        ({"nosuch": {"MacAddress": "zz"}}, "invalid config for network nosuch: invalid MAC address zz"),
        (
            {"a": None, "b": {"IPAMConfig": {"IPv4Address": "x"}}},
            "* invalid config for network a: EndpointsConfig is nil\n"
            "* invalid config for network b: invalid endpoint settings:\n\tinvalid IPv4 address: x",
        ),
    ],
)
def test_what_create_refuses_without_the_network(
    tmp_path: Path, endpoints: dict[str, Any], message: str
) -> None:
    with pytest.raises(ApiError) as err:
        _networks(tmp_path, "bridge", endpoints)
    assert (err.value.status, err.value.message) == (400, message)


def test_a_missing_network_takes_any_well_formed_address(tmp_path: Path) -> None:
    config = {
        "IPAMConfig": {"IPv4Address": "10.9.0.5", "IPv6Address": "fd00::5"},
        "MacAddress": "02:42:ac:11:00:09",
    }
    assert _networks(tmp_path, "bridge", {"nosuch": config}) == ["nosuch"]
