"""Network wiring: settings at create, --network container:X, the files a container sees, the spec."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness.daemon.containers.networking import Joined, NetworkWiring
from harness.daemon.containers.store import ContainerStore
from harness.daemon.errors import ApiError

from .conftest import make_container


class FakeServices:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def container_up(self, c: Any) -> None:
        self.calls.append(("up", c.id))

    def container_down(self, c: Any) -> None:
        self.calls.append(("down", c.id))


def _wiring(tmp_path: Path, **config: Any) -> tuple[NetworkWiring, ContainerStore]:
    store = ContainerStore(str(tmp_path / "data"), str(tmp_path / "exec"))
    daemon = SimpleNamespace(config={"dns": [], **config}, log=None)
    return NetworkWiring(daemon, store), store  # type: ignore[arg-type]


def _add(store: ContainerStore, tmp_path: Path, cid: str, name: str, **config: Any) -> Any:
    c = make_container(str(tmp_path), cid, name, **config)
    store.add(c)
    return c


@pytest.mark.parametrize(
    ("mode", "networks"),
    [
        ("default", ["bridge"]),
        ("bridge", ["bridge"]),
        ("host", ["host"]),
        ("none", ["none"]),
        ("container:x", []),
    ],
)
def test_settings_at_create_without_a_network_manager(tmp_path: Path, mode: str, networks: list[str]) -> None:
    wiring, _ = _wiring(tmp_path)
    c = make_container(str(tmp_path))
    c.host_config["NetworkMode"] = mode
    settings = wiring.initial_settings(c, {})
    assert list(settings["Networks"]) == networks
    assert (settings["IPAddress"], settings["Ports"], settings["SandboxKey"]) == ("", {}, "")
    assert list(settings)[-1] == "Networks"


def test_container_mode_is_recorded_with_the_full_id(tmp_path: Path) -> None:
    wiring, store = _wiring(tmp_path)
    db = _add(store, tmp_path, "ab", "db")
    host_config = {"NetworkMode": "container:db"}
    wiring.resolve_mode(host_config)
    assert host_config["NetworkMode"] == f"container:{db.id}"
    missing = {"NetworkMode": "container:nope"}
    wiring.resolve_mode(missing)  # dockerd takes it at create and refuses it at start
    assert missing == {"NetworkMode": "container:nope"}


def test_starting_with_a_container_that_does_not_exist_is_a_system_error(tmp_path: Path) -> None:
    wiring, store = _wiring(tmp_path)
    c = _add(store, tmp_path, "ab", "web")
    c.host_config["NetworkMode"] = "container:nope"
    with pytest.raises(ApiError) as err:
        wiring.up(c)
    assert (err.value.status, err.value.message) == (
        500,
        "joining network namespace of container: No such container: nope",
    )


def test_start_writes_the_files_with_the_daemons_dns(tmp_path: Path) -> None:
    wiring, store = _wiring(tmp_path, dns=["192.0.2.1"], **{"dns-search": ["example.org"]})
    c = _add(store, tmp_path, "ab", "web", Hostname="web1")
    c.host_config["ExtraHosts"] = ["db:192.0.2.7"]
    joined = wiring.up(c)
    assert joined == Joined(None, None)
    assert Path(c.file("hostname")).read_text() == "web1\n"
    assert "192.0.2.7\tdb" in Path(c.file("hosts")).read_text()
    resolv_conf = Path(c.file("resolv.conf")).read_text()
    assert "nameserver 192.0.2.1" in resolv_conf and "search example.org" in resolv_conf
    spec: dict[str, Any] = {"namespaces": {}, "env": ["A=1"]}
    wiring.apply(c, spec, joined)
    assert spec == {"namespaces": {}, "env": ["A=1"]}


def test_a_container_joining_anothers_netns_takes_its_hostname_and_files(tmp_path: Path) -> None:
    wiring, store = _wiring(tmp_path)
    peer = _add(store, tmp_path, "ab", "db", Hostname="dbhost")
    c = _add(store, tmp_path, "cd", "web")
    c.host_config["NetworkMode"] = f"container:{peer.id}"
    with pytest.raises(ApiError) as err:
        wiring.up(c)
    assert (err.value.status, err.value.message) == (
        409,
        "cannot join network namespace of a non running container: container db is created",
    )
    peer.set_running(1)
    joined = wiring.up(c)
    assert joined.peer is peer and c.config["Hostname"] == "dbhost"
    spec: dict[str, Any] = {"namespaces": {}, "env": []}
    wiring.apply(c, spec, Joined("/run/netns/x", peer))
    assert spec["namespaces"]["net"] == "/run/netns/x"
    assert (spec["hosts_path"], spec["hostname_path"], spec["resolv_conf_path"]) == (
        peer.file("hosts"),
        peer.file("hostname"),
        peer.file("resolv.conf"),
    )


def test_link_env_goes_first_and_the_containers_own_wins(tmp_path: Path) -> None:
    wiring, store = _wiring(tmp_path)
    db = _add(store, tmp_path, "ab", "db", Env=["PGDATA=/d"])
    db.network_settings = {"Networks": {"bridge": {"IPAddress": "172.17.0.2"}}}
    db.set_running(1)
    web = _add(store, tmp_path, "cd", "web")
    web.host_config["Links"] = ["db:data"]
    wiring.normalise_links(web.host_config, "web")
    assert web.host_config["Links"] == ["/db:/web/data"]
    web.network_settings = {"Networks": {"bridge": {"IPAddress": "172.17.0.3"}}}
    spec: dict[str, Any] = {"namespaces": {}, "env": ["DATA_NAME=mine"]}
    wiring.apply(web, spec, Joined(None, None))
    assert spec["env"][-1] == "DATA_NAME=mine" and "DATA_ENV_PGDATA=/d" in spec["env"]
    assert "DATA_NAME=/web/data" not in spec["env"]


def test_network_changes_rewrite_hosts_of_a_running_container_only(tmp_path: Path) -> None:
    wiring, store = _wiring(tmp_path)
    services = FakeServices()
    wiring.daemon.net_services = services  # type: ignore[attr-defined]
    c = _add(store, tmp_path, "ab", "web")
    os.makedirs(c.root, exist_ok=True)
    wiring.changed(c)
    assert not os.path.exists(c.file("hosts")) and services.calls == []
    c.set_running(1)
    wiring.changed(c)
    assert os.path.exists(c.file("hosts")) and services.calls == [("up", c.id)]
    wiring.down(c)
    assert services.calls[-1] == ("down", c.id)


def test_a_host_network_containers_hosts_file_is_the_hosts_own(tmp_path: Path, monkeypatch: Any) -> None:
    """libnetwork's buildHostsFile: a copy of the host's /etc/hosts, unless extra hosts must override it."""
    import harness.daemon.containers.networking as networking

    origin = tmp_path / "etc-hosts"
    origin.write_text("127.0.0.1 localhost\n127.0.0.1 myhost\n")
    monkeypatch.setattr(networking, "HOST_HOSTS", str(origin))
    wiring, store = _wiring(tmp_path)
    host = _add(store, tmp_path, "ab", "h")
    host.host_config["NetworkMode"] = "host"
    wiring._write_hosts(host)
    assert Path(host.file("hosts")).read_text() == origin.read_text()
    extra = _add(store, tmp_path, "ac", "e")
    extra.host_config.update(NetworkMode="host", ExtraHosts=["db:10.0.0.2"])
    wiring._write_hosts(extra)
    written = Path(extra.file("hosts")).read_text()
    assert "10.0.0.2\tdb\n" in written and "myhost" not in written
