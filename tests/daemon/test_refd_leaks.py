"""No leaks: container lifecycles on refd leave no mounts, cgroups, processes, descriptors, network
interfaces, sandboxes or firewall rules behind.

Runs a real refd (root needed) and N create/start/wait/rm cycles through the API, then compares
the daemon's mount table, the container cgroups, the processes in its network namespace and its
open descriptors with the baseline taken after one warm-up cycle.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from harness.backends.base import DaemonHandle, DaemonSpec
from harness.backends.local import LocalBackend
from harness.client import EngineClient
from harness.targets import resolve_target
from harness.testimage import load_test_image

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="running containers needs root")

CYCLES = int(os.environ.get("HARNESS_LEAK_CYCLES", "40"))


@pytest.fixture
def refd() -> Iterator[DaemonHandle]:
    backend = LocalBackend()
    handle = backend.start(
        resolve_target("refd"), DaemonSpec(), tempfile.mkdtemp(prefix="harness-refd-leaks-")
    )
    try:
        yield handle
    finally:
        backend.teardown(handle)


def _cgroups_of(ids: list[str]) -> list[str]:
    """Cgroup directories left for these container ids (other daemons' containers are not ours to judge)."""
    left = []
    for controller in os.listdir("/sys/fs/cgroup"):
        for cid in ids:
            path = os.path.join("/sys/fs/cgroup", controller, "docker", cid)
            if os.path.isdir(path):
                left.append(f"{controller}/{cid}")
    return left


def _snapshot(handle: DaemonHandle) -> dict[str, Any]:
    pid = handle.pid
    with open(f"/proc/{pid}/mountinfo") as fh:
        # other daemons' kept namespaces (<their workdir>/ns, ns/net, ns/mnt) come and go: not ours to judge
        mounts = sorted(
            point
            for point in (line.split()[4] for line in fh)
            if not (point.endswith(("/ns", "/ns/net", "/ns/mnt")) and not point.startswith(handle.workdir))
        )
    netns = os.stat(f"/proc/{pid}/ns/net").st_ino
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}/ns/net").st_ino == netns:
                    members.append(int(entry))
            except OSError:
                continue
    cgroups = []
    for controller in os.listdir("/sys/fs/cgroup"):
        base = os.path.join("/sys/fs/cgroup", controller, "docker")
        if os.path.isdir(base):
            cgroups += [
                f"{controller}/{d}"
                for d in os.listdir(base)
                if os.path.isdir(os.path.join(base, d)) and len(d) == 64
            ]
    return {
        "mounts": mounts,
        "processes": sorted(members),
        "cgroups": sorted(cgroups),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        **_network_snapshot(handle),
    }


