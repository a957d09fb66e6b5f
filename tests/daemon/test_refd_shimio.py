"""A shim's streams without a container: pipes stand in for the process, socket pairs for the clients,
and a selector loop is run by hand. Output is logged and fanned out (framed unless TTY), a slow client
pauses its process's output and resumes it, stdin is buffered for a lagging process, and a process
whose output ended lets its clients go once they have been sent everything."""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import socket
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.daemon.logs.jsonfile import JsonFileWriter, LogOptions
from harness.daemon.shimio import HIGH_WATER, LOW_WATER, Client, ShimStreams, make_stdio
from harness.wait import wait_until


class Owner:
    """The shim's part: dispatch events back to the streams, note drained processes."""

    def __init__(self, sel: selectors.BaseSelector) -> None:
        self.drained: list[str] = []
        self.streams = ShimStreams(sel, self, self.drained.append)

    def handle(self, kind: str, data: object, fd: int, mask: int) -> None:
        if kind == "output":
            self.streams.output(fd, str(data))
        elif kind == "client":
            assert isinstance(data, Client)
            if mask & selectors.EVENT_WRITE:
                self.streams.flush(data)
            if mask & selectors.EVENT_READ and data.sock.fileno() in self.streams.clients:
                self.streams.client_input(data)
        elif kind == "stdin":
            self.streams.flush_stdin(str(data))


@pytest.fixture
def loop() -> Iterator[tuple[selectors.BaseSelector, Owner]]:
    sel = selectors.DefaultSelector()
    owner = Owner(sel)
    yield sel, owner
    owner.streams.close()
    sel.close()


Pair = Callable[[], tuple[socket.socket, socket.socket]]


@pytest.fixture
def pair() -> Iterator[Pair]:
    """``socket.socketpair()`` whose first end (the test's) is closed at teardown even when the test fails:
    a leaked one warns (ResourceWarning) in whichever later test's garbage collection finds it. The second
    end goes to a Client, which the streams close."""
    ends: list[socket.socket] = []

    def make() -> tuple[socket.socket, socket.socket]:
        peer, ours = socket.socketpair()
        ends.append(peer)
        return peer, ours

    yield make
    for end in ends:
        end.close()


def _rounds(sel: selectors.BaseSelector, n: int = 20) -> None:
    """Run the loop until nothing is ready (at most ``n`` rounds)."""
    for _ in range(n):
        events = sel.select(0)
        if not events:
            return
        for key, mask in events:
            kind, data, owner = key.data
            owner.handle(kind, data, key.fd, mask)


def _frames(data: bytes) -> list[tuple[int, bytes]]:
    out = []
    while data:
        sid, size = struct.unpack(">BxxxI", data[:8])
        out.append((sid, data[8 : 8 + size]))
        data = data[8 + size :]
    return out


def _recv_all(sock: socket.socket) -> bytes:
    sock.setblocking(False)
    data = b""
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except BlockingIOError:
            return data
        if not chunk:
            return data
        data += chunk


def test_output_is_logged_and_sent_framed_to_the_clients_that_want_it(
    loop: tuple[selectors.BaseSelector, Owner], pair: Pair, tmp_path: Path
) -> None:
    sel, owner = loop
    streams = owner.streams
    streams.log = JsonFileWriter(str(tmp_path / "c-json.log"), LogOptions())
    stdio = make_stdio(tty=False, open_stdin=False)
    streams.add("main", stdio)
    both, ours_both = pair()
    errs, ours_errs = pair()
    streams.attach(Client(ours_both))
    streams.attach(Client(ours_errs, stdout=False))
    _, out_w, err_w = stdio.child_fds
    os.write(out_w, b"hello\n")
    os.write(err_w, b"oops\n")
    _rounds(sel)
    assert sorted(_frames(_recv_all(both))) == [(1, b"hello\n"), (2, b"oops\n")]
    assert _frames(_recv_all(errs)) == [(2, b"oops\n")]
    os.close(out_w)
    os.close(err_w)
    _rounds(sel)
    assert owner.drained == ["main", "main"] and not streams.has_output("main")
    streams.close_log()
    logged = [json.loads(line) for line in (tmp_path / "c-json.log").read_text().splitlines()]
    assert sorted((e["stream"], e["log"]) for e in logged) == [("stderr", "oops\n"), ("stdout", "hello\n")]
    both.close()
    errs.close()


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "framed"])
def test_a_terminals_output_keeps_its_crlf_raw_or_framed(
    loop: tuple[selectors.BaseSelector, Owner], pair: Pair, raw: bool
) -> None:
    """An exec created with Tty runs on a pty (ONLCR); the start's Tty only says whether it is framed."""
    sel, owner = loop
    stdio = make_stdio(tty=True, open_stdin=False)
    stdio.raw = raw
    owner.streams.add("exec1", stdio)
    peer, ours = pair()
    owner.streams.attach(Client(ours, target="exec1"))
    os.write(stdio.child_fds[1], b"hello out\n")
    data = b""

    def arrived() -> bool:  # a pty hands the line to its master a moment later, not at once
        nonlocal data
        _rounds(sel)
        data += _recv_all(peer)
        return data.endswith(b"\r\n")

    assert wait_until(arrived, timeout=10), data
    if raw:
        assert data == b"hello out\r\n"
    else:
        assert _frames(data) == [(1, b"hello out\r\n")]
    peer.close()


