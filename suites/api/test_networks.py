"""Networks through the Engine API: list, inspect, create (IPAM), remove, prune, connect, disconnect.

Addresses from the default pools depend on what ran before in the session daemon, so scenarios
observe relations (in the subnet, equal to the gateway) unless they chose the subnet themselves.
Subnets chosen here are from 10.231.0.0/16, which neither refd's nor dockerd's pools hand out.
"""

from __future__ import annotations

import ipaddress
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from harness.checks import expect_error, expect_status
from harness.client import EngineClient
from harness.fixtures import Observations
from harness.profiles import Profile
from suites._daemon import NEEDS_DEFAULT_BRIDGE

V = ""  # unversioned: each daemon answers at its own API version, as the CLI negotiates


def _error(resp: Any) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        body = resp.text
    return {"status": resp.status_code, "body": body}


@pytest.fixture
def network(engine: EngineClient) -> Iterator[Any]:
    """A factory for networks removed after the scenario (with anything still connected).

    They are removed by id: a daemon that accepted a second network of the same name (dockerd 20.10)
    refuses a removal by that name as ambiguous and removes neither (the isolation check found both left).
    """
    made: list[str] = []

    def create(name: str, **body: Any) -> dict[str, Any]:
        resp = engine.post(f"{V}/networks/create", json={"Name": name, **body})
        assert resp.status_code == 201, resp.text
        made.append(str(resp.json()["Id"]))
        return dict(resp.json())

    yield create
    for net_id in made:
        _remove_network(engine, net_id)


def _remove_network(engine: EngineClient, net_id: str) -> None:
    """Remove the network ``net_id`` and the containers still connected to it."""
    doc = engine.get(f"{V}/networks/{net_id}")
    if doc.status_code == 200:
        for cid in doc.json().get("Containers") or {}:
            engine.delete(f"{V}/containers/{cid}?force=1")
    engine.delete(f"{V}/networks/{net_id}")


@pytest.fixture
def container(engine: EngineClient, test_image: str) -> Iterator[Any]:
    """A factory for containers (created, optionally started) removed after the scenario."""
    made: list[str] = []

    def create(
        name: str, start: bool = True, cmd: list[str] | None = None, **body: Any
    ) -> tuple[int, dict[str, Any]]:
        resp = engine.post(
            f"{V}/containers/create?name={name}",
            json={"Image": test_image, "Cmd": cmd or ["sleep", "300"], **body},
        )
        if resp.status_code == 201:
            made.append(name)
        if resp.status_code != 201 or not start:
            return resp.status_code, resp.json()
        started = engine.post(f"{V}/containers/{name}/start")
        return started.status_code, (started.json() if started.content else {})

    yield create
    for name in made:
        engine.delete(f"{V}/containers/{name}?force=1")


def _inspect(engine: EngineClient, name: str) -> dict[str, Any]:
    return dict(engine.get(f"{V}/containers/{name}/json").json())


def _ipv4_entry(doc: dict[str, Any]) -> dict[str, Any]:
    """A network's IPv4 IPAM entry: with IPv6 on (the ipv6 profile) dockerd 28 lists a configured IPv6
    subnet before the IPv4 one the allocator chose."""
    return dict(next(c for c in doc["IPAM"]["Config"] if ":" not in c["Subnet"]))


def _shape(doc: dict[str, Any]) -> dict[str, Any]:
    """A network document without the values that differ per daemon (ids, times, pool subnets)."""
    out = {k: v for k, v in doc.items() if k not in ("Id", "Created")}
    config = (doc.get("IPAM") or {}).get("Config")
    if config:
        out["IPAM"] = {**doc["IPAM"], "Config": [sorted(c) for c in config]}
    return out


# -- predefined networks -----------------------------------------------------------------------------


@NEEDS_DEFAULT_BRIDGE
@pytest.mark.scenario(
    "api/networks/list-predefined",
    "GET /networks MUST list the predefined bridge (driver bridge), host (host) and none (null) networks, "
    "scope local",
    ref="operation NetworkList; moby libnetwork predefined networks",
)
def test_list_predefined(engine: EngineClient, observe: Observations) -> None:
    resp = engine.get(f"{V}/networks")
    listed = {n["Name"]: n for n in resp.json()}
    observe("status", resp.status_code)
    observe("predefined", {k: (listed[k]["Driver"], listed[k]["Scope"]) for k in ("bridge", "host", "none")})
    observe("keys", sorted(listed["bridge"]))
    assert {"bridge", "host", "none"} <= set(listed)


@NEEDS_DEFAULT_BRIDGE
@pytest.mark.scenario(
    "api/networks/inspect-default-bridge",
    "The default bridge MUST inspect with dockerd's options (default_bridge, icc, masquerade, "
    "bridge name, MTU), IPAM driver default with one subnet and gateway, and Options null under IPAM",
    ref="operation NetworkInspect; moby daemon/daemon_unix.go initBridgeDriver",
)
def test_inspect_default_bridge(engine: EngineClient, observe: Observations) -> None:
    doc = engine.get(f"{V}/networks/bridge").json()
    config = _ipv4_entry(doc)
    subnet = ipaddress.ip_network(config["Subnet"])
    observe("shape", {k: v for k, v in _shape(doc).items() if k not in ("Containers", "Options")})
    observe("option_keys", sorted(doc["Options"]))
    observe("bridge_option_values", {k: v for k, v in doc["Options"].items() if "bridge.name" not in k})
    observe(
        "gateway_in_subnet", bool(config.get("Gateway")) and ipaddress.ip_address(config["Gateway"]) in subnet
    )
    observe("containers_is_object", isinstance(doc["Containers"], dict))
    assert doc["Driver"] == "bridge" and doc["IPAM"]["Driver"] == "default"


@pytest.mark.scenario(
    "api/networks/inspect-host-none",
    "The host and none networks MUST inspect with IPAM Config null and no options",
    ref="operation NetworkInspect",
)
def test_inspect_host_none(engine: EngineClient, observe: Observations) -> None:
    for name in ("host", "none"):
        shape = observe(name, _shape(engine.get(f"{V}/networks/{name}").json()))
        assert shape["IPAM"]["Config"] is None and shape["Options"] == {}, shape
        assert (shape["Name"], shape["Driver"]) == (name, {"host": "host", "none": "null"}[name])


# -- create ------------------------------------------------------------------------------------------


@pytest.mark.scenario(
    "api/networks/create-defaults",
    "POST /networks/create with only a name MUST answer 201 {Id, Warning} and make a bridge network "
    "with a subnet from the default pools, IPAM Options {} and no containers",
    ref="operation NetworkCreate",
)
def test_create_defaults(engine: EngineClient, network: Any, observe: Observations) -> None:
    created = network("net-defaults")
    doc = engine.get(f"{V}/networks/net-defaults").json()
    config = doc["IPAM"]["Config"][0]
    observe("response_keys", sorted(created))
    observe("warning", created["Warning"])
    observe("shape", _shape(doc))
    observe(
        "gateway_is_first_address",
        ipaddress.ip_address(config["Gateway"]) == ipaddress.ip_network(config["Subnet"]).network_address + 1,
    )
    observe("private_subnet", ipaddress.ip_network(config["Subnet"]).is_private)
    assert doc["Id"] == created["Id"]


