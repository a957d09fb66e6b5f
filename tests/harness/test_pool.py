"""The fixture service's warm pool: hits, misses, refills, expiry, shutdown and crash reaping, dead daemons.

Daemons are real local refd (booted as a default lease boots them); nothing here asserts a timing: waiting
for the pool to fill is polling with a deadline that only bounds a hang.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.cleanup import Ledger
from harness.serve import _request, make_server, serve_main
from harness.wait import wait_until

from .test_serve import _ping

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="pooled daemons are local refd: needs root")

KEY = "refd/local"


class Service:
    """An in-process ``harness serve`` with a pool of one refd, torn down (leases and pool) at the end."""

    def __init__(self, pool_size: int = 1, warm: tuple[str, ...] = ("refd",)) -> None:
        self.server = make_server(port=0, pool_size=pool_size, warm=warm)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        host, port = self.server.server_address[:2]
        self.url = f"http://{host!s}:{port}"
        self.closed = False

    def lease(self, **body: Any) -> dict[str, Any]:
        status, lease = _request("POST", "/leases", {"target": "refd", **body}, url=self.url)
        assert status == 201, lease
        return lease  # type: ignore[no-any-return]

    def pool(self) -> dict[str, Any]:
        status, health = _request("GET", "/health", url=self.url)
        assert status == 200
        return health["pools"].get(KEY, {})  # type: ignore[no-any-return]

    def wait_pool(self, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        assert wait_until(lambda: check(self.pool()), 60), f"the pool never got there: {self.pool()}"
        return self.pool()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.server.shutdown()
            self.server.service.close()
            self.server.server_close()


@pytest.fixture
def service(ledger: Ledger) -> Iterator[Service]:
    svc = Service()
    try:
        yield svc
    finally:
        svc.close()


def _ready(n: int = 1) -> Callable[[dict[str, Any]], bool]:
    return lambda pool: pool.get("ready", 0) >= n


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_a_default_lease_is_a_pooled_daemon_and_the_pool_refills(service: Service) -> None:
    waiting = service.wait_pool(_ready())["pids"][0]
    lease = service.lease()
    assert lease["pooled"] is True and lease["pid"] == waiting  # booted before the request came
    assert _ping(lease["docker_host"]) == 200
    refilled = service.wait_pool(_ready())
    assert refilled["pids"] != [waiting]  # a new daemon, not the leased one back
    assert _request("DELETE", f"/leases/{lease['id']}", url=service.url)[0] == 204
    assert not os.path.exists(lease["workdir"]) and _gone(waiting)
    assert service.pool()["pids"] == refilled["pids"]  # a released lease never goes back to the pool


@pytest.mark.parametrize(
    "body",
    [{"args": ["--debug"]}, {"config": {"debug": True}}, {"tls": True}],
    ids=["args", "config", "tls"],
)
def test_a_lease_with_its_own_config_boots_fresh(service: Service, body: dict[str, Any]) -> None:
    waiting = service.wait_pool(_ready())["pids"]
    lease = service.lease(**body)
    assert lease["pooled"] is False and lease["pid"] not in waiting
    assert _ping(lease["docker_host"], lease["cert_path"]) == 200
    assert service.pool()["pids"] == waiting  # the pooled default daemon is still waiting


def test_without_a_pool_every_lease_boots_fresh(ledger: Ledger) -> None:
    svc = Service(pool_size=0, warm=())
    try:
        lease = svc.lease()
        assert lease["pooled"] is False and _ping(lease["docker_host"]) == 200
        assert svc.pool() == {}
    finally:
        svc.close()


def test_a_pool_starts_with_the_first_lease_of_its_pair(ledger: Ledger) -> None:
    svc = Service(warm=())
    try:
        assert svc.pool() == {}
        first = svc.lease()
        assert first["pooled"] is False  # a miss: nothing was booted yet
        svc.wait_pool(_ready())
        assert svc.lease()["pooled"] is True
    finally:
        svc.close()


def test_a_leased_pooled_daemon_expires_like_any_lease(service: Service) -> None:
    service.wait_pool(_ready())
    lease = service.lease(ttl=1)
    assert lease["pooled"] is True
    assert wait_until(lambda: _request("GET", f"/leases/{lease['id']}", url=service.url)[0] == 404, 30)
    assert not os.path.exists(lease["workdir"]) and _gone(lease["pid"])


def test_a_pooled_daemon_that_died_while_waiting_is_not_handed_out(
    service: Service, capfd: pytest.CaptureFixture[str]
) -> None:
    dead = service.wait_pool(_ready())["pids"][0]
    os.kill(dead, signal.SIGKILL)
    lease = service.lease()
    assert lease["pid"] != dead and _ping(lease["docker_host"]) == 200
    assert (
        f"pooled daemon pid {dead} " in capfd.readouterr().err
    )  # "died while waiting" or "exited while ..."
    assert dead not in service.wait_pool(_ready())["pids"]


def test_shutdown_tears_pooled_daemons_down(ledger: Ledger) -> None:
    svc = Service()
    pids = svc.wait_pool(_ready())["pids"]
    lease = svc.lease()
    workdirs = [lease["workdir"]]
    svc.close()
    assert all(_gone(pid) for pid in [*pids, lease["pid"]])
    assert not any(os.path.exists(w) for w in workdirs)
    assert not os.path.isdir(ledger.directory) or os.listdir(ledger.directory) == []


def test_pooled_daemons_of_a_killed_service_are_reaped_by_the_next_session(tmp_path: Path) -> None:
    ledger_dir = tmp_path / "ledger"
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "serve", "--listen", "127.0.0.1:0", "--warm", "refd"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "HARNESS_LEDGER_DIR": str(ledger_dir)},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip().split("=", 1)[1]
        health: dict[str, Any] = {}

        def filled() -> bool:
            health.update(_request("GET", "/health", url=url)[1])
            return bool(health["pools"].get(KEY, {}).get("ready"))

        assert wait_until(filled, 60), health
    finally:
        proc.kill()  # no teardown: the pooled daemon is orphaned
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    pooled = health["pools"][KEY]["pids"][0]
    assert not _gone(pooled)
    reaped = Ledger(str(ledger_dir)).reap()  # what every later session (pytest or harness serve) does first
    assert [r for r in reaped if r.startswith(f"pid {pooled} ")]
    assert wait_until(lambda: _gone(pooled), 10)


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--pool-size", "-1"], {}, "--pool-size must be a whole number >= 0 (0: no pool), not '-1'"),
        ([], {"HARNESS_SERVE_POOL_SIZE": "many"}, "HARNESS_SERVE_POOL_SIZE must be a whole number >= 0"),
        (["--warm", "refd,nope"], {}, "--warm names unknown target(s) nope: choose from"),
        ([], {"HARNESS_SERVE_WARM": "nope"}, "HARNESS_SERVE_WARM names unknown target(s) nope"),
    ],
)
def test_bad_pool_settings_name_their_source(
    argv: list[str], env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit) as info:
        serve_main(["--listen", "127.0.0.1:0", *argv])
    assert message in str(info.value)


def test_pool_size_from_the_environment_and_the_flag_wins(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_SERVE_POOL_SIZE", "0")
    monkeypatch.setattr("harness.cleanup.LEDGER", ledger)  # serve_main reaps first: not the machine's ledger
    sizes: list[int] = []

    def make_server(host: str, port: int, backend: str, pool_size: int, warm: tuple[str, ...]) -> Any:
        sizes.append(pool_size)
        raise _Stop

    monkeypatch.setattr("harness.serve.make_server", make_server)
    for argv in ([], ["--pool-size", "2"]):
        with pytest.raises(_Stop):
            serve_main(["--listen", "127.0.0.1:0", *argv])
    assert sizes == [0, 2]


class _Stop(Exception):
    pass
