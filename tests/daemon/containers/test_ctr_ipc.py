"""IPC modes on a live refd, as moby's setupIPCDirs: private and none keep /dev/shm to the container (none
has none), shareable's lives in the daemon's mount namespace and is joined by ``container:<id>``, host's
is the host's; a private donor is refused at start."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from .livedaemon import LiveRefd, running_as_root

pytestmark = pytest.mark.skipif(not running_as_root(), reason="running containers needs root")

TOP = ["top"]


@pytest.fixture(scope="module")
def refd() -> Iterator[LiveRefd]:
    daemon = LiveRefd("ipc")
    try:
        yield daemon
    finally:
        daemon.close()


def _shm_device(refd: LiveRefd, cid: str) -> str:
    """The major:minor of the container's /dev/shm ("" without one), as moby's test reads it."""
    with open(f"/proc/{refd.pid(cid)}/mountinfo") as fh:
        for line in fh:
            fields = line.split()
            if fields[4] == "/dev/shm":
                return fields[2]
    return ""


def _daemon_devices(refd: LiveRefd) -> set[str]:
    return {line.split()[2] for line in refd.daemon_mountinfo().splitlines()}


def test_private_is_the_containers_own(refd: LiveRefd) -> None:
    cid = refd.run(TOP, HostConfig={"IpcMode": "private"})
    device = _shm_device(refd, cid)
    assert device and device not in _daemon_devices(refd)


def test_none_has_no_dev_shm(refd: LiveRefd) -> None:
    cid = refd.run(TOP, HostConfig={"IpcMode": "none"})
    assert _shm_device(refd, cid) == ""


def test_shareable_is_mounted_by_the_daemon_and_joined_by_container_mode(refd: LiveRefd) -> None:
    donor = refd.run(TOP, HostConfig={"IpcMode": "shareable"})
    device = _shm_device(refd, donor)
    assert device in _daemon_devices(refd)
    guest = refd.run(TOP, HostConfig={"IpcMode": f"container:{donor[:12]}"})
    assert refd.inspect(guest)["HostConfig"]["IpcMode"] == f"container:{donor}"  # recorded with the ID
    assert os.readlink(f"/proc/{refd.pid(guest)}/ns/ipc") == os.readlink(f"/proc/{refd.pid(donor)}/ns/ipc")
    code, _ = refd.exec(donor, ["sh", "-c", "printf covfefe > /dev/shm/bar"])
    assert code == 0
    assert refd.exec(guest, ["cat", "/dev/shm/bar"]) == (0, b"covfefe")
    refd.client.post(f"/containers/{donor}/stop?t=0")
    assert device not in _daemon_devices(refd)  # unmounted when the donor stops


def test_a_private_donor_is_refused_at_start(refd: LiveRefd) -> None:
    donor = refd.run(TOP, HostConfig={"IpcMode": "private"})
    created = refd.create(TOP, HostConfig={"IpcMode": f"container:{donor}"})
    assert created.status_code == 201, created.text
    started = refd.start(created.json()["Id"])
    assert (started.status_code, started.json()["message"]) == (
        400,
        f"failed to join IPC namespace: container {donor}: non-shareable IPC "
        "(hint: use IpcMode:shareable for the donor container)",
    )


def test_a_missing_donor_is_refused_at_create(refd: LiveRefd) -> None:
    created = refd.create(TOP, HostConfig={"IpcMode": "container:nosuchcontainer"})
    assert (created.status_code, created.json()["message"]) == (400, "No such container: nosuchcontainer")


def test_host_shares_the_daemons_dev_shm(refd: LiveRefd) -> None:
    cid = refd.run(TOP, HostConfig={"IpcMode": "host"})
    name = f".moby-b-ipc-{cid[:12]}"
    assert refd.exec(cid, ["sh", "-c", f"printf covfefe > /dev/shm/{name}"])[0] == 0
    try:
        with open(f"/proc/{refd.handle.pid}/root/dev/shm/{name}") as fh:
            assert fh.read() == "covfefe"
    finally:
        refd.exec(cid, ["rm", "-f", f"/dev/shm/{name}"])


def test_older_clients_get_shareable_by_default(refd: LiveRefd) -> None:
    old = refd.create(TOP, version="v1.39")
    assert old.status_code == 201, old.text
    assert refd.inspect(old.json()["Id"])["HostConfig"]["IpcMode"] == "shareable"
    new = refd.create(TOP)
    assert refd.inspect(new.json()["Id"])["HostConfig"]["IpcMode"] == "private"
