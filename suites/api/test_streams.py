"""Streams: TTY containers, following logs, attaching (operations ContainerAttach, ContainerLogs)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

from harness.backends.base import DaemonHandle
from harness.checks import eventually, expect_error, expect_status
from harness.client import EngineClient
from harness.fixtures import Observations
from harness.wait import wait_until

CLI = Callable[..., Any]
V = "/v1.41"


@pytest.mark.scenario(
    "api/streams/tty-logs",
    "A Tty container MUST run on a pty (CRLF line ends) and its logs MUST be raw, not multiplexed frames",
    ref="operations ContainerCreate Tty, ContainerLogs",
)
def test_tty_logs(engine: EngineClient, test_image: str, observe: Observations) -> None:
    cid = engine.post(
        f"{V}/containers/create", json={"Image": test_image, "Tty": True, "Cmd": ["sh", "-c", "tty; echo hi"]}
    ).json()["Id"]
    try:
        engine.post(f"{V}/containers/{cid}/start")
        engine.post(f"{V}/containers/{cid}/wait", timeout=30)
        resp = engine.get(f"{V}/containers/{cid}/logs?stdout=1&stderr=1")
        lines = resp.content.split(b"\r\n")
        observe("content_type", resp.headers.get("Content-Type"))
        observe("tty_device", lines[0].startswith(b"/dev/pts/"))
        observe("rest", [x.decode() for x in lines[1:]])
        assert lines[0].startswith(b"/dev/pts/") and lines[1:] == [b"hi", b""]
    finally:
        engine.delete(f"{V}/containers/{cid}?force=1")


@pytest.mark.scenario(
    "api/streams/logs-follow",
    "`docker logs -f` MUST stream lines as they are written and end when the container exits",
    ref="docker CLI logs -f",
)
def test_logs_follow(docker_cli: CLI, test_image: str, observe: Observations) -> None:
    started = docker_cli("run", "-d", test_image, "sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.3; done")
    cid = started.stdout.strip()
    try:
        begin = time.monotonic()
        result = docker_cli("logs", "-f", cid, timeout=30)
        took = time.monotonic() - begin
        observe("stdout", result.stdout)
        observe("followed_until_exit", took >= 0.3)
        assert result.stdout == "1\n2\n3\n"
    finally:
        docker_cli("rm", "-f", cid)


@pytest.mark.scenario(
    "api/streams/logs-follow-tail-0",
    "logs with follow=1&tail=0 MUST send only what is written after the request, no line logged before it",
    ref="operations ContainerLogs tail, follow",
)
def test_logs_follow_tail_0(engine: EngineClient, test_image: str, observe: Observations) -> None:
    script = "echo old; i=0; while [ ! -e /tmp/stop ]; do i=$((i+1)); echo tick$i; sleep 0.05; done"
    cid = engine.post(
        f"{V}/containers/create", json={"Image": test_image, "Cmd": ["sh", "-c", script]}
    ).json()["Id"]
    try:
        engine.post(f"{V}/containers/{cid}/start")
        logged = wait_until(lambda: b"tick1" in engine.get(f"{V}/containers/{cid}/logs?stdout=1").content, 30)
        assert logged, "the container logged nothing within 30 s"
        resp = engine.get(f"{V}/containers/{cid}/logs?stdout=1&follow=1&tail=0", stream=True, timeout=30)
        first = resp.raw.read(8)  # the first frame's header: a line written after the request
        exec_id = engine.post(f"{V}/containers/{cid}/exec", json={"Cmd": ["touch", "/tmp/stop"]}).json()["Id"]
        engine.post(f"{V}/exec/{exec_id}/start", json={"Detach": True})
        frames = (first + resp.raw.read()).split(b"\n")[:-1]
        texts = [f[8:].decode() for f in frames]
        observe("lines_logged_before_sent", any(t == "tick1" or not t.startswith("tick") for t in texts))
        assert texts and all(t.startswith("tick") for t in texts), texts[:5]
        assert texts[0] != "tick1"  # tick1 was logged before the request: it is not sent again
    finally:
        engine.delete(f"{V}/containers/{cid}?force=1")


def _raw_request(daemon: DaemonHandle, request: bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(daemon.socket_path)
    sock.sendall(request)
    return sock


def _read_head(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(1)
        if not chunk:
            break
        data += chunk
    return data


@pytest.mark.scenario(
    "api/streams/attach-upgrade",
    "attach with 'Upgrade: tcp' MUST answer '101 UPGRADED' and then carry the container's "
    "output as multiplexed frames until it exits",
    ref="operation ContainerAttach",
)
def test_attach_upgrade(
    engine: EngineClient, docker_daemon: DaemonHandle, test_image: str, observe: Observations
) -> None:
    cid = engine.post(
        f"{V}/containers/create",
        json={"Image": test_image, "Cmd": ["sh", "-c", "echo attached"], "AttachStdout": True},
    ).json()["Id"]
    sock = _raw_request(
        docker_daemon,
        (
            f"POST {V}/containers/{cid}/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\n"
            "Host: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode(),
    )
    try:
        head = _read_head(sock)
        engine.post(f"{V}/containers/{cid}/start")
        sock.settimeout(20)
        body = b""
        while chunk := sock.recv(4096):
            body += chunk
        status_line = head.split(b"\r\n")[0].decode()
        headers = {
            line.split(b":", 1)[0].decode().lower(): line.split(b":", 1)[1].strip().decode()
            for line in head.split(b"\r\n")[1:]
            if b":" in line
        }
        observe("status_line", status_line)
        observe("content_type", headers.get("content-type"))
        observe("upgrade", headers.get("upgrade"))
        observe("body", body.decode(errors="replace"))
        assert (
            status_line == "HTTP/1.1 101 UPGRADED" and body == b"\x01\x00\x00\x00\x00\x00\x00\x09attached\n"
        )
    finally:
        sock.close()
        engine.delete(f"{V}/containers/{cid}?force=1")


@pytest.mark.scenario(
    "api/streams/attach-missing",
    "attach to an unknown container MUST answer 404 before hijacking",
    ref="operation ContainerAttach",
)
def test_attach_missing(engine: EngineClient, observe: Observations) -> None:
    resp = engine.post(f"{V}/containers/nosuch/attach?stream=1&stdout=1")
    observe("status", resp.status_code)
    observe("body", resp.text)
    expect_status(resp, 404)
    assert resp.text == "No such container: nosuch\r\n"  # plain text, as the hijacked stream writes it


def _attach_tty(daemon: DaemonHandle, cid: str, query: str = "") -> tuple[socket.socket, bytes]:
    sock = _raw_request(
        daemon,
        (
            f"POST {V}/containers/{cid}/attach?stream=1&stdin=1&stdout=1&stderr=1{query} HTTP/1.1\r\n"
            "Host: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n"
        ).encode(),
    )
    return sock, _read_head(sock)


def _read_until(sock: socket.socket, marker: bytes, what: str) -> bytes:
    """What arrives until ``marker`` has (the observable point a sleep would only guess at)."""
    seen = bytearray()

    def arrived() -> bool:
        sock.settimeout(0.2)
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            return False
        seen.extend(chunk)
        return marker in seen or not chunk

    eventually(arrived, what, timeout=10, interval=0.01)
    return bytes(seen)


def _until_closed(sock: socket.socket, timeout: float = 10) -> tuple[bytes, bool]:
    """What arrives until the daemon closes the stream; (data, closed before the timeout)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except TimeoutError:
        return data, False
    return data, True


