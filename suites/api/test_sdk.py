"""The docker SDK (docker-py) as a client: what Python users call first."""

from __future__ import annotations

from typing import Any

import pytest

from harness.fixtures import Observations


@pytest.mark.scenario(
    "api/sdk/ping-version", "The docker SDK MUST ping and read the version", ref="docker-py"
)
def test_sdk_ping_version(docker_client: Any, observe: Observations) -> None:
    observe("ping", docker_client.ping())
    version = docker_client.version()
    observe("os", version.get("Os"))
    assert docker_client.ping() is True and version["Os"] == "linux"


@pytest.mark.scenario(
    "api/sdk/run-remove",
    "containers.run(..., remove=True) MUST return the output bytes",
    ref="docker-py containers.run",
)
def test_sdk_run(docker_client: Any, test_image: str, observe: Observations) -> None:
    out = docker_client.containers.run(test_image, ["sh", "-c", "echo hi; echo err >&2"], remove=True)
    observe("output", out.decode())
    assert out == b"hi\n"


@pytest.mark.scenario(
    "api/sdk/run-error",
    "A failing container MUST raise ContainerError with its exit status",
    ref="docker-py containers.run",
)
def test_sdk_run_error(docker_client: Any, test_image: str, observe: Observations) -> None:
    import docker

    with pytest.raises(docker.errors.ContainerError) as info:
        docker_client.containers.run(test_image, ["sh", "-c", "echo boom >&2; exit 3"], remove=True)
    observe("exit_status", info.value.exit_status)
    observe("stderr", (info.value.stderr or b"").decode())
    assert info.value.exit_status == 3


@pytest.mark.scenario(
    "api/sdk/exec-run", "exec_run MUST return the exit code and output", ref="docker-py exec_run"
)
def test_sdk_exec_run(docker_client: Any, test_image: str, observe: Observations) -> None:
    container = docker_client.containers.run(test_image, ["sleep", "60"], detach=True)
    try:
        result = container.exec_run(["sh", "-c", "echo inside; exit 2"])
        observe("exit_code", result.exit_code)
        observe("output", result.output.decode())
        assert result.exit_code == 2 and result.output == b"inside\n"
    finally:
        container.remove(force=True)


@pytest.mark.scenario(
    "api/sdk/not-found", "Getting an unknown container MUST raise NotFound", ref="docker-py containers.get"
)
def test_sdk_not_found(docker_client: Any, observe: Observations) -> None:
    import docker

    with pytest.raises(docker.errors.NotFound) as info:
        docker_client.containers.get("nosuch")
    observe("explanation", info.value.explanation)
    assert info.value.explanation == "No such container: nosuch"
