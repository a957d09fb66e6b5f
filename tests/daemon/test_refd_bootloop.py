"""refd's boot loop: it serves the fast routes without asyncio, and hands connections and signals over intact.

The HTTP answers on every path (boot loop included) are checked in test_refd_httpd.py; here: what the boot
loop hands over, and a real refd that has not loaded asyncio until a request needs it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import tempfile

import pytest

from harness.backends.base import DaemonSpec
from harness.backends.local import LocalBackend
from harness.client import EngineClient
from harness.daemon.bootloop import BootLoop
from harness.daemon.httpd import Request, Response
from harness.daemon.httpproto import HttpProtocol
from harness.targets import resolve_target


def _fast(req: Request) -> Response | None:
    if req.path == "/_ping":
        return Response(200, b"OK")
    return None


async def _slow(req: Request) -> Response:
    return Response(200, b"slow:" + await req.body())


def _req(path: str, body: bytes = b"") -> bytes:
    method = "POST" if body else "GET"
    return f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body


def test_fast_requests_are_answered_and_the_first_other_one_is_handed_over_unread(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "boot.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen()
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(path)
    client.sendall(_req("/_ping") + _req("/_ping") + _req("/upload", b"abc"))
    boot = BootLoop([listener], _fast)
    handover = boot.run()
    client.settimeout(5)
    answered = b""
    while answered.count(b"HTTP/1.1 200 OK") < 2:
        answered += client.recv(65536)
    assert answered.count(b"\r\n\r\nOK") == 2
    assert handover.signals == []
    assert len(handover.connections) == 1
    adopted = handover.connections[0]
    assert adopted.buf == _req("/upload", b"abc")  # nothing of the slow request consumed
    assert adopted.pending is not None and adopted.pending[0] is None

    async def adopt() -> bytes:
        loop = asyncio.get_running_loop()
        protocol = HttpProtocol(_slow, _fast, adopted=adopted)
        await loop.connect_accepted_socket(lambda: protocol, sock=adopted.sock)
        out = await asyncio.to_thread(client.recv, 65536)
        assert protocol.task is not None
        protocol.task.cancel()
        return out

    try:
        assert asyncio.run(adopt()).endswith(b"\r\n\r\nslow:abc")
    finally:
        client.close()
        listener.close()


def test_a_caught_signal_ends_the_loop_and_is_handed_over() -> None:
    previous = {
        signo: signal.getsignal(signo)
        for signo in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP)
    }
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    try:
        boot = BootLoop([listener], _fast)
        boot.catch_signals()
        os.kill(os.getpid(), signal.SIGHUP)  # recorded at once; run() sees it before it waits
        handover = boot.run()
        assert handover.signals == [signal.SIGHUP]
        os.kill(os.getpid(), signal.SIGTERM)  # after run(): still recorded, for the daemon to handle
        assert handover.signals == [signal.SIGHUP, signal.SIGTERM]
    finally:
        for signo, handler in previous.items():
            signal.signal(signo, handler)
        listener.close()


def _maps_mention(pid: int, name: str) -> bool:
    with open(f"/proc/{pid}/maps") as fh:
        return name in fh.read()


@pytest.mark.skipif(os.geteuid() != 0, reason="refd needs root (its own network namespace)")
def test_refd_answers_ping_without_asyncio_then_loads_it_for_the_first_request_that_needs_it() -> None:
    backend = LocalBackend()
    handle = backend.start(
        resolve_target("refd"),
        DaemonSpec(args=["--bridge=none", "--iptables=false"]),
        tempfile.mkdtemp(prefix="harness-refd-bootloop-"),
    )
    try:
        assert handle.endpoint is not None
        client = EngineClient(handle.endpoint, timeout=30)
        with open(handle.pidfile) as fh:
            pid = int(fh.read().strip())
        assert client.get("/_ping").text == "OK"
        assert client.get("/version").status_code == 200
        # _asyncio and _ssl are C extensions: mapped into refd once asyncio is imported
        assert not _maps_mention(pid, "_asyncio"), "refd imported asyncio before a request needed it"
        created = client.post("/containers/create", json={})  # an async handler: the loop takes over
        assert created.status_code == 400, created.text
        assert _maps_mention(pid, "_asyncio")
        assert client.get("/_ping").text == "OK"
        assert handle.stop(30) == 0
        assert "Daemon shutdown complete" in handle.logs()
    finally:
        backend.teardown(handle)


@pytest.mark.skipif(os.geteuid() != 0, reason="refd needs root (its own network namespace)")
def test_refd_shuts_down_cleanly_on_sigterm_in_the_boot_loop() -> None:
    backend = LocalBackend()
    handle = backend.start(
        resolve_target("refd"),
        DaemonSpec(args=["--bridge=none", "--iptables=false"]),
        tempfile.mkdtemp(prefix="harness-refd-bootloop-"),
    )
    try:
        assert handle.endpoint is not None
        assert EngineClient(handle.endpoint, timeout=30).get("/_ping").text == "OK"
        assert handle.stop(30) == 0
        logs = handle.logs()
        assert "Processing signal 'terminated'" in logs
        assert "Daemon shutdown complete" in logs
        assert not os.path.exists(handle.pidfile)  # removed before refd exits
    finally:
        backend.teardown(handle)
