"""`docker diff` (GET /containers/{id}/changes) and `docker update` (POST /containers/{id}/update).

dockerd lists changes in Go map order (random between runs), so observations sort them by path. Cgroup
values are read from inside the container (its own cgroup is mounted at /sys/fs/cgroup), which
proves an update reached the running container and not only its HostConfig.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from harness.checks import eventually
from harness.client import EngineClient
from harness.fixtures import Observations
from suites._daemon import create_container, events_since, start_container

CLI = Callable[..., Any]
V = "/v1.41"
MB = 1024 * 1024


def _changes(engine: EngineClient, cid: str) -> Any:
    resp = engine.get(f"{V}/containers/{cid}/changes")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    return None if body is None else sorted((c["Path"], c["Kind"]) for c in body)


def _update(engine: EngineClient, cid: str, body: Any, version: str = V) -> tuple[int, Any]:
    resp = engine.post(f"{version}/containers/{cid}/update", json=body)
    return resp.status_code, resp.json()


def _host_config(engine: EngineClient, cid: str, *keys: str) -> dict[str, Any]:
    hc = engine.get(f"{V}/containers/{cid}/json").json()["HostConfig"]
    return {k: hc[k] for k in keys}


def _cgroup(docker_cli: CLI, cid: str, v1: str, v2: str) -> str:
    """A value of the container's own cgroup, read inside it (v1 file, else the v2 one)."""
    result = docker_cli(
        "exec", cid, "sh", "-c", f"cat /sys/fs/cgroup/{v1} 2>/dev/null || cat /sys/fs/cgroup/{v2}"
    )
    return str(result.stdout.strip())


def _message(body: Any, cid: str) -> str:
    return str(body.get("message", "")).replace(cid, "<id>")


# -- docker diff -----------------------------------------------------------------------------------
_FS_OPS = (
    "touch /newfile; mkdir -p /a/b/c; echo x > /a/b/c/f; echo y >> /etc/passwd; rm /bin/ls; rm -rf /home; "
    "mkdir /tmp/t; chmod 700 /root; ln -s /nowhere /lnk; mknod /fifo p; touch /usr; "
    "rm -rf /var; mkdir /var; touch /var/new; "
    "echo h > /etc/hostname; echo h > /etc/hosts; echo h > /etc/resolv.conf"
)
_EXPECTED = [
    ("/a", 1),
    ("/a/b", 1),
    ("/a/b/c", 1),
    ("/a/b/c/f", 1),
    ("/bin", 0),
    ("/bin/ls", 2),
    ("/etc", 0),
    ("/etc/passwd", 0),
    ("/fifo", 1),
    ("/home", 2),
    ("/lnk", 1),
    ("/newfile", 1),
    ("/root", 0),
    ("/tmp", 0),
    ("/tmp/t", 1),
    ("/var", 0),
    ("/var/new", 1),
    ("/var/tmp", 2),
    ("/var/www", 2),
]