@pytest.mark.parametrize("stdin_once", [False, True], ids=["open-stdin", "stdin-once"])
@pytest.mark.scenario(
    "api/streams/attach-tty-input-end",
    "When a TTY attach's client ends its input (half-close), the daemon MUST end the stream and leave the "
    "container running with its terminal's input open (StdinOnce or not): a new attach still reaches the "
    "shell",
    ref="operation ContainerAttach; moby container/stream/attach.go CopyStreams (CloseStdin && !TTY)",
)
def test_attach_tty_input_end(
    engine: EngineClient,
    docker_daemon: DaemonHandle,
    test_image: str,
    observe: Observations,
    stdin_once: bool,
) -> None:
    body = {"Image": test_image, "Cmd": ["sh"], "Tty": True, "OpenStdin": True, "StdinOnce": stdin_once}
    cid = engine.post(f"{V}/containers/create", json=body).json()["Id"]
    try:
        engine.post(f"{V}/containers/{cid}/start")
        sock, _ = _attach_tty(docker_daemon, cid)
        with sock:
            sock.sendall(b"echo typed-$((40+2))\r")
            _read_until(sock, b"typed-42", "the shell's output of the typed command")
            sock.shutdown(socket.SHUT_WR)
            _, closed = _until_closed(sock)
        assert observe("stream_closed", closed)
        sock, _ = _attach_tty(docker_daemon, cid)
        with sock:
            sock.sendall(b"echo again-$((40+3))\r")
            again = b"again-43" in _read_until(sock, b"again-43", "the shell answering a second attach")
        assert observe("shell_answers", again)
        assert observe("still_running", engine.get(f"{V}/containers/{cid}/json").json()["State"]["Running"])
    finally:
        engine.delete(f"{V}/containers/{cid}?force=1")


