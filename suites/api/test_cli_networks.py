"""Networking as users meet it through the real docker CLI: user networks with DNS, published ports,
/etc/hosts and /etc/resolv.conf, `docker network` and `docker port` output.

Published ports live in the daemon's network namespace (each harness daemon has its own), so the
scenarios reach them from there (``http_get_in_daemon_netns``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from harness.backends.base import DaemonHandle
from harness.checks import eventually, expect_error, expect_status
from harness.client import EngineClient
from harness.fixtures import Observations
from harness.profiles import Profile
from suites._daemon import NEEDS_DEFAULT_BRIDGE, http_get_in_daemon_netns

CLI = Callable[..., Any]
HTTPD = "mkdir -p /www && echo hello-from-{name} > /www/index.html && exec httpd -f -p 80 -h /www"


@pytest.fixture
def cleanup(docker_cli: CLI) -> Iterator[Callable[..., None]]:
    """Register containers and networks to remove after the scenario, containers first."""
    containers: list[str] = []
    networks: list[str] = []

    def register(*, container: str = "", network: str = "") -> None:
        if container:
            containers.append(container)
        if network:
            networks.append(network)

    yield register
    if containers:
        docker_cli("rm", "-f", *containers)
    for name in networks:
        docker_cli("network", "rm", name)


def _wait_http(daemon: DaemonHandle, port: int, host: str = "127.0.0.1") -> str:
    """The published httpd's answer, once it serves (fails naming the address after 10 s)."""

    def answer() -> str:
        text = http_get_in_daemon_netns(daemon, host, port)
        return text if "hello-from" in text else ""

    return eventually(answer, f"busybox httpd answering on {host}:{port}", timeout=10, interval=0.1)


def _body(answer: str) -> str:
    return answer.partition("\r\n\r\n")[2].strip() if "\r\n\r\n" in answer else answer


# -- user networks and DNS ---------------------------------------------------------------------------


@pytest.mark.scenario(
    "api/cli/network-dns-by-name",
    "Two containers on a user-defined network MUST reach each other by container name and by network "
    "alias through the embedded DNS server (127.0.0.11)",
    ref="docker network create; docker run --network --network-alias; libnetwork resolver",
)
def test_dns_by_name(docker_cli: CLI, test_image: str, cleanup: Any, observe: Observations) -> None:
    cleanup(network="cli-dns")
    created = docker_cli("network", "create", "--subnet", "10.231.20.0/24", "cli-dns")
    server = docker_cli(
        "run",
        "-d",
        "--name",
        "cli-dns-server",
        "--network",
        "cli-dns",
        "--network-alias",
        "web",
        test_image,
        "sleep",
        "300",
    )
    cleanup(container="cli-dns-server")
    lookups = docker_cli(
        "run",
        "--rm",
        "--network",
        "cli-dns",
        test_image,
        "sh",
        "-c",
        "nslookup cli-dns-server; nslookup web; nslookup cli-dns-server.cli-dns; ping -c1 -W2 web",
    )
    names = re.findall(r"Name:\s+(\S+)\nAddress:\s+(\S+)", lookups.stdout)
    observe("create", created.returncode)
    observe("server", server.returncode)
    observe("answers", names)
    observe("ping", "1 packets received" in lookups.stdout)
    assert ("web", "10.231.20.2") in names


