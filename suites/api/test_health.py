"""Health checks: Config.Healthcheck, probes run as execs, State.Health, events, `docker ps`, filters.

Probes use short intervals (the default is 30s); every wait polls inspect with a deadline. The
observations are what every conforming daemon shows the same: statuses, streaks, exit codes, outputs,
event actions (never times).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from harness.checks import eventually
from harness.client import EngineClient
from harness.fixtures import Observations
from suites._daemon import cli_run, events_since

CLI = Callable[..., Any]
V = "/v1.41"
V_START_INTERVAL = "/v1.44"  # Healthcheck.StartInterval arrived in API 1.44


def _run_probed(docker_cli: CLI, ids: list[str], image: str, probe: str, *flags: str) -> str:
    """``docker run -d --health-cmd PROBE FLAGS IMAGE sleep 120``: a long-lived container with a probe."""
    return cli_run(docker_cli, ids, "--health-cmd", probe, *flags, image, "sleep", "120")


def _inspect(engine: EngineClient, cid: str) -> dict[str, Any]:
    resp = engine.get(f"{V}/containers/{cid}/json")
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def _wait_health(
    engine: EngineClient, cid: str, done: Callable[[dict[str, Any]], bool], timeout: float = 20
) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        health = _inspect(engine, cid)["State"].get("Health")
        return dict(health) if health and done(health) else None

    return eventually(reached, "the container's health state", timeout=timeout, interval=0.1)


def _ps_status(docker_cli: CLI, cid: str) -> str:
    """`docker ps` STATUS with the uptime replaced (`Up <t> (healthy)` -> `Up * (healthy)`)."""
    out = docker_cli("ps", "-a", "--filter", f"id={cid}", "--format", "{{.Status}}").stdout.strip()
    return re.sub(r"^Up .*?( \(|$)", r"Up *\1", str(out))


def _results(health: dict[str, Any]) -> list[tuple[int, str]]:
    return [(entry["ExitCode"], entry["Output"]) for entry in health["Log"]]


@pytest.mark.scenario(
    "api/health/starting",
    "A started container with a healthcheck MUST show Health {starting, 0, []} and `(health: starting)` "
    "in `docker ps` until the first probe ends",
    ref="moby daemon/health.go initHealthMonitor; container/state.go String",
)
def test_starting(
    docker_cli: CLI, engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    cid = _run_probed(docker_cli, containers, test_image, "true")  # 30s default
    health = _inspect(engine, cid)["State"].get("Health")
    observe("health", health)
    observe("ps_status", _ps_status(docker_cli, cid))
    assert health == {"Status": "starting", "FailingStreak": 0, "Log": []}
    assert _ps_status(docker_cli, cid) == "Up * (health: starting)"


@pytest.mark.scenario(
    "api/health/cli-flags-config",
    "The CLI's --health-* flags MUST land in Config.Healthcheck as Go marshals it (durations in ns, "
    "zero fields omitted), and a created container MUST have no State.Health yet",
    # --health-start-interval came with CLI 25 (API 1.44): a CLI-version scenario (the harness pins CLI 28.5)
    ref="docker CLI 28.5 run --health-*; operation ContainerCreate (HealthConfig)",
)
def test_cli_flags_config(
    docker_cli: CLI, engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    full = docker_cli(
        "create",
        "--health-cmd",
        "test -e /tmp",
        "--health-interval",
        "1500ms",
        "--health-timeout",
        "2s",
        "--health-retries",
        "4",
        "--health-start-period",
        "1m",
        "--health-start-interval",
        "250ms",
        test_image,
        "sleep",
        "120",
    )
    assert full.returncode == 0, full.stderr
    containers.append(full.stdout.strip())
    only_cmd = docker_cli("create", "--health-cmd", "true", test_image, "true")
    containers.append(only_cmd.stdout.strip())
    doc = _inspect(engine, containers[0])
    observe("full", doc["Config"]["Healthcheck"])
    observe("only_cmd", _inspect(engine, containers[1])["Config"]["Healthcheck"])
    observe("created_has_health", "Health" in doc["State"])
    assert doc["Config"]["Healthcheck"] == {
        "Test": ["CMD-SHELL", "test -e /tmp"],
        "Interval": 1_500_000_000,
        "Timeout": 2_000_000_000,
        "StartPeriod": 60_000_000_000,
        "StartInterval": 250_000_000,
        "Retries": 4,
    }
    assert "Health" not in doc["State"]


@pytest.mark.scenario(
    "api/health/healthy",
    "A passing probe MUST make the container healthy: FailingStreak 0, the probe's exit code and "
    "output in Log, `(healthy)` in `docker ps`, and the probe exec gone from ExecIDs",
    ref="moby daemon/health.go handleProbeResult",
)
def test_healthy(
    docker_cli: CLI, engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    cid = _run_probed(docker_cli, containers, test_image, "echo probe-ok", "--health-interval", "300ms")
    health = _wait_health(engine, cid, lambda h: h["Status"] != "starting")
    observe("status", health["Status"])
    observe("failing_streak", health["FailingStreak"])
    observe("first_result", _results(health)[0])
    observe("log_keys", sorted(health["Log"][0]))
    observe("ps_status", _ps_status(docker_cli, cid))
    observe(
        "listed_as_healthy", cid in docker_cli("ps", "-q", "--no-trunc", "--filter", "health=healthy").stdout
    )
    eventually(
        lambda: len(_inspect(engine, cid)["ExecIDs"] or []) <= 1,
        "the ended probe execs to leave ExecIDs (at most the running probe stays)",
        timeout=10,
    )
    observe("exec_ids_at_most_the_running_probe", len(_inspect(engine, cid)["ExecIDs"] or []) <= 1)

    assert health["Status"] == "healthy" and _results(health)[0] == (0, "probe-ok\n")
    assert _ps_status(docker_cli, cid) == "Up * (healthy)"


@pytest.mark.scenario(
    "api/health/unhealthy-after-retries",
    "A failing probe MUST count FailingStreak up, turn the container unhealthy at Retries, keep only "
    "the last 5 results, and record the probe's stderr as output",
    ref="moby daemon/health.go handleProbeResult, maxLogEntries",
)
def test_unhealthy(
    docker_cli: CLI, engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    cid = _run_probed(
        docker_cli,
        containers,
        test_image,
        "echo broken >&2; exit 3",
        "--health-interval",
        "200ms",
        "--health-retries",
        "2",
    )
    later = _wait_health(engine, cid, lambda h: h["FailingStreak"] >= 7)
    observe("status", later["Status"])
    observe("log_length", len(later["Log"]))
    observe("results", sorted(set(_results(later))))
    observe("ps_status", _ps_status(docker_cli, cid))
    assert later["Status"] == "unhealthy" and len(later["Log"]) == 5
    assert set(_results(later)) == {(3, "broken\n")}


@pytest.mark.scenario(
    "api/health/probe-timeout",
    "A probe running past Timeout MUST be killed and recorded with ExitCode -1 and 'Health check "
    "exceeded timeout (<Go duration>): <output so far>'",
    ref="moby daemon/health.go cmdProbe.run",
)
def test_probe_timeout(
    docker_cli: CLI, engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    cid = _run_probed(
        docker_cli,
        containers,
        test_image,
        "echo $$ >> /tmp/probe-pids; echo started; sleep 30",
        "--health-interval",
        "1s",
        "--health-timeout",
        "300ms",
        "--health-retries",
        "1",
    )
    health = _wait_health(engine, cid, lambda h: bool(h["Log"]))
    observe("status", health["Status"])
    observe("first_result", _results(health)[0])
    # the first probe's shell must be gone (a later probe may be running by now)
    alive = docker_cli("exec", cid, "sh", "-c", "kill -0 $(head -n 1 /tmp/probe-pids)")
    observe("first_probe_still_running", alive.returncode == 0)
    assert _results(health)[0] == (-1, "Health check exceeded timeout (300ms): started\n")
    assert health["Status"] == "unhealthy" and alive.returncode != 0


@pytest.mark.scenario(
    "api/health/output-truncated",
    "Probe output MUST be cut to 4096 bytes with '...' appended",
    ref="moby daemon/health.go limitedBuffer (maxOutputLen)",
)
def test_output_truncated(
    docker_cli: CLI, engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    cid = _run_probed(
        docker_cli,
        containers,
        test_image,
        "head -c 5000 /dev/zero | tr '\\0' x",
        "--health-interval",
        "300ms",
    )
    health = _wait_health(engine, cid, lambda h: bool(h["Log"]))
    output = health["Log"][0]["Output"]
    observe("length", len(output))
    observe("tail", output[-6:])
    observe("status", health["Status"])
    assert output == "x" * 4096 + "..."


@pytest.mark.scenario(
    "api/health/probe-in-container",
    "The probe MUST run inside the container: its filesystem and its user's environment",
    ref="moby daemon/health.go cmdProbe.run (an exec in the container)",
)
def test_probe_in_container(
    docker_cli: CLI, engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    cid = cli_run(
        docker_cli,
        containers,
        "-e",
        "GREETING=from-env",
        "-w",
        "/tmp",
        "--health-cmd",
        'cat /ready-marker && echo "$GREETING $(pwd) $(hostname)"',
        "--health-interval",
        "300ms",
        test_image,
        "sh",
        "-c",
        "echo ready > /ready-marker; exec sleep 120",
    )
    health = _wait_health(engine, cid, lambda h: bool(h["Log"]) and h["Status"] == "healthy")
    output = health["Log"][-1]["Output"]
    observe("output", output.replace(cid[:12], "<short-id>"))
    assert output == f"ready\nfrom-env /tmp {cid[:12]}\n"


@pytest.mark.scenario(
    "api/health/missing-probe-command",
    "A CMD probe whose executable does not exist MUST fail with ExitCode -1 and the runtime's message",
    ref="moby daemon/health.go monitor (probe error result)",
)
def test_missing_probe_command(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    body = {
        "Image": test_image,
        "Cmd": ["sleep", "120"],
        "Healthcheck": {"Test": ["CMD", "no-such-probe", "arg"], "Interval": 300_000_000},
    }
    resp = engine.post(f"{V}/containers/create", json=body)
    assert resp.status_code == 201, resp.text
    cid = resp.json()["Id"]
    containers.append(cid)
    assert engine.post(f"{V}/containers/{cid}/start").status_code == 204
    health = _wait_health(engine, cid, lambda h: bool(h["Log"]))
    observe("first_result", _results(health)[0])
    assert _results(health)[0] == (
        -1,
        'OCI runtime exec failed: exec failed: unable to start container process: exec: "no-such-probe": '
        "executable file not found in $PATH",
    )


@pytest.mark.scenario(
    "api/health/probe-events",
    "Each probe MUST appear on /events as exec_create/exec_start/exec_die for its exec, and a status "
    "change as 'health_status: <status>'",
    ref="moby daemon/health.go (LogContainerEvent), daemon/exec.go",
)
def test_probe_events(
    docker_cli: CLI, engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    since = time.time() - 1
    cid = _run_probed(docker_cli, containers, test_image, "exit 0", "--health-interval", "300ms")
    _wait_health(engine, cid, lambda h: h["Status"] == "healthy")
    events = events_since(engine, since, {"container": [cid]})
    actions = [e["Action"] for e in events]
    first = actions.index("start") + 1
    sequence = actions[first : first + 4]
    probe = events[first]["Actor"]["Attributes"]
    die = events[first + 2]["Actor"]["Attributes"]
    observe("first_probe", sequence)
    observe("exec_create_attributes", sorted(probe))
    observe("exec_die_exit_code", die.get("exitCode"))
    observe("same_exec", probe.get("execID") == die.get("execID"))
    observe("health_events", [a for a in actions if a.startswith("health_status")][:1])
    assert sequence == [
        "exec_create: /bin/sh -c exit 0",
        "exec_start: /bin/sh -c exit 0",
        "exec_die",
        "health_status: healthy",
    ]


@pytest.mark.scenario(
    "api/health/no-healthcheck",
    "--no-healthcheck MUST store Test [NONE], run no probe (no State.Health) and list as health=none",
    ref="docker CLI run --no-healthcheck; moby daemon/health.go getProbe",
)
def test_no_healthcheck(
    docker_cli: CLI, engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    cid = cli_run(docker_cli, containers, "--no-healthcheck", test_image, "sleep", "120")
    doc = _inspect(engine, cid)
    listed = docker_cli("ps", "-q", "--no-trunc", "--filter", "health=none").stdout.split()
    observe("healthcheck", doc["Config"]["Healthcheck"])
    observe("has_health", "Health" in doc["State"])
    observe("listed_as_none", cid in listed)
    observe("ps_status", _ps_status(docker_cli, cid))
    assert doc["Config"]["Healthcheck"] == {"Test": ["NONE"]} and "Health" not in doc["State"]
    assert cid in listed


@pytest.mark.scenario(
    "api/health/list-filter",
    "GET /containers/json MUST filter on health (none, starting, healthy, unhealthy) and refuse any "
    "other value with 400",
    ref="moby daemon/list.go (health filter)",
)
def test_list_filter(
    docker_cli: CLI, engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    good = _run_probed(docker_cli, containers, test_image, "true", "--health-interval", "200ms")
    bad = _run_probed(
        docker_cli, containers, test_image, "false", "--health-interval", "200ms", "--health-retries", "1"
    )
    slow = _run_probed(docker_cli, containers, test_image, "true")
    plain = cli_run(docker_cli, containers, test_image, "sleep", "120")
    _wait_health(engine, good, lambda h: h["Status"] == "healthy")
    _wait_health(engine, bad, lambda h: h["Status"] == "unhealthy")
    names = {good: "good", bad: "bad", slow: "slow", plain: "plain"}
    listed = {}
    for value in ("healthy", "unhealthy", "starting", "none"):
        resp = engine.get(f"{V}/containers/json", params={"filters": json.dumps({"health": [value]})})
        listed[value] = sorted(names[c["Id"]] for c in resp.json() if c["Id"] in names)
    wrong = engine.get(f"{V}/containers/json", params={"filters": json.dumps({"health": ["sick"]})})
    observe("listed", listed)
    observe("wrong_status", wrong.status_code)
    observe("wrong_message", wrong.json()["message"])
    assert listed == {"healthy": ["good"], "unhealthy": ["bad"], "starting": ["slow"], "none": ["plain"]}
    assert wrong.status_code == 400
    assert wrong.json()["message"] == (
        "invalid filter 'health=sick': invalid value for health (sick): must be one of none, starting, "
        "healthy, unhealthy"
    )


@pytest.mark.scenario(
    "api/health/stop-pause-start",
    "Pausing or stopping MUST stop the probes and report unhealthy (the log kept, `(Paused)` alone in "
    "`docker ps`); a start MUST reset to starting with FailingStreak 0",
    ref="moby container/health.go CloseMonitorChannel; daemon/health.go initHealthMonitor",
)
def test_stop_pause_start(
    docker_cli: CLI, engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    cid = _run_probed(docker_cli, containers, test_image, "true", "--health-interval", "200ms")
    _wait_health(engine, cid, lambda h: h["Status"] == "healthy")
    assert docker_cli("pause", cid).returncode == 0
    paused = _inspect(engine, cid)["State"]["Health"]
    observe("paused", paused["Status"])
    paused_ps = _ps_status(docker_cli, cid)
    observe("paused_ps", paused_ps)
    assert paused_ps == "Up * (Paused)"
    assert docker_cli("unpause", cid).returncode == 0
    again = _wait_health(engine, cid, lambda h: h["Status"] == "healthy")
    observe("after_unpause", again["Status"])
    assert docker_cli("stop", "-t", "0", cid).returncode == 0
    stopped = _inspect(engine, cid)["State"]["Health"]
    observe("stopped", (stopped["Status"], bool(stopped["Log"])))
    observe(
        "stopped_filter", cid in docker_cli("ps", "-aq", "--no-trunc", "--filter", "health=unhealthy").stdout
    )
    assert docker_cli("start", cid).returncode == 0
    restarted = _inspect(engine, cid)["State"]["Health"]
    observe(
        "restarted",
        (restarted["Status"] in ("starting", "healthy"), restarted["FailingStreak"], bool(restarted["Log"])),
    )
    assert paused["Status"] == "unhealthy"
    assert stopped["Status"] == "unhealthy" and stopped["Log"]
    assert restarted["Status"] in ("starting", "healthy")


@pytest.mark.scenario(
    "api/health/start-period",
    "Failures inside StartPeriod MUST NOT count while the container is starting; probes then run "
    "every StartInterval",
    ref="moby daemon/health.go handleProbeResult, monitor getInterval",
)
def test_start_period(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    body = {
        "Image": test_image,
        "Cmd": ["sleep", "120"],
        "Healthcheck": {
            "Test": ["CMD-SHELL", "exit 1"],
            "Interval": 60_000_000_000,
            "StartPeriod": 60_000_000_000,
            "StartInterval": 200_000_000,
            "Retries": 1,
        },
    }
    resp = engine.post(f"{V_START_INTERVAL}/containers/create", json=body)
    assert resp.status_code == 201, resp.text
    cid = resp.json()["Id"]
    containers.append(cid)
    engine.post(f"{V}/containers/{cid}/start")
    health = _wait_health(engine, cid, lambda h: len(h["Log"]) >= 3)
    observe("status", health["Status"])
    observe("failing_streak", health["FailingStreak"])
    observe("results", sorted(set(_results(health))))
    assert health["Status"] == "starting" and health["FailingStreak"] == 0


@pytest.mark.scenario(
    "api/health/start-interval-needs-1.44",
    "StartInterval sent with an API version before 1.44 MUST be dropped",
    ref="moby api/server/router/container/container_routes.go postContainersCreate",
)
def test_start_interval_old_api(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    body = {
        "Image": test_image,
        "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1_000_000_000, "StartInterval": 500_000_000},
    }
    shown = {}
    for version in ("/v1.43", V_START_INTERVAL):
        resp = engine.post(f"{version}/containers/create", json=body)
        assert resp.status_code == 201, resp.text
        containers.append(resp.json()["Id"])
        shown[version] = _inspect(engine, resp.json()["Id"])["Config"]["Healthcheck"]
    observe("healthcheck", shown)
    assert "StartInterval" not in shown["/v1.43"] and shown[V_START_INTERVAL]["StartInterval"] == 500_000_000


@pytest.mark.scenario(
    "api/health/create-validation",
    "Create MUST refuse durations under 1ms and negative Retries with 400 naming the field",
    ref="moby daemon/container.go validateHealthCheck",
)
@pytest.mark.parametrize(
    "field,value",
    [
        ("Interval", 999_999),
        ("Timeout", 1),
        ("StartPeriod", 500_000),
        ("StartInterval", 10),
        ("Retries", -1),
        ("Interval", 1_000_000),  # exactly 1ms is allowed
    ],
)
def test_create_validation(
    engine: EngineClient,
    test_image: str,
    containers: list[str],
    observe: Observations,
    field: str,
    value: int,
) -> None:
    body = {"Image": test_image, "Cmd": ["true"], "Healthcheck": {"Test": ["CMD", "true"], field: value}}
    resp = engine.post(f"{V_START_INTERVAL}/containers/create", json=body)
    if resp.status_code == 201:
        containers.append(resp.json()["Id"])
    observe(f"{field}={value}", (resp.status_code, resp.json().get("message")))
    if value == 1_000_000:
        assert resp.status_code == 201
    else:
        assert resp.status_code == 400 and field in resp.json()["message"]


@pytest.mark.scenario(
    "api/health/image-healthcheck-merge",
    "An image's HEALTHCHECK MUST be inherited, and the request's fields MUST override it field by field",
    ref="moby daemon/commit.go merge",
)
def test_image_healthcheck_merge(
    docker_cli: CLI,
    engine: EngineClient,
    test_image: str,
    containers: list[str],
    observe: Observations,
    tmp_path: Any,
) -> None:
    source = docker_cli("create", test_image, "true")
    assert source.returncode == 0, source.stderr
    containers.append(source.stdout.strip())
    archive = str(tmp_path / "rootfs.tar")
    assert docker_cli("export", "-o", archive, source.stdout.strip()).returncode == 0
    tag = "health-merge:latest"
    imported = docker_cli(
        "import",
        "--change",
        "HEALTHCHECK --interval=5s --retries=4 CMD echo from-image",
        archive,
        tag,
    )
    assert imported.returncode == 0, imported.stderr
    try:
        image_hc = engine.get(f"{V}/images/{tag}/json").json()["Config"]["Healthcheck"]
        inherit = docker_cli("create", tag, "sleep", "120")
        override = docker_cli(
            "create", "--health-timeout", "2s", "--health-retries", "1", tag, "sleep", "120"
        )
        disabled = docker_cli("create", "--no-healthcheck", tag, "sleep", "120")
        for result in (inherit, override, disabled):
            assert result.returncode == 0, result.stderr
            containers.append(result.stdout.strip())
        shown = {
            name: _inspect(engine, result.stdout.strip())["Config"]["Healthcheck"]
            for name, result in (("inherit", inherit), ("override", override), ("disabled", disabled))
        }
        observe("image", image_hc)
        observe("containers", shown)
        assert shown["inherit"] == image_hc
        assert shown["override"] == {**image_hc, "Timeout": 2_000_000_000, "Retries": 1}
        assert shown["disabled"]["Test"] == ["NONE"]
    finally:
        for cid in list(containers):
            engine.delete(f"{V}/containers/{cid}?force=1")
        containers.clear()
        engine.delete(f"{V}/images/{tag}")
