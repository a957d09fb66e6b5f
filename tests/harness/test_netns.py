"""Forwarder + NetnsConnector reach a listener inside another network namespace, and only that one."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from harness.netns import Forwarder, NetnsConnector
from harness.wait import wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="unshare --net needs root")

# answers each connection with b"netns:" + everything it received, so the test knows who answered
_SERVER = """
import socket, sys
srv = socket.create_server(("127.0.0.1", int(sys.argv[1])))
print("ready", flush=True)
while True:
    conn, _ = srv.accept()
    with conn:
        try:
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
            conn.sendall(b"netns:" + data)
        except OSError:
            pass
"""


@dataclass
class NetnsServer:
    pid: int
    port: int

    @property
    def netns_path(self) -> str:
        return f"/proc/{self.pid}/ns/net"


def _free_host_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def netns_server() -> Iterator[NetnsServer]:
    """A TCP server on 127.0.0.1:<port> inside a fresh netns, where the same host port is free."""
    port = _free_host_port()
    proc = subprocess.Popen(
        [
            "unshare",
            "--net",
            "sh",
            "-c",
            'ip link set lo up && exec "$0" -c "$1" "$2"',
            sys.executable,
            _SERVER,
            str(port),
        ],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 10)
        assert ready and proc.stdout.readline() == b"ready\n", "the netns server did not start"
        yield NetnsServer(proc.pid, port)
    finally:
        proc.kill()
        proc.wait(timeout=10)
        proc.stdout.close()


@pytest.fixture
def connector(netns_server: NetnsServer) -> Iterator[NetnsConnector]:
    conn = NetnsConnector(netns_server.netns_path)
    try:
        yield conn
    finally:
        conn.close()


def _exchange(address: tuple[str, int], payload: bytes) -> bytes:
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


def test_forwarder_relays_into_the_netns(netns_server: NetnsServer, connector: NetnsConnector) -> None:
    fwd = Forwarder(connector, netns_server.port)
    try:
        assert fwd.address == f"127.0.0.1:{fwd.port}" and fwd.port != netns_server.port
        assert _exchange(("127.0.0.1", fwd.port), b"hello") == b"netns:hello"
        big = os.urandom(300_000)
        assert _exchange(("127.0.0.1", fwd.port), big) == b"netns:" + big
        # finished connections release their sockets instead of piling up until close()
        assert wait_until(lambda: not fwd._open, 5)
    finally:
        fwd.close()


def test_the_hosts_own_port_is_not_the_netns_server(netns_server: NetnsServer) -> None:
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", netns_server.port), timeout=5).close()


def test_connector_sockets_live_in_the_netns(netns_server: NetnsServer, connector: NetnsConnector) -> None:
    with connector.connect("127.0.0.1", netns_server.port) as sock:
        sock.sendall(b"direct")
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(100) == b"netns:direct"


def test_connector_reports_a_refused_port(netns_server: NetnsServer, connector: NetnsConnector) -> None:
    with pytest.raises(ConnectionRefusedError):
        connector.connect("127.0.0.1", netns_server.port % 65535 + 1)  # any other port: nobody there


def test_forwarder_to_a_port_nobody_listens_on_closes_the_client(
    netns_server: NetnsServer, connector: NetnsConnector
) -> None:
    fwd = Forwarder(connector, netns_server.port % 65535 + 1)
    try:
        with (
            socket.create_connection(("127.0.0.1", fwd.port), timeout=5) as sock,
            contextlib.suppress(ConnectionResetError),
        ):  # a reset is as good as a refusal
            assert sock.recv(10) == b""
    finally:
        fwd.close()


def test_close_stops_accepting_and_cuts_open_relays(
    netns_server: NetnsServer, connector: NetnsConnector
) -> None:
    fwd = Forwarder(connector, netns_server.port)
    open_conn = socket.create_connection(("127.0.0.1", fwd.port), timeout=10)
    try:
        open_conn.sendall(b"half")
        assert wait_until(lambda: len(fwd._open) == 2, 5)
        fwd.close()
        assert fwd._open == set()
        with contextlib.suppress(ConnectionResetError):
            assert open_conn.recv(100) in (b"", b"netns:half")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", fwd.port), timeout=5).close()
    finally:
        open_conn.close()
        fwd.close()  # idempotent


def test_connector_for_a_missing_namespace_fails(tmp_path: os.PathLike[str]) -> None:
    with pytest.raises(FileNotFoundError):
        NetnsConnector(os.path.join(tmp_path, "no-such-ns"))


def test_closed_connector_fails_fast(netns_server: NetnsServer) -> None:
    conn = NetnsConnector(netns_server.netns_path)
    conn.close()
    started = time.monotonic()
    with pytest.raises(OSError, match="closed"):
        conn.connect("127.0.0.1", netns_server.port)
    assert time.monotonic() - started < 1
