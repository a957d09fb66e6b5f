"""The real docker CLI running containers: run, logs, ps, rm, inspect (what users type first)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from harness.fixtures import Observations

CLI = Callable[..., Any]


@pytest.mark.scenario(
    "api/cli/run-rm-echo",
    "`docker run --rm IMAGE echo hi` MUST print 'hi' and exit 0, leaving no container",
    ref="docker CLI run",
)
def test_run_rm_echo(docker_cli: CLI, test_image: str, observe: Observations) -> None:
    result = docker_cli("run", "--rm", test_image, "echo", "hi")
    observe("exit", result.returncode)
    observe("stdout", result.stdout)
    observe("stderr", result.stderr)
    left = docker_cli("ps", "-aq").stdout.split()
    observe("left_behind", len(left))
    assert result.returncode == 0 and result.stdout == "hi\n"


@pytest.mark.scenario(
    "api/cli/run-exit-code", "`docker run` MUST exit with the container's exit code", ref="docker CLI run"
)
def test_run_exit_code(docker_cli: CLI, test_image: str, observe: Observations) -> None:
    result = docker_cli("run", "--rm", test_image, "sh", "-c", "echo to-err >&2; exit 42")
    observe("exit", result.returncode)
    observe("stderr", result.stderr)
    assert result.returncode == 42 and result.stderr == "to-err\n"


@pytest.mark.scenario(
    "api/cli/run-stdin", "`docker run -i` MUST feed stdin to the container", ref="docker CLI run -i"
)
def test_run_stdin(docker_cli: CLI, test_image: str, observe: Observations) -> None:
    result = docker_cli("run", "--rm", "-i", test_image, "sh", "-c", "tr a-z A-Z", input="hello\n")
    observe("exit", result.returncode)
    observe("stdout", result.stdout)
    assert result.stdout == "HELLO\n"


@pytest.mark.scenario(
    "api/cli/run-detached-logs",
    "`docker run -d` then `docker logs` MUST show the container's output",
    ref="docker CLI run -d, logs",
)
def test_run_detached_logs(docker_cli: CLI, test_image: str, observe: Observations) -> None:
    cid = docker_cli(
        "run", "-d", "--name", "cli-logs", test_image, "sh", "-c", "echo one; echo two"
    ).stdout.strip()
    docker_cli("wait", cid)
    logs = docker_cli("logs", "cli-logs")
    ps = docker_cli(
        "ps", "-a", "--filter", "name=cli-logs", "--format", "{{.Names}} {{.Command}} {{.Status}}"
    )
    docker_cli("rm", "-f", "cli-logs")
    observe("logs", logs.stdout)
    observe("ps", ps.stdout.split(" Exited")[0] + (" Exited" if "Exited (0)" in ps.stdout else ps.stdout))
    assert logs.stdout == "one\ntwo\n"


@pytest.mark.scenario(
    "api/cli/run-missing-command",
    "`docker run IMAGE nosuchcmd` MUST fail with exit 127 and name the executable",
    ref="docker CLI run",
)
def test_run_missing_command(docker_cli: CLI, test_image: str, observe: Observations) -> None:
    result = docker_cli("run", "--rm", test_image, "nosuchcmd")
    observe("exit", result.returncode)
    observe("names_executable", 'exec: "nosuchcmd": executable file not found in $PATH' in result.stderr)
    assert result.returncode == 127


@pytest.mark.scenario(
    "api/cli/run-env-workdir-user",
    "`docker run -e -w -u` MUST set the environment, working directory and user",
    ref="docker CLI run",
)
def test_run_env_workdir_user(docker_cli: CLI, test_image: str, observe: Observations) -> None:
    result = docker_cli(
        "run",
        "--rm",
        "-e",
        "GREETING=hello",
        "-w",
        "/tmp",
        "-u",
        "65534:65534",
        test_image,
        "sh",
        "-c",
        'echo "$GREETING $(pwd) $(id -u):$(id -g)"',
    )
    observe("exit", result.returncode)
    observe("stdout", result.stdout)
    assert result.stdout == "hello /tmp 65534:65534\n"


@pytest.mark.kernel
@pytest.mark.scenario(
    "api/cli/run-hostname-isolation",
    "A container MUST get its own hostname (the short id) and PID namespace (sh is PID 1)",
    ref="runc spec; docker CLI run",
)
def test_run_isolation(docker_cli: CLI, test_image: str, observe: Observations) -> None:
    result = docker_cli("run", "--rm", "--hostname", "box", test_image, "sh", "-c", "hostname; echo $$")
    observe("stdout", result.stdout)
    assert result.stdout == "box\n1\n"
