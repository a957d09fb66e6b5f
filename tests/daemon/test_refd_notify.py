"""sd_notify datagrams to $NOTIFY_SOCKET, path and abstract (spec 4.2)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.daemon.notify import notify


@pytest.fixture
def receiver() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.settimeout(5)
    try:
        yield sock
    finally:
        sock.close()


def test_path_socket(tmp_path: Path, receiver: socket.socket, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "notify.sock"
    receiver.bind(str(path))
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    assert notify("READY=1") is True
    assert notify("STOPPING=1") is True
    assert receiver.recv(4096) == b"READY=1"
    assert receiver.recv(4096) == b"STOPPING=1"


def test_abstract_socket(receiver: socket.socket, monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"refd-test-{os.getpid()}-{id(receiver)}"
    receiver.bind("\0" + name)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    assert notify("READY=1\nSTATUS=serving") is True
    assert receiver.recv(4096) == b"READY=1\nSTATUS=serving"


def test_no_variable_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify("READY=1") is False
    monkeypatch.setenv("NOTIFY_SOCKET", "")
    assert notify("READY=1") is False


def test_nobody_listening_is_not_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody.sock"))
    assert notify("READY=1") is False