@pytest.mark.parametrize(
    ("keys", "sequence"), [("", b"\x10\x11"), ("&detachKeys=ctrl-a,x", b"\x01x")], ids=["default", "custom"]
)
@pytest.mark.scenario(
    "api/streams/attach-detach-keys",
    "Typing the detach sequence (ctrl-p ctrl-q, or detachKeys) into a TTY attach MUST end the attach "
    "stream, leave the container running, and emit a 'detach' event; input before it MUST reach the "
    "container",
    ref="operation ContainerAttach detachKeys; moby container/stream/attach.go copyEscapable",
)
def test_attach_detach_keys(
    engine: EngineClient,
    docker_daemon: DaemonHandle,
    test_image: str,
    observe: Observations,
    keys: str,
    sequence: bytes,
) -> None:
    cid = engine.post(
        f"{V}/containers/create",
        json={"Image": test_image, "Cmd": ["sh"], "Tty": True, "OpenStdin": True, "AttachStdin": True},
    ).json()["Id"]
    try:
        engine.post(f"{V}/containers/{cid}/start")
        sock, head = _attach_tty(docker_daemon, cid, keys)
        with sock:
            sock.sendall(b"echo typed-$((40+2))\r")
            echoed = _read_until(sock, b"typed-42", "the shell's output of the typed command")
            sock.sendall(sequence)
            data, closed = _until_closed(sock)
            data = echoed + data
        state = engine.get(f"{V}/containers/{cid}/json").json()["State"]
        events = engine.get(
            f"{V}/events",
            params={
                "since": "0",
                "until": str(int(time.time()) + 1),
                "filters": f'{{"container":["{cid}"]}}',
            },
        )
        actions = [
            line.split('"Action":"')[1].split('"')[0]
            for line in events.text.splitlines()
            if '"Action"' in line
        ]
        assert observe("status_line", head.split(b"\r\n")[0].decode()) == "HTTP/1.1 101 UPGRADED"
        assert observe("echoed", b"typed-42" in data), data
        assert observe("stream_closed", closed), data
        assert observe("still_running", state["Running"]), state
        assert observe("detach_event", "detach" in actions), actions
    finally:
        engine.delete(f"{V}/containers/{cid}?force=1")


@pytest.mark.scenario(
    "api/streams/attach-invalid-detach-keys",
    "attach with malformed detachKeys (ctrl-A is case-sensitive) MUST be refused with 'Invalid detach keys "
    "(...) provided'; an exec created with them MUST be refused with 'Invalid escape keys (...) provided'",
    ref="moby daemon/attach.go, daemon/exec.go",
)
def test_attach_invalid_detach_keys(
    engine: EngineClient, docker_daemon: DaemonHandle, test_image: str, observe: Observations
) -> None:
    cid = engine.post(
        f"{V}/containers/create", json={"Image": test_image, "Cmd": ["sleep", "300"], "Tty": True}
    ).json()["Id"]
    try:
        engine.post(f"{V}/containers/{cid}/start")
        sock, head = _attach_tty(docker_daemon, cid, "&detachKeys=ctrl-A,a")
        with sock:
            body, _ = _until_closed(sock, 5)
        assert observe("attach_status", head.split(b"\r\n")[0].decode()) == "HTTP/1.1 400 Bad Request"
        message = observe("attach_message", body.decode(errors="replace").strip())
        assert message == "Invalid detach keys (ctrl-A,a) provided"
        resp = engine.post(f"{V}/containers/{cid}/exec", json={"Cmd": ["true"], "DetachKeys": "ctrl-A,a"})
        observe("exec", {"status": resp.status_code, "message": resp.json().get("message")})
        expect_error(resp, 500, "Invalid escape keys (ctrl-A,a) provided")
    finally:
        engine.delete(f"{V}/containers/{cid}?force=1")


def _ws_connect(daemon: DaemonHandle, path: str) -> tuple[socket.socket, bytes, str]:
    import base64
    import os as _os

    key = base64.b64encode(_os.urandom(16)).decode()
    sock = _raw_request(
        daemon,
        (
            f"GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: http://localhost\r\n\r\n"
        ).encode(),
    )
    return sock, _read_head(sock), key


def _ws_frames(data: bytes) -> list[tuple[int, bytes]]:
    import struct

    frames, i = [], 0
    while i + 2 <= len(data):
        size, j = data[i + 1] & 0x7F, i + 2
        if size == 126:
            size, j = struct.unpack("!H", data[j : j + 2])[0], j + 2
        elif size == 127:
            size, j = struct.unpack("!Q", data[j : j + 8])[0], j + 8
        frames.append((data[i] & 0x0F, data[j : j + size]))
        i = j + size
    return frames


