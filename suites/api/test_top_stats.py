"""docker top and docker stats (operations ContainerTop, ContainerStats)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from harness.checks import expect_error
from harness.client import EngineClient
from harness.fixtures import Observations
from suites._daemon import cli_run, create_container

CLI = Callable[..., Any]
V = "/v1.41"


@pytest.fixture
def sleeper(docker_cli: CLI, test_image: str, containers: list[str]) -> str:
    """A running container with a 64 MiB memory limit (stats report it); removed afterwards."""
    return cli_run(docker_cli, containers, "-m", "64m", test_image, "sleep", "120")


@pytest.mark.kernel
@pytest.mark.scenario(
    "api/containers/top",
    "GET /containers/{id}/top MUST list the container's processes with ps's titles",
    ref="operation ContainerTop",
)
def test_top(engine: EngineClient, sleeper: str, observe: Observations) -> None:
    resp = engine.get(f"{V}/containers/{sleeper}/top")
    body = resp.json()
    observe("status", resp.status_code)
    observe("titles", body["Titles"])
    observe("commands", [row[-1] for row in body["Processes"]])
    assert resp.status_code == 200 and [row[-1] for row in body["Processes"]] == ["sleep 120"]


@pytest.mark.scenario(
    "api/containers/top-not-running", "top of a stopped container MUST get 409", ref="operation ContainerTop"
)
def test_top_not_running(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    cid = create_container(engine, containers, test_image, ["true"])
    resp = engine.get(f"{V}/containers/{cid}/top")
    observe("status", resp.status_code)
    observe("message", resp.json()["message"].replace(cid, "<id>"))
    expect_error(resp, 409, re.compile(r"container [0-9a-f]+ is not running$"))


@pytest.mark.kernel
@pytest.mark.scenario(
    "api/containers/stats-one-shot",
    "stats?stream=false MUST return one sample with memory limit, CPU counters and precpu_stats",
    ref="operation ContainerStats",
)
def test_stats_one_shot(engine: EngineClient, sleeper: str, observe: Observations) -> None:
    resp = engine.get(f"{V}/containers/{sleeper}/stats?stream=false", timeout=30)
    body = resp.json()
    observe("status", resp.status_code)
    observe("keys", sorted(k for k in body if k != "networks"))
    observe("memory_limit", body["memory_stats"].get("limit"))
    observe("has_cpu_total", body["cpu_stats"]["cpu_usage"]["total_usage"] > 0)
    observe("has_precpu_system", "system_cpu_usage" in body["precpu_stats"])
    observe("pids_current", body["pids_stats"].get("current"))
    assert body["memory_stats"]["limit"] == 64 * 1024 * 1024


@pytest.mark.kernel
@pytest.mark.scenario(
    "api/cli/stats-no-stream",
    "`docker stats --no-stream` MUST print one row for the container",
    ref="docker CLI stats",
)
def test_cli_stats(docker_cli: CLI, sleeper: str, observe: Observations) -> None:
    result = docker_cli("stats", "--no-stream", "--format", "{{.ID}} {{.MemUsage}}", sleeper)
    observe("exit", result.returncode)
    observe("limit_shown", result.stdout.strip().endswith("/ 64MiB"))
    assert result.returncode == 0 and result.stdout.startswith(sleeper[:12])


_NET_COUNTERS = {
    "rx_bytes",
    "rx_packets",
    "rx_errors",
    "rx_dropped",
    "tx_bytes",
    "tx_packets",
    "tx_errors",
    "tx_dropped",
}


@pytest.mark.kernel
@pytest.mark.scenario(
    "api/containers/stats-networks",
    "stats?stream=0 of a container with network endpoints MUST carry 'networks' with each of its interfaces "
    "(eth0, eth1, ...) and their rx/tx counters; a container with --network none or host MUST have none",
    ref="operation ContainerStats; moby daemon/stats_unix.go getNetworkStats",
)
def test_stats_networks(
    engine: EngineClient, docker_cli: CLI, test_image: str, containers: list[str], observe: Observations
) -> None:
    net_a, net_b = "stats-net-a", "stats-net-b"
    for net, subnet in ((net_a, "10.231.41.0/24"), (net_b, "10.231.42.0/24")):
        created = docker_cli("network", "create", "--subnet", subnet, net)
        assert created.returncode == 0, created.stderr
    try:
        cid = cli_run(docker_cli, containers, "--network", net_a, test_image, "sleep", "120")
        assert docker_cli("network", "connect", net_b, cid).returncode == 0
        docker_cli("exec", cid, "ping", "-c", "1", "-W", "1", "10.231.41.1")
        none = cli_run(docker_cli, containers, "--network", "none", test_image, "sleep", "120")
        host = cli_run(docker_cli, containers, "--network", "host", test_image, "sleep", "120")
        doc = engine.get(f"{V}/containers/{cid}/stats", params={"stream": "0"}, timeout=30).json()
        networks = doc.get("networks") or {}
        observe("interfaces", sorted(networks))
        observe("counters", {name: sorted(v) for name, v in networks.items()})
        assert sorted(networks) == ["eth0", "eth1"], doc.get("networks")
        for counters in networks.values():
            assert set(counters) >= _NET_COUNTERS
            assert all(isinstance(counters[k], int) for k in counters)
        assert networks["eth0"]["tx_packets"] >= 1 and networks["eth0"]["tx_bytes"] > 0
        without = {
            name: "networks"
            in engine.get(f"{V}/containers/{c}/stats", params={"stream": "0"}, timeout=30).json()
            for name, c in (("none", none), ("host", host))
        }
        assert observe("networks_key", without) == {"none": False, "host": False}
    finally:
        for c in list(containers):
            engine.delete(f"{V}/containers/{c}?force=1")
        for net in (net_a, net_b):
            docker_cli("network", "rm", net)


#: what top may list besides the container's and the execs' commands: a process of theirs that has ended and
#: awaits its parent (``[true]``, ``[true] <defunct>``), and dockerd's runtime becoming an exec's process
#: (runc's ``runc init`` has joined the container's cgroup and pid namespace and execs the command next)
_ENDED = re.compile(r"^\[(?P<comm>[^\]]+)\]( <defunct>)?$")
_TURNING_INTO_EXEC = {"runc init"}


def _turning_into_exec(command: str) -> bool:
    """runc's clone that becomes ``runc init`` shows its parent's ``runc ... exec ...`` command line until it
    re-executes itself: dockerd 28.5 listed one (``runc --root ... exec --process ... --detach ...``) in a
    focused run of this scenario (load 5)."""
    return command in _TURNING_INTO_EXEC or (command.startswith("runc ") and " exec " in command)


@pytest.mark.kernel
@pytest.mark.scenario(
    "api/containers/top-during-exec-starts",
    "GET /containers/{id}/top while execs are being started MUST list only the container's processes (its "
    "command, the execs', ended ones awaiting their parent, and dockerd's runc turning into an exec), "
    "never a process that stays the daemon's (refd's zygote or shim host, a containerd shim, containerd)",
    ref="operation ContainerTop; issue 20 item 10",
)
def test_top_during_exec_starts(
    engine: EngineClient, docker_daemon: Any, test_image: str, containers: list[str], observe: Observations
) -> None:
    import threading

    # outlives the 200 tops (dockerd 28.5 took 121 s for them in the live-restore profile at load 20)
    cid = create_container(engine, containers, test_image, ["sleep", "3600"])
    assert engine.post(f"{V}/containers/{cid}/start").status_code == 204
    commands = {"sleep 3600", "sleep 60", "true"}  # the container's, then the execs'
    tops, started = 200, [0]
    done = threading.Event()
    errors: list[str] = []

    def start_execs(cmd: list[str]) -> None:
        client = EngineClient(docker_daemon.endpoint)  # its own connection: a requests session is not shared
        try:
            while not done.is_set():
                made = client.post(f"{V}/containers/{cid}/exec", json={"Cmd": cmd})
                if made.status_code != 201:
                    errors.append(f"exec create: {made.status_code} {made.text}")
                    return
                ran = client.post(f"{V}/exec/{made.json()['Id']}/start", json={"Detach": True})
                if ran.status_code != 200:
                    errors.append(f"exec start: {ran.status_code} {ran.text}")
                    return
                started[0] += 1
        finally:
            client.close()

    def the_containers(command: str) -> bool:
        ended = _ENDED.match(command)
        return command in commands or (ended is not None and ended["comm"] in {"sleep", "true"})

    workers = [threading.Thread(target=start_execs, args=(c,)) for c in (["true"], ["sleep", "60"])]
    for worker in workers:
        worker.start()
    strangers: list[str] = []
    turning = saw_exec = empty = 0
    try:
        for _ in range(tops):
            resp = engine.get(f"{V}/containers/{cid}/top")
            assert resp.status_code == 200, resp.text
            # dockerd 28.5 once answered "Processes": null here (load 25, a fresh root): none of containerd's
            # pids matched a line of its ps; an empty answer lists no stranger, so it is counted, not failed
            rows = resp.json()["Processes"]
            empty += rows is None
            listed = [row[-1] for row in rows or []]
            turning += sum(_turning_into_exec(c) for c in listed)
            strangers += [c for c in listed if not the_containers(c) and not _turning_into_exec(c)]
            saw_exec += any(c != "sleep 3600" for c in listed)
    finally:
        done.set()
        for worker in workers:
            worker.join(timeout=60)
    observe("errors", errors)
    observe("daemon_process_listed", sorted(set(strangers))[:10])
    observe("top_saw_execs", saw_exec > 0)
    print(
        f"{tops} top calls, {started[0]} exec starts: {saw_exec} listed an exec, {turning} 'runc init', "
        f"{empty} answered null"
    )
    assert not errors, errors
    assert saw_exec > 0 and started[0] > 0, "no top call overlapped an exec: the scenario checked nothing"
    assert not strangers, f"top listed processes not the container's in {tops} calls: {strangers[:10]}"
