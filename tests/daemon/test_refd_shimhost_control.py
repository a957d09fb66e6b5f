"""A shim host's control socket in-process: hand-offs taken, refused (full, malformed), dropped (gave up).

No container is started (adopting one only prepares its stdio and ``shim.sock``), so no root is needed.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.daemon.shimhost import Host


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    h = Host(str(tmp_path / "host.sock"), capacity=1)
    try:
        yield h
    finally:
        h.close()


def _state_dir(tmp_path: Path, name: str) -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "spec.json").write_text(json.dumps({"process": {"args": ["true"], "tty": False}}))
    return d


def _hand_off(host: Host, state_dir: Path, hang_up: bool = False, fds: bool = True) -> tuple[bytes, bytes]:
    """Send one hand-off as refd does; the host's answer and what the shim wrote on its sync pipe."""
    read_fd, write_fd = os.pipe()
    log_fd = os.open(state_dir / "shim.log", os.O_WRONLY | os.O_CREAT, 0o600)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.connect(host.control_path)
        request = json.dumps({"state_dir": str(state_dir)}).encode() + b"\n"
        socket.send_fds(client, [request], [write_fd, log_fd] if fds else [])
        if hang_up:
            client.close()
        for _ in range(2):  # accept, then the request
            host._round(5)
        answer = b"" if hang_up else client.recv(4096)
    finally:
        client.close()
        os.close(write_fd)
        os.close(log_fd)
    os.set_blocking(read_fd, False)
    try:
        sync = os.read(read_fd, 4096)
    except BlockingIOError:
        sync = b""
    finally:
        os.close(read_fd)
    return answer, sync


def test_a_hand_off_is_adopted(host: Host, tmp_path: Path) -> None:
    state_dir = _state_dir(tmp_path, "one")
    answer, sync = _hand_off(host, state_dir)
    assert json.loads(answer) == {"pid": os.getpid()}
    assert sync == b'{"ready": true}\n'
    assert (state_dir / "shim.pid").read_text() == str(os.getpid())
    assert (state_dir / "shim.sock").exists()
    assert len(host.shims) == 1


def test_a_full_host_refuses(host: Host, tmp_path: Path) -> None:
    _hand_off(host, _state_dir(tmp_path, "one"))
    answer, sync = _hand_off(host, _state_dir(tmp_path, "two"))
    assert "full (1 containers)" in json.loads(answer)["error"]
    assert sync == b""  # refd takes it elsewhere
    assert not (tmp_path / "two" / "shim.sock").exists()
    assert len(host.shims) == 1


def test_a_hand_off_refd_gave_up_on_is_not_adopted(host: Host, tmp_path: Path) -> None:
    """refd stops waiting after 10 s and forks a new host: a late adoption would be a second supervisor."""
    state_dir = _state_dir(tmp_path, "late")
    _, sync = _hand_off(host, state_dir, hang_up=True)
    assert sync == b""
    assert not (state_dir / "shim.sock").exists()
    assert host.shims == []


def test_a_hand_off_without_its_fds_is_refused(host: Host, tmp_path: Path) -> None:
    answer, _ = _hand_off(host, _state_dir(tmp_path, "bare"), fds=False)
    assert "sync and log fds" in json.loads(answer)["error"]
    assert host.shims == []


def test_a_container_whose_spec_is_missing_reports_on_its_sync_pipe(host: Host, tmp_path: Path) -> None:
    state_dir = tmp_path / "nospec"
    state_dir.mkdir()
    answer, sync = _hand_off(host, state_dir)
    assert json.loads(answer) == {"pid": os.getpid()}  # taken: the error is the container's, not the host's
    assert "spec.json" in json.loads(sync)["error"]
    assert host.shims == []


def test_a_container_never_started_ends_when_its_state_dir_goes(host: Host, tmp_path: Path) -> None:
    """refd removed it (or made the dir anew for another shim): nobody will start it, so the host may end."""
    state_dir = _state_dir(tmp_path, "c1")
    answer, _ = _hand_off(host, state_dir)
    assert json.loads(answer)["pid"] == os.getpid()
    shim = host.shims[0]
    assert shim.tick(100.0) == 100.0 + 2.0 and not shim.finished  # its dir is still its own: it waits
    for entry in state_dir.iterdir():
        entry.unlink()
    state_dir.rmdir()
    state_dir.mkdir()  # the next launch's fresh dir: a different inode
    assert shim.tick(101.0) == 102.0  # not yet time to look
    assert shim.tick(102.5) is None and shim.finished


def test_a_container_never_started_is_abandoned_on_request(host: Host, tmp_path: Path) -> None:
    state_dir = _state_dir(tmp_path, "c1")
    _hand_off(host, state_dir)
    shim = host.shims[0]
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.connect(str(state_dir / "shim.sock"))
        client.sendall(b'{"op": "abandon"}\n')
        for _ in range(2):  # accept, then the request
            host._round(5)
        assert json.loads(client.recv(4096)) == {"ok": True}
    finally:
        client.close()
    assert shim.finished
    shim.pids["main"] = 1  # as if started: it is no longer the shim's to give up
    shim.done = False
    assert not shim.abandon()


def test_a_container_never_started_is_given_up_after_a_minute(host: Host, tmp_path: Path) -> None:
    """refd stopped (or failed) between handing it over and starting it: no start will come."""
    _hand_off(host, _state_dir(tmp_path, "c1"))
    shim = host.shims[0]
    assert shim.tick(1000.0) == 1002.0 and not shim.finished
    assert shim.tick(1058.5) == 1060.5 and not shim.finished
    assert shim.tick(1061.0) is None and shim.finished