@pytest.mark.scenario(
    "api/networks/create-custom-ipam",
    "A network created with subnet, ip-range, gateway, labels, internal and a bridge name MUST inspect "
    "with exactly those values",
    ref="operation NetworkCreate; docker network create --subnet --ip-range --gateway --internal",
)
def test_create_custom_ipam(engine: EngineClient, network: Any, observe: Observations) -> None:
    network(
        "net-custom",
        IPAM={
            "Config": [{"Subnet": "10.231.1.0/24", "IPRange": "10.231.1.128/25", "Gateway": "10.231.1.254"}]
        },
        Labels={"team": "qa"},
        Internal=True,
        Options={"com.docker.network.bridge.name": "brcustom0"},
    )
    doc = engine.get(f"{V}/networks/net-custom").json()
    observe("shape", _shape(doc))
    assert doc["IPAM"]["Config"] == [
        {"Subnet": "10.231.1.0/24", "IPRange": "10.231.1.128/25", "Gateway": "10.231.1.254"}
    ]
    assert (doc["Labels"], doc["Internal"]) == ({"team": "qa"}, True)
    assert doc["Options"] == {"com.docker.network.bridge.name": "brcustom0"}


#: dockerd 28.5's answers (seen on dockerd-28)
CREATE_REFUSED = {
    "empty-name": (400, "invalid name: name is empty"),
    "predefined-name": (403, "operation is not permitted on predefined host network "),  # sic: trailing space
    "bad-subnet": (400, "invalid network config:\ninvalid subnet garbage: invalid CIDR block notation"),
    "gateway-outside": (
        400,
        "invalid network config:\ninvalid gateway 10.231.3.1: parent subnet 10.231.2.0/24 doesn't contain "
        "this address",
    ),
    "range-outside": (
        400,
        "invalid network config:\ninvalid ip-range 10.231.9.0/25: parent subnet 10.231.2.0/24 doesn't "
        "contain ip-range",
    ),
    "unknown-driver": (404, 'plugin "no-such-driver" not found'),
}


@pytest.mark.parametrize(
    ("case", "body"),
    [
        ("empty-name", {"Name": ""}),
        ("predefined-name", {"Name": "host"}),
        ("bad-subnet", {"Name": "net-bad", "IPAM": {"Config": [{"Subnet": "garbage"}]}}),
        (
            "gateway-outside",
            {"Name": "net-bad", "IPAM": {"Config": [{"Subnet": "10.231.2.0/24", "Gateway": "10.231.3.1"}]}},
        ),
        (
            "range-outside",
            {
                "Name": "net-bad",
                "IPAM": {"Config": [{"Subnet": "10.231.2.0/24", "IPRange": "10.231.9.0/25"}]},
            },
        ),
        ("unknown-driver", {"Name": "net-bad", "Driver": "no-such-driver"}),
    ],
)
@pytest.mark.scenario(
    "api/networks/create-refused",
    "Network creation with an empty or predefined name, a malformed subnet, a gateway or ip-range outside "
    "the subnet, or an unknown driver MUST fail with dockerd's status and message",
    ref="moby daemon/network.go createNetwork; libnetwork/ipamutils",
)
def test_create_refused(engine: EngineClient, observe: Observations, case: str, body: dict[str, Any]) -> None:
    resp = engine.post(f"{V}/networks/create", json=body)
    observe("error", _error(resp))
    if resp.status_code == 201:
        _remove_network(engine, str(resp.json()["Id"]))
    expect_error(resp, *CREATE_REFUSED[case])


@pytest.mark.scenario(
    "api/networks/create-duplicate",
    "Creating a network whose name exists MUST fail 409 'network with name X already exists'",
    ref="moby daemon/network.go",
)
def test_create_duplicate(engine: EngineClient, network: Any, observe: Observations) -> None:
    network("net-dup")
    resp = engine.post(f"{V}/networks/create", json={"Name": "net-dup"})
    observe("error", _error(resp))
    if resp.status_code == 201:  # a daemon that took the duplicate: remove that one, by its id
        _remove_network(engine, str(resp.json()["Id"]))
    expect_error(resp, 409, "network with name net-dup already exists")


@pytest.mark.scenario(
    "api/networks/create-overlap",
    "A subnet overlapping another network's MUST be refused with 'Pool overlaps with other one on this "
    "address space'",
    ref="moby libnetwork/ipams/defaultipam",
)
def test_create_overlap(engine: EngineClient, network: Any, observe: Observations) -> None:
    network("net-first", IPAM={"Config": [{"Subnet": "10.231.4.0/24"}]})
    resp = engine.post(
        f"{V}/networks/create", json={"Name": "net-second", "IPAM": {"Config": [{"Subnet": "10.231.4.0/25"}]}}
    )
    observe("error", _error(resp))
    if resp.status_code == 201:
        _remove_network(engine, str(resp.json()["Id"]))
    expect_error(resp, 403, "invalid pool request: Pool overlaps with other one on this address space")


@NEEDS_DEFAULT_BRIDGE
@pytest.mark.scenario(
    "api/networks/pools-distinct",
    "Networks created without a subnet MUST get distinct, non-overlapping subnets",
    ref="moby libnetwork/ipamutils default address pools",
)
def test_pools_distinct(engine: EngineClient, network: Any, observe: Observations) -> None:
    subnets = []
    for name in ("net-pool-a", "net-pool-b", "net-pool-c"):
        network(name)
        subnets.append(
            ipaddress.ip_network(engine.get(f"{V}/networks/{name}").json()["IPAM"]["Config"][0]["Subnet"])
        )
    bridge = ipaddress.ip_network(_ipv4_entry(engine.get(f"{V}/networks/bridge").json())["Subnet"])
    overlaps = [a.overlaps(b) for i, a in enumerate([*subnets, bridge]) for b in [*subnets, bridge][i + 1 :]]
    observe("any_overlap", any(overlaps))
    assert not any(overlaps)


# -- lookup, list, remove, prune ---------------------------------------------------------------------


@pytest.mark.scenario(
    "api/networks/lookup",
    "A network MUST be found by name, full id and unique id prefix; an unknown one MUST give 404 "
    "'network X not found'",
    ref="moby daemon/network.go FindNetwork",
)
def test_lookup(engine: EngineClient, network: Any, observe: Observations) -> None:
    net_id = network("net-lookup")["Id"]
    by = {
        ref: engine.get(f"{V}/networks/{ref}").json().get("Id") == net_id
        for ref in ("net-lookup", net_id, net_id[:10])
    }
    observe("found_by", {"name": by["net-lookup"], "id": by[net_id], "prefix": by[net_id[:10]]})
    observe("missing", _error(engine.get(f"{V}/networks/no-such-net")))
    assert all(by.values())


