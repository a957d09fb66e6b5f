"""Log drivers besides json-file: ``local`` (dockerd's protobuf-framed files) and ``none``."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from harness.checks import expect_error, expect_status
from harness.client import EngineClient
from harness.fixtures import Observations
from harness.profiles import Profile

CLI = Callable[..., Any]


@pytest.mark.scenario(
    "api/logs/local-driver",
    "A container with --log-driver local MUST have its stdout and stderr (and a last line without newline) "
    "readable with `docker logs`, timestamps included, and no LogPath in inspect; its LogConfig MUST hold "
    "its options, plus the daemon's log-opts for keys it leaves out when the daemon's driver is local too",
    ref="moby daemon/logger/local",
)
def test_local_driver(docker_cli: CLI, test_image: str, observe: Observations, profile: Profile) -> None:
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
        options = {"max-size": "1m"}
        if profile.setting("log-driver") == "local":  # the daemon's log-opts fill what the container left out
            options = {**(profile.setting("log-opts") or {}), **options}
        assert log_path == "" and json.loads(config) == {"Type": "local", "Config": options}
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


@pytest.mark.profiles(
    exclude=("local-logs",),
    reason="boots a daemon with --log-opt, which the profile's daemon.json log-opts forbid",
)
@pytest.mark.scenario(
    "api/logs/log-config-default-driver",
    "A LogConfig with an empty Type MUST keep its options with the daemon's default driver; the daemon's "
    "log-opts MUST fill the keys a request for the default driver (named or not) leaves out, never another "
    "driver's; an option the default driver does not know MUST be refused at create",
    ref="operation ContainerCreate HostConfig.LogConfig; moby daemon/logs.go mergeAndVerifyLogConfig",
)
def test_log_config_default_driver(daemon_factory: Any, observe: Observations) -> None:
    from harness.testimage import load_test_image

    handle = daemon_factory(args=["--log-opt", "max-size=10m"])
    assert handle.endpoint is not None
    image = load_test_image(handle.endpoint)
    client = EngineClient(handle.endpoint)
    try:

        def create(log_config: dict[str, Any]) -> Any:
            return client.post(
                "/containers/create",
                json={"Image": image, "Cmd": ["echo", "logged"], "HostConfig": {"LogConfig": log_config}},
            )

        def stored(resp: Any) -> Any:
            created = expect_status(resp, 201)
            return client.get(f"/containers/{created['Id']}/json").json()["HostConfig"]["LogConfig"]

        seen = {
            "empty-type": stored(create({"Type": "", "Config": {"max-file": "100"}})),
            "empty-type-no-config": stored(create({"Type": ""})),
            "default-named": stored(create({"Type": "json-file", "Config": {"max-file": "2"}})),
            "own-max-size": stored(create({"Type": "", "Config": {"max-size": "1k", "max-file": "3"}})),
            "other-driver": stored(create({"Type": "local", "Config": {"max-file": "4"}})),
        }
        observe("stored", seen)
        assert seen["empty-type"] == {"Type": "json-file", "Config": {"max-file": "100", "max-size": "10m"}}
        assert seen["empty-type-no-config"] == {"Type": "json-file", "Config": {"max-size": "10m"}}
        assert seen["default-named"] == {"Type": "json-file", "Config": {"max-file": "2", "max-size": "10m"}}
        assert seen["own-max-size"] == {"Type": "json-file", "Config": {"max-file": "3", "max-size": "1k"}}
        assert seen["other-driver"] == {"Type": "local", "Config": {"max-file": "4"}}
        unknown = create({"Type": "", "Config": {"nosuch-opt": "1"}})
        observe("unknown", (unknown.status_code, unknown.json().get("message")))
        expect_error(unknown, 400, "unknown log opt 'nosuch-opt' for json-file log driver")
        run = expect_status(create({"Type": "", "Config": {"max-file": "100"}}), 201)
        expect_status(client.post(f"/containers/{run['Id']}/start"), 204)
        client.post(f"/containers/{run['Id']}/wait", timeout=30)
        logs = client.get(f"/containers/{run['Id']}/logs", params={"stdout": "1"}).content
        assert observe("logs", logs[8:].decode()) == "logged\n"
    finally:
        client.close()
