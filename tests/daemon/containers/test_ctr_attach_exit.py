"""An attach stream ends once refd has handled the container's exit, as dockerd's does (moby closes attach
streams in its exit handler, holding the container's lock until the container is stopped and its networks
released): moby's TestCreateWithMultiNetworks removes the container's networks right after its stream ends."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from .livedaemon import LiveRefd, running_as_root

pytestmark = pytest.mark.skipif(not running_as_root(), reason="running containers needs root")


@pytest.fixture(scope="module")
def refd() -> Iterator[LiveRefd]:
    daemon = LiveRefd("attach-exit")
    try:
        yield daemon
    finally:
        daemon.close()


def _attach(refd: LiveRefd, cid: str) -> socket.socket:
    """``POST /containers/{cid}/attach?stream=1&stdout=1&stderr=1`` on a raw connection, its head read."""
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(60)
    sock.connect(refd.handle.endpoint.address)  # type: ignore[union-attr]
    query = "stream=1&stdout=1&stderr=1"
    sock.sendall(f"POST /containers/{cid}/attach?{query} HTTP/1.1\r\nHost: d\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        assert chunk, f"the attach answer ended in its head: {head!r}"
        head += chunk
    assert head.startswith(b"HTTP/1.1 200"), head
    return sock


@pytest.mark.parametrize("attempt", range(10))
def test_when_the_stream_ends_the_container_is_stopped_and_its_networks_free(
    refd: LiveRefd, attempt: int
) -> None:
    nets = [f"attach-exit-{attempt}-{i}" for i in (1, 2)]
    for net in nets:
        assert refd.client.post("/networks/create", json={"Name": net}).status_code == 201
    created = refd.create(
        ["ip", "-o", "-4", "addr", "show"],
        version="v1.47",
        AttachStdout=True,
        AttachStderr=True,
        HostConfig={"NetworkMode": nets[0]},
        NetworkingConfig={"EndpointsConfig": {net: {} for net in nets}},
    )
    assert created.status_code == 201, created.text
    cid = created.json()["Id"]
    sock = _attach(refd, cid)
    try:
        assert refd.start(cid).status_code == 204
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
    finally:
        sock.close()
    assert out.count(b"inet ") == 3, out  # lo and one address on each network
    state = refd.inspect(cid)["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 0)
    for net in reversed(nets):  # as the test's deferred removals, before the container is removed
        removed = refd.client.delete(f"/networks/{net}")
        assert removed.status_code == 204, removed.text
    assert refd.client.delete(f"/containers/{cid}").status_code == 204
