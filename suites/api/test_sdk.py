"""The docker SDK (docker-py) as a client: what Python users call first."""

from __future__ import annotations

from typing import Any

import pytest

from harness.fixtures import Observations
from harness.profiles import Profile


@pytest.mark.scenario(
    "api/sdk/ping-version", "The docker SDK MUST ping and read the version", ref="docker-py"
)
def test_sdk_ping_version(docker_client: Any, observe: Observations) -> None:
    observe("ping", docker_client.ping())
    version = docker_client.version()
    observe("os", version.get("Os"))
    assert docker_client.ping() is True and version["Os"] == "linux"


@pytest.mark.scenario(
    "api/sdk/run-remove",
    "containers.run(..., remove=True) MUST return the output bytes (None when the container's log driver "
    "is one docker-py does not read, such as the local-logs profile's local)",
    ref="docker-py containers.run",
)
def test_sdk_run(docker_client: Any, test_image: str, observe: Observations, profile: Profile) -> None:
    out = docker_client.containers.run(test_image, ["sh", "-c", "echo hi; echo err >&2"], remove=True)
    observe("output", out.decode() if out is not None else None)
    # docker-py reads the logs only when inspect's HostConfig.LogConfig.Type is json-file or journald
    readable = profile.setting("log-driver", "json-file") in ("json-file", "journald")
    assert out == (b"hi\n" if readable else None)


@pytest.mark.scenario(
    "api/sdk/run-error",
    "A failing container MUST raise ContainerError with its exit status",
    ref="docker-py containers.run",
)
def test_sdk_run_error(docker_client: Any, test_image: str, observe: Observations) -> None:
    import docker

    with pytest.raises(docker.errors.ContainerError) as info:
        docker_client.containers.run(test_image, ["sh", "-c", "echo boom >&2; exit 3"], remove=True)
    observe("exit_status", info.value.exit_status)
    observe("stderr", (info.value.stderr or b"").decode())
    assert info.value.exit_status == 3


@pytest.mark.scenario(
    "api/sdk/exec-run", "exec_run MUST return the exit code and output", ref="docker-py exec_run"
)
def test_sdk_exec_run(docker_client: Any, test_image: str, observe: Observations) -> None:
    container = docker_client.containers.run(test_image, ["sleep", "60"], detach=True)
    try:
        result = container.exec_run(["sh", "-c", "echo inside; exit 2"])
        observe("exit_code", result.exit_code)
        observe("output", result.output.decode())
        assert result.exit_code == 2 and result.output == b"inside\n"
    finally:
        container.remove(force=True)


@pytest.mark.scenario(
    "api/sdk/not-found", "Getting an unknown container MUST raise NotFound", ref="docker-py containers.get"
)
def test_sdk_not_found(docker_client: Any, observe: Observations) -> None:
    import docker

    with pytest.raises(docker.errors.NotFound) as info:
        docker_client.containers.get("nosuch")
    observe("explanation", info.value.explanation)
    assert info.value.explanation == "No such container: nosuch"


def _read_until_closed(sock: Any, timeout: float = 10, marker: bytes = b"") -> tuple[bytes, bool]:
    """What ``sock`` sends until it closes (True), ``marker`` arrives, or ``timeout`` passes (False)."""
    import select
    import time

    out, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([sock], [], [], 0.1)
        if ready:
            data = sock.recv(65536)
            if not data:
                return out, True
            out += data
            if marker and marker in out:
                return out, False
    return out, False


def _close(stream: Any) -> None:
    """A docker-py hijacked stream: the socket, and the HTTP response docker-py keeps it alive with."""
    stream._sock.close()
    response = getattr(stream._sock, "_response", None)
    if response is not None:
        response.close()
    stream.close()


@pytest.mark.scenario(
    "api/sdk/detach-keys-from-config",
    "The detachKeys of the SDK's config file ('ctrl-x,x', sent as exec create's 'detachKeys' key: Go matches "
    "JSON keys case-insensitively) MUST be the exec's: inspect shows them as the bytes' base64 ('GHg='), and "
    "typing them ends the exec's stream with dockerd 28's 'exec attach failed: error on attach stdin: read "
    "escape sequence', the exec then recorded as ended with 126; an attach (detachKeys from the same file) "
    "MUST end on them and leave the container (created with StdinOnce and a TTY) running with its input open",
    ref="docker-py api/exec_api.py exec_create, api/container.py attach_socket; moby daemon/exec.go",
)
def test_sdk_detach_keys_from_config(
    docker_daemon: Any, test_image: str, tmp_path: Any, monkeypatch: Any, observe: Observations
) -> None:
    import json

    from harness.wait import wait_until

    (tmp_path / "config.json").write_text(json.dumps({"detachKeys": "ctrl-x,x"}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    client = docker_daemon.endpoint.sdk_client()
    api = client.api
    cid = api.create_container(test_image, ["sh"], tty=True, stdin_open=True)["Id"]
    try:
        api.start(cid)
        exec_id = api.exec_create(cid, ["sh"], stdin=True, tty=True)["Id"]
        assert observe("exec-detach-keys", api.exec_inspect(exec_id)["DetachKeys"]) == "GHg="
        stream = api.exec_start(exec_id, tty=True, socket=True)
        try:
            stream._sock.sendall(b"echo typed-$((40+2))\n")
            assert b"typed-42" in _read_until_closed(stream._sock, marker=b"typed-42")[0]
            stream._sock.sendall(b"\x18x")
            text, closed = _read_until_closed(stream._sock)
        finally:
            _close(stream)
        said = b"exec attach failed: error on attach stdin: read escape sequence\r\n"
        ended = {"closed": closed, "says": text.endswith(said)}
        assert observe("exec-stream-end", ended) == {"closed": True, "says": True}, text
        assert wait_until(lambda: not api.exec_inspect(exec_id)["Running"], timeout=10), "the exec still runs"
        assert observe("exec-exit-code", api.exec_inspect(exec_id)["ExitCode"]) == 126

        stream = api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stream": 1})
        try:
            stream._sock.sendall(b"echo attached-$((40+3))\n")
            assert b"attached-43" in _read_until_closed(stream._sock, marker=b"attached-43")[0]
            stream._sock.sendall(b"\x18x")
            text, closed = _read_until_closed(stream._sock)
        finally:
            _close(stream)
        assert observe("attach-closed", closed), text
        # docker-py creates it with StdinOnce: a terminal's input still stays open, so the shell answers again
        stream = api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stream": 1})
        try:
            stream._sock.sendall(b"echo again-$((40+4))\n")
            again = b"again-44" in _read_until_closed(stream._sock, marker=b"again-44")[0]
        finally:
            _close(stream)
        assert observe("shell-answers-after-detach", again)
        assert observe("still-running", api.inspect_container(cid)["State"]["Running"])
    finally:
        api.remove_container(cid, force=True)
        client.close()