@pytest.mark.scenario(
    "api/changes/none",
    "A container that wrote nothing MUST have no changes (null), created or running: the init layer's "
    "mount points (/etc/hosts, /proc, /dev ...) are not changes",
    ref="operation ContainerChanges; moby daemon/graphdriver/fsdiff.go, daemon/initlayer",
)
def test_changes_none(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    cid = create_container(engine, containers, test_image, ["sleep", "120"])
    created = engine.get(f"{V}/containers/{cid}/changes")
    start_container(engine, cid)
    running = engine.get(f"{V}/containers/{cid}/changes")
    observe("created", (created.status_code, created.text))
    observe("running", (running.status_code, running.text))
    assert created.text == "null\n" and running.text == "null\n"


@pytest.mark.kernel
@pytest.mark.scenario(
    "api/changes/kinds",
    "Changes MUST list adds (1), modifications (0, parents of changes included) and deletes (2, not "
    "their children), see through whiteouts and opaque directories, and leave out the bind-mounted "
    "/etc/hosts, /etc/hostname, /etc/resolv.conf",
    ref="moby vendor/github.com/moby/go-archive/changes.go ChangesDirs",
)
def test_changes_kinds(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    cid = create_container(engine, containers, test_image, ["sh", "-c", _FS_OPS])
    start_container(engine, cid)
    engine.post(f"{V}/containers/{cid}/wait", timeout=60)
    found = _changes(engine, cid)
    observe("changes", found)
    assert found == _EXPECTED


@pytest.mark.kernel
@pytest.mark.scenario(
    "api/changes/running-exec-and-cli",
    "Changes made by an exec in a running container MUST show, and `docker diff` MUST print them as "
    "'<A|C|D> <path>' lines",
    ref="docker CLI diff; operation ContainerChanges",
)
def test_changes_running_cli(
    docker_cli: CLI, engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    cid = create_container(engine, containers, test_image, ["sleep", "120"])
    start_container(engine, cid)
    done = docker_cli(
        "exec", cid, "sh", "-c", "mkdir /made; echo 1 > /made/file; rm /etc/group; chmod 600 /etc/passwd"
    )
    assert done.returncode == 0, done.stderr
    result = docker_cli("diff", cid)
    lines = sorted(result.stdout.splitlines())
    observe("exit", result.returncode)
    observe("lines", lines)
    assert lines == ["A /made", "A /made/file", "C /etc", "C /etc/passwd", "D /etc/group"]


@pytest.mark.scenario(
    "api/changes/volume-mount-point",
    "A volume's mount point MUST show as added, and files written into the volume MUST NOT",
    ref="moby daemon/volumes.go (mount points created in the rw layer)",
)
def test_changes_volume(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    cid = create_container(
        engine,
        containers,
        test_image,
        ["sh", "-c", "touch /vol/inside /outside"],
        Volumes={"/vol": {}},
    )
    start_container(engine, cid)
    engine.post(f"{V}/containers/{cid}/wait", timeout=60)
    found = _changes(engine, cid)
    observe("changes", found)
    engine.delete(f"{V}/containers/{cid}?v=1")
    assert found == [("/outside", 1), ("/vol", 1)]


@pytest.mark.scenario(
    "api/changes/missing-container",
    "Changes of a container that does not exist MUST be 404 'No such container: <ref>' (the CLI exits 1)",
    ref="operation ContainerChanges",
)
def test_changes_missing(docker_cli: CLI, engine: EngineClient, observe: Observations) -> None:
    resp = engine.get(f"{V}/containers/no-such-container/changes")
    cli = docker_cli("diff", "no-such-container")
    observe("api", (resp.status_code, resp.json()))
    observe("cli", (cli.returncode, cli.stderr))
    assert resp.status_code == 404 and resp.json() == {"message": "No such container: no-such-container"}
    assert cli.returncode == 1


# -- docker update ---------------------------------------------------------------------------------
_RESOURCES = {
    "Memory": 24 * MB,
    "MemorySwap": 48 * MB,
    "CpuShares": 512,
    "NanoCpus": 500_000_000,
    "PidsLimit": 50,
    "CpusetCpus": "0",
}
_CGROUP_FILES = {
    "memory": ("memory/memory.limit_in_bytes", "memory.max"),
    "cpu_quota": ("cpu/cpu.cfs_quota_us", "cpu.max"),
    "cpu_shares": ("cpu/cpu.shares", "cpu.weight"),
    "pids": ("pids/pids.max", "pids.max"),
    "cpuset": ("cpuset/cpuset.cpus", "cpuset.cpus"),
}


@pytest.mark.kernel
@pytest.mark.scenario(
    "api/update/running-resources",
    "Updating Memory, MemorySwap, CpuShares, NanoCpus, PidsLimit and CpusetCpus of a running container "
    "MUST answer 200 {Warnings: null}, persist them in HostConfig and apply them to its cgroup, and emit "
    "an update event",
    ref="operation ContainerUpdate; moby daemon/update.go",
)
def test_update_running(
    docker_cli: CLI, engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    cid = create_container(engine, containers, test_image, ["sleep", "120"])
    start_container(engine, cid)
    since = time.time() - 1
    status, body = _update(engine, cid, _RESOURCES)
    observe("response", (status, body))
    observe("host_config", _host_config(engine, cid, *_RESOURCES))
    cgroup = {name: _cgroup(docker_cli, cid, *files) for name, files in _CGROUP_FILES.items()}
    observe("cgroup", cgroup)
    updates = [e for e in events_since(engine, since, {"container": [cid]}) if e["Action"] == "update"]
    observe("update_events", [(e["Action"], sorted(e["Actor"]["Attributes"])) for e in updates])
    assert status == 200 and body == {"Warnings": None}
    assert _host_config(engine, cid, *_RESOURCES) == _RESOURCES
    assert cgroup["memory"] in (str(24 * MB),) and cgroup["pids"] == "50" and cgroup["cpuset"] == "0"
    assert len(updates) == 1


@pytest.mark.kernel
@pytest.mark.scenario(
    "api/update/stopped-then-started",
    "An update of a container that is not running MUST only change HostConfig; the next start MUST apply it",
    ref="moby daemon/update.go (not running: HostConfig only)",
)
def test_update_stopped(
    docker_cli: CLI, engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    cid = create_container(engine, containers, test_image, ["sleep", "120"])
    status, body = _update(engine, cid, {"Memory": 32 * MB, "MemorySwap": 64 * MB, "PidsLimit": 30})
    observe("response", (status, body))
    start_container(engine, cid)
    cgroup = {
        "memory": _cgroup(docker_cli, cid, *_CGROUP_FILES["memory"]),
        "pids": _cgroup(docker_cli, cid, *_CGROUP_FILES["pids"]),
    }
    observe("cgroup_after_start", cgroup)
    assert status == 200 and cgroup == {"memory": str(32 * MB), "pids": "30"}


@pytest.mark.kernel
@pytest.mark.scenario(
    "api/update/memory-needs-swap",
    "Raising Memory above the container's swap limit without MemorySwap MUST be 409 'Cannot update "
    "container <id>: Memory limit should be smaller than already set memoryswap limit, ...'; with "
    "MemorySwap it MUST succeed",
    ref="moby container/container_unix.go UpdateContainer",
)
def test_update_memory_swap(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    cid = create_container(engine, containers, test_image, ["sleep", "120"])
    start_container(engine, cid)
    alone = _update(engine, cid, {"Memory": 24 * MB})
    both = _update(engine, cid, {"Memory": 24 * MB, "MemorySwap": 48 * MB})
    above = _update(engine, cid, {"Memory": 64 * MB})
    observe("memory_alone", (alone[0], _message(alone[1], cid)))
    observe("with_swap", both)
    observe("above_swap", (above[0], _message(above[1], cid)))
    observe("host_config", _host_config(engine, cid, "Memory", "MemorySwap"))
    assert alone[0] == 409 and both == (200, {"Warnings": None}) and above[0] == 409
    assert _message(alone[1], cid) == (
        "Cannot update container <id>: Memory limit should be smaller than already set memoryswap limit, "
        "update the memoryswap at the same time"
    )


@pytest.mark.scenario(
    "api/update/cpu-conflicts",
    "NanoCpus with CpuQuota in one update MUST be 400; CpuQuota after NanoCpus (or NanoCpus after "
    "CpuPeriod) MUST be 409 naming what was already set",
    ref="moby daemon/daemon_unix.go verifyPlatformContainerResources; container/container_unix.go",
)
def test_update_cpu_conflicts(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    nano = create_container(engine, containers, test_image, ["sleep", "120"])
    quota = create_container(engine, containers, test_image, ["sleep", "120"])
    together = _update(engine, nano, {"NanoCpus": 500_000_000, "CpuQuota": 50_000})
    first = _update(engine, nano, {"NanoCpus": 500_000_000})
    then_quota = _update(engine, nano, {"CpuQuota": 50_000})
    period = _update(engine, quota, {"CpuPeriod": 50_000, "CpuQuota": 25_000})
    then_nano = _update(engine, quota, {"NanoCpus": 100_000_000})
    observe("together", together)
    observe("nano_first", first)
    observe("then_quota", (then_quota[0], _message(then_quota[1], nano)))
    observe("period_first", period)
    observe("then_nano", (then_nano[0], _message(then_nano[1], quota)))
    assert together == (400, {"message": "Conflicting options: Nano CPUs and CPU Quota cannot both be set"})
    assert first[0] == 200 and then_quota[0] == 409 and period[0] == 200 and then_nano[0] == 409


@pytest.mark.scenario(
    "api/update/invalid-values",
    "Invalid resource values and restart policies MUST be refused with 400 and dockerd's message",
    ref="moby daemon/daemon_unix.go verifyPlatformContainerResources; ValidateRestartPolicy",
)
@pytest.mark.parametrize(
    "body",
    [
        {"Memory": 1000},
        {"MemoryReservation": 1000},
        {"MemorySwappiness": 200},
        {"CpuPeriod": 500},
        {"CpuQuota": 500},
        {"CpusetCpus": "abc"},
        {"CpusetCpus": "64"},
        {"NanoCpus": 1_000_000_000_000},
        {"Memory": 24 * MB, "MemorySwap": 12 * MB},
        {"RestartPolicy": {"Name": "sometimes"}},
        {"RestartPolicy": {"Name": "always", "MaximumRetryCount": 2}},
        {"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": -1}},
        {"Memory": "lots"},
    ],
    ids=lambda body: json.dumps(body, separators=(",", ":")),
)
def test_update_invalid(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations, body: dict[str, Any]
) -> None:
    cid = create_container(engine, containers, test_image, ["sleep", "120"])
    status, answer = _update(engine, cid, body)
    # the message names the machine's CPUs: keep the shape, not the count
    message = re.sub(
        r"\d+\.00, as there are only \d+ CPUs", "N.00, as there are only N CPUs", answer["message"]
    )
    message = re.sub(r"available: [\d,-]+", "available: <cpus>", message)
    observe(json.dumps(body, sort_keys=True), (status, message))
    assert status == 400


@pytest.mark.scenario(
    "api/update/restart-policy",
    "RestartPolicy MUST be updatable (and survive in HostConfig), except on an AutoRemove container: 409",
    ref="moby container/container_unix.go UpdateContainer",
)
def test_update_restart_policy(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    cid = create_container(engine, containers, test_image, ["sleep", "120"])
    auto = create_container(engine, containers, test_image, ["sleep", "120"], HostConfig={"AutoRemove": True})
    ok = _update(engine, cid, {"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3}})
    refused = _update(engine, auto, {"RestartPolicy": {"Name": "always"}})
    allowed = _update(engine, auto, {"RestartPolicy": {"Name": "no"}})
    observe("update", ok)
    observe("host_config", _host_config(engine, cid, "RestartPolicy"))
    observe("auto_remove", (refused[0], _message(refused[1], auto)))
    observe("auto_remove_no", allowed)
    assert ok == (200, {"Warnings": None})
    assert _host_config(engine, cid, "RestartPolicy") == {
        "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3}
    }
    assert refused[0] == 409 and _message(refused[1], auto) == (
        "Cannot update container <id>: Restart policy cannot be updated because AutoRemove is enabled for "
        "the container"
    )


@pytest.mark.kernel
@pytest.mark.scenario(
    "api/update/pids-unlimited-and-old-api",
    "PidsLimit 0 or -1 MUST mean unlimited (stored as 0, pids.max 'max'); below API 1.40 PidsLimit MUST be "
    "ignored",
    ref="moby api/server/router/container/container_routes.go postContainerUpdate",
)
def test_update_pids(
    docker_cli: CLI, engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    cid = create_container(engine, containers, test_image, ["sleep", "120"], HostConfig={"PidsLimit": 40})
    start_container(engine, cid)
    old = _update(engine, cid, {"PidsLimit": 9}, version="/v1.39")
    after_old = _host_config(engine, cid, "PidsLimit")
    unlimited = _update(engine, cid, {"PidsLimit": -1})
    observe("old_api", (old, after_old))
    observe("unlimited", (unlimited, _host_config(engine, cid, "PidsLimit")))
    observe("pids_max", _cgroup(docker_cli, cid, *_CGROUP_FILES["pids"]))
    assert after_old == {"PidsLimit": 40}
    assert _host_config(engine, cid, "PidsLimit") == {"PidsLimit": 0}
    assert _cgroup(docker_cli, cid, *_CGROUP_FILES["pids"]) == "max"


@pytest.mark.kernel
@pytest.mark.scenario(
    "api/update/kernel-refuses",
    "A limit the kernel refuses for the running container (memory below its usage, cgroup v1) MUST be 500 "
    "'Cannot update container <id>: ...' with the runtime's reason, and HostConfig MUST keep the old values; "
    "cgroup v2 refuses nothing (it reclaims, or OOM-kills), so there the update MUST be 200 and stored",
    ref="moby daemon/update.go (restoreConfig); runc libcontainer/cgroups/fs/memory.go, fs2/memory.go",
)
def test_update_kernel_refuses(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    cid = create_container(
        engine,
        containers,
        test_image,
        ["sh", "-c", "head -c 30000000 /dev/zero > /dev/shm/fill; touch /tmp/full; sleep 120"],
        HostConfig={"Memory": 64 * MB, "MemorySwap": 64 * MB},
    )
    start_container(engine, cid)
    eventually(
        lambda: engine.head(f"{V}/containers/{cid}/archive?path=/tmp/full").status_code == 200,
        "the container to fill its memory (/tmp/full)",
        timeout=20,
        interval=0.1,
    )

    status, body = _update(engine, cid, {"Memory": 8 * MB, "MemorySwap": 8 * MB})
    message = re.sub(r"usage: \d+", "usage: <n>", _message(body, cid))
    observe("status", status)
    observe("message", message)
    observe("host_config", _host_config(engine, cid, "Memory", "MemorySwap"))
    cgroup_version = engine.get("/info").json().get("CgroupVersion")
    observe("cgroup_version", cgroup_version)
    if cgroup_version == "2":  # memory.max below usage is accepted (runc checks usage only when asked to)
        assert (status, message) == (200, "")
        assert _host_config(engine, cid, "Memory", "MemorySwap") == {"Memory": 8 * MB, "MemorySwap": 8 * MB}
        return
    assert status == 500 and message == (
        "Cannot update container <id>: runc did not terminate successfully: exit status 1: unable to set "
        "memory limit to 8388608 (current usage: <n>, peak usage: <n>)\n"
    )
    assert _host_config(engine, cid, "Memory", "MemorySwap") == {"Memory": 64 * MB, "MemorySwap": 64 * MB}


@pytest.mark.scenario(
    "api/update/request-errors",
    "An update of a missing container MUST be 404; a field of the wrong JSON type MUST be 400 with Go's "
    "unmarshal error; an empty body MUST be accepted",
    ref="operation ContainerUpdate; moby api/server/httputils ReadJSON",
)
def test_update_request_errors(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    cid = create_container(engine, containers, test_image, ["sleep", "120"])
    missing = _update(engine, "no-such-container", {"Memory": 24 * MB})
    wrong_type = _update(engine, cid, {"CpuShares": "many"})
    empty = engine.post(f"{V}/containers/{cid}/update")
    observe("missing", missing)
    observe("wrong_type", wrong_type)
    observe("empty", (empty.status_code, empty.json()))
    assert missing == (404, {"message": "No such container: no-such-container"})
    assert wrong_type == (
        400,
        {
            "message": "invalid JSON: json: cannot unmarshal string into Go struct field "
            "UpdateConfig.CpuShares of type int64"
        },
    )
    assert empty.status_code == 200 and empty.json() == {"Warnings": None}


@pytest.mark.scenario(
    "api/update/cli",
    "`docker update` MUST print the container's name, show the daemon's warnings on stderr, and exit 1 "
    "with the daemon's error",
    ref="docker CLI update",
)
def test_update_cli(docker_cli: CLI, test_image: str, observe: Observations) -> None:
    created = docker_cli("run", "-d", "--name", "update-cli", test_image, "sleep", "120")
    assert created.returncode == 0, created.stderr
    try:
        ok = docker_cli(
            "update",
            "--cpus",
            "0.5",
            "--memory",
            "30m",
            "--memory-swap",
            "60m",
            "--restart",
            "always",
            "update-cli",
        )
        blkio = docker_cli("update", "--blkio-weight", "300", "update-cli")
        bad = docker_cli("update", "--memory", "1k", "update-cli")
        observe("ok", (ok.returncode, ok.stdout, ok.stderr))
        observe("blkio", (blkio.returncode, blkio.stdout, blkio.stderr))
        observe("bad", (bad.returncode, bad.stderr))
        assert ok.returncode == 0 and ok.stdout == "update-cli\n"
        assert bad.returncode == 1 and "Minimum memory limit allowed is 6MB" in bad.stderr
    finally:
        docker_cli("rm", "-f", "update-cli")
