"""Log drivers besides json-file: ``local`` (dockerd's protobuf-framed files) and ``none``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from harness.client import EngineClient
from harness.fixtures import Observations

CLI = Callable[..., Any]


@pytest.mark.scenario(
    "api/logs/local-driver",
    "A container with --log-driver local MUST have its stdout and stderr (and a last line without newline) "
    "readable with `docker logs`, timestamps included, and no LogPath in inspect",
    ref="moby daemon/logger/local",
)
def test_local_driver(docker_cli: CLI, test_image: str, observe: Observations) -> None:
    run = docker_cli(
        "run",
        "--name",
        "logs-local",
        "--log-driver",
        "local",
        "--log-opt",
        "max-size=1m",
        test_image,
        "sh",
        "-c",
        "echo line1; echo err1 >&2; printf partial",
    )
    try:
        out = docker_cli("logs", "logs-local")
        stamped = docker_cli("logs", "-t", "logs-local")
        inspect = docker_cli("inspect", "-f", "{{.LogPath}}|{{json .HostConfig.LogConfig}}", "logs-local")
        observe("run_exit", run.returncode)
        observe("stdout", out.stdout)
        observe("stderr", out.stderr)
        observe(
            "timestamped",
            [ln.split(" ", 1)[0][:4] + "..Z " + ln.split(" ", 1)[1] for ln in stamped.stdout.splitlines()],
        )
        observe("inspect", inspect.stdout.strip())
    finally:
        docker_cli("rm", "-f", "logs-local")


@pytest.mark.scenario(
    "api/logs/local-driver-options",
    "Unknown local log options MUST be refused at create; values the driver cannot use (max-file=0 with "
    "compression) MUST fail the start with 'failed to initialize logging driver' and leave it created",
    ref="moby daemon/logger/local ValidateLogOpt, New",
)
def test_local_driver_options(engine: EngineClient, test_image: str, observe: Observations) -> None:
    bad_key = engine.post(
        "/containers/create?name=logs-local-bad",
        json={"Image": test_image, "HostConfig": {"LogConfig": {"Type": "local", "Config": {"bogus": "1"}}}},
    )
    observe("unknown_option", {"status": bad_key.status_code, "message": bad_key.json().get("message")})
    created = engine.post(
        "/containers/create?name=logs-local-zero",
        json={
            "Image": test_image,
            "Cmd": ["true"],
            "HostConfig": {"LogConfig": {"Type": "local", "Config": {"max-file": "0"}}},
        },
    )
    try:
        started = engine.post("/containers/logs-local-zero/start")
        state = engine.get("/containers/logs-local-zero/json").json()["State"]
        observe("create", created.status_code)
        observe("start", {"status": started.status_code, "message": started.json().get("message")})
        observe("state", {k: state[k] for k in ("Status", "ExitCode", "Error")})
    finally:
        engine.delete("/containers/logs-local-zero?force=1")


@pytest.mark.scenario(
    "api/logs/none-driver",
    "With --log-driver none the container MUST run and `docker logs` MUST fail with dockerd's 'configured "
    "logging driver does not support reading'",
    ref="moby daemon/logs.go",
)
def test_none_driver(docker_cli: CLI, test_image: str, observe: Observations) -> None:
    run = docker_cli("run", "--name", "logs-none", "--log-driver", "none", test_image, "echo", "hidden")
    try:
        logs = docker_cli("logs", "logs-none")
        observe("run", (run.returncode, run.stdout))
        observe("logs", (logs.returncode, logs.stdout, logs.stderr))
    finally:
        docker_cli("rm", "-f", "logs-none")
