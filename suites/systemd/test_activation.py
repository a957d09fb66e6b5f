"""systemd integration: socket activation (``-H fd://``) and sd_notify (spec 4)."""

from __future__ import annotations

import os
import signal
import stat

import pytest

from harness.fixtures import DaemonFactory, Observations
from harness.wait import ping_once, wait_until


@pytest.mark.scenario(
    "systemd/activation/fd-all",
    "-H fd:// MUST serve the sockets passed with LISTEN_FDS/LISTEN_PID, and leave a passed socket's path "
    "where it is when it stops (the socket unit owns it and keeps listening on it)",
    ref="spec 4.1",
)
def test_fd_activation(daemon_factory: DaemonFactory, tmp_path: object, observe: Observations) -> None:
    path = os.path.join(str(tmp_path), "act.sock")
    daemon = daemon_factory(hosts=["fd://"], activation=[path])
    observe("ping", ping_once(daemon.endpoints[0]))
    observe("listen_line", f"API listen on {path}" in daemon.logs())
    assert ping_once(daemon.endpoints[0]) == 200
    daemon.signal(signal.SIGTERM)
    observe("exit_code", daemon.wait_exit(30))
    kept = os.path.exists(path) and stat.S_ISSOCK(os.lstat(path).st_mode)
    assert observe("socket_kept_after_stop", kept), f"{path} is gone after the daemon stopped"


@pytest.mark.scenario(
    "systemd/activation/none-passed",
    "-H fd:// without passed sockets MUST stop start-up with dockerd's message",
    ref="spec 4.1",
)
def test_fd_none_passed(daemon_factory: DaemonFactory, observe: Observations) -> None:
    code, daemon = daemon_factory.start_expecting_exit(hosts=["fd://"])
    expected = (
        "failed to load listeners: no sockets found via socket activation: make sure the service was "
        "started by systemd"
    )
    observe("exit_code", code)
    observe("message", expected in daemon.logs())
    assert code == 1
    assert expected in daemon.logs()


@pytest.mark.scenario(
    "systemd/notify/ready-stopping",
    "With NOTIFY_SOCKET the daemon MUST send exactly READY=1 when serving and STOPPING=1 on SIGTERM",
    ref="spec 4.2",
)
def test_notify(daemon_factory: DaemonFactory, observe: Observations) -> None:
    daemon = daemon_factory(notify=True)
    assert wait_until(lambda: "READY=1" in daemon.notify_messages(), 10)
    ready = list(daemon.notify_messages())
    daemon.signal(signal.SIGTERM)
    code = daemon.wait_exit(30)
    wait_until(lambda: "STOPPING=1" in daemon.notify_messages(), 5)
    observe("after_ready", ready)
    observe("all", daemon.notify_messages())
    observe("exit_code", code)
    assert ready == ["READY=1"]
    assert daemon.notify_messages() == ["READY=1", "STOPPING=1"]


@pytest.mark.scenario(
    "systemd/activation/fd-star", "-H fd://* MUST serve every passed socket, like fd://", ref="spec 4.1"
)
def test_fd_star(daemon_factory: DaemonFactory, tmp_path: object, observe: Observations) -> None:
    paths = [os.path.join(str(tmp_path), f"act{i}.sock") for i in range(2)]
    daemon = daemon_factory(hosts=["fd://*"], activation=paths)
    pings = [ping_once(e) for e in daemon.endpoints[:2]]
    observe("pings", pings)
    assert pings == [200, 200]


@pytest.mark.scenario(
    "systemd/activation/fd-number",
    "-H fd://N MUST serve only the socket at fd N and close the others",
    ref="spec 4.1; moby daemon/listeners/listeners_linux.go listenFD",
)
def test_fd_number(daemon_factory: DaemonFactory, tmp_path: object, observe: Observations) -> None:
    paths = [os.path.join(str(tmp_path), f"act{i}.sock") for i in range(2)]
    daemon = daemon_factory(hosts=["fd://4"], activation=paths, wait=False)
    second = daemon.endpoints[1]
    assert wait_until(lambda: _answers(second) or daemon.returncode is not None, 30), daemon.log_tail()
    observe("fd4_serves", _answers(second))
    observe("fd3_serves", _answers(daemon.endpoints[0]))
    assert _answers(second) and not _answers(daemon.endpoints[0])


def _answers(endpoint: object) -> bool:
    try:
        return ping_once(endpoint, timeout=1) == 200  # type: ignore[arg-type]
    except OSError:
        return False


@pytest.mark.parametrize(
    "host,message",
    [
        ("fd://abc", "failed to parse systemd fd address: should be a number: abc"),
        ("fd://9", "too few socket activated files passed in by systemd"),
    ],
)
@pytest.mark.scenario(
    "systemd/activation/fd-bad-number",
    "A bad fd://N MUST stop start-up with dockerd's message",
    ref="spec 4.1",
)
def test_fd_bad_number(
    daemon_factory: DaemonFactory, tmp_path: object, observe: Observations, host: str, message: str
) -> None:
    path = os.path.join(str(tmp_path), "act.sock")
    code, daemon = daemon_factory.start_expecting_exit(hosts=[host], activation=[path])
    observe(host, {"exit_code": code, "message": message in daemon.logs()})
    assert code == 1 and message in daemon.logs()


@pytest.mark.scenario(
    "systemd/notify/no-socket",
    "Without NOTIFY_SOCKET the daemon MUST start normally (sd_notify is a no-op)",
    ref="spec 4.2",
)
def test_no_notify_socket(daemon_factory: DaemonFactory, observe: Observations) -> None:
    daemon = daemon_factory(notify=False)
    observe("ping", ping_once(daemon.endpoint))  # type: ignore[arg-type]
    assert daemon.notify_messages() == []