@pytest.mark.scenario(
    "api/streams/attach-websocket",
    "GET /containers/{id}/attach/ws MUST complete the websocket handshake (101, Sec-WebSocket-Accept), "
    "carry stdin from masked client frames, send each output write as an unmultiplexed binary frame, and "
    "close with 1000 when the container ends; an unknown container MUST get a plain 404 before any upgrade",
    ref="operation ContainerAttachWebsocket; moby api/server/router/container wsContainersAttach",
)
def test_attach_websocket(
    engine: EngineClient, docker_daemon: DaemonHandle, test_image: str, observe: Observations
) -> None:
    import base64
    import hashlib
    import os as _os

    cid = engine.post(
        f"{V}/containers/create",
        json={"Image": test_image, "Cmd": ["cat"], "OpenStdin": True, "AttachStdin": True},
    ).json()["Id"]
    try:
        engine.post(f"{V}/containers/{cid}/start")
        sock, head, key = _ws_connect(
            docker_daemon, f"/v1.41/containers/{cid}/attach/ws?stream=1&stdin=1&stdout=1&stderr=1"
        )
        with sock:
            payload = b"ping-over-ws\n"
            mask = _os.urandom(4)
            masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            sock.sendall(bytes([0x82, 0x80 | len(payload)]) + mask + masked)
            sock.settimeout(10)
            first = b""
            while len(_ws_frames(first)) < 1:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                first += chunk
            engine.post(f"{V}/containers/{cid}/kill")
            rest, closed = _until_closed(sock)
        lines = head.decode().split("\r\n")
        headers = {ln.split(":", 1)[0].lower(): ln.split(":", 1)[1].strip() for ln in lines[1:] if ":" in ln}
        expected = base64.b64encode(
            hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
        )
        frames = _ws_frames(first + rest)
        assert observe("status_line", lines[0]) == "HTTP/1.1 101 Switching Protocols"
        upgrade = observe("upgrade_headers", {k: headers.get(k) for k in ("upgrade", "connection")})
        assert upgrade == {"upgrade": "websocket", "connection": "Upgrade"}
        assert observe("accept_valid", headers.get("sec-websocket-accept") == expected.decode()), headers
        echo = observe("echo", [(op, data.decode(errors="replace")) for op, data in frames if op != 8])
        assert echo == [(2, "ping-over-ws\n")]  # one binary frame, unmultiplexed
        assert observe("close", [data.hex() for op, data in frames if op == 8]) == ["03e8"]  # 1000
        assert observe("server_hung_up", closed)

        missing, missing_head, _ = _ws_connect(
            docker_daemon, "/v1.41/containers/no-such-ctr/attach/ws?stream=1"
        )
        with missing:
            assert (
                observe("unknown_container", missing_head.split(b"\r\n")[0].decode())
                == "HTTP/1.1 404 Not Found"
            )

    finally:
        engine.delete(f"{V}/containers/{cid}?force=1")


@pytest.mark.scenario(
    "api/streams/attach-tty-crlf",
    "Attaching to a Tty container MUST carry its terminal's output raw, with the pty's ONLCR line ends "
    "('hello out\\r\\n'); a container without Tty MUST send '\\n' in multiplexed frames",
    ref="operation ContainerAttach; moby container/stream/attach.go",
)
@pytest.mark.parametrize("tty", [True, False], ids=["tty", "plain"])
def test_attach_tty_crlf(
    engine: EngineClient, docker_daemon: DaemonHandle, test_image: str, observe: Observations, tty: bool
) -> None:
    cid = engine.post(
        f"{V}/containers/create",
        json={"Image": test_image, "Cmd": ["echo", "hello out"], "Tty": tty, "AttachStdout": True},
    ).json()["Id"]
    try:
        sock = _raw_request(
            docker_daemon,
            (
                f"POST {V}/containers/{cid}/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\n"
                "Host: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n"
            ).encode(),
        )
        with sock:
            head = _read_head(sock)
            expect_status(engine.post(f"{V}/containers/{cid}/start"), 204)
            data, closed = _until_closed(sock, timeout=20)
        observe(f"{'tty' if tty else 'plain'}", data.decode(errors="replace"))
        assert head.startswith(b"HTTP/1.1 101 UPGRADED") and closed
        if tty:
            assert data == b"hello out\r\n"
        else:
            assert data == b"\x01\x00\x00\x00\x00\x00\x00\x0ahello out\n"
    finally:
        engine.delete(f"{V}/containers/{cid}?force=1")