def _network_snapshot(handle: DaemonHandle) -> dict[str, Any]:
    """Links and firewall rules in the daemon's netns, and the sandbox files under its exec-root."""
    import subprocess

    from harness.daemon.network.netlink import Netlink

    with Netlink(f"/proc/{handle.pid}/ns/net") as nl:
        links = sorted(nl.links())
    rules = subprocess.run(
        ["nsenter", f"--net=/proc/{handle.pid}/ns/net", "iptables-save"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    sandboxes = os.path.join(handle.exec_root, "netns")
    return {
        "links": links,
        "rules": sorted(line for line in rules.splitlines() if line.startswith("-A")),
        "sandboxes": sorted(os.listdir(sandboxes)) if os.path.isdir(sandboxes) else [],
    }


def _settled(handle: DaemonHandle, before: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    """The snapshot once shims have had time to exit (they end a moment after their container)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        after = _snapshot(handle)
        if after["processes"] == before["processes"] and after["mounts"] == before["mounts"]:
            return after
        if time.monotonic() > deadline:
            return after
        time.sleep(0.2)


def _zygotes(handle: DaemonHandle) -> list[int]:
    """refd's shim zygote: its child running ``harness.daemon.zygote`` (its shims are its children)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == handle.pid and b"harness.daemon.zygote" in cmdline:
            found.append(int(entry))
    return found


def _baseline(handle: DaemonHandle, timeout: float = 10.0) -> dict[str, Any]:
    """The snapshot once the warm-up container is all gone: its shim has exited (only refd and its
    zygote left) and its sandbox netns, which refd deletes in the background, is unmounted."""
    import time

    deadline = time.monotonic() + timeout
    sandbox_dir = os.path.join(handle.exec_root, "netns") + "/"
    snap = _snapshot(handle)
    while (
        sorted(snap["processes"]) != sorted([handle.pid, *_zygotes(handle)])
        or any(s != "default" for s in snap["sandboxes"])
        or any(m.startswith(sandbox_dir) and not m.endswith("/default") for m in snap["mounts"])
    ) and time.monotonic() < deadline:
        time.sleep(0.1)
        snap = _snapshot(handle)
    return snap


def _cycle(client: EngineClient, image: str) -> str:
    cid = client.post(
        "/v1.41/containers/create", json={"Image": image, "Cmd": ["sh", "-c", "echo x"]}
    ).json()["Id"]
    assert client.post(f"/v1.41/containers/{cid}/start").status_code == 204
    assert client.post(f"/v1.41/containers/{cid}/wait", timeout=30).json()["StatusCode"] == 0
    assert client.delete(f"/v1.41/containers/{cid}").status_code == 204
    return str(cid)


def test_lifecycles_leave_nothing_behind(refd: DaemonHandle) -> None:
    assert refd.endpoint is not None
    image = load_test_image(refd.endpoint)
    client = EngineClient(refd.endpoint)
    try:
        _cycle(client, image)  # warm-up: lazily created parents (cgroup "docker", overlay dirs) exist now
        before = _baseline(refd)
        ids = [_cycle(client, image) for _ in range(CYCLES)]
        after = _settled(refd, before)
    finally:
        client.close()
    assert after["mounts"] == before["mounts"]
    assert _cgroups_of(ids) == []
    assert after["processes"] == before["processes"]
    assert abs(int(after["fds"]) - int(before["fds"])) <= 2  # a keep-alive socket may come and go


def test_failed_starts_leave_nothing_behind(refd: DaemonHandle) -> None:
    assert refd.endpoint is not None
    image = load_test_image(refd.endpoint)
    client = EngineClient(refd.endpoint)
    try:
        before = _baseline(refd)
        for _ in range(10):
            cid = client.post("/v1.41/containers/create", json={"Image": image, "Cmd": ["nosuchcmd"]}).json()[
                "Id"
            ]
            assert client.post(f"/v1.41/containers/{cid}/start").status_code == 400
            assert client.delete(f"/v1.41/containers/{cid}").status_code == 204
        after = _settled(refd, before)
    finally:
        client.close()
    assert after["mounts"] == before["mounts"]
    assert after["cgroups"] == before["cgroups"]
    assert after["processes"] == before["processes"]


def _network_cycle(client: EngineClient, image: str, n: int) -> None:
    """A user network, two containers (one publishing a port, both using the DNS), all removed again."""
    net = f"leak-net-{n}"
    assert client.post("/networks/create", json={"Name": net}).status_code == 201
    ids = []
    for i, extra in enumerate(({"PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}}, {})):
        body = {
            "Image": image,
            "Cmd": ["sh", "-c", f"nslookup leak-{n}-0 >/dev/null; sleep 30"],
            "ExposedPorts": {"80/tcp": {}},
            "HostConfig": {"NetworkMode": net, **extra},
        }
        cid = client.post(f"/containers/create?name=leak-{n}-{i}", json=body).json()["Id"]
        assert client.post(f"/containers/{cid}/start").status_code == 204
        ids.append(cid)
    assert client.post("/networks/bridge/connect", json={"Container": ids[1]}).status_code == 200
    for cid in ids:
        assert client.delete(f"/containers/{cid}?force=1").status_code == 204
    assert client.delete(f"/networks/{net}").status_code == 204


def test_network_lifecycles_leave_nothing_behind(refd: DaemonHandle) -> None:
    assert refd.endpoint is not None
    image = load_test_image(refd.endpoint)
    client = EngineClient(refd.endpoint)
    try:
        _network_cycle(client, image, 0)
        before = _baseline(refd)
        for n in range(1, max(CYCLES // 4, 3)):
            _network_cycle(client, image, n)
        after = _settled(refd, before)
    finally:
        client.close()
    assert after["links"] == before["links"] == ["docker0", "lo"]
    assert after["sandboxes"] == before["sandboxes"] == []
    assert after["rules"] == before["rules"]
    assert after["mounts"] == before["mounts"]
    assert after["processes"] == before["processes"]
    assert abs(int(after["fds"]) - int(before["fds"])) <= 2


def test_shutdown_removes_bridges_and_rules(refd: DaemonHandle) -> None:
    """refd removes the bridges and iptables rules it made when it stops (its netns is kept to look)."""
    import subprocess

    from harness.daemon.network.netlink import Netlink
    from harness.daemon.network.sandbox import delete_netns
    from harness.daemon.runtime import syscalls as sc

    assert refd.endpoint is not None
    client = EngineClient(refd.endpoint)
    try:
        assert client.post("/networks/create", json={"Name": "kept"}).status_code == 201
    finally:
        client.close()
    keep = os.path.join(refd.workdir, "netns-kept")
    open(keep, "w").close()
    sc.mount(f"/proc/{refd.pid}/ns/net", keep, None, sc.MS_BIND, None)
    try:
        during = _network_snapshot(refd)
        refd.stop()
        with Netlink(keep) as nl:
            links = sorted(nl.links())
        rules = subprocess.run(
            ["nsenter", f"--net={keep}", "iptables-save"], capture_output=True, text=True
        ).stdout
    finally:
        delete_netns(keep)
    assert len(during["links"]) == 3 and during["rules"]
    assert links == ["lo"]
    assert [line for line in rules.splitlines() if line.startswith("-A")] == []