@pytest.mark.scenario(
    "api/networks/list-filters",
    "GET /networks MUST honour the name, id, driver, label and type (custom|builtin) filters; an "
    "unknown type value MUST be refused",
    ref="operation NetworkList filters",
)
def test_list_filters(engine: EngineClient, network: Any, observe: Observations) -> None:
    net_id = network("net-filter", Labels={"pick": "me"})["Id"]

    def names(filters: dict[str, list[str]]) -> list[str]:
        resp = engine.get(f"{V}/networks", params={"filters": json.dumps(filters)})
        return sorted(n["Name"] for n in resp.json())

    assert observe("by_name", names({"name": ["net-filter"]})) == ["net-filter"]
    assert observe("by_label", names({"label": ["pick=me"]})) == ["net-filter"]
    assert observe("by_id", names({"id": [net_id[:12]]})) == ["net-filter"]
    assert observe("builtin", names({"type": ["builtin"]})) == ["bridge", "host", "none"]
    assert observe("custom_has_ours", "net-filter" in names({"type": ["custom"]}))
    assert observe("driver_null", names({"driver": ["null"]})) == ["none"]
    bad_type = engine.get(f"{V}/networks", params={"filters": json.dumps({"type": ["odd"]})})
    observe("bad_type", _error(bad_type))
    expect_error(bad_type, 500, "invalid filter: 'type'='odd'")
    bad_filter = engine.get(f"{V}/networks", params={"filters": json.dumps({"colour": ["x"]})})
    observe("bad_filter", _error(bad_filter))
    expect_error(bad_filter, 400, "invalid filter 'colour'")


@pytest.mark.scenario(
    "api/networks/remove",
    "DELETE /networks/{id} MUST answer 204 and the network MUST be gone; unknown ones 404; the predefined "
    "ones MUST be refused with 403 'X is a pre-defined network and cannot be removed'",
    ref="operation NetworkDelete",
)
def test_remove(engine: EngineClient, observe: Observations) -> None:
    engine.post(f"{V}/networks/create", json={"Name": "net-remove"})
    removed = engine.delete(f"{V}/networks/net-remove")
    observe("removed", removed.status_code)
    observe("gone", engine.get(f"{V}/networks/net-remove").status_code)
    observe("again", _error(engine.delete(f"{V}/networks/net-remove")))
    for name in ("bridge", "host", "none"):
        observe(f"predefined_{name}", _error(engine.delete(f"{V}/networks/{name}")))
    assert removed.status_code == 204


@pytest.mark.scenario(
    "api/networks/remove-in-use",
    "Removing a network a running container is connected to MUST fail 403 naming the active endpoint",
    ref="moby libnetwork/network.go delete: 'has active endpoints'",
)
def test_remove_in_use(engine: EngineClient, network: Any, container: Any, observe: Observations) -> None:
    network("net-busy")
    container("net-busy-ctr", HostConfig={"NetworkMode": "net-busy"})
    resp = engine.delete(f"{V}/networks/net-busy")
    observe("error", _error(resp))
    expect_error(
        resp,
        403,
        re.compile(
            r"error while removing network: network net-busy has active endpoints "
            r'\(name:"net-busy-ctr" id:"[0-9a-f]+"\)$'
        ),
    )


@pytest.mark.scenario(
    "api/networks/prune",
    "POST /networks/prune MUST remove the unused custom networks (also those only stopped containers "
    "reference) and keep in-use and predefined ones",
    ref="operation NetworkPrune",
)
def test_prune(engine: EngineClient, network: Any, container: Any, observe: Observations) -> None:
    network("net-prune-unused")
    network("net-prune-used")
    network("net-prune-stopped")
    container("net-prune-ctr", HostConfig={"NetworkMode": "net-prune-used"})
    container("net-prune-created", start=False, HostConfig={"NetworkMode": "net-prune-stopped"})
    resp = engine.post(f"{V}/networks/prune")
    deleted = sorted(resp.json().get("NetworksDeleted") or [])
    assert observe("status", resp.status_code) == 200
    assert observe("deleted", [n for n in deleted if n.startswith("net-prune")]) == [
        "net-prune-stopped",
        "net-prune-unused",
    ]
    assert observe("kept_used", engine.get(f"{V}/networks/net-prune-used").status_code) == 200
    assert observe("kept_bridge", engine.get(f"{V}/networks/bridge").status_code) == 200
    again = engine.post(f"{V}/networks/prune", params={"filters": json.dumps({"label": ["nothing=here"]})})
    assert observe("nothing_to_prune", again.json()) == {"NetworksDeleted": None}


# -- endpoints ---------------------------------------------------------------------------------------


@pytest.mark.scenario(
    "api/networks/created-container-endpoint",
    "Before start, a container's NetworkSettings.Networks MUST hold its network with empty "
    "addresses and ids; SandboxKey empty",
    ref="operation ContainerInspect NetworkSettings",
)
def test_created_container_endpoint(engine: EngineClient, container: Any, observe: Observations) -> None:
    container("net-created", start=False)
    settings = _inspect(engine, "net-created")["NetworkSettings"]
    networks = observe("networks", settings["Networks"])
    assert list(networks) == ["bridge"]
    empty = {
        k: networks["bridge"][k] for k in ("EndpointID", "Gateway", "IPAddress", "MacAddress", "NetworkID")
    }
    assert empty == dict.fromkeys(empty, ""), empty
    assert observe("sandbox", (settings["SandboxID"], settings["SandboxKey"])) == ("", "")
    assert observe("ports", settings["Ports"]) == {}


