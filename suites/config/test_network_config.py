"""Networking configured on the daemon: --bip, --bridge, --mtu, --dns, --fixed-cidr, and networks across a
daemon restart (with and without live-restore). Each scenario boots its own daemon."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

import pytest

from harness.backends.base import DaemonHandle
from harness.checks import eventually
from harness.client import EngineClient
from harness.fixtures import DaemonFactory, Observations
from harness.profiles import Profile
from harness.testimage import load_test_image
from suites._daemon import NEEDS_DEFAULT_BRIDGE, FakeDNS, http_get_in_daemon_netns


@pytest.fixture
def client_for() -> Iterator[Any]:
    clients: list[EngineClient] = []

    def make(daemon: DaemonHandle) -> EngineClient:
        assert daemon.endpoint is not None
        client = EngineClient(daemon.endpoint, timeout=60)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def _run(client: EngineClient, image: str, name: str, cmd: list[str], **body: Any) -> dict[str, Any]:
    created = client.post(f"/containers/create?name={name}", json={"Image": image, "Cmd": cmd, **body})
    assert created.status_code == 201, created.text
    started = client.post(f"/containers/{name}/start")
    assert started.status_code == 204, started.text
    return dict(client.get(f"/containers/{name}/json").json())


def _exec(client: EngineClient, name: str, cmd: list[str]) -> str:
    exec_id = client.post(f"/containers/{name}/exec", json={"Cmd": cmd, "AttachStdout": True}).json()["Id"]
    return str(client.post(f"/exec/{exec_id}/start", json={"Detach": False, "Tty": True}).text)


@NEEDS_DEFAULT_BRIDGE
@pytest.mark.scenario(
    "config/network/bip-and-mtu",
    "--bip MUST set the default bridge's subnet and gateway and --mtu its MTU, both visible in the bridge "
    "network's inspect and inside a container",
    ref="dockerd --bip, --mtu; moby daemon/daemon_unix.go initBridgeDriver",
)
def test_bip_and_mtu(daemon_factory: DaemonFactory, client_for: Any, observe: Observations) -> None:
    daemon = daemon_factory(args=["--bip=10.232.7.1/24", "--mtu=1400"])
    client = client_for(daemon)
    image = load_test_image(daemon.endpoint)  # type: ignore[arg-type]
    bridge = client.get("/networks/bridge").json()
    doc = _run(client, image, "bip-probe", ["sleep", "60"])
    ipam = observe("ipam", bridge["IPAM"]["Config"])  # the ipv6 profile adds its --fixed-cidr-v6 entry
    assert [c for c in ipam if ":" not in c["Subnet"]] == [
        {"Subnet": "10.232.7.0/24", "Gateway": "10.232.7.1"}
    ]
    assert observe("mtu_option", bridge["Options"].get("com.docker.network.driver.mtu")) == "1400"
    assert observe("address", doc["NetworkSettings"]["IPAddress"]) == "10.232.7.2"
    assert observe("gateway", doc["NetworkSettings"]["Gateway"]) == "10.232.7.1"
    link = _exec(client, "bip-probe", ["ip", "link", "show", "eth0"])
    assert observe("eth0_mtu", "mtu 1400" in link), link
    client.delete("/containers/bip-probe?force=1")


@NEEDS_DEFAULT_BRIDGE
@pytest.mark.profiles(
    exclude=("host-docker0",),
    reason="the profile's bip gives the default bridge its subnet, so it does not take the first pool's",
)
@pytest.mark.scenario(
    "config/network/default-address-pools",
    "daemon.json default-address-pools MUST be where networks without a subnet get theirs: sorted by "
    "address, each cut into subnets of its size (the default bridge takes the first), IPv6 networks from the "
    "IPv6 pools; /info lists the pools in their order with the bases masked",
    ref="dockerd --default-address-pool; moby libnetwork/ipams/defaultipam (splitByIPFamily, newAddrSpace)",
)
def test_default_address_pools(daemon_factory: DaemonFactory, client_for: Any, observe: Observations) -> None:
    pools = [
        {"base": "10.233.1.0/16", "size": 24},  # not masked as written: dockerd masks it
        {"base": "10.234.0.0/16", "size": 20},  # ... and sorts it first
        {"base": "fd00:abcd::/56", "size": 64},
    ]
    daemon = daemon_factory(config={"default-address-pools": pools})
    client = client_for(daemon)
    shown = client.get("/info").json().get("DefaultAddressPools")
    bridge = client.get("/networks/bridge").json()["IPAM"]["Config"]
    subnets = []
    for name, body in (("pool-a", {}), ("pool-b", {}), ("pool-6", {"EnableIPv6": True})):
        created = client.post("/networks/create", json={"Name": name, **body})
        assert created.status_code == 201, created.text
        subnets.append([c["Subnet"] for c in client.get(f"/networks/{name}").json()["IPAM"]["Config"]])
    for name in ("pool-a", "pool-b", "pool-6"):
        client.delete(f"/networks/{name}")
    observe("info", shown)
    observe("bridge", bridge)
    observe("networks", subnets)
    assert shown == [
        {"Base": "10.233.0.0/16", "Size": 24},
        {"Base": "10.234.0.0/16", "Size": 20},
        {"Base": "fd00:abcd::/56", "Size": 64},
    ]
    # the ipv6 profile adds its --fixed-cidr-v6 entry to the bridge (observed above, checked here as IPv4)
    assert [c for c in bridge if ":" not in c["Subnet"]] == [
        {"Subnet": "10.233.0.0/24", "Gateway": "10.233.0.1"}
    ]
    assert subnets == [
        ["10.233.1.0/24"],
        ["10.233.2.0/24"],
        ["10.233.3.0/24", "fd00:abcd::/64"],
    ]


@NEEDS_DEFAULT_BRIDGE
@pytest.mark.scenario(
    "config/network/fixed-cidr",
    "--fixed-cidr MUST confine the default bridge's dynamic addresses to that range and show it as IPRange",
    ref="dockerd --fixed-cidr",
)
def test_fixed_cidr(daemon_factory: DaemonFactory, client_for: Any, observe: Observations) -> None:
    daemon = daemon_factory(args=["--bip=10.232.8.1/24", "--fixed-cidr=10.232.8.128/25"])
    client = client_for(daemon)
    image = load_test_image(daemon.endpoint)  # type: ignore[arg-type]
    doc = _run(client, image, "cidr-probe", ["sleep", "60"])
    ipam = observe("ipam", client.get("/networks/bridge").json()["IPAM"]["Config"])
    assert [c for c in ipam if ":" not in c["Subnet"]] == [  # the ipv6 profile adds its IPv6 entry
        {"Subnet": "10.232.8.0/24", "IPRange": "10.232.8.128/25", "Gateway": "10.232.8.1"}
    ]
    address = ipaddress.ip_address(doc["NetworkSettings"]["IPAddress"])
    assert observe("in_range", address in ipaddress.ip_network("10.232.8.128/25")), address
    client.delete("/containers/cidr-probe?force=1")


@pytest.mark.scenario(
    "config/network/custom-bridge-name",
    "--bridge naming a bridge that does not exist MUST stop start-up with dockerd's message",
    ref="dockerd -b; moby libnetwork/drivers/bridge",
)
def test_bridge_missing(daemon_factory: DaemonFactory, observe: Observations) -> None:
    code, daemon = daemon_factory.start_expecting_exit(args=["--bridge=br-missing0"])
    logs = daemon.logs()
    observe("exit_code", code)
    observe("names_bridge", "br-missing0" in logs)
    assert code != 0


@pytest.mark.profiles(
    exclude=("host-docker0",),
    reason="-b with the profile's --bip is a different refusal than the one checked",
)
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bridge=none", "--bip=10.232.9.1/24"], "You specified -b & --bip, mutually exclusive options"),
        (["--bridge=br-x", "--bip6=fd00:9::1/64"], "You specified -b & --bip6, mutually exclusive options"),
        (
            ["--icc=false", "--iptables=false"],
            "You specified --iptables=false with --icc=false. ICC=false uses iptables to function",
        ),
    ],
    ids=["bridge-bip", "bridge-bip6", "icc-iptables"],
)
@pytest.mark.scenario(
    "config/network/incompatible-settings",
    "Settings that cannot go together (-b with --bip or --bip6, --icc=false with --iptables=false) MUST "
    "stop start-up with dockerd's message, after --validate accepted them",
    ref="moby daemon/daemon_unix.go verifyDaemonSettings",
)
def test_incompatible_settings(
    daemon_factory: DaemonFactory, observe: Observations, args: list[str], message: str
) -> None:
    code, daemon = daemon_factory.start_expecting_exit(args=args)
    line = next((ln for ln in daemon.logs().splitlines() if message in ln), "")
    observe(f"{args[1].split('=')[0]}", {"exit": code, "line": line})
    assert code == 1 and line.startswith("failed to start daemon: " + message), daemon.log_excerpt()


@pytest.mark.scenario(
    "config/network/dns-flag",
    "--dns MUST become the nameservers of containers on the default bridge and the embedded DNS's "
    "upstreams (ExtServers) on user networks",
    ref="dockerd --dns",
)
def test_dns_flag(daemon_factory: DaemonFactory, client_for: Any, observe: Observations) -> None:
    daemon = daemon_factory(args=["--dns=192.0.2.53"])
    client = client_for(daemon)
    image = load_test_image(daemon.endpoint)  # type: ignore[arg-type]
    client.post("/networks/create", json={"Name": "dnsflag"})
    _run(client, image, "dns-bridge", ["sleep", "60"])
    _run(client, image, "dns-user", ["sleep", "60"], HostConfig={"NetworkMode": "dnsflag"})
    bridge_resolv = observe(
        "bridge_resolv", _exec(client, "dns-bridge", ["cat", "/etc/resolv.conf"]).splitlines()
    )
    user_resolv = observe("user_resolv", _exec(client, "dns-user", ["cat", "/etc/resolv.conf"]).splitlines())
    assert [ln for ln in bridge_resolv if ln.startswith("nameserver")] == ["nameserver 192.0.2.53"]
    assert [ln for ln in user_resolv if ln.startswith("nameserver")] == ["nameserver 127.0.0.11"]
    assert "# ExtServers: [192.0.2.53]" in user_resolv, user_resolv
    for name in ("dns-bridge", "dns-user"):
        client.delete(f"/containers/{name}?force=1")
    client.delete("/networks/dnsflag")


@pytest.mark.scenario(
    "config/network/survive-restart",
    "User-defined networks MUST keep their ids and subnets across a daemon restart (the default bridge its "
    "subnet: dockerd re-creates it), and a container started afterwards MUST get an address there",
    ref="moby libnetwork store",
)
def test_networks_survive_restart(
    daemon_factory: DaemonFactory, client_for: Any, observe: Observations
) -> None:
    daemon = daemon_factory()
    client = client_for(daemon)
    image = load_test_image(daemon.endpoint)  # type: ignore[arg-type]
    created = client.post(
        "/networks/create", json={"Name": "kept", "IPAM": {"Config": [{"Subnet": "10.232.9.0/24"}]}}
    )
    before = {n["Name"]: (n["Id"], n["IPAM"]["Config"]) for n in client.get("/networks").json()}
    daemon_factory.restart(daemon)
    client = client_for(daemon)
    after = {n["Name"]: (n["Id"], n["IPAM"]["Config"]) for n in client.get("/networks").json()}
    doc = _run(client, image, "after-restart", ["sleep", "60"], HostConfig={"NetworkMode": "kept"})
    assert observe("create_status", created.status_code) == 201
    observe("same", {name: before[name] == after.get(name) for name in sorted(before)})
    same_ids = observe("same_ids", {name: before[name][0] == after[name][0] for name in sorted(before)})
    subnets = {name: [c["Subnet"] for c in before[name][1] or []] for name in sorted(before)}
    subnets_after = {name: [c["Subnet"] for c in after[name][1] or []] for name in sorted(before)}
    kept_ids = {name: same for name, same in same_ids.items() if name != "bridge"}
    assert kept_ids == dict.fromkeys(kept_ids, True), (before, after)

    # the same subnets, in whatever order: dockerd 28.5 lists the ipv6 profile's bridge entries in another
    # order after a restart (a known divergence; "same" above shows it)
    same_subnets = {name: sorted(subnets[name]) == sorted(subnets_after[name]) for name in subnets}
    assert observe("same_subnets", all(same_subnets.values())), (subnets, subnets_after)
    address = observe("address", doc["NetworkSettings"]["Networks"]["kept"]["IPAddress"])
    assert ipaddress.ip_address(address) in ipaddress.ip_network("10.232.9.0/24")
    client.delete("/containers/after-restart?force=1")


@pytest.mark.scenario(
    "config/network/live-restore",
    "With --live-restore a running container MUST keep its address across a daemon restart, its published "
    "port MUST answer again and its name MUST still resolve on its user network",
    ref="dockerd --live-restore; spec 7.3",
)
def test_live_restore_network(daemon_factory: DaemonFactory, client_for: Any, observe: Observations) -> None:
    daemon = daemon_factory(args=["--live-restore"])
    client = client_for(daemon)
    image = load_test_image(daemon.endpoint)  # type: ignore[arg-type]
    client.post("/networks/create", json={"Name": "lr", "IPAM": {"Config": [{"Subnet": "10.232.10.0/24"}]}})
    serve = "mkdir -p /www && echo hello-from-lr > /www/index.html && exec httpd -f -p 80 -h /www"
    before = _run(
        client,
        image,
        "lr-web",
        ["sh", "-c", serve],
        HostConfig={
            "NetworkMode": "lr",
            "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18090"}]},
        },
        ExposedPorts={"80/tcp": {}},
    )
    daemon_factory.restart(daemon)
    client = client_for(daemon)
    after = client.get("/containers/lr-web/json").json()
    answer = http_get_in_daemon_netns(daemon, "127.0.0.1", 18090)
    lookup = client.post(
        "/containers/create?name=lr-probe",
        json={"Image": image, "Cmd": ["nslookup", "lr-web"], "HostConfig": {"NetworkMode": "lr"}},
    )
    client.post("/containers/lr-probe/start")
    client.post("/containers/lr-probe/wait")
    logs = client.get("/containers/lr-probe/logs?stdout=1").content
    ip = before["NetworkSettings"]["Networks"]["lr"]["IPAddress"]
    assert observe("running", after["State"]["Running"])
    assert observe("same_address", after["NetworkSettings"]["Networks"]["lr"]["IPAddress"] == ip), after
    assert observe("port_answers", "hello-from-lr" in answer), answer
    assert observe("resolves", ip.encode() in logs), logs
    assert observe("lookup_create_status", lookup.status_code) == 201
    for name in ("lr-probe", "lr-web"):
        client.delete(f"/containers/{name}?force=1")
    client.delete("/networks/lr")


@NEEDS_DEFAULT_BRIDGE
@pytest.mark.scenario(
    "config/network/dns-forwarding",
    "Names that are not containers MUST be forwarded by the embedded DNS to the daemon's --dns servers "
    "(user networks), and containers on the default bridge MUST query those servers directly",
    ref="moby libnetwork/resolver.go forwardExtDNS",
)
def test_dns_forwarding(daemon_factory: DaemonFactory, client_for: Any, observe: Observations) -> None:
    daemon = daemon_factory(args=["--bip=10.232.12.1/24", "--dns=10.232.12.1"])
    client = client_for(daemon)
    image = load_test_image(daemon.endpoint)  # type: ignore[arg-type]
    upstream = FakeDNS(daemon, {"upstream.test": "192.0.2.99"}, address="10.232.12.1")  # replies from it
    try:
        client.post("/networks/create", json={"Name": "fwd"})
        outputs = {}
        for name, mode in (("fwd-user", "fwd"), ("fwd-bridge", "bridge")):
            client.post(
                f"/containers/create?name={name}",
                json={
                    "Image": image,
                    "Cmd": ["sh", "-c", "nslookup upstream.test; nslookup missing.test"],
                    "HostConfig": {"NetworkMode": mode},
                },
            )
            client.post(f"/containers/{name}/start")
            client.post(f"/containers/{name}/wait", timeout=60)
            logs = client.get(f"/containers/{name}/logs?stdout=1&stderr=1").content
            outputs[name] = logs.decode(errors="replace")
    finally:
        upstream.close()
    for name in ("fwd-user", "fwd-bridge"):
        client.delete(f"/containers/{name}?force=1")
    client.delete("/networks/fwd")
    assert observe("user_resolved", "192.0.2.99" in outputs["fwd-user"]), outputs
    assert observe("bridge_resolved", "192.0.2.99" in outputs["fwd-bridge"]), outputs
    assert observe(
        "user_missing_not_found", "NXDOMAIN" in outputs["fwd-user"] or "can't find" in outputs["fwd-user"]
    ), outputs
    asked = observe("upstream_asked", sorted({q for q in upstream.queries if q.endswith(".test")}))
    assert asked == ["missing.test", "upstream.test"]


def _nat_rules(daemon: DaemonHandle, tool: str = "iptables") -> list[str]:
    import subprocess

    netns = daemon.netns_path or "/proc/self/ns/net"
    out = subprocess.run(
        ["nsenter", f"--net={netns}", tool, "-w", "-t", "nat", "-S"], capture_output=True, text=True
    ).stdout
    return out.splitlines()


@pytest.mark.parametrize("iptables", [True, False])
@NEEDS_DEFAULT_BRIDGE
@pytest.mark.scenario(
    "config/network/published-port-nat",
    "With --iptables (default) a published port MUST get a DNAT rule to the container in the nat table's "
    "DOCKER chain and masquerading for the bridge subnet; with --iptables=false there MUST be no such rules "
    "and the port MUST still answer on loopback",
    ref="dockerd --iptables; moby libnetwork/drivers/bridge/port_mapping_linux.go",
)
def test_published_port_nat(
    daemon_factory: DaemonFactory, client_for: Any, observe: Observations, iptables: bool
) -> None:
    # both settings named, so a profile's (no-iptables, no-userland-proxy) is left out: without iptables
    # the port answers on loopback through the userland proxy alone
    settings = ["--iptables=true"] if iptables else ["--iptables=false", "--userland-proxy=true"]
    daemon = daemon_factory(args=["--bip=10.232.13.1/24", *settings])
    client = client_for(daemon)
    image = load_test_image(daemon.endpoint)  # type: ignore[arg-type]
    serve = "mkdir -p /www && echo hello-from-nat > /www/index.html && exec httpd -f -p 80 -h /www"
    doc = _run(
        client,
        image,
        "nat-web",
        ["sh", "-c", serve],
        HostConfig={"PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "18095"}]}},
        ExposedPorts={"80/tcp": {}},
    )
    address = doc["NetworkSettings"]["IPAddress"]

    def served() -> str:
        text = http_get_in_daemon_netns(daemon, "127.0.0.1", 18095)
        return text if "hello-from-nat" in text else ""

    answer = eventually(served, "busybox httpd answering on 127.0.0.1:18095", timeout=10)
    rules = _nat_rules(daemon)
    key = "iptables" if iptables else "no-iptables"
    seen = observe(
        key,
        {
            "dnat_to_container": any(
                "--dport 18095" in r and f"--to-destination {address}:80" in r and r.startswith("-A DOCKER")
                for r in rules
            ),
            "masquerade_subnet": any("10.232.13.0/24" in r and "MASQUERADE" in r for r in rules),
            "loopback_answers": "hello-from-nat" in answer,
        },
    )
    expected = {"dnat_to_container": iptables, "masquerade_subnet": iptables, "loopback_answers": True}
    assert seen == expected, rules
    client.delete("/containers/nat-web?force=1")


@NEEDS_DEFAULT_BRIDGE
@pytest.mark.profiles(
    exclude=("no-iptables",),
    reason="published ports without the proxy need the NAT --iptables=false leaves out",
)
@pytest.mark.scenario(
    "config/network/no-userland-proxy",
    "With --userland-proxy=false a published port MUST be reached through NAT alone: on the host's loopback "
    "(the OUTPUT jump without the loopback exclusion, route_localnet on the bridge) and from the container "
    "itself through the host's address (hairpin: DNAT without '! -i <bridge>', the per-port and local-source "
    "masquerading); the daemon holds the host port, and an IPv4-only container is published on 0.0.0.0 only "
    "(a dual-stack one, in the ipv6 profile, on 0.0.0.0 and ::)",
    ref="dockerd --userland-proxy=false; moby libnetwork/drivers/bridge/internal/iptabler (Hairpin)",
)
def test_no_userland_proxy(
    daemon_factory: DaemonFactory, client_for: Any, observe: Observations, profile: Profile
) -> None:
    import subprocess

    daemon = daemon_factory(args=["--bip=10.232.14.1/24", "--userland-proxy=false"])
    client = client_for(daemon)
    image = load_test_image(daemon.endpoint)  # type: ignore[arg-type]
    serve = "mkdir -p /www && echo hello-by-nat > /www/index.html && exec httpd -f -p 80 -h /www"
    doc = _run(
        client,
        image,
        "hairpin-web",
        ["sh", "-c", serve],
        HostConfig={"PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "18098"}]}},
        ExposedPorts={"80/tcp": {}},
    )
    address = doc["NetworkSettings"]["IPAddress"]

    def served() -> str:
        text = http_get_in_daemon_netns(daemon, "127.0.0.1", 18098)
        return text if "hello-by-nat" in text else ""

    answer = eventually(served, "busybox httpd answering on 127.0.0.1:18098 through NAT", timeout=10)
    request = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 10.232.14.1 18098"
    hairpin = _exec(client, "hairpin-web", ["sh", "-c", request])
    rules = _nat_rules(daemon)
    netns = daemon.netns_path or "/proc/self/ns/net"
    listening = subprocess.run(
        ["nsenter", f"--net={netns}", "ss", "-Hltn", "sport = :18098"], capture_output=True, text=True
    ).stdout
    dnat = "-A DOCKER -p tcp -m tcp --dport 18098 -j DNAT"
    seen = observe(
        "no-userland-proxy",
        {
            "host_ports": [p["HostIp"] for p in doc["NetworkSettings"]["Ports"]["80/tcp"]],
            "loopback_answers": "hello-by-nat" in answer,
            "hairpin_answers": "hello-by-nat" in hairpin,
            "port_held": "0.0.0.0:18098" in listening,
            "output_jump_takes_loopback": "-A OUTPUT -m addrtype --dst-type LOCAL -j DOCKER" in rules,
            "dnat_from_bridge_too": f"{dnat} --to-destination {address}:80" in rules,
            "hairpin_masquerade": f"-A POSTROUTING -s {address}/32 -d {address}/32 -p tcp -m tcp --dport 80 "
            "-j MASQUERADE" in rules,
            "local_source_masquerade": "-A POSTROUTING -o docker0 -m addrtype --src-type LOCAL -j MASQUERADE"
            in rules,
        },
    )
    client.delete("/containers/hairpin-web?force=1")
    assert seen.pop("host_ports") == (["0.0.0.0", "::"] if profile.setting("ipv6") else ["0.0.0.0"])
    assert seen == dict.fromkeys(seen, True), (rules, hairpin, listening)


@NEEDS_DEFAULT_BRIDGE
@pytest.mark.profiles(
    exclude=("no-iptables",), reason="checks the ip6tables rules, which --iptables=false does not make"
)
@pytest.mark.scenario(
    "config/network/ipv6-default-bridge",
    "--ipv6 --fixed-cidr-v6 MUST give the default bridge that IPv6 subnet (EnableIPv6, an IPAM entry with "
    "the subnet as IPRange), containers on it the next IPv6 address (::2, gateway ::1) at the top level and "
    "in their endpoint, ip6tables masquerading for the subnet and a DNAT of a published port to the "
    "container's IPv6 address, through which the port answers over IPv6",
    ref="dockerd --ipv6 --fixed-cidr-v6; moby libnetwork/drivers/bridge/internal/iptabler/port.go",
)
def test_ipv6_default_bridge(daemon_factory: DaemonFactory, client_for: Any, observe: Observations) -> None:
    daemon = daemon_factory(args=["--ipv6", "--fixed-cidr-v6=fd00:c0f:3::/64"])
    client = client_for(daemon)
    image = load_test_image(daemon.endpoint)  # type: ignore[arg-type]
    bridge = client.get("/networks/bridge").json()
    serve = "mkdir -p /www && echo hello-over-v6 > /www/index.html && exec httpd -f -p 80 -h /www"
    doc = _run(
        client,
        image,
        "v6-web",
        ["sh", "-c", serve],
        HostConfig={"PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "18097"}]}},
        ExposedPorts={"80/tcp": {}},
    )
    settings = doc["NetworkSettings"]
    keys = ("GlobalIPv6Address", "GlobalIPv6PrefixLen", "IPv6Gateway")

    def served() -> str:
        text = http_get_in_daemon_netns(daemon, "fd00:c0f:3::1", 18097)
        return text if "hello-over-v6" in text else ""

    answer = eventually(served, "busybox httpd answering on [fd00:c0f:3::1]:18097", timeout=10)
    nat = _nat_rules(daemon, "ip6tables")
    seen = observe(
        "bridge",
        {
            "enable_ipv6": bridge["EnableIPv6"],
            "ipv6_entries": [c for c in bridge["IPAM"]["Config"] if ":" in c["Subnet"]],
            "top_level": {k: settings[k] for k in keys},
            "endpoint": {k: settings["Networks"]["bridge"][k] for k in keys},
            "host_ports": sorted(p["HostIp"] for p in settings["Ports"]["80/tcp"]),
        },
    )
    expected_address = {
        "GlobalIPv6Address": "fd00:c0f:3::2",
        "GlobalIPv6PrefixLen": 64,
        "IPv6Gateway": "fd00:c0f:3::1",
    }
    rules = observe(
        "ip6tables",
        {
            "masquerade_subnet": any(
                r.startswith("-A POSTROUTING -s fd00:c0f:3::/64 ") and r.endswith("-j MASQUERADE")
                for r in nat
            ),
            "dnat_to_container": any(
                r.startswith("-A DOCKER ")
                and "--dport 18097 " in r
                and r.endswith("-j DNAT --to-destination [fd00:c0f:3::2]:80")
                for r in nat
            ),
            "answers_over_ipv6": "hello-over-v6" in answer,
        },
    )
    client.delete("/containers/v6-web?force=1")
    assert seen == {
        "enable_ipv6": True,
        "ipv6_entries": [{"Subnet": "fd00:c0f:3::/64", "IPRange": "fd00:c0f:3::/64"}],
        "top_level": expected_address,
        "endpoint": expected_address,
        "host_ports": ["0.0.0.0", "::"],
    }
    assert rules == dict.fromkeys(rules, True), nat


@pytest.mark.scenario(
    "config/volumes/survive-restart",
    "A named volume MUST keep its data and labels across a daemon restart and be mountable again",
    ref="moby volume/local; spec 7",
)
def test_volume_survives_restart(
    daemon_factory: DaemonFactory, client_for: Any, observe: Observations
) -> None:
    daemon = daemon_factory()
    client = client_for(daemon)
    image = load_test_image(daemon.endpoint)  # type: ignore[arg-type]
    client.post("/volumes/create", json={"Name": "kept-vol", "Labels": {"keep": "yes"}})
    _run(
        client,
        image,
        "vol-writer",
        ["sh", "-c", "echo persisted > /data/file"],
        HostConfig={"Binds": ["kept-vol:/data"]},
    )
    client.post("/containers/vol-writer/wait")
    client.delete("/containers/vol-writer")
    daemon_factory.restart(daemon)
    client = client_for(daemon)
    doc = client.get("/volumes/kept-vol").json()
    _run(client, image, "vol-reader", ["cat", "/data/file"], HostConfig={"Binds": ["kept-vol:/data"]})
    client.post("/containers/vol-reader/wait")
    logs = client.get("/containers/vol-reader/logs?stdout=1").content
    assert observe("labels", doc.get("Labels")) == {"keep": "yes"}
    assert observe("data", b"persisted" in logs), logs

    client.delete("/containers/vol-reader")
    client.delete("/volumes/kept-vol")
