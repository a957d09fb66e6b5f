"""Small helpers scenarios share: containers on the session daemon, and daemons they booted themselves."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from harness.backends.base import DaemonHandle
from harness.client import EngineClient

__all__ = [
    "NEEDS_DEFAULT_BRIDGE",
    "FakeDNS",
    "V",
    "after_userns_line",
    "cli_run",
    "create_container",
    "events_since",
    "http_get_in_daemon_netns",
    "info",
    "run_container",
    "start_container",
]

V = "/v1.41"  # an API version both dockerd 20.10 and newer daemons serve

#: dockerd's line as it resolves --userns-remap: logged while it loads its configuration, before its logging
#: is set up (text at info whatever --log-level and --log-format say, before --validate's 'configuration OK')
_USERNS_LINE = re.compile(
    r'time="[^"]+" level=info '
    r'msg="User namespaces: ID ranges will be mapped to subuid/subgid ranges of: [^"]+"'
)


def after_userns_line(lines: list[str]) -> tuple[bool, list[str]]:
    """Whether a daemon's output starts with the --userns-remap line, and the lines after it."""
    if lines and _USERNS_LINE.fullmatch(lines[0]):
        return True, lines[1:]
    return False, lines


#: for scenarios about the default bridge network: the no-bridge profile (--bridge=none) has none
NEEDS_DEFAULT_BRIDGE = pytest.mark.profiles(
    exclude=("no-bridge",), reason="about the default bridge network, which --bridge=none does not make"
)


def create_container(
    engine: EngineClient, ids: list[str], image: str, cmd: list[str], name: str = "", **extra: Any
) -> str:
    """``POST /containers/create`` that must answer 201; the id joins ``ids`` (the ``containers`` fixture)."""
    resp = engine.post(
        f"{V}/containers/create",
        params={"name": name} if name else None,
        json={"Image": image, "Cmd": cmd, **extra},
    )
    assert resp.status_code == 201, resp.text
    cid = str(resp.json()["Id"])
    ids.append(cid)
    return cid


def start_container(engine: EngineClient, cid: str) -> None:
    """``POST /containers/{id}/start`` that must answer 204."""
    resp = engine.post(f"{V}/containers/{cid}/start")
    assert resp.status_code == 204, resp.text


def run_container(engine: EngineClient, ids: list[str], image: str, cmd: list[str], **extra: Any) -> str:
    """Create and start a container over the API, for scenarios about a running one."""
    cid = create_container(engine, ids, image, cmd, **extra)
    start_container(engine, cid)
    return cid


def cli_run(docker_cli: Callable[..., Any], ids: list[str], *args: str) -> str:
    """``docker run -d ARGS`` that must succeed; the id joins ``ids`` (the ``containers`` fixture)."""
    result = docker_cli("run", "-d", *args)
    assert result.returncode == 0, result.stderr
    cid = str(result.stdout.strip())
    ids.append(cid)
    return cid


def events_since(engine: EngineClient, since: float, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
    """``GET /events`` from ``since`` to a second from now, so the stream closes by itself."""
    import json
    import time

    resp = engine.get(
        f"{V}/events",
        params={"since": f"{since:.0f}", "until": f"{time.time() + 1:.0f}", "filters": json.dumps(filters)},
        timeout=30,
    )
    return [json.loads(line) for line in resp.text.splitlines() if line.strip()]


def info(daemon: DaemonHandle) -> dict[str, Any]:
    """``GET /info`` on ``daemon``'s primary endpoint."""
    assert daemon.endpoint is not None
    client = EngineClient(daemon.endpoint)
    try:
        return dict(client.get("/info").json())
    finally:
        client.close()


def http_get_in_daemon_netns(daemon: DaemonHandle, host: str, port: int, path: str = "/") -> str:
    """``GET path`` from inside ``daemon``'s network namespace (where its published ports live).

    Returns the raw response, or ``error: ...`` when nothing answers, so scenarios can record it.
    """
    import socket

    from harness.netns import NetnsConnector

    request = f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode()
    connector = NetnsConnector(daemon.netns_path) if daemon.netns_path else None
    if connector is None:  # the vm backend: a relay out of the guest
        host, port = daemon.reach(host, port)
    try:
        try:
            sock = (
                connector.connect(host, port, timeout=5)
                if connector
                else socket.create_connection((host, port), timeout=5)
            )
        except OSError as exc:
            return f"error: {exc.strerror or exc}"
        chunks = []
        with sock:
            try:
                sock.sendall(request)
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
            except OSError as exc:  # a userland proxy accepts, then resets while the server is not up yet
                return f"error: {exc.strerror or exc}"
        return b"".join(chunks).decode(errors="replace")
    finally:
        if connector is not None:
            connector.close()


class FakeDNS:
    """A tiny authoritative DNS server on UDP port 53 inside ``daemon``'s network namespace.

    Answers A queries for the names in ``records`` and NXDOMAIN for the rest, so scenarios can check
    that a daemon forwards to its upstream servers without any real network.
    """

    def __init__(self, daemon: DaemonHandle, records: dict[str, str], address: str = "0.0.0.0") -> None:
        import socket
        import threading

        from harness.netns import setns

        self.records = {k.lower().rstrip("."): v for k, v in records.items()}
        self.queries: list[str] = []
        ready: list[BaseException | socket.socket] = []
        started = threading.Event()

        def bind() -> None:
            try:
                if daemon.netns_path:
                    setns(daemon.netns_path)
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.bind((address, 53))
                ready.append(sock)
            except BaseException as exc:
                ready.append(exc)
            finally:
                started.set()

        binder = threading.Thread(target=bind, daemon=True)
        binder.start()
        started.wait(10)
        if not ready or isinstance(ready[0], BaseException):
            raise RuntimeError(
                f"fake DNS server could not bind {address}:53: {ready[0] if ready else 'timeout'}"
            )
        self.sock = ready[0]
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        import socket
        import struct

        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except (TimeoutError, OSError):
                continue
            if len(data) < 12:
                continue
            labels, offset = [], 12
            while offset < len(data) and data[offset]:
                length = data[offset]
                labels.append(data[offset + 1 : offset + 1 + length].decode(errors="replace"))
                offset += 1 + length
            end = offset + 5
            name = ".".join(labels).lower()
            self.queries.append(name)
            qtype = struct.unpack_from("!H", data, offset + 1)[0] if end <= len(data) else 0
            address = self.records.get(name)
            answers = b""
            if address and qtype == 1:
                answers = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton(address)
            flags = 0x8180 | (0 if address else 3)
            header = struct.pack(
                "!HHHHHH", struct.unpack_from("!H", data)[0], flags, 1, 1 if answers else 0, 0, 0
            )
            self.sock.sendto(header + data[12:end] + answers, peer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()