@NEEDS_DEFAULT_BRIDGE
@pytest.mark.scenario(
    "api/networks/running-bridge-endpoint",
    "A running container on the default bridge MUST have an address in the bridge's subnet, the bridge "
    "gateway, a MAC, endpoint and network ids, a SandboxKey under exec-root/netns, the legacy top-level "
    "fields mirroring it, and a 'connect' event",
    ref="operation ContainerInspect; moby daemon/container_operations.go",
)
def test_running_bridge_endpoint(engine: EngineClient, container: Any, observe: Observations) -> None:
    bridge = engine.get(f"{V}/networks/bridge").json()
    config = _ipv4_entry(bridge)
    status, _ = container("net-running")
    settings = _inspect(engine, "net-running")["NetworkSettings"]
    ep = settings["Networks"]["bridge"]
    assert observe("start", status) == 204
    observe("endpoint_keys", sorted(ep))
    assert observe(
        "in_subnet", ipaddress.ip_address(ep["IPAddress"]) in ipaddress.ip_network(config["Subnet"])
    )
    assert observe("gateway", ep["Gateway"] == config.get("Gateway", "<absent>")), (ep, config)
    assert observe("prefixlen", ep["IPPrefixLen"] == ipaddress.ip_network(config["Subnet"]).prefixlen)
    assert observe("mac", bool(re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", ep["MacAddress"]))), ep
    assert observe("network_id", ep["NetworkID"] == bridge["Id"]) and ep["EndpointID"]
    observe("dns_names", ep.get("DNSNames", "<absent>"))
    assert observe("sandbox_key", re.sub(r".*/", "", settings["SandboxKey"]) == settings["SandboxID"][:12])
    assert observe("sandbox_dir", settings["SandboxKey"].rsplit("/", 2)[-2]) == "netns"
    mirror = observe(
        "legacy_mirror",
        {
            k: settings[k] == ep[k]
            for k in ("IPAddress", "Gateway", "MacAddress", "EndpointID", "IPPrefixLen")
        },
    )
    assert all(mirror.values()), mirror
    listed = engine.get(f"{V}/networks/bridge").json()["Containers"]
    mine = next((v for k, v in listed.items() if v["Name"] == "net-running"), None)
    assert observe(
        "network_inspect_entry",
        mine is not None and mine["IPv4Address"] == f"{ep['IPAddress']}/{ep['IPPrefixLen']}",
    ), listed
    observe("network_entry_keys", sorted(mine) if mine else None)
    connects = engine.get(
        f"{V}/events",
        params={
            "since": "0",
            "until": str(int(time.time()) + 1),
            "filters": json.dumps({"type": ["network"], "event": ["connect"], "network": [bridge["Id"]]}),
        },
    )
    cid = _inspect(engine, "net-running")["Id"]
    assert any(
        json.loads(line)["Actor"]["Attributes"].get("container") == cid for line in connects.text.splitlines()
    )


@pytest.mark.scenario(
    "api/networks/stop-releases-endpoint",
    "Stopping a container MUST clear its endpoint (no address, no endpoint id, no sandbox, Ports {}) "
    "while keeping the network in NetworkSettings.Networks",
    ref="moby daemon/container_operations.go releaseNetwork",
)
def test_stop_releases_endpoint(engine: EngineClient, container: Any, observe: Observations) -> None:
    container("net-stopped", cmd=["sleep", "300"])
    engine.post(f"{V}/containers/net-stopped/stop?t=0")
    settings = _inspect(engine, "net-stopped")["NetworkSettings"]
    ep = settings["Networks"]["bridge"]
    endpoint = observe(
        "endpoint", {k: ep[k] for k in ("EndpointID", "IPAddress", "Gateway", "MacAddress", "IPPrefixLen")}
    )
    assert endpoint == {"EndpointID": "", "IPAddress": "", "Gateway": "", "MacAddress": "", "IPPrefixLen": 0}
    assert observe("network_id_kept", bool(ep["NetworkID"]))
    top = observe("top", {k: settings[k] for k in ("SandboxID", "SandboxKey", "IPAddress", "Ports")})
    assert top == {"SandboxID": "", "SandboxKey": "", "IPAddress": "", "Ports": {}}


@pytest.mark.scenario(
    "api/networks/user-network-endpoint",
    "A container on a user-defined network MUST get its aliases and DNSNames [name, aliases..., short id], "
    "an address from the network's subnet, and appear in the network's Containers",
    ref="operation ContainerCreate NetworkingConfig; moby daemon/network.go",
)
def test_user_network_endpoint(
    engine: EngineClient, network: Any, container: Any, observe: Observations
) -> None:
    network("net-user", IPAM={"Config": [{"Subnet": "10.231.5.0/24"}]})
    status, _ = container(
        "net-user-ctr",
        HostConfig={"NetworkMode": "net-user"},
        NetworkingConfig={"EndpointsConfig": {"net-user": {"Aliases": ["web", "api"]}}},
    )
    doc = _inspect(engine, "net-user-ctr")
    ep = doc["NetworkSettings"]["Networks"]["net-user"]
    assert observe("start", status) == 204
    assert observe("networks", sorted(doc["NetworkSettings"]["Networks"])) == ["net-user"]
    observe(
        "endpoint",
        {k: ep.get(k, "<absent>") for k in ("Aliases", "DNSNames", "IPAddress", "Gateway", "IPPrefixLen")},
    )
    assert ep["Aliases"] == ["web", "api"]
    assert ep["DNSNames"] == ["net-user-ctr", "web", "api", doc["Id"][:12]]
    assert (ep["IPAddress"], ep["Gateway"], ep["IPPrefixLen"]) == ("10.231.5.2", "10.231.5.1", 24)
    observe("legacy_top_ip", doc["NetworkSettings"]["IPAddress"])
    net = engine.get(f"{V}/networks/net-user").json()
    assert observe("in_network", [v["IPv4Address"] for v in net["Containers"].values()]) == ["10.231.5.2/24"]


@pytest.mark.scenario(
    "api/networks/static-ip",
    "A static IPv4 address on a user subnet MUST be used and recorded in IPAMConfig; the same address "
    "for a second container MUST fail its start with 'Address already in use'; an address outside the "
    "subnet, or any static address on a network without a user subnet, MUST be refused at create",
    ref="moby daemon/container_operations.go validateEndpointSettings",
)
def test_static_ip(engine: EngineClient, network: Any, container: Any, observe: Observations) -> None:
    network("net-static", IPAM={"Config": [{"Subnet": "10.231.6.0/24"}]})
    network("net-auto")

    def endpoint(net: str, ip: str) -> dict[str, Any]:
        return {"EndpointsConfig": {net: {"IPAMConfig": {"IPv4Address": ip}}}}

    first = container(
        "net-static-a",
        HostConfig={"NetworkMode": "net-static"},
        NetworkingConfig=endpoint("net-static", "10.231.6.9"),
    )
    ep = _inspect(engine, "net-static-a")["NetworkSettings"]["Networks"]["net-static"]
    second = container(
        "net-static-b",
        HostConfig={"NetworkMode": "net-static"},
        NetworkingConfig=endpoint("net-static", "10.231.6.9"),
    )
    gateway = container(
        "net-static-c",
        HostConfig={"NetworkMode": "net-static"},
        NetworkingConfig=endpoint("net-static", "10.231.6.1"),
    )
    outside = container(
        "net-static-d",
        HostConfig={"NetworkMode": "net-static"},
        NetworkingConfig=endpoint("net-static", "10.231.7.9"),
    )
    auto = container(
        "net-static-e",
        HostConfig={"NetworkMode": "net-auto"},
        NetworkingConfig=endpoint("net-auto", "172.30.0.9"),
    )
    observe("first", first[0])
    observe(
        "address", {"IPAddress": ep["IPAddress"], "IPAMConfig": ep["IPAMConfig"], "Gateway": ep["Gateway"]}
    )
    observe("taken", second)
    observe("gateway_taken", gateway)
    observe("outside", outside)
    observe("no_user_subnet", auto)
    assert ep["IPAddress"] == "10.231.6.9"


@pytest.mark.scenario(
    "api/networks/address-freed",
    "An address is free again once its container is removed: a new container MAY take it",
    ref="moby libnetwork/ipam ReleaseAddress",
)
def test_address_freed(engine: EngineClient, network: Any, container: Any, observe: Observations) -> None:
    network("net-free", IPAM={"Config": [{"Subnet": "10.231.8.0/24"}]})
    cfg = {"EndpointsConfig": {"net-free": {"IPAMConfig": {"IPv4Address": "10.231.8.20"}}}}
    first = container("net-free-a", HostConfig={"NetworkMode": "net-free"}, NetworkingConfig=cfg)
    engine.delete(f"{V}/containers/net-free-a?force=1")
    second = container("net-free-b", HostConfig={"NetworkMode": "net-free"}, NetworkingConfig=cfg)
    observe("first", first[0])
    observe("second", second[0])
    assert second[0] == 204


@pytest.mark.scenario(
    "api/networks/serial-allocation",
    "Dynamically allocated addresses MUST be distinct for concurrent containers and MUST NOT be the gateway",
    ref="moby libnetwork/ipams/defaultipam serial allocation",
)
def test_serial_allocation(engine: EngineClient, network: Any, container: Any, observe: Observations) -> None:
    network("net-serial", IPAM={"Config": [{"Subnet": "10.231.10.0/24"}]})
    for name in ("net-serial-a", "net-serial-b", "net-serial-c"):
        container(name, HostConfig={"NetworkMode": "net-serial"})
    ips = [
        _inspect(engine, n)["NetworkSettings"]["Networks"]["net-serial"]["IPAddress"]
        for n in ("net-serial-a", "net-serial-b", "net-serial-c")
    ]
    observe("addresses", ips)
    assert len(set(ips)) == 3 and "10.231.10.1" not in ips


@pytest.mark.scenario(
    "api/networks/start-missing-network",
    "A container MAY be created on a network that does not exist; starting it MUST fail with "
    "'failed to set up container networking: network X not found'",
    ref="moby daemon/container_operations.go",
)
def test_start_missing_network(engine: EngineClient, container: Any, observe: Observations) -> None:
    created = container("net-missing", start=False, HostConfig={"NetworkMode": "no-such-net"})
    started = engine.post(f"{V}/containers/net-missing/start")
    assert observe("create", created[0]) == 201
    observe("start", _error(started))
    expect_error(started, 404, "failed to set up container networking: network no-such-net not found")
    assert observe("state", _inspect(engine, "net-missing")["State"]["Status"]) == "created"


@pytest.mark.scenario(
    "api/networks/create-endpoint-checks",
    "Create MUST take NetworkingConfig naming a network that does not exist and keep it as the container's "
    "only network (the endpoints given replace the NetworkMode's network); starting MUST then fail with 404 "
    "'failed to set up container networking: network X not found', the container left 'created' with that "
    "error and exit code 128. What create checks without the network MUST be refused with 400: a null "
    "endpoint, an IPv4 address that does not parse; below API 1.44, more than one endpoint. A container "
    "named by --network container:X that does not exist MUST be taken at create and refused at start (500)",
    ref="moby daemon/create.go validateNetworkingConfig; daemon/container_operations.go "
    "updateContainerNetworkSettings, getNetworkedContainer",
)
def test_create_endpoint_checks(
    engine: EngineClient, test_image: str, network: Any, container: Any, observe: Observations
) -> None:
    network("net-ep-real")

    def networks_of(name: str) -> list[str]:
        return sorted(_inspect(engine, name)["NetworkSettings"]["Networks"])

    def start(name: str) -> dict[str, Any]:
        started = engine.post(f"{V}/containers/{name}/start")
        state = _inspect(engine, name)["State"]
        return {**_error(started), "state": [state["Status"], state["ExitCode"], state["Error"]]}

    missing = {"EndpointsConfig": {"net-ep-nosuch": {"Aliases": ["a1"]}}}
    created = container("net-ep-missing", start=False, NetworkingConfig=missing)
    assert observe("created", created[0]) == 201
    assert observe("networks", networks_of("net-ep-missing")) == ["net-ep-nosuch"]
    not_found = "failed to set up container networking: network net-ep-nosuch not found"
    assert observe("start", start("net-ep-missing")) == {
        "status": 404,
        "body": {"message": not_found},
        "state": ["created", 128, not_found],
    }
    replaced = container(
        "net-ep-replace", start=False, NetworkingConfig={"EndpointsConfig": {"net-ep-real": {}}}
    )
    assert replaced[0] == 201
    assert observe("replaced", networks_of("net-ep-replace")) == ["net-ep-real"]
    assert start("net-ep-replace")["status"] == 204

    refused = {
        "null-endpoint": container(
            "net-ep-null", start=False, NetworkingConfig={"EndpointsConfig": {"bridge": None}}
        ),
        "bad-ipv4": container(
            "net-ep-badip",
            start=False,
            NetworkingConfig={
                "EndpointsConfig": {"net-ep-nosuch": {"IPAMConfig": {"IPv4Address": "10.1.2"}}}
            },
        ),
    }
    observe("refused", refused)
    assert refused == {
        "null-endpoint": (400, {"message": "invalid config for network bridge: EndpointsConfig is nil"}),
        "bad-ipv4": (
            400,
            {
                "message": "invalid config for network net-ep-nosuch: invalid endpoint settings:\n"
                "invalid IPv4 address: 10.1.2"
            },
        ),
    }

    two: dict[str, Any] = {"EndpointsConfig": {"net-ep-real": {}, "net-ep-nosuch": {}}}
    old_api = engine.post(
        "/v1.41/containers/create", json={"Image": test_image, "Cmd": ["true"], "NetworkingConfig": two}
    )
    if old_api.status_code == 201:
        engine.delete(f"{V}/containers/{old_api.json()['Id']}?force=1")
    prefix = "Container cannot be created with multiple network endpoints: "
    answer = _error(old_api)
    message = str(answer["body"].get("message", "")) if isinstance(answer["body"], dict) else ""
    # dockerd names the networks in Go's map order, a different one from run to run: observed sorted
    names = sorted(message.removeprefix(prefix).split(", ")) if message.startswith(prefix) else [message]
    observe("two-below-1.44", {"status": answer["status"], "networks": names})
    assert old_api.status_code == 400 and message.startswith(prefix)
    assert names == ["net-ep-nosuch", "net-ep-real"]

    peerless = container(
        "net-ep-peerless", start=False, HostConfig={"NetworkMode": "container:net-ep-nobody"}
    )
    assert observe("peerless-created", peerless[0]) == 201
    joining = "joining network namespace of container: No such container: net-ep-nobody"
    assert observe("peerless-start", start("net-ep-peerless")) == {
        "status": 500,
        "body": {"message": joining},
        "state": ["created", 128, joining],
    }


@pytest.mark.scenario(
    "api/networks/ipam-round-trip",
    "A network's IPAM Config MUST come back from inspect as given: Subnet, IPRange, Gateway and "
    "AuxiliaryAddresses (of an IPv4 and an IPv6 entry), through the API and through 'docker network create "
    "--subnet --ip-range --gateway --aux-address'; auxiliary addresses MUST never be handed to a container "
    "(a static one is refused: 403 'Address already in use'); one outside the subnet, not an address, or of "
    "the other family MUST be refused with 400, one equal to the gateway with 500; a second IPv4 subnet MUST "
    "be refused with 403 'bridge driver doesn't support multiple subnets'",
    ref="moby api/types/network/ipam.go ValidateIPAM; libnetwork network.go ipamAllocateVersion; "
    "libnetwork/drivers/bridge",
)
def test_ipam_round_trip(
    engine: EngineClient, docker_cli: Any, network: Any, container: Any, observe: Observations
) -> None:
    given = {
        "Subnet": "10.231.40.0/24",
        "IPRange": "10.231.40.128/25",
        "Gateway": "10.231.40.254",
        "AuxiliaryAddresses": {"host1": "10.231.40.5", "host2": "10.231.40.130"},
    }
    network("net-ipam-api", IPAM={"Driver": "default", "Config": [given], "Options": {"foo": "bar"}})
    ipam = engine.get(f"{V}/networks/net-ipam-api").json()["IPAM"]
    assert observe("api", ipam) == {"Driver": "default", "Options": {"foo": "bar"}, "Config": [given]}
    both = [
        {"Subnet": "10.231.45.0/24"},
        {
            "Subnet": "fd00:e231:1::/64",
            "IPRange": "fd00:e231:1::/80",
            "Gateway": "fd00:e231:1::1",
            "AuxiliaryAddresses": {"router": "fd00:e231:1::5"},
        },
    ]
    network("net-ipam-v6", EnableIPv6=True, IPAM={"Config": both})
    assert observe("api-ipv6", engine.get(f"{V}/networks/net-ipam-v6").json()["IPAM"]["Config"]) == both

    flags = ["--subnet", "10.231.41.0/24", "--ip-range", "10.231.41.0/25", "--gateway", "10.231.41.1"]
    made = docker_cli("network", "create", *flags, "--aux-address", "a=10.231.41.2", "net-ipam-cli")
    try:
        assert made.returncode == 0, made.stderr
        shown = docker_cli("network", "inspect", "-f", "{{json .IPAM.Config}}", "net-ipam-cli")
        assert observe("cli", json.loads(shown.stdout)) == [
            {
                "Subnet": "10.231.41.0/24",
                "IPRange": "10.231.41.0/25",
                "Gateway": "10.231.41.1",
                "AuxiliaryAddresses": {"a": "10.231.41.2"},
            }
        ]
    finally:
        docker_cli("network", "rm", "net-ipam-cli")

    aux = {"a": "10.231.42.2", "b": "10.231.42.3"}
    network(
        "net-ipam-small",
        IPAM={"Config": [{"Subnet": "10.231.42.0/29", "Gateway": "10.231.42.1", "AuxiliaryAddresses": aux}]},
    )
    addresses = []
    for name in ("net-ipam-c1", "net-ipam-c2", "net-ipam-c3"):
        assert container(name, HostConfig={"NetworkMode": "net-ipam-small"})[0] == 204
        addresses.append(_inspect(engine, name)["NetworkSettings"]["Networks"]["net-ipam-small"]["IPAddress"])
    assert observe("addresses", addresses) == ["10.231.42.4", "10.231.42.5", "10.231.42.6"]
    static = {"EndpointsConfig": {"net-ipam-small": {"IPAMConfig": {"IPv4Address": "10.231.42.2"}}}}
    started = container(
        "net-ipam-static", HostConfig={"NetworkMode": "net-ipam-small"}, NetworkingConfig=static
    )
    assert observe("static-aux", started) == (
        403,
        {"message": "failed to set up container networking: Address already in use"},
    )

    def refused(name: str, *configs: dict[str, Any]) -> dict[str, Any]:
        resp = engine.post(f"{V}/networks/create", json={"Name": name, "IPAM": {"Config": list(configs)}})
        if resp.status_code == 201:
            _remove_network(engine, resp.json()["Id"])
        return _error(resp)

    base = {"Subnet": "10.231.43.0/24"}
    seen = {
        "outside": refused("net-ipam-bad1", {**base, "AuxiliaryAddresses": {"x": "10.9.9.9"}}),
        "not-an-address": refused("net-ipam-bad2", {**base, "AuxiliaryAddresses": {"x": "nope"}}),
        "other-family": refused("net-ipam-bad3", {**base, "AuxiliaryAddresses": {"x": "fd00::1"}}),
        "gateway": refused(
            "net-ipam-bad4", {**base, "Gateway": "10.231.43.1", "AuxiliaryAddresses": {"x": "10.231.43.1"}}
        ),
        "two-subnets": refused("net-ipam-bad5", base, {"Subnet": "10.231.44.0/24"}),
    }
    observe("refused", seen)
    config_error = "invalid network config:\ninvalid auxiliary address x: "
    assert seen == {
        "outside": {
            "status": 400,
            "body": {"message": config_error + "parent subnet 10.231.43.0/24 doesn't contain this address"},
        },
        "not-an-address": {"status": 400, "body": {"message": config_error + "invalid address"}},
        "other-family": {"status": 400, "body": {"message": config_error + "parent subnet is an IPv4 block"}},
        "gateway": {
            "status": 500,
            "body": {
                "message": "failed to allocate secondary ip address (x:10.231.43.1): Address already in use"
            },
        },
        "two-subnets": {"status": 403, "body": {"message": "bridge driver doesn't support multiple subnets"}},
    }


@pytest.mark.scenario(
    "api/networks/internal",
    "A container on an --internal network MUST get an address but no gateway and no default route",
    ref="docker network create --internal",
)
def test_internal(engine: EngineClient, network: Any, container: Any, observe: Observations) -> None:
    network("net-internal", Internal=True, IPAM={"Config": [{"Subnet": "10.231.11.0/24"}]})
    container("net-internal-ctr", HostConfig={"NetworkMode": "net-internal"})
    ep = _inspect(engine, "net-internal-ctr")["NetworkSettings"]["Networks"]["net-internal"]
    exec_id = engine.post(
        f"{V}/containers/net-internal-ctr/exec", json={"Cmd": ["ip", "route"], "AttachStdout": True}
    ).json()["Id"]
    routes = engine.post(f"{V}/exec/{exec_id}/start", json={"Detach": False, "Tty": True}).text
    assert observe("endpoint", {k: ep[k] for k in ("IPAddress", "Gateway")}) == {
        "IPAddress": "10.231.11.2",
        "Gateway": "",
    }
    assert "10.231.11.0/24" in routes, routes  # the route the interface's address brings
    assert observe("default_route", "default" in routes) is False, routes


# -- connect / disconnect ----------------------------------------------------------------------------


@pytest.mark.scenario(
    "api/networks/connect-disconnect",
    "Connecting a running container MUST add an interface with an address on the network and a "
    "'connect' event; disconnecting MUST remove both and emit 'disconnect'",
    ref="operations NetworkConnect, NetworkDisconnect",
)
def test_connect_disconnect(
    engine: EngineClient, network: Any, container: Any, observe: Observations
) -> None:
    net_id = network("net-hotplug", IPAM={"Config": [{"Subnet": "10.231.12.0/24"}]})["Id"]
    container("net-hotplug-ctr")
    connected = engine.post(f"{V}/networks/net-hotplug/connect", json={"Container": "net-hotplug-ctr"})
    ep = _inspect(engine, "net-hotplug-ctr")["NetworkSettings"]["Networks"].get("net-hotplug") or {}

    def addrs() -> str:
        exec_id = engine.post(
            f"{V}/containers/net-hotplug-ctr/exec",
            json={"Cmd": ["ip", "-4", "-o", "addr"], "AttachStdout": True},
        ).json()["Id"]
        return engine.post(f"{V}/exec/{exec_id}/start", json={"Detach": False, "Tty": True}).text

    inside = addrs()
    disconnected = engine.post(f"{V}/networks/net-hotplug/disconnect", json={"Container": "net-hotplug-ctr"})
    after = addrs()
    events = engine.get(
        f"{V}/events",
        params={
            "since": "0",
            "until": str(int(time.time()) + 1),
            "filters": json.dumps({"network": [net_id]}),
        },
    )
    assert observe("connect", connected.status_code) == 200
    assert observe("address_in_subnet", ep.get("IPAddress", "").startswith("10.231.12.")), ep
    assert observe("interface_inside", "10.231.12." in inside), inside
    assert observe("disconnect", disconnected.status_code) == 200
    assert observe("gone_inside", "10.231.12." not in after), after
    networks_after = sorted(_inspect(engine, "net-hotplug-ctr")["NetworkSettings"]["Networks"])
    assert observe("networks_after", networks_after) == ["bridge"]
    seen = observe(
        "events",
        [(e["Action"], sorted(e["Actor"]["Attributes"])) for e in map(json.loads, events.text.splitlines())],
    )
    assert [action for action, _ in seen] == ["create", "connect", "disconnect"], seen


@pytest.mark.scenario(
    "api/networks/connect-refused",
    "Connecting twice, an unknown container or network, or to the host network MUST fail with dockerd's "
    "status and message; disconnecting a container that is not connected MUST fail too",
    ref="moby daemon/container_operations.go ConnectToNetwork",
)
def test_connect_refused(engine: EngineClient, network: Any, container: Any, observe: Observations) -> None:
    network("net-refuse")
    container("net-refuse-ctr")
    first = engine.post(f"{V}/networks/net-refuse/connect", json={"Container": "net-refuse-ctr"})
    assert observe("first", first.status_code) == 200
    cases = {
        "twice": (
            ("net-refuse", "connect", "net-refuse-ctr"),
            403,
            "endpoint with name net-refuse-ctr already exists in network net-refuse",
        ),
        "no_container": (("net-refuse", "connect", "nope-ctr"), 404, "No such container: nope-ctr"),
        "no_network": (("nope-net", "connect", "net-refuse-ctr"), 404, "network nope-net not found"),
        "host": (
            ("host", "connect", "net-refuse-ctr"),
            400,
            "cannot connect container to host network - container must be created in host network mode",
        ),
    }
    for key, ((net, action, ctr), status, message) in cases.items():
        resp = engine.post(f"{V}/networks/{net}/{action}", json={"Container": ctr})
        observe(key, _error(resp))
        expect_error(resp, status, message)
    engine.post(f"{V}/networks/net-refuse/disconnect", json={"Container": "net-refuse-ctr"})
    resp = engine.post(f"{V}/networks/net-refuse/disconnect", json={"Container": "net-refuse-ctr"})
    observe("not_connected", _error(resp))
    expect_error(resp, 500, re.compile(r"container [0-9a-f]{64} is not connected to network net-refuse$"))


@pytest.mark.scenario(
    "api/networks/connect-created",
    "Connecting a created (not running) container MUST record the network, and starting it MUST give it "
    "an interface on both networks",
    ref="operation NetworkConnect",
)
def test_connect_created(engine: EngineClient, network: Any, container: Any, observe: Observations) -> None:
    network("net-later", IPAM={"Config": [{"Subnet": "10.231.13.0/24"}]})
    container("net-later-ctr", start=False)
    connected = engine.post(f"{V}/networks/net-later/connect", json={"Container": "net-later-ctr"})
    before = _inspect(engine, "net-later-ctr")["NetworkSettings"]["Networks"]
    started = engine.post(f"{V}/containers/net-later-ctr/start")
    after = _inspect(engine, "net-later-ctr")["NetworkSettings"]["Networks"]
    assert observe("connect", connected.status_code) == 200
    assert observe("before", {k: v["IPAddress"] for k, v in before.items()}) == {
        "bridge": "",
        "net-later": "",
    }
    assert observe("start", started.status_code) == 204
    assert observe("after_networks", sorted(after)) == ["bridge", "net-later"]
    assert observe("after_has_addresses", all(v["IPAddress"] for v in after.values())), after


@pytest.mark.scenario(
    "api/networks/static-ip-default-bridge",
    "A static address on the default bridge MUST be refused at create: user specified IP address is "
    "supported on user defined networks only, and (unless --bip configured the bridge's subnet) only when "
    "connecting to networks with user configured subnets",
    ref="moby daemon/container_operations.go validateEndpointSettings",
)
def test_static_ip_default_bridge(
    engine: EngineClient, container: Any, observe: Observations, profile: Profile
) -> None:
    resp = container(
        "net-static-bridge",
        start=False,
        NetworkingConfig={"EndpointsConfig": {"bridge": {"IPAMConfig": {"IPv4Address": "172.17.0.99"}}}},
    )
    status, body = observe("error", resp)
    assert status == 400
    assert "user specified IP address is supported on user defined networks only" in body["message"]
    configured = (
        "user specified IP address is supported only when connecting to networks with user configured"
    )
    assert (configured in body["message"]) is not bool(profile.setting("bip")), body


@pytest.mark.kernel
@pytest.mark.scenario(
    "api/networks/none-and-host",
    "--network none MUST leave the container with only lo and no address; --network host MUST have no "
    "sandbox of its own; both listed under their network's name",
    ref="docker run --network none|host",
)
def test_none_and_host(engine: EngineClient, container: Any, observe: Observations) -> None:
    container("net-none", HostConfig={"NetworkMode": "none"})
    container("net-host", HostConfig={"NetworkMode": "host"})
    none_doc = _inspect(engine, "net-none")["NetworkSettings"]
    host_doc = _inspect(engine, "net-host")["NetworkSettings"]
    exec_id = engine.post(
        f"{V}/containers/net-none/exec", json={"Cmd": ["ls", "/sys/class/net"], "AttachStdout": True}
    ).json()["Id"]
    links = engine.post(f"{V}/exec/{exec_id}/start", json={"Detach": False, "Tty": True}).text.split()
    none_networks = {k: (v["IPAddress"], v["Gateway"]) for k, v in none_doc["Networks"].items()}
    assert observe("none_networks", none_networks) == {"none": ("", "")}
    assert observe("none_links", sorted(links)) == ["lo"]
    host_networks = {k: (v["IPAddress"], v["Gateway"]) for k, v in host_doc["Networks"].items()}
    assert observe("host_networks", host_networks) == {"host": ("", "")}
    assert observe("host_sandbox_key", host_doc["SandboxKey"].rsplit("/", 1)[-1]) == "default"


# -- MAC addresses -------------------------------------------------------------------------------------


def _create_at(engine: EngineClient, version: str, name: str, image: str, **body: Any) -> Any:
    return engine.post(
        f"/v{version}/containers/create",
        params={"name": name},
        json={"Image": image, "Cmd": ["sleep", "300"], **body},
    )


def _macs(engine: EngineClient, name: str, net: str) -> dict[str, Any]:
    doc = _inspect(engine, name)
    return {
        "config": doc["Config"].get("MacAddress", "<absent>"),
        "endpoint": doc["NetworkSettings"]["Networks"][net]["MacAddress"],
    }


def _eth0(engine: EngineClient, name: str) -> str:
    exec_id = engine.post(
        f"{V}/containers/{name}/exec",
        json={"Cmd": ["cat", "/sys/class/net/eth0/address"], "AttachStdout": True},
    ).json()["Id"]
    raw = engine.post(f"{V}/exec/{exec_id}/start", json={"Detach": False, "Tty": True}).content
    return raw.decode().strip()


@pytest.mark.scenario(
    "api/networks/mac-address",
    "A MAC address given at create MUST be the container's: API 1.44+ in "
    "NetworkingConfig.EndpointsConfig.<net>.MacAddress, older APIs in Config.MacAddress (1.44+ take it too, "
    "with dockerd's deprecation warning); inspect MUST show it (Config.MacAddress, the endpoint's while it "
    "runs) and a restart MUST keep it; an invalid one, a mismatch and a MAC with --network none MUST be 400s",
    ref="operation ContainerCreate; moby api/server/router/container/container_routes.go handleMACAddressBC",
)
def test_mac_address(engine: EngineClient, network: Any, test_image: str, observe: Observations) -> None:
    network("net-mac", IPAM={"Config": [{"Subnet": "10.231.51.0/24"}]})
    cases: dict[str, tuple[str, str, dict[str, Any]]] = {
        "v1.41-config": ("1.41", "02:42:0a:e7:33:41", {"MacAddress": "02:42:0a:e7:33:41"}),
        "v1.44-endpoint": (
            "1.44",
            "02:42:0a:e7:33:44",
            {"NetworkingConfig": {"EndpointsConfig": {"net-mac": {"MacAddress": "02:42:0a:e7:33:44"}}}},
        ),
        "v1.44-config": ("1.44", "02:42:0a:e7:33:45", {"MacAddress": "02:42:0a:e7:33:45"}),
    }
    seen: dict[str, Any] = {}
    for case, (version, mac, body) in cases.items():
        name = f"mac-{case.replace('.', '')}"
        resp = _create_at(engine, version, name, test_image, HostConfig={"NetworkMode": "net-mac"}, **body)
        created = expect_status(resp, 201)
        engine.post(f"{V}/containers/{name}/start")
        running = {
            "warnings": created["Warnings"],
            **_macs(engine, name, "net-mac"),
            "eth0": _eth0(engine, name),
        }
        engine.post(f"{V}/containers/{name}/stop", params={"t": "0"})
        stopped = _macs(engine, name, "net-mac")
        engine.post(f"{V}/containers/{name}/start")
        restarted = _eth0(engine, name)
        engine.delete(f"{V}/containers/{name}?force=1")
        seen[case] = {"running": running, "stopped": stopped, "restarted": restarted}
        assert running["config"] == mac and running["endpoint"] == mac and running["eth0"] == mac, running
        assert stopped == {"config": mac, "endpoint": ""}, stopped
        assert restarted == mac
    observe("accepted", seen)
    assert seen["v1.41-config"]["running"]["warnings"] == []
    assert seen["v1.44-endpoint"]["running"]["warnings"] == []
    assert seen["v1.44-config"]["running"]["warnings"] == [
        "The container-wide MacAddress field is now deprecated. It should be specified in EndpointsConfig "
        "instead."
    ]
    refused = {
        "invalid": _create_at(
            engine,
            "1.44",
            "mac-invalid",
            test_image,
            HostConfig={"NetworkMode": "net-mac"},
            NetworkingConfig={"EndpointsConfig": {"net-mac": {"MacAddress": "zz:42"}}},
        ),
        "mismatch": _create_at(
            engine,
            "1.44",
            "mac-mismatch",
            test_image,
            MacAddress="02:42:0a:e7:33:46",
            HostConfig={"NetworkMode": "net-mac"},
            NetworkingConfig={"EndpointsConfig": {"net-mac": {"MacAddress": "02:42:0a:e7:33:47"}}},
        ),
        "network-none": _create_at(
            engine,
            "1.41",
            "mac-none",
            test_image,
            MacAddress="02:42:0a:e7:33:48",
            HostConfig={"NetworkMode": "none"},
        ),
    }
    for resp in refused.values():
        if resp.status_code == 201:
            engine.delete(f"{V}/containers/{resp.json()['Id']}?force=1")
    observe("refused", {k: (r.status_code, r.json().get("message")) for k, r in refused.items()})
    expect_error(refused["invalid"], 400, "invalid config for network net-mac: invalid MAC address zz:42")
    expect_error(
        refused["mismatch"],
        400,
        "the container-wide MAC address must match the endpoint-specific MAC address for the main network, "
        "or be left empty",
    )
    expect_error(refused["network-none"], 400, "conflicting options: mac-address and the network mode")


# -- IPv6 ----------------------------------------------------------------------------------------------


def _exec_text(engine: EngineClient, name: str, cmd: list[str]) -> str:
    exec_id = engine.post(
        f"{V}/containers/{name}/exec", json={"Cmd": cmd, "AttachStdout": True, "AttachStderr": True}
    ).json()["Id"]
    return str(engine.post(f"{V}/exec/{exec_id}/start", json={"Detach": False, "Tty": True}).text)


@pytest.mark.scenario(
    "api/networks/ipv6-network",
    "A network created with EnableIPv6 and an IPv6 subnet MUST say EnableIPv6 true and list that subnet as "
    "given (configured entries first); a container on it MUST get the subnet's next IPv6 address (::2, the "
    "gateway ::1) in its endpoint, the network's Containers, its interface, its default route and "
    "/etc/hosts, and reach the gateway over IPv6",
    ref="docker network create --ipv6 --subnet; moby daemon/network.go buildIPAMResources; issue 20 item 12",
)
def test_ipv6_network(engine: EngineClient, network: Any, container: Any, observe: Observations) -> None:
    subnet = "fd00:c0f:2::/64"
    network("net-v6", EnableIPv6=True, IPAM={"Config": [{"Subnet": subnet}]})
    doc = engine.get(f"{V}/networks/net-v6").json()
    observe("enable_ipv6", doc["EnableIPv6"])
    config = observe(
        "ipam_config",  # the IPv4 subnet is the next free default pool: its family and keys are observed
        [c if ":" in c["Subnet"] else {"IPv4": sorted(c)} for c in doc["IPAM"]["Config"] or []],
    )
    status, _ = container("net-v6-ctr", HostConfig={"NetworkMode": "net-v6"})
    assert status == 204
    settings = _inspect(engine, "net-v6-ctr")["NetworkSettings"]
    ep = settings["Networks"]["net-v6"]
    endpoint = observe(
        "endpoint", {k: ep[k] for k in ("GlobalIPv6Address", "GlobalIPv6PrefixLen", "IPv6Gateway")}
    )
    top_level = observe("top_level_ipv6", settings["GlobalIPv6Address"])  # the default bridge's only
    listed = engine.get(f"{V}/networks/net-v6").json()["Containers"]
    in_network = observe("network_containers", [c["IPv6Address"] for c in listed.values()])
    inside = _exec_text(
        engine, "net-v6-ctr", ["sh", "-c", "ip -6 addr show eth0; ip -6 route; cat /etc/hosts"]
    )
    ping = _exec_text(engine, "net-v6-ctr", ["ping", "-6", "-c", "1", "-W", "5", "fd00:c0f:2::1"])
    seen = observe(
        "inside",
        {
            "address": "inet6 fd00:c0f:2::2/64" in inside,
            "default_route": "default via fd00:c0f:2::1" in inside,
            "hosts_entry": any(
                line.split()[:1] == ["fd00:c0f:2::2"] for line in inside.splitlines() if line.strip()
            ),
            "gateway_answers": " 0% packet loss" in ping,
        },
    )
    assert doc["EnableIPv6"] is True
    assert config == [{"Subnet": subnet}, {"IPv4": ["Gateway", "Subnet"]}]
    assert endpoint == {
        "GlobalIPv6Address": "fd00:c0f:2::2",
        "GlobalIPv6PrefixLen": 64,
        "IPv6Gateway": "fd00:c0f:2::1",
    }
    assert top_level == ""
    assert in_network == ["fd00:c0f:2::2/64"]
    assert seen == dict.fromkeys(seen, True), (inside, ping)
