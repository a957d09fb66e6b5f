"""The real docker CLI's everyday lifecycle commands against each daemon (what users type after `run`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from harness.fixtures import Observations
from harness.profiles import Profile

CLI = Callable[..., Any]


@pytest.fixture
def sleeper(docker_cli: CLI, test_image: str) -> Iterator[str]:
    result = docker_cli("run", "-d", "--name", "cli-sleeper", test_image, "sleep", "120")
    assert result.returncode == 0, result.stderr
    yield result.stdout.strip()
    docker_cli("rm", "-f", "cli-sleeper")


@pytest.mark.scenario(
    "api/cli/info-fields", "`docker info --format` MUST render the server's fields", ref="docker CLI info"
)
def test_info_fields(docker_cli: CLI, observe: Observations, profile: Profile) -> None:
    result = docker_cli(
        "info", "--format", "{{.OSType}} {{.LoggingDriver}} {{.CgroupDriver}} {{.Swarm.LocalNodeState}}"
    )
    observe("exit", result.returncode)
    observe("stdout", result.stdout)
    log_driver = profile.setting("log-driver", "json-file")  # the local-logs profile's: local
    assert result.returncode == 0 and result.stdout == f"linux {log_driver} cgroupfs inactive\n"


@pytest.mark.scenario(
    "api/cli/version-server",
    "`docker version` MUST show the server's OS and API version",
    ref="docker CLI version",
)
def test_version_server(docker_cli: CLI, observe: Observations) -> None:
    result = docker_cli("version", "--format", "{{.Server.Os}}/{{.Server.Arch}}")
    observe("exit", result.returncode)
    observe("os_arch", result.stdout.strip())
    assert result.returncode == 0 and result.stdout.startswith("linux/")


@pytest.mark.scenario(
    "api/cli/ps-formats",
    "`docker ps` MUST list a running container with its name, image and "
    "command, and `-q` MUST print the short id",
    ref="docker CLI ps",
)
def test_ps_formats(docker_cli: CLI, sleeper: str, test_image: str, observe: Observations) -> None:
    row = docker_cli(
        "ps", "--filter", "name=cli-sleeper", "--format", "{{.Names}}|{{.Image}}|{{.Command}}"
    ).stdout
    quiet = docker_cli("ps", "-q", "--filter", "name=cli-sleeper").stdout
    observe("row", row)
    observe("quiet_is_short_id", quiet.strip() == sleeper[:12])
    assert row == f'cli-sleeper|{test_image}|"sleep 120"\n' and quiet.strip() == sleeper[:12]


@pytest.mark.scenario(
    "api/cli/inspect-format",
    "`docker inspect --format` MUST render State and Config fields",
    ref="docker CLI inspect",
)
def test_inspect_format(docker_cli: CLI, sleeper: str, observe: Observations) -> None:
    result = docker_cli(
        "inspect", "--format", "{{.State.Status}} {{.State.Running}} {{.Config.Cmd}} {{.Name}}", "cli-sleeper"
    )
    observe("stdout", result.stdout)
    assert result.stdout == "running true [sleep 120] /cli-sleeper\n"


@pytest.mark.scenario(
    "api/cli/stop-start-restart",
    "`docker stop`, `start` and `restart` MUST move the container between exited and running",
    ref="docker CLI stop/start/restart; operations ContainerStop, ContainerStart, ContainerRestart",
)
def test_stop_start_restart(docker_cli: CLI, sleeper: str, observe: Observations) -> None:
    steps = {}
    for command in (["stop", "-t", "1"], ["start"], ["restart", "-t", "1"]):
        result = docker_cli(*command, "cli-sleeper")
        state = docker_cli("inspect", "--format", "{{.State.Status}}", "cli-sleeper").stdout.strip()
        steps[command[0]] = {"exit": result.returncode, "stdout": result.stdout.strip(), "state": state}
    observe("steps", steps)
    assert steps["stop"]["state"] == "exited" and steps["restart"]["state"] == "running"


@pytest.mark.scenario(
    "api/cli/kill-signal-wait",
    "`docker kill -s` MUST deliver the signal and `docker wait` MUST print the exit code",
    ref="docker CLI kill, wait",
)
def test_kill_wait(docker_cli: CLI, test_image: str, observe: Observations) -> None:
    cid = docker_cli(
        "run", "-d", test_image, "sh", "-c", "trap 'exit 12' USR1; while true; do sleep 0.1; done"
    ).stdout.strip()
    try:
        import time

        time.sleep(0.5)
        killed = docker_cli("kill", "-s", "USR1", cid)
        waited = docker_cli("wait", cid)
        observe("kill_exit", killed.returncode)
        observe("wait_stdout", waited.stdout)
        assert waited.stdout == "12\n"
    finally:
        docker_cli("rm", "-f", cid)


@pytest.mark.scenario(
    "api/cli/rm-running",
    "`docker rm` of a running container MUST fail and name the remedy; `rm -f` MUST remove it",
    ref="docker CLI rm",
)
def test_rm_running(docker_cli: CLI, sleeper: str, observe: Observations) -> None:
    refused = docker_cli("rm", "cli-sleeper")
    forced = docker_cli("rm", "-f", "cli-sleeper")
    observe("refused_exit", refused.returncode)
    observe("refused_stderr", refused.stderr.replace(sleeper, "<id>").strip())
    observe("forced", [forced.returncode, forced.stdout.strip()])
    assert refused.returncode != 0 and forced.returncode == 0 and forced.stdout.strip() == "cli-sleeper"


@pytest.mark.scenario(
    "api/cli/logs-tail-timestamps",
    "`docker logs --tail 1` and `-t` MUST select and stamp lines",
    ref="docker CLI logs",
)
def test_logs_tail(docker_cli: CLI, test_image: str, observe: Observations) -> None:
    import re

    cid = docker_cli("run", "-d", test_image, "sh", "-c", "echo a; echo b; echo c").stdout.strip()
    try:
        docker_cli("wait", cid)
        tail = docker_cli("logs", "--tail", "1", cid)
        stamped = docker_cli("logs", "-t", "--tail", "1", cid)
        observe("tail", tail.stdout)
        observe("stamped_ok", bool(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z c\n$", stamped.stdout)))
        assert tail.stdout == "c\n"
    finally:
        docker_cli("rm", "-f", cid)
