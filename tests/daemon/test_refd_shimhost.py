"""Shim hosts on a real refd: many containers' shims in one process, and what happens when it or refd dies.

Each test boots refd (root, its own network namespace) and runs busybox containers through the
API. Which process supervises a container is read from the kernel: the container's PID 1 is a
child of its shim host (the host is a child subreaper), and ``shim.pid`` in its state dir names it.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Iterator

import pytest

from harness.backends.base import DaemonHandle, DaemonSpec
from harness.backends.local import LocalBackend
from harness.client import EngineClient
from harness.targets import resolve_target
from harness.testimage import load_test_image
from harness.wait import wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="running containers needs root")

SLEEPER = ["sleep", "3600"]


class Refd:
    """One refd and its client; torn down with everything it left."""

    def __init__(self, args: list[str] | None = None, env: dict[str, str] | None = None) -> None:
        self.backend = LocalBackend()
        self.handle: DaemonHandle = self.backend.start(
            resolve_target("refd"),
            DaemonSpec(args=list(args or []), env=dict(env or {})),
            tempfile.mkdtemp(prefix="harness-refd-shimhost-"),
        )
        assert self.handle.endpoint is not None
        self.client = EngineClient(self.handle.endpoint, timeout=60)
        self.image = load_test_image(self.handle.endpoint)

    def run(self, cmd: list[str], **config: object) -> str:
        created = self.client.post("/containers/create", json={"Image": self.image, "Cmd": cmd, **config})
        assert created.status_code == 201, created.text
        cid = str(created.json()["Id"])
        started = self.client.post(f"/containers/{cid}/start")
        assert started.status_code == 204, started.text
        return cid

    def state(self, cid: str) -> dict[str, object]:
        info = self.client.get(f"/containers/{cid}/json")
        assert info.status_code == 200, info.text
        return dict(info.json()["State"])

    def state_dir(self, cid: str) -> str:
        return os.path.join(self.handle.exec_root, "containers", cid)

    def host_of(self, cid: str) -> int:
        """The supervisor of ``cid``: the parent of its PID 1, which must be what shim.pid says."""
        pid = int(str(self.state(cid)["Pid"]))
        parent = _ppid(pid)
        with open(os.path.join(self.state_dir(cid), "shim.pid")) as fh:
            assert int(fh.read()) == parent, f"shim.pid of {cid} is not the parent of its pid {pid}"
        return parent

    def wait(self, cid: str) -> int:
        answer = self.client.post(f"/containers/{cid}/wait")
        assert answer.status_code == 200, answer.text
        return int(answer.json()["StatusCode"])

    def exec(self, cid: str, cmd: list[str]) -> tuple[int, bytes]:
        """Run ``cmd`` in ``cid`` attached; its exit code and stdout."""
        made = self.client.post(
            f"/containers/{cid}/exec", json={"Cmd": cmd, "AttachStdout": True, "AttachStderr": True}
        )
        assert made.status_code == 201, made.text
        exec_id = made.json()["Id"]
        started = self.client.post(f"/exec/{exec_id}/start", json={"Detach": False, "Tty": False})
        assert started.status_code == 200, started.text
        info = self.client.get(f"/exec/{exec_id}/json").json()
        return int(info["ExitCode"]), _stdout_of(started.content)

    def logs(self, cid: str) -> bytes:
        return _stdout_of(self.client.get(f"/containers/{cid}/logs?stdout=1").content)

    def close(self) -> None:
        self.client.close()
        self.backend.teardown(self.handle)


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[1])


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _until(check: object, what: str, timeout: float = 30) -> None:
    assert callable(check)
    assert wait_until(check, timeout, interval=0.05), f"gave up waiting for {what}"


def _release(refd: Refd, cid: str) -> None:
    """A line on the container's stdin (its pipe, through /proc/1/fd/0), for its ``read``.

    The exec's own exit code is not checked: when the container ends at once, the kernel kills what
    is left in its pid namespace, the exec's shell included (137) if it has not exited yet.
    """
    refd.exec(cid, ["sh", "-c", "echo go > /proc/1/fd/0"])


def _stdout_of(stream: bytes) -> bytes:
    """The stdout frames of a multiplexed stream."""
    out, rest = b"", stream
    while len(rest) >= 8:
        kind, size = rest[0], struct.unpack(">I", rest[4:8])[0]
        if kind == 1:
            out += rest[8 : 8 + size]
        rest = rest[8 + size :]
    return out


@pytest.fixture
def refd() -> Iterator[Refd]:
    daemon = Refd()
    try:
        yield daemon
    finally:
        daemon.close()


@pytest.fixture
def live_refd() -> Iterator[Refd]:
    daemon = Refd(["--live-restore"])
    try:
        yield daemon
    finally:
        daemon.close()


def test_many_containers_share_one_host(refd: Refd) -> None:
    ids = [refd.run(SLEEPER) for _ in range(6)]
    hosts = {refd.host_of(cid) for cid in ids}
    assert len(hosts) == 1, hosts
    (host,) = hosts
    assert host != refd.handle.pid
    for cid in ids:  # each container keeps its own socket and records
        assert os.path.exists(os.path.join(refd.state_dir(cid), "shim.sock"))
        assert os.path.exists(os.path.join(refd.state_dir(cid), "state.json"))


def test_without_hosts_each_container_has_its_own_shim() -> None:
    """REFD_SHIM_HOST=0: the previous one-process-per-container layout, still available."""
    daemon = Refd(env={"REFD_SHIM_HOST": "0"})
    try:
        ids = [daemon.run(SLEEPER) for _ in range(3)]
        assert len({daemon.host_of(cid) for cid in ids}) == 3
    finally:
        daemon.close()


def test_a_full_host_makes_refd_start_another() -> None:
    daemon = Refd(env={"REFD_SHIM_HOST_CAPACITY": "2"})
    try:
        ids = [daemon.run(SLEEPER) for _ in range(5)]
        hosts = [daemon.host_of(cid) for cid in ids]
        assert len(set(hosts)) == 3, hosts
        assert all(hosts.count(h) <= 2 for h in hosts), hosts
    finally:
        daemon.close()


def test_concurrent_starts_fill_each_host_it_forks() -> None:
    """Six starts at once with two containers per host: every start succeeds and three hosts take two
    each. A start that came while a new host was still coming up used to be handed to its socket before
    it listened (and removed it, failing the host's own start) or to fork a host of its own."""
    daemon = Refd(env={"REFD_SHIM_HOST_CAPACITY": "2"})
    try:
        ids = []
        for _ in range(6):
            created = daemon.client.post("/containers/create", json={"Image": daemon.image, "Cmd": SLEEPER})
            assert created.status_code == 201, created.text
            ids.append(str(created.json()["Id"]))
        answers: dict[str, str] = {}

        def start(cid: str) -> None:
            client = EngineClient(daemon.client.endpoint, timeout=120)
            try:
                answer = client.post(f"/containers/{cid}/start")
                answers[cid] = f"{answer.status_code} {answer.text}"
            finally:
                client.close()

        threads = [threading.Thread(target=start, args=(cid,)) for cid in ids]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(180)
        assert sorted(answers.values()) == ["204 "] * 6, answers
        hosts = [daemon.host_of(cid) for cid in ids]
        assert sorted(hosts.count(h) for h in set(hosts)) == [2, 2, 2], hosts
    finally:
        daemon.close()


def test_one_container_exits_while_the_others_run(refd: Refd) -> None:
    ticker = refd.run(["sh", "-c", "while :; do echo tick; sleep 0.1; done"])
    sleeper = refd.run(SLEEPER)
    quitter = refd.run(["sh", "-c", "read line; echo bye; exit 3"], OpenStdin=True)
    host = refd.host_of(ticker)
    assert refd.host_of(sleeper) == host and refd.host_of(quitter) == host
    _release(refd, quitter)
    assert refd.wait(quitter) == 3
    assert refd.logs(quitter) == b"bye\n"
    assert refd.state(quitter)["Running"] is False
    for cid in (ticker, sleeper):
        assert refd.state(cid)["Running"] is True
    before = refd.logs(ticker).count(b"tick")
    _until(lambda: refd.logs(ticker).count(b"tick") > before, "the ticker to go on logging")
    assert refd.exec(sleeper, ["echo", "still here"]) == (0, b"still here\n")
    assert _alive(host)


def test_exec_in_two_containers_at_once(refd: Refd) -> None:
    first, second = refd.run(SLEEPER, Hostname="first"), refd.run(SLEEPER, Hostname="second")
    assert refd.host_of(first) == refd.host_of(second)
    results: dict[str, tuple[int, bytes]] = {}
    barrier = threading.Barrier(2)

    def run(cid: str) -> None:
        barrier.wait()
        results[cid] = refd.exec(cid, ["sh", "-c", "sleep 0.5; hostname; exit 5"])

    threads = [threading.Thread(target=run, args=(cid,)) for cid in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == {first: (5, b"first\n"), second: (5, b"second\n")}


def test_a_client_that_does_not_read_stalls_only_its_own_container(refd: Refd) -> None:
    """An attached client that never reads holds back its container's output, not its neighbours'."""
    chatty = refd.run(["sh", "-c", "while :; do echo aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; done"])
    ticker = refd.run(["sh", "-c", "while :; do echo tick; sleep 0.05; done"])
    assert refd.host_of(chatty) == refd.host_of(ticker)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stuck:
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.connect(refd.handle.socket_path)
        stuck.sendall(
            f"POST /containers/{chatty}/attach?stream=1&stdout=1 HTTP/1.1\r\nHost: d\r\n"
            "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n".encode()
        )
        stuck.recv(1)  # the upgrade has begun; from here on nothing is read
        size = os.path.getsize
        log = str(refd.client.get(f"/containers/{chatty}/json").json()["LogPath"])
        _until(lambda: _stalled(log, size), "the unread attach to hold back the chatty container")
        before = refd.logs(ticker).count(b"tick")
        _until(lambda: refd.logs(ticker).count(b"tick") >= before + 20, "the ticker to keep logging")
        assert refd.exec(ticker, ["echo", "fine"]) == (0, b"fine\n")
    before = size(log)
    _until(lambda: size(log) > before, "the chatty container to resume once its client is gone")


def _stalled(path: str, size: object) -> bool:
    """The file did not grow over a quarter of a second."""
    assert callable(size)
    first = size(path)
    time.sleep(0.25)
    return bool(size(path) == first)


def test_a_follow_stream_keeps_the_lines_of_a_container_removed_before_it_is_read(refd: Refd) -> None:
    """The docker SDK's run(): logs follow, wait, remove, and only then read the stream (refd reopened the
    file on each poll, so a removal between two polls lost the last lines: run() returned b'' at times)."""
    for _ in range(5):
        cid = refd.run(["sh", "-c", "read line; echo hi"], OpenStdin=True)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(30)
            sock.connect(refd.handle.socket_path)
            sock.sendall(
                f"GET /containers/{cid}/logs?follow=1&stdout=1 HTTP/1.1\r\nHost: d\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(1)
            assert head.startswith(b"HTTP/1.1 200"), head
            _release(refd, cid)
            assert refd.wait(cid) == 0
            assert refd.client.delete(f"/containers/{cid}").status_code == 204
            body = b""
            while chunk := sock.recv(65536):
                body += chunk
        assert b"hi\n" in body, body


def test_a_dead_host_is_each_of_its_containers_exit(refd: Refd) -> None:
    """SIGKILL of the host: refd reports every container of it exited with 137 (as for a dead shim)."""
    ids = [refd.run(SLEEPER) for _ in range(3)]
    host = refd.host_of(ids[0])
    os.kill(host, signal.SIGKILL)
    for cid in ids:
        assert refd.wait(cid) == 137
        state = refd.state(cid)
        assert state["Running"] is False and state["Pid"] == 0, state
    fresh = refd.run(SLEEPER)  # the next container gets a new host
    assert refd.host_of(fresh) != host
    assert refd.exec(fresh, ["true"])[0] == 0


def test_live_restore_readopts_containers_of_a_running_host(live_refd: Refd) -> None:
    ticker = live_refd.run(["sh", "-c", "while :; do echo tick; sleep 0.1; done"])
    sleeper = live_refd.run(SLEEPER)
    host = live_refd.host_of(ticker)
    pids = {cid: live_refd.state(cid)["Pid"] for cid in (ticker, sleeper)}
    live_refd.backend.restart(live_refd.handle)
    for cid in (ticker, sleeper):
        state = live_refd.state(cid)
        assert state["Running"] is True and state["Pid"] == pids[cid], state
        assert live_refd.host_of(cid) == host
    assert live_refd.exec(sleeper, ["echo", "hi"]) == (0, b"hi\n")
    before = live_refd.logs(ticker).count(b"tick")
    _until(lambda: live_refd.logs(ticker).count(b"tick") > before, "logs written after the restart")
    newcomer = live_refd.run(SLEEPER)  # a restarted refd starts a host of its own
    assert live_refd.host_of(newcomer) != host
    stop = live_refd.client.post(f"/containers/{sleeper}/stop?t=0")
    assert stop.status_code == 204, stop.text
    assert live_refd.wait(sleeper) == 137
    assert live_refd.state(ticker)["Running"] is True
    assert live_refd.client.delete(f"/containers/{ticker}?force=1").status_code == 204
    _until(lambda: not _alive(host), "the old host to exit after its last container")


def test_refd_killed_then_restarted_learns_exits_from_exit_json(live_refd: Refd) -> None:
    stays = live_refd.run(SLEEPER)
    dies = live_refd.run(["sh", "-c", "trap 'exit 7' TERM; while :; do sleep 0.1; done"])
    host = live_refd.host_of(stays)
    assert live_refd.host_of(dies) == host
    dying_pid = int(str(live_refd.state(dies)["Pid"]))
    live_refd.handle.kill()
    os.kill(dying_pid, signal.SIGTERM)  # it ends while refd is down: only its host sees it
    exit_json = os.path.join(live_refd.state_dir(dies), "exit.json")
    _until(lambda: os.path.exists(exit_json), "the host to record the exit")
    assert _alive(host)
    live_refd.backend.restart(live_refd.handle)
    state = live_refd.state(dies)
    assert state["Running"] is False and state["ExitCode"] == 7, state
    assert live_refd.state(stays)["Running"] is True
    assert live_refd.host_of(stays) == host
    assert live_refd.exec(stays, ["echo", "ok"]) == (0, b"ok\n")


def _in_netns(ino: str) -> list[str]:
    """Command lines of the processes in the network namespace ``ino`` (``net:[...]``)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/ns/net") != ino:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                argv = fh.read().replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{entry}: {argv}")
        except OSError:
            continue
    return found


def test_a_clean_shutdown_leaves_no_refd_process() -> None:
    """SIGTERM: the containers are stopped (one only by the force after its timeout), then refd, its zygote
    and every shim host end; none of them is left in refd's network namespace."""
    daemon = Refd()
    try:
        daemon.run(SLEEPER)
        daemon.run(["sh", "-c", "trap '' TERM; while :; do sleep 1; done"], StopTimeout=1)
        created = daemon.client.post("/containers/create", json={"Image": daemon.image, "Cmd": ["true"]})
        assert created.status_code == 201, created.text
        proc = daemon.handle.process
        assert proc is not None
        netns = os.readlink(f"/proc/{proc.pid}/ns/net")
        assert len(_in_netns(netns)) >= 3  # refd, its zygote, a shim host
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        left: list[str] = []

        def gone() -> bool:
            left[:] = _in_netns(netns)
            return not left

        assert wait_until(gone, 30, interval=0.1), f"left in refd's network namespace: {left}"
    finally:
        daemon.close()