def test_a_slow_client_pauses_its_process_and_resumes_it(
    loop: tuple[selectors.BaseSelector, Owner], pair: Pair
) -> None:
    sel, owner = loop
    streams = owner.streams
    stdio = make_stdio(tty=True, open_stdin=False)  # raw bytes: the sizes below are the payload's
    streams.add("main", stdio)
    peer, ours = pair()
    ours.setblocking(False)
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    client = Client(ours)
    streams.attach(client)
    chunk = b"x" * 65536
    while "main" not in streams.paused:  # a client that reads nothing falls behind
        streams._fan_out("main", "stdout", chunk)
    assert len(client.out) > HIGH_WATER
    assert not any(key.data[0] == "output" for key in sel.get_map().values())  # output not read meanwhile
    received = 0
    while "main" in streams.paused:
        received += len(_recv_all(peer))
        _rounds(sel, 1)
    assert len(client.out) <= LOW_WATER
    assert any(key.data[0] == "output" for key in sel.get_map().values())
    peer.close()


def test_stdin_waits_for_a_lagging_process_and_eof_follows_it(
    loop: tuple[selectors.BaseSelector, Owner],
    pair: Pair,
) -> None:
    sel, owner = loop
    streams = owner.streams
    stdio = make_stdio(tty=False, open_stdin=True, stdin_once=True)
    streams.add("main", stdio)
    peer, ours = pair()
    ours.setblocking(False)
    streams.attach(Client(ours, stdin=True))
    stdin_r = stdio.child_fds[0]
    os.set_blocking(stdin_r, False)
    big = b"y" * (1 << 20)  # more than a pipe holds: the rest waits in the shim
    peer.setblocking(False)
    sent, got, lagged = 0, b"", False
    for _ in range(100_000):  # rounds: the client sends what it can, the loop runs, the process reads
        if sent < len(big):
            with contextlib.suppress(BlockingIOError):  # the shim is not reading it now
                sent += peer.send(big[sent : sent + 65536])
            if sent == len(big):
                peer.shutdown(socket.SHUT_WR)  # stdin_once: the client's EOF closes stdin, after the data
        _rounds(sel, 4)
        lagged = lagged or bool(stdio.stdin_buf)
        if not lagged:  # the process reads nothing until it has fallen behind
            continue
        try:
            data = os.read(stdin_r, 1 << 16)
        except BlockingIOError:
            continue
        if not data:
            break
        got += data
    assert lagged  # the process fell behind and the shim buffered for it
    assert got == big and stdio.stdin_w == -1  # all of it, then EOF
    peer.close()
    os.close(stdin_r)


def test_draining_a_process_logs_a_partial_line_and_detaching_flushes_clients_first(
    loop: tuple[selectors.BaseSelector, Owner], pair: Pair, tmp_path: Path
) -> None:
    sel, owner = loop
    streams = owner.streams
    streams.log = JsonFileWriter(str(tmp_path / "c-json.log"), LogOptions())
    stdio = make_stdio(tty=False, open_stdin=False)
    streams.add("main", stdio)
    peer, ours = pair()
    streams.attach(Client(ours))
    os.write(stdio.child_fds[1], b"no newline")
    _rounds(sel)
    streams.drain("main")
    assert not streams.has_output("main")
    streams.detach_all("main")
    assert streams.clients == {} and not streams.owed()
    assert _frames(_recv_all(peer)) == [(1, b"no newline")]
    streams.close_log()
    assert json.loads((tmp_path / "c-json.log").read_text())["log"] == "no newline"
    peer.close()
    for fd in stdio.child_fds[1:]:
        os.close(fd)
