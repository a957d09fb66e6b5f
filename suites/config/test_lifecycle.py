"""Daemon process lifecycle: pidfile, signals, clean shutdown (spec 3.6, 7.1)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from harness.fixtures import DaemonFactory, Observations
from suites._daemon import after_userns_line

#: the daemon.json of a scenario about a shutdown that stops containers: in the live-restore profile the
#: profile's live-restore key is then left out (a key the scenario sets wins), as a user without it runs
NO_LIVE_RESTORE = {"live-restore": False}


@pytest.mark.scenario(
    "config/pidfile/live-pid-refused",
    "A pidfile naming a running process MUST stop start-up naming the pidfile",
    ref="spec 3.6",
)
def test_pidfile_live(daemon_factory: DaemonFactory, tmp_path: object, observe: Observations) -> None:
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        path = os.path.join(str(tmp_path), "busy.pid")
        with open(path, "w") as fh:
            fh.write(str(holder.pid))
        code, daemon = daemon_factory.start_expecting_exit(args=[f"--pidfile={path}"])
        logs = daemon.logs()
        observe("exit_code", code)
        observe("names_pidfile", path in logs)
        with open(path) as fh:
            observe("pidfile_kept", fh.read().strip() == str(holder.pid))
        assert code == 1 and path in logs
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.scenario(
    "config/pidfile/stale-overwritten",
    "A pidfile naming a dead process MUST be overwritten silently",
    ref="spec 3.6",
)
def test_pidfile_stale(daemon_factory: DaemonFactory, tmp_path: object, observe: Observations) -> None:
    path = os.path.join(str(tmp_path), "stale.pid")
    with open(path, "w") as fh:
        fh.write("999999")
    daemon = daemon_factory(args=[f"--pidfile={path}"])
    with open(path) as fh:
        content = fh.read().strip()
    observe("pidfile_is_daemon", content == str(daemon.pid))
    assert content == str(daemon.pid)


@pytest.mark.parametrize("signo,name", [(signal.SIGTERM, "terminated"), (signal.SIGINT, "interrupt")])
@pytest.mark.scenario(
    "config/signals/clean-exit",
    "SIGTERM and SIGINT MUST log \"Processing signal '<name>'\", shut down cleanly and exit 0",
    ref="spec 7.1",
)
def test_clean_exit(daemon_factory: DaemonFactory, observe: Observations, signo: int, name: str) -> None:
    daemon = daemon_factory()
    daemon.signal(signo)
    code = daemon.wait_exit(30)
    logs = daemon.logs()
    observe(
        name,
        {
            "exit_code": code,
            "processing_line": f"Processing signal '{name}'" in logs,
            "shutdown_complete": "Daemon shutdown complete" in logs,
            "pidfile_removed": not os.path.exists(daemon.pidfile),
        },
    )
    assert code == 0 and f"Processing signal '{name}'" in logs


@pytest.mark.scenario(
    "config/lifecycle/milestones",
    "Start-up MUST log 'Starting up', 'Loading containers: start.'/'done.', 'Daemon has completed "
    "initialization' and 'API listen on <socket>' in that order",
    ref="spec 3.5, 5.1",
)
def test_milestones(daemon_factory: DaemonFactory, observe: Observations) -> None:
    daemon = daemon_factory()
    daemon.wait_for_log("API listen on", 10)
    logs = daemon.logs()
    wanted = [
        "Starting up",
        "Loading containers: start.",
        "Loading containers: done.",
        "Daemon has completed initialization",
        f"API listen on {daemon.socket_path}",
    ]
    positions = [logs.find(w) for w in wanted]
    observe("found", [p >= 0 for p in positions])
    observe("in_order", positions == sorted(positions) and all(p >= 0 for p in positions))
    assert all(p >= 0 for p in positions) and positions == sorted(positions)


@pytest.mark.scenario(
    "config/lifecycle/not-root",
    "Started without root the daemon MUST refuse with the rootless hint and exit 1",
    ref="spec 3.5 step 2",
)
def test_not_root(daemon_factory: DaemonFactory, observe: Observations) -> None:
    import shutil

    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("setpriv (util-linux) is required for this scenario")
    # uid 65534 keeps CAP_DAC_READ_SEARCH only so it can read the daemon's files wherever they are (a
    # project cloned under root's 0700 home, as on a newcomer's machine): it is not root, which is the point
    nobody = ["--reuid=65534", "--regid=65534", "--clear-groups"]
    readable = ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]
    code, daemon = daemon_factory.start_expecting_exit(args=[], wrapper=[setpriv, *nobody, *readable])
    logs = daemon.logs()
    expected = (
        "dockerd needs to be started with root privileges. To run dockerd in rootless mode as an "
        "unprivileged user, see https://docs.docker.com/go/rootless/"
    )
    observe("exit_code", code)
    observe("message", expected in logs)
    assert code == 1 and expected in logs


@pytest.mark.scenario(
    "config/signals/forced-exit",
    "While a clean shutdown waits for containers, the 4th SIGTERM MUST force an exit with status 143",
    ref="spec 7.1",
)
def test_forced_exit(daemon_factory: DaemonFactory, observe: Observations) -> None:
    import time

    from harness.client import EngineClient
    from harness.testimage import load_test_image

    daemon = daemon_factory(config=NO_LIVE_RESTORE)
    assert daemon.endpoint is not None
    image = load_test_image(daemon.endpoint)
    client = EngineClient(daemon.endpoint)
    try:
        cid = client.post(
            "/v1.41/containers/create", json={"Image": image, "Cmd": ["sleep", "60"], "StopTimeout": 30}
        ).json()["Id"]
        client.post(f"/v1.41/containers/{cid}/start")
    finally:
        client.close()
    for _ in range(4):
        daemon.signal(signal.SIGTERM)
        time.sleep(0.3)
    code = daemon.wait_exit(30)
    logs = daemon.logs()
    observe("exit_code", code)
    observe("processing_lines", logs.count("Processing signal 'terminated'"))
    observe("forcing_line", "Forcing docker daemon shutdown without cleanup; 3 interrupts received" in logs)
    assert code == 143


@pytest.mark.scenario(
    "config/logging/json-format",
    "--log-format=json MUST write one JSON object per line with level, msg and time (dockerd >= 25)",
    ref="spec 5.1",
)
def test_json_format(daemon_factory: DaemonFactory, observe: Observations) -> None:
    import json

    daemon = daemon_factory(args=["--log-format=json"])
    daemon.wait_for_log("API listen on", 10)
    remapped, lines = after_userns_line(daemon.logs().splitlines())
    observe("userns_line", remapped)  # logged as text before the format is set: the userns-remap profile's
    first = lines[0]
    try:
        entry = json.loads(first)
    except ValueError:
        entry = {}
    observe("keys", sorted(entry))
    observe("msg", entry.get("msg"))
    observe("level", entry.get("level"))
    assert entry.get("msg") == "Starting up" and entry.get("level") == "info"


@pytest.mark.scenario(
    "config/signals/sigquit",
    "SIGQUIT MUST end the daemon at once without a clean shutdown (dockerd 28: Go's default, exit 2 with a "
    "goroutine dump)",
    ref="spec 7.1",
)
def test_sigquit(daemon_factory: DaemonFactory, observe: Observations) -> None:
    daemon = daemon_factory()
    daemon.signal(signal.SIGQUIT)
    code = daemon.wait_exit(30)
    logs = daemon.logs()
    observe("exit_code", code)
    observe("clean_shutdown_logged", "Daemon shutdown complete" in logs)
    observe("pidfile_left", os.path.exists(daemon.pidfile))
    assert "Daemon shutdown complete" not in logs


@pytest.mark.parametrize("live_restore", [True, False])
@pytest.mark.scenario(
    "config/live-restore/restart",
    "With --live-restore a running container MUST survive a daemon restart; without it the container MUST be "
    "stopped by the shutdown (exit 137 or its stop signal's code)",
    ref="spec 7.3",
)
def test_live_restore(daemon_factory: DaemonFactory, observe: Observations, live_restore: bool) -> None:
    from harness.client import EngineClient
    from harness.testimage import load_test_image

    daemon = (
        daemon_factory(args=["--live-restore"]) if live_restore else daemon_factory(config=NO_LIVE_RESTORE)
    )
    assert daemon.endpoint is not None
    image = load_test_image(daemon.endpoint)
    client = EngineClient(daemon.endpoint)
    try:
        cid = client.post(
            "/v1.41/containers/create", json={"Image": image, "Cmd": ["sleep", "120"], "StopTimeout": 1}
        ).json()["Id"]
        client.post(f"/v1.41/containers/{cid}/start")
    finally:
        client.close()
    daemon_factory.restart(daemon)
    client = EngineClient(daemon.endpoint)
    try:
        state = client.get(f"/v1.41/containers/{cid}/json").json()["State"]
        stopped = client.post(f"/v1.41/containers/{cid}/stop?t=1", timeout=60).status_code
    finally:
        client.close()
    key = "live-restore" if live_restore else "no-live-restore"
    observe(key, {"status_after_restart": state["Status"], "running": state["Running"], "stop": stopped})
    if live_restore:
        assert state["Running"] is True and stopped == 204
    else:
        assert state["Running"] is False and stopped == 304


@pytest.mark.scenario(
    "config/signals/shutdown-leaves-no-process",
    "SIGTERM with a running container, one ignoring SIGTERM and one never started MUST stop the containers, "
    "log 'Daemon shutdown complete', exit 0 and leave no process of the daemon's behind (nothing in its "
    "network namespace: dockerd's containerd and shims, refd's zygote and shim hosts; nothing in its "
    "containers' cgroups)",
    ref="spec 7.1; issue 20 item 11",
)
def test_shutdown_leaves_no_process(daemon_factory: DaemonFactory, observe: Observations) -> None:
    from harness.checks import eventually
    from harness.client import EngineClient
    from harness.testimage import load_test_image

    daemon = daemon_factory(config=NO_LIVE_RESTORE)
    assert daemon.endpoint is not None
    image = load_test_image(daemon.endpoint)
    client = EngineClient(daemon.endpoint)
    commands = {  # each says "ready" once its TERM disposition is set, so the shutdown meets it in place
        "stops": ["sh", "-c", "trap 'exit 0' TERM; echo ready; sleep 300 & wait"],
        "ignores-term": ["sh", "-c", "trap '' TERM; echo ready; while :; do sleep 1; done"],
    }
    try:
        for name, cmd in commands.items():
            body = {"Image": image, "Cmd": cmd, "StopTimeout": 1}
            resp = client.post("/v1.41/containers/create", json=body)
            assert resp.status_code == 201, resp.text
            cid = resp.json()["Id"]
            assert client.post(f"/v1.41/containers/{cid}/start").status_code == 204
            eventually(
                lambda cid=cid: "ready" in client.get(f"/v1.41/containers/{cid}/logs?stdout=1").text,
                f"container {name} to say ready",
            )
        created = client.post("/v1.41/containers/create", json={"Image": image, "Cmd": ["true"]})
        assert created.status_code == 201, created.text
    finally:
        client.close()
    before = daemon.processes()
    observe("processes_before_at_least_3", len(before) >= 3)  # the daemon, its helpers, the containers
    assert len(before) >= 3, before
    daemon.signal(signal.SIGTERM)
    code = daemon.wait_exit(60)
    logs = daemon.logs()
    left: list[str] = []

    def nothing_left() -> bool:
        left[:] = daemon.processes()
        return not left

    from harness.wait import wait_until

    gone = wait_until(nothing_left, 10, interval=0.1)  # a helper may take a moment to see its parent go
    observe("exit_code", code)
    observe("shutdown_complete", "Daemon shutdown complete" in logs)
    observe("processes_left", [line.split(": ", 1)[1].split(" ")[0] for line in left])
    assert code == 0, daemon.log_tail()
    assert "Daemon shutdown complete" in logs, daemon.log_tail()
    assert gone, f"still running 10 s after the daemon exited: {left}"
