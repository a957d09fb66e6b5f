"""Log drivers besides json-file: ``local`` (dockerd's protobuf-framed files) and ``none``."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from harness.checks import expect_error
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
        assert observe("run_exit", run.returncode) == 0, run.stderr
        assert observe("stdout", out.stdout) == "line1\npartial"
        assert observe("stderr", out.stderr) == "err1\n"
        observe(
            "timestamped",
            [ln.split(" ", 1)[0][:4] + "..Z " + ln.split(" ", 1)[1] for ln in stamped.stdout.splitlines()],
        )
        stamps = [ln.split(" ", 1) for ln in stamped.stdout.splitlines()]
        assert [text for _, text in stamps] == ["line1", "partial"], stamped.stdout
        assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", stamp) for stamp, _ in stamps), stamped.stdout
        log_path, _, config = observe("inspect", inspect.stdout.strip()).partition("|")
        assert log_path == "" and json.loads(config) == {"Type": "local", "Config": {"max-size": "1m"}}
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
    expect_error(bad_key, 400, "unknown log opt 'bogus' for log driver local")
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
        assert observe("create", created.status_code) == 201
        observe("start", {"status": started.status_code, "message": started.json().get("message")})
        message = "failed to create task for container: failed to initialize logging driver: "
        expect_error(started, 500, re.compile(re.escape(message)))
        assert observe("state", {k: state[k] for k in ("Status", "ExitCode", "Error")})["Status"] == "created"
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
        assert observe("run", (run.returncode, run.stdout)) == (0, "hidden\n")  # attached, not logged
        observe("logs", (logs.returncode, logs.stdout, logs.stderr))
        assert logs.returncode != 0
        assert "Error response from daemon: configured logging driver does not support reading" in logs.stderr

    finally:
        docker_cli("rm", "-f", "logs-none")