def _nslookup_answers(text: str) -> list[str]:
    """busybox nslookup's answer part (what follows the Server/Address header), one entry per line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return [
        line
        for line in lines
        if not line.startswith(("Server:", "Address:\t127.0.0.11", "Address: 127.0.0.11"))
    ]


@pytest.mark.scenario(
    "api/cli/network-dns-ipv6",
    "On a user-defined network with IPv6 the embedded DNS (127.0.0.11) MUST answer an AAAA query for a "
    "container's name, alias and name.network with its IPv6 address on that network and an A query with its "
    "IPv4 one; on an IPv4-only network an AAAA query for a known name MUST get an empty answer (no error, "
    "no forward)",
    ref="libnetwork resolver.go handleIPQuery (ipv6Miss: a reply without answers); "
    "docker network create --ipv6",
)
def test_dns_ipv6(docker_cli: CLI, test_image: str, cleanup: Any, observe: Observations) -> None:
    cleanup(network="cli-dns6")
    cleanup(network="cli-dns4")
    created = docker_cli(
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "10.231.30.0/24",
        "--subnet",
        "fd00:c0f:30::/64",
        "cli-dns6",
    )
    assert created.returncode == 0, created.stderr
    assert docker_cli("network", "create", "--subnet", "10.231.31.0/24", "cli-dns4").returncode == 0
    for name, net in (("cli-dns6-server", "cli-dns6"), ("cli-dns4-server", "cli-dns4")):
        run = docker_cli(
            "run",
            "-d",
            "--name",
            name,
            "--network",
            net,
            "--network-alias",
            f"{net}-web",
            test_image,
            "sleep",
            "300",
        )
        cleanup(container=name)
        assert run.returncode == 0, run.stderr
    queries = {
        "v6-name-aaaa": ("cli-dns6", "-type=AAAA cli-dns6-server"),
        "v6-alias-aaaa": ("cli-dns6", "-type=AAAA cli-dns6-web"),
        "v6-qualified-aaaa": ("cli-dns6", "-type=AAAA cli-dns6-server.cli-dns6"),
        "v6-name-a": ("cli-dns6", "-type=A cli-dns6-server"),
        "v4-name-aaaa": ("cli-dns4", "-type=AAAA cli-dns4-server"),
        "v4-name-a": ("cli-dns4", "-type=A cli-dns4-server"),
    }
    answers = {}
    for key, (net, query) in queries.items():
        out = docker_cli(
            "run", "--rm", "--network", net, test_image, "sh", "-c", f"nslookup {query} 127.0.0.11"
        )
        answers[key] = _nslookup_answers(out.stdout + out.stderr)
    observe("answers", answers)
    assert "Address: fd00:c0f:30::2" in answers["v6-name-aaaa"], answers
    assert "Address: fd00:c0f:30::2" in answers["v6-alias-aaaa"], answers
    assert "Address: fd00:c0f:30::2" in answers["v6-qualified-aaaa"], answers
    assert "Address: 10.231.30.2" in answers["v6-name-a"], answers
    assert "Address: 10.231.31.2" in answers["v4-name-a"], answers
    assert not any(line.startswith("Address:") for line in answers["v4-name-aaaa"]), answers


@pytest.mark.scenario(
    "api/cli/network-default-bridge-no-dns",
    "Containers on the default bridge MUST NOT resolve each other's names (no embedded DNS there) but "
    "MUST reach each other by address",
    ref="docker docs: default bridge network limitations",
)
def test_default_bridge_no_dns(docker_cli: CLI, test_image: str, cleanup: Any, observe: Observations) -> None:
    docker_cli("run", "-d", "--name", "cli-nodns-server", test_image, "sleep", "300")
    cleanup(container="cli-nodns-server")
    address = docker_cli("inspect", "-f", "{{.NetworkSettings.IPAddress}}", "cli-nodns-server").stdout.strip()
    probe = docker_cli(
        "run",
        "--rm",
        test_image,
        "sh",
        "-c",
        f"grep -c 127.0.0.11 /etc/resolv.conf; ping -c1 -W2 {address} >/dev/null && echo by-address-ok",
    )
    assert observe("resolv_has_internal_dns", probe.stdout.splitlines()[0] if probe.stdout else "") == "0"
    assert observe("by_address", "by-address-ok" in probe.stdout), probe.stdout


@pytest.mark.scenario(
    "api/cli/network-resolv-conf",
    "/etc/resolv.conf MUST be dockerd's generated file: 127.0.0.11 with ndots:0 and the internal-resolver "
    "footer on user networks, the host's servers with the legacy footer on the default bridge, and "
    "--dns/--dns-search/--dns-option listed as overrides",
    ref="moby libnetwork/internal/resolvconf",
)
def test_resolv_conf(docker_cli: CLI, test_image: str, cleanup: Any, observe: Observations) -> None:
    cleanup(network="cli-resolv")
    docker_cli("network", "create", "cli-resolv")

    def resolv(*args: str) -> list[str]:
        out = docker_cli("run", "--rm", *args, test_image, "cat", "/etc/resolv.conf").stdout
        # the host's own nameservers differ between machines: keep the file's structure
        return [
            re.sub(
                r"nameserver (?!127\.0\.0\.11)\S+",
                "nameserver <host>",
                re.sub(r"host\([^)]*\)", "host(<ns>)", ln),
            )
            for ln in out.splitlines()
        ]

    user = observe("user_network", resolv("--network", "cli-resolv"))
    bridge = observe("default_bridge", resolv())
    overrides = observe(
        "overrides", resolv("--dns", "192.0.2.53", "--dns-search", "example.test", "--dns-option", "ndots:2")
    )
    user_dns = observe("user_network_dns", resolv("--network", "cli-resolv", "--dns", "192.0.2.53"))
    header = "# Generated by Docker Engine."
    assert user[0] == header and "nameserver 127.0.0.11" in user and "options ndots:0" in user
    assert "# Based on host file: '/etc/resolv.conf' (internal resolver)" in user
    assert bridge[0] == header and "nameserver 127.0.0.11" not in bridge
    assert "# Based on host file: '/etc/resolv.conf' (legacy)" in bridge
    assert {"search example.test", "options ndots:2", "# Overrides: [nameservers search options]"} <= set(
        overrides
    )
    assert "nameserver 127.0.0.11" in user_dns


@pytest.mark.scenario(
    "api/cli/network-etc-hosts",
    "/etc/hosts MUST hold dockerd's fixed entries, the container's address on each network with its "
    "hostname, and --add-host entries",
    ref="moby libnetwork/etchosts",
)
def test_etc_hosts(docker_cli: CLI, test_image: str, cleanup: Any, observe: Observations) -> None:
    cleanup(network="cli-hosts")
    docker_cli("network", "create", "--subnet", "10.231.21.0/24", "cli-hosts")
    out = docker_cli(
        "run",
        "--rm",
        "--network",
        "cli-hosts",
        "--hostname",
        "box",
        "--add-host",
        "db.example:192.0.2.7",
        test_image,
        "cat",
        "/etc/hosts",
    )
    observe("hosts", out.stdout.splitlines())
    assert "10.231.21.2\tbox" in out.stdout


@pytest.mark.kernel
@pytest.mark.scenario(
    "api/cli/network-container-mode",
    "--network container:X MUST share X's network namespace (same address) and hostname; joining a "
    "stopped container MUST fail",
    ref="docker run --network container:",
)
def test_container_mode(docker_cli: CLI, test_image: str, cleanup: Any, observe: Observations) -> None:
    docker_cli("run", "-d", "--name", "cli-netowner", test_image, "sleep", "300")
    cleanup(container="cli-netowner")
    owner_ip = docker_cli("inspect", "-f", "{{.NetworkSettings.IPAddress}}", "cli-netowner").stdout.strip()
    joined = docker_cli(
        "run",
        "--rm",
        "--network",
        "container:cli-netowner",
        test_image,
        "sh",
        "-c",
        "ip -4 -o addr show eth0 | awk '{print $4}'; hostname",
    )
    lines = joined.stdout.split()
    assert observe("same_address", bool(lines) and lines[0].split("/")[0] == owner_ip), (lines, owner_ip)
    assert observe(
        "same_hostname",
        len(lines) > 1
        and lines[1] == docker_cli("inspect", "-f", "{{.Config.Hostname}}", "cli-netowner").stdout.strip(),
    ), lines
    docker_cli("create", "--name", "cli-netowner-stopped", test_image, "true")
    cleanup(container="cli-netowner-stopped")
    refused = docker_cli("run", "--rm", "--network", "container:cli-netowner-stopped", test_image, "true")
    # every line: with --rm the CLI also logs "Error waiting for container: ..." if the wait for removal
    # carries an error; dockerd's does not (SetRemoved clears it), so the start's error is all it prints
    observe("stopped_owner", {"exit": refused.returncode, "stderr": refused.stderr.splitlines()})
    assert refused.returncode != 0
    assert "cannot join network namespace of a non running container" in refused.stderr


# -- published ports ---------------------------------------------------------------------------------


@pytest.mark.kernel
@NEEDS_DEFAULT_BRIDGE
@pytest.mark.scenario(
    "api/cli/publish-loopback",
    "A container run with -p 127.0.0.1:HOSTPORT:80 serving busybox httpd MUST be reachable on the host "
    "at 127.0.0.1:HOSTPORT; `docker port` and `docker ps` MUST show the binding",
    ref="docker run -p; docker port",
)
def test_publish_loopback(
    docker_cli: CLI, test_image: str, docker_daemon: DaemonHandle, cleanup: Any, observe: Observations
) -> None:
    run = docker_cli(
        "run",
        "-d",
        "--name",
        "cli-publish",
        "-p",
        "127.0.0.1:18080:80",
        test_image,
        "sh",
        "-c",
        HTTPD.format(name="publish"),
    )
    cleanup(container="cli-publish")
    answer = _wait_http(docker_daemon, 18080)
    observe("run", run.returncode)
    observe("body", _body(answer))
    observe("port", docker_cli("port", "cli-publish").stdout)
    observe("ps", docker_cli("ps", "--filter", "name=cli-publish", "--format", "{{.Ports}}").stdout)
    assert "hello-from-publish" in answer


@pytest.mark.scenario(
    "api/cli/publish-ephemeral",
    "-p 80 MUST publish on an ephemeral host port on the IPv4 and IPv6 wildcards (the same port; without the "
    "userland proxy an IPv4-only container on the IPv4 one only) and be reachable there; -P MUST publish "
    "every exposed port",
    ref="docker run -p CONTAINERPORT, -P; libnetwork portallocator, port_mapping_linux.go",
)
def test_publish_ephemeral(
    docker_cli: CLI,
    test_image: str,
    docker_daemon: DaemonHandle,
    cleanup: Any,
    observe: Observations,
    profile: Profile,
) -> None:
    docker_cli(
        "run", "-d", "--name", "cli-ephemeral", "-p", "80", test_image, "sh", "-c", HTTPD.format(name="eph")
    )
    cleanup(container="cli-ephemeral")
    lines = docker_cli("port", "cli-ephemeral").stdout.splitlines()
    ports = {re.sub(r".*:", "", ln) for ln in lines}
    port = int(next(iter(ports))) if len(ports) == 1 else 0
    answer = _wait_http(docker_daemon, port) if port else ""
    bindings = observe("bindings", [re.sub(r":\d+$", ":<port>", ln) for ln in lines])
    assert observe("one_port_for_both", len(ports) == 1), lines
    wildcards = ["80/tcp -> 0.0.0.0:<port>", "80/tcp -> [::]:<port>"]
    proxied = profile.setting("userland-proxy", True) is not False
    assert bindings == (wildcards if proxied or profile.setting("ipv6") else wildcards[:1])
    assert observe("body", _body(answer)) == "hello-from-eph"
    docker_cli(
        "run",
        "-d",
        "--name",
        "cli-publish-all",
        "-P",
        "--expose",
        "7001",
        "--expose",
        "7002/udp",
        test_image,
        "sleep",
        "300",
    )
    cleanup(container="cli-publish-all")
    published = observe(
        "publish_all",
        sorted(
            re.sub(r":\d+$", ":<port>", ln)
            for ln in docker_cli("port", "cli-publish-all").stdout.splitlines()
        ),
    )
    assert {ln.split(" -> ")[0] for ln in published} == {"7001/tcp", "7002/udp"}, published


@pytest.mark.scenario(
    "api/cli/publish-conflict",
    "Publishing a host port already published by another container MUST fail the start with 'Bind for "
    "IP:PORT failed: port is already allocated' and leave the container created",
    ref="moby libnetwork/portallocator",
)
def test_publish_conflict(docker_cli: CLI, test_image: str, cleanup: Any, observe: Observations) -> None:
    docker_cli("run", "-d", "--name", "cli-port-a", "-p", "127.0.0.1:18081:80", test_image, "sleep", "300")
    cleanup(container="cli-port-a")
    second = docker_cli(
        "run", "-d", "--name", "cli-port-b", "-p", "127.0.0.1:18081:80", test_image, "sleep", "300"
    )
    cleanup(container="cli-port-b")
    observe("exit", second.returncode)
    observe("stderr", second.stderr.splitlines()[:1])
    state = observe("state", docker_cli("inspect", "-f", "{{.State.Status}}", "cli-port-b").stdout.strip())
    assert second.returncode != 0
    assert "Bind for 127.0.0.1:18081 failed: port is already allocated" in second.stderr
    assert state == "created"


@pytest.mark.scenario(
    "api/cli/publish-inspect",
    "A published container MUST show NetworkSettings.Ports (every exposed port, null when unpublished) and "
    "HostConfig.PortBindings as given; after stop, Ports MUST be empty",
    ref="operation ContainerInspect",
)
def test_publish_inspect(docker_cli: CLI, test_image: str, cleanup: Any, observe: Observations) -> None:
    docker_cli(
        "run",
        "-d",
        "--name",
        "cli-port-inspect",
        "-p",
        "127.0.0.1:18082:80",
        "-p",
        "127.0.0.1::81/udp",
        "--expose",
        "7000",
        test_image,
        "sleep",
        "300",
    )
    cleanup(container="cli-port-inspect")
    fmt = "{{json .NetworkSettings.Ports}}|{{json .HostConfig.PortBindings}}|{{json .Config.ExposedPorts}}"
    running = docker_cli("inspect", "-f", fmt, "cli-port-inspect").stdout.strip()
    observe("running", re.sub(r'"HostPort":"(?!18082)\d+"', '"HostPort":"<port>"', running))
    ports, bindings, _exposed = (json.loads(part) for part in running.split("|"))
    assert ports["7000/tcp"] is None
    assert ports["80/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": "18082"}]
    assert ports["81/udp"][0]["HostIp"] == "127.0.0.1" and int(ports["81/udp"][0]["HostPort"]) > 0
    assert bindings == {
        "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18082"}],
        "81/udp": [{"HostIp": "127.0.0.1", "HostPort": ""}],
    }
    docker_cli("stop", "-t", "0", "cli-port-inspect")
    stopped = observe(
        "stopped",
        docker_cli("inspect", "-f", "{{json .NetworkSettings.Ports}}", "cli-port-inspect").stdout.strip(),
    )
    assert json.loads(stopped) == {}


# -- docker network output ---------------------------------------------------------------------------


@pytest.mark.scenario(
    "api/cli/network-ls-create-rm",
    "`docker network create/ls/inspect/rm` MUST print what dockerd's CLI prints: the id, the table, the "
    "network's fields, the name on removal",
    ref="docker network",
)
def test_network_ls_create_rm(docker_cli: CLI, cleanup: Any, observe: Observations) -> None:
    created = docker_cli("network", "create", "--label", "team=qa", "cli-netcmd")
    cleanup(network="cli-netcmd")
    listed = docker_cli(
        "network",
        "ls",
        "--filter",
        "name=cli-netcmd",
        "--format",
        "{{.Name}} {{.Driver}} {{.Scope}} {{.Labels}}",
    )
    builtin = docker_cli("network", "ls", "--filter", "type=builtin", "--format", "{{.Name}} {{.Driver}}")
    inspected = docker_cli(
        "network", "inspect", "-f", "{{.Name}} {{.Driver}} {{.Internal}} {{.Attachable}}", "cli-netcmd"
    )
    removed = docker_cli("network", "rm", "cli-netcmd")
    missing = docker_cli("network", "rm", "cli-netcmd")
    assert observe("created", bool(re.fullmatch(r"[0-9a-f]{64}\n", created.stdout))), created.stdout
    assert observe("listed", listed.stdout) == "cli-netcmd bridge local team=qa\n"
    assert observe("builtin", sorted(builtin.stdout.splitlines())) == [
        "bridge bridge",
        "host host",
        "none null",
    ]
    assert observe("inspected", inspected.stdout) == "cli-netcmd bridge false false\n"
    assert observe("removed", removed.stdout) == "cli-netcmd\n"
    observe("missing", {"exit": missing.returncode, "stderr": missing.stderr})
    assert missing.returncode == 1 and "network cli-netcmd not found" in missing.stderr


@pytest.mark.scenario(
    "api/cli/network-connect-cli",
    "`docker network connect --alias` MUST make the running container resolvable by the alias on that "
    "network; `docker network disconnect` MUST take it away",
    ref="docker network connect/disconnect",
)
def test_network_connect_cli(docker_cli: CLI, test_image: str, cleanup: Any, observe: Observations) -> None:
    cleanup(network="cli-hot")
    docker_cli("network", "create", "--subnet", "10.231.22.0/24", "cli-hot")
    docker_cli("run", "-d", "--name", "cli-hot-target", test_image, "sleep", "300")
    cleanup(container="cli-hot-target")
    connected = docker_cli("network", "connect", "--alias", "svc", "cli-hot", "cli-hot-target")
    lookup = docker_cli("run", "--rm", "--network", "cli-hot", test_image, "nslookup", "svc")
    disconnected = docker_cli("network", "disconnect", "cli-hot", "cli-hot-target")
    after = docker_cli("run", "--rm", "--network", "cli-hot", test_image, "nslookup", "svc")
    assert observe("connect", (connected.returncode, connected.stdout)) == (0, "")
    resolved = observe("resolved", re.findall(r"Name:\s+(\S+)\nAddress:\s+(\S+)", lookup.stdout))
    assert observe("disconnect", (disconnected.returncode, disconnected.stdout)) == (0, "")
    assert resolved == [("svc", "10.231.22.2")], lookup.stdout
    assert observe("resolved_after", re.findall(r"Name:\s+(\S+)\nAddress:\s+(\S+)", after.stdout)) == []


# -- legacy links -------------------------------------------------------------------------------------


@pytest.mark.scenario(
    "api/cli/links-default-bridge",
    "--link name:alias on the default bridge MUST add an /etc/hosts line (alias, short id, name) and "
    "dockerd's ALIAS_PORT*/ALIAS_NAME/ALIAS_ENV_* variables, and be stored as /name:/container/alias",
    ref="moby daemon/links; docker run --link",
)
def test_links_default_bridge(docker_cli: CLI, test_image: str, cleanup: Any, observe: Observations) -> None:
    docker_cli(
        "run",
        "-d",
        "--name",
        "link-db",
        "--expose",
        "5432",
        "--expose",
        "5433",
        "-e",
        "SECRET=s3",
        test_image,
        "sleep",
        "300",
    )
    cleanup(container="link-db")
    ip = docker_cli("inspect", "-f", "{{.NetworkSettings.IPAddress}}", "link-db").stdout.strip()
    out = docker_cli(
        "run",
        "--name",
        "link-app",
        "--link",
        "link-db:database",
        test_image,
        "sh",
        "-c",
        "grep database /etc/hosts; env | sort | grep ^DATABASE",
    )
    cleanup(container="link-app")
    text = out.stdout.replace(ip, "<db-ip>") if ip else out.stdout
    assert observe("exit", out.returncode) == 0, out.stderr
    lines = observe("lines", text.splitlines())
    stored = observe(
        "stored", docker_cli("inspect", "-f", "{{json .HostConfig.Links}}", "link-app").stdout.strip()
    )
    assert re.fullmatch(r"<db-ip>\tdatabase [0-9a-f]{12} link-db", lines[0]), lines
    assert {
        "DATABASE_NAME=/link-app/database",
        "DATABASE_ENV_SECRET=s3",
        "DATABASE_PORT=tcp://<db-ip>:5432",
        "DATABASE_PORT_5433_TCP_PORT=5433",
    } <= set(lines)
    assert json.loads(stored) == ["/link-db:/link-app/database"]


@NEEDS_DEFAULT_BRIDGE
@pytest.mark.scenario(
    "api/containers/remove-link",
    "DELETE /containers/<parent>/<alias>?link=1 MUST remove the legacy link (the parent's HostConfig.Links, "
    "its /etc/hosts line, the linked container's extra name) and leave the linked container running; "
    "without link=1 the link name MUST stand for the linked container; a link name without a parent and "
    "an unknown one MUST be refused with dockerd's words",
    ref="operation ContainerDelete link; moby daemon/delete.go rmLink; docker rm --link",
)
def test_remove_link(
    engine: EngineClient, docker_cli: CLI, test_image: str, cleanup: Any, observe: Observations
) -> None:
    docker_cli("run", "-d", "--name", "rmlink-bar", test_image, "sleep", "300")
    cleanup(container="rmlink-bar")
    docker_cli("run", "-d", "--name", "rmlink-foo", "--link", "rmlink-bar:al", test_image, "sleep", "300")
    cleanup(container="rmlink-foo")
    bar_id = docker_cli("inspect", "-f", "{{.Id}}", "rmlink-bar").stdout.strip()

    def names() -> list[str]:
        listed = engine.get("/containers/json", params={"filters": json.dumps({"id": [bar_id]})}).json()
        return list(listed[0]["Names"]) if listed else []

    assert observe("names_before", names()) == ["/rmlink-bar", "/rmlink-foo/al"]
    by_link = engine.get("/containers/rmlink-foo/al/json")
    assert observe("inspect_by_link_name", expect_status(by_link, 200)["Id"] == bar_id)
    refusals = {
        "rm-without-link": engine.delete("/containers/rmlink-foo/al"),
        "default-name": engine.delete("/containers/rmlink-bar", params={"link": "1"}),
        "unknown": engine.delete("/containers/rmlink-foo/nosuch", params={"link": "1"}),
    }
    observe("refusals", {k: (r.status_code, r.json().get("message")) for k, r in refusals.items()})
    expect_error(
        refusals["rm-without-link"],
        409,
        'cannot remove container "rmlink-foo/al": container is running: stop the container before removing '
        "or force remove",
    )
    expect_error(
        refusals["default-name"], 500, "Conflict, cannot remove the default link name of the container"
    )
    expect_error(refusals["unknown"], 404, "No such container: rmlink-foo/nosuch")

    expect_status(engine.delete("/containers/rmlink-foo/al", params={"link": "1"}), 204)
    links = docker_cli("inspect", "-f", "{{json .HostConfig.Links}}", "rmlink-foo").stdout.strip()
    hosts = docker_cli("exec", "rmlink-foo", "cat", "/etc/hosts").stdout
    bar_state = docker_cli("inspect", "-f", "{{.State.Running}}", "rmlink-bar").stdout.strip()
    assert observe("links_after", links) == "null"
    assert observe("hosts_mention_alias", any(" al " in f" {line} " for line in hosts.splitlines())) is False
    assert observe("bar_running", bar_state) == "true"
    assert observe("names_after", names()) == ["/rmlink-bar"]
    again = engine.delete("/containers/rmlink-foo/al", params={"link": "1"})
    expect_error(again, 404, "No such container: rmlink-foo/al")


@pytest.mark.scenario(
    "api/cli/links-refused",
    "A link to a missing container MUST be refused at create ('could not get container for X'); a link to a "
    "stopped container MUST fail the start ('Cannot link to a non running container')",
    ref="moby daemon/container_operations_unix.go",
)
def test_links_refused(
    engine: EngineClient, test_image: str, docker_cli: CLI, cleanup: Any, observe: Observations
) -> None:
    missing = engine.post(
        "/containers/create", json={"Image": test_image, "HostConfig": {"Links": ["no-such-ctr:x"]}}
    )
    observe("missing", {"status": missing.status_code, "message": missing.json().get("message")})
    expect_error(missing, 400, "could not get container for no-such-ctr: No such container: no-such-ctr")
    docker_cli("create", "--name", "link-stopped", test_image, "true")
    cleanup(container="link-stopped")
    docker_cli("create", "--name", "link-child", "--link", "link-stopped:dep", test_image, "true")
    cleanup(container="link-child")
    started = engine.post("/containers/link-child/start")
    observe("stopped", {"status": started.status_code, "message": started.json().get("message")})
    expect_error(started, 500, "Cannot link to a non running container: /link-stopped AS /link-child/dep")


@pytest.mark.scenario(
    "api/cli/links-user-network",
    "On a user-defined network a link alias MUST resolve through the embedded DNS for the linking container",
    ref="docker run --network NET --link",
)
def test_links_user_network(docker_cli: CLI, test_image: str, cleanup: Any, observe: Observations) -> None:
    cleanup(network="link-net")
    docker_cli("network", "create", "--subnet", "10.231.23.0/24", "link-net")
    docker_cli("run", "-d", "--name", "link-target", "--network", "link-net", test_image, "sleep", "300")
    cleanup(container="link-target")
    out = docker_cli(
        "run",
        "--rm",
        "--network",
        "link-net",
        "--link",
        "link-target:backend",
        test_image,
        "nslookup",
        "backend",
    )
    other = docker_cli("run", "--rm", "--network", "link-net", test_image, "nslookup", "backend")
    resolved = observe("resolved", re.findall(r"Name:\s+(\S+)\nAddress:\s+(\S+)", out.stdout))
    assert resolved == [("backend", "10.231.23.2")], out.stdout
    assert (
        observe("others_do_not_resolve", re.findall(r"Name:\s+(\S+)\nAddress:\s+(\S+)", other.stdout)) == []
    )


@pytest.mark.scenario(
    "api/cli/links-user-network-connect",
    "On a user-defined network a link is the endpoint's: 'docker network connect --link NAME:ALIAS' MUST "
    "make the embedded DNS answer ALIAS with NAME's address for the connected container only; inspect MUST "
    "show the link in the endpoint's Links and HostConfig.Links null (no legacy link), and a HostConfig link "
    "naming a container that does not exist or does not run MUST neither be refused at create nor at start",
    ref="moby daemon/daemon_unix.go registerLinks, daemon/network.go buildJoinOptions, daemon/inspect.go; "
    "docker network connect --link",
)
def test_links_user_network_connect(
    docker_cli: CLI, engine: EngineClient, test_image: str, cleanup: Any, observe: Observations
) -> None:
    for net, subnet in (("linkc-net", "10.231.24.0/24"), ("linkc-home", "10.231.25.0/24")):
        cleanup(network=net)
        docker_cli("network", "create", "--subnet", subnet, net)
    for name, net in (
        ("linkc-target", "linkc-net"),
        ("linkc-client", "linkc-home"),
        ("linkc-other", "linkc-net"),
    ):
        docker_cli("run", "-d", "--name", name, "--network", net, test_image, "sleep", "300")
        cleanup(container=name)
    connected = docker_cli(
        "network", "connect", "--link", "linkc-target:backend", "linkc-net", "linkc-client"
    )
    assert connected.returncode == 0, connected.stderr

    def resolve(container: str, name: str) -> list[tuple[str, str]]:
        out = docker_cli("exec", container, "nslookup", name, "127.0.0.11").stdout
        return re.findall(r"Name:\s+(\S+)\nAddress:\s+(\S+)", out)

    assert observe("client", resolve("linkc-client", "backend")) == [("backend", "10.231.24.2")]
    assert observe("other", resolve("linkc-other", "backend")) == []
    shown = docker_cli(
        "inspect", "-f", "{{json .NetworkSettings.Networks}}|{{json .HostConfig.Links}}", "linkc-client"
    ).stdout.strip()
    networks, _, host_links = shown.partition("|")
    assert observe("endpoint-links", json.loads(networks)["linkc-net"]["Links"]) == ["linkc-target:backend"]
    assert observe("host-links", host_links) == "null"

    docker_cli("stop", "-t", "0", "linkc-other")
    results = {}
    for name, link in (("linkc-missing", "no-such-ctr:x"), ("linkc-stopped", "linkc-other:y")):
        created = engine.post(
            f"/containers/create?name={name}",
            json={
                "Image": test_image,
                "Cmd": ["sleep", "300"],
                "HostConfig": {"NetworkMode": "linkc-net", "Links": [link]},
            },
        )
        if created.status_code == 201:
            cleanup(container=name)
        started = engine.post(f"/containers/{name}/start")
        links = engine.get(f"/containers/{name}/json").json().get("HostConfig", {}).get("Links")
        results[name] = [created.status_code, started.status_code, links]
    assert observe("host-config-links", results) == {
        "linkc-missing": [201, 204, None],
        "linkc-stopped": [201, 204, None],
    }
