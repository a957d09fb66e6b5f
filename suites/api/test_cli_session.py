"""A plain docker CLI session, step by step: run, logs, exec, restart policies, events, kill -9 recovery,
build, pull-and-run.

What a person types on a fresh daemon, in every daemon profile: with ``--bridge=none`` a container started
without ``--network`` must still run (moby skips the default network and gives it only loopback), so every
step here passes there as it does with the default bridge. Each step records its exit status and the part of
its output that does not vary between runs; a scenario fails when a step does not do what it says.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from harness.backends.base import DaemonHandle
from harness.fixtures import DaemonFactory, Observations, make_cli
from harness.profiles import Profile
from harness.testimage import load_test_image
from harness.wait import wait_until

CLI = Callable[..., Any]


@dataclass
class Session:
    """Runs CLI steps, records each (``exit``, ``out``) and what it expected, and fails at the end."""

    cli: CLI
    observe: Observations
    prefix: str
    problems: list[str] = field(default_factory=list)

    def step(
        self,
        name: str,
        *args: str,
        exit: int = 0,
        out: str | re.Pattern[str] | None = None,
        err: str | None = None,
        input: str | None = None,
        env: dict[str, str] | None = None,
        keep: Callable[[str], str] | None = None,
    ) -> str:
        """``docker ARGS``; expects exit status ``exit``, stdout ``out`` (exact, or a pattern it must
        match), ``err`` in stderr. Records the status and stdout (through ``keep`` when given)."""
        result = self.cli(*args, input=input, env=env, timeout=120)
        stdout = str(result.stdout)
        shown = keep(stdout) if keep else stdout
        self.observe(f"{self.prefix}{name}", {"exit": result.returncode, "out": shown})
        wrong = []
        if result.returncode != exit:
            wrong.append(f"exit {result.returncode}, expected {exit}")
        if isinstance(out, str) and stdout != out:
            wrong.append(f"stdout {stdout!r}, expected {out!r}")
        if isinstance(out, re.Pattern) and not out.fullmatch(stdout):
            wrong.append(f"stdout {stdout!r} does not match {out.pattern!r}")
        if err is not None and err not in result.stderr:
            wrong.append(f"stderr {result.stderr.strip()!r} lacks {err!r}")
        if wrong:
            self.problems.append(
                f"{name}: docker {' '.join(args)}: {'; '.join(wrong)} (stderr: {result.stderr.strip()})"
            )
        return stdout

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.observe(f"{self.prefix}{name}", ok)
        if not ok:
            self.problems.append(f"{name}: {detail}")

    def done(self) -> None:
        assert not self.problems, "steps that failed:\n" + "\n".join(self.problems)


def _inspect(session: Session, container: str, template: str) -> str:
    return str(session.cli("inspect", "-f", template, container).stdout.strip())


@pytest.fixture
def session(docker_cli: CLI, observe: Observations) -> Iterator[Session]:
    s = Session(docker_cli, observe, "")
    yield s
    names = docker_cli("ps", "-aq", "--filter", "label=harness.cli-session").stdout.split()
    if names:
        docker_cli("rm", "-f", *names)


LABEL = ("--label", "harness.cli-session=1")


@pytest.mark.scenario(
    "api/cli-session/run",
    "`docker run` MUST run a container without --network in every daemon profile: output, exit status, "
    "-e, -w, -u, stdin, --rm, detached with ps and inspect, a name conflict, and rename",
    ref="docker CLI run; moby daemon/container_operations.go connectToNetwork (DisableBridge)",
)
def test_run(session: Session, test_image: str) -> None:
    s, img = session, test_image
    s.step("echo", "run", "--rm", *LABEL, img, "echo", "hello", out="hello\n")
    s.step("exit-status", "run", "--rm", *LABEL, img, "sh", "-c", "exit 3", exit=3, out="")
    s.step("env", "run", "--rm", *LABEL, "-e", "GREETING=hi", img, "sh", "-c", "echo $GREETING", out="hi\n")
    s.step("workdir", "run", "--rm", *LABEL, "-w", "/tmp", img, "pwd", out="/tmp\n")
    s.step("user", "run", "--rm", *LABEL, "-u", "1000:1000", img, "id", "-u", out="1000\n")
    s.step("stdin", "run", "-i", "--rm", *LABEL, img, "cat", input="piped\n", out="piped\n")
    s.step(
        "loopback", "run", "--rm", *LABEL, img, "sh", "-c", "ip -o link show lo | grep -c LOOPBACK", out="1\n"
    )
    s.step(
        "detached",
        "run",
        "-d",
        *LABEL,
        "--name",
        "sess-run",
        img,
        "sleep",
        "300",
        out=re.compile(r"[0-9a-f]{64}\n"),
    )
    s.step(
        "ps",
        "ps",
        "--filter",
        "name=sess-run",
        "--format",
        "{{.Names}} {{.Status}}",
        out=re.compile(r"sess-run Up .*\n"),
        keep=lambda o: o.partition(" Up ")[0] + " Up",  # how long it has been up is timing
    )
    s.check("running", _inspect(s, "sess-run", "{{.State.Running}}") == "true", "sess-run is not running")
    s.step(
        "name-conflict",
        "run",
        "-d",
        *LABEL,
        "--name",
        "sess-run",
        img,
        "true",
        exit=125,
        out="",
        err='The container name "/sess-run" is already in use',
    )
    gone = s.step("rm-gone", "ps", "-a", "--filter", "label=harness.cli-session", "--format", "{{.Names}}")
    s.check("rm-removed", gone.split() == ["sess-run"], f"--rm containers left behind: {gone.split()}")
    s.done()


@pytest.mark.scenario(
    "api/cli-session/rename",
    "`docker rename` MUST rename a stopped container and a running one, except with --bridge=none, where "
    "dockerd 28.5 refuses a running one: its sandbox names a network that does not exist",
    ref="moby daemon/rename.go",
)
def test_rename(session: Session, test_image: str, profile: Profile) -> None:
    s, img = session, test_image
    s.step("create", "create", *LABEL, "--name", "sess-old", img, "sleep", "300", keep=lambda o: "<id>")
    s.step("stopped", "rename", "sess-old", "sess-new", out="")
    s.step("start", "start", "sess-new", out="sess-new\n")
    if "--bridge=none" in profile.args or profile.config.get("bridge") == "none":
        s.step("running", "rename", "sess-new", "sess-newer", exit=1, out="", err="network bridge not found")
        kept = ["sess-new"]
    else:
        s.step("running", "rename", "sess-new", "sess-newer", out="")
        kept = ["sess-newer"]
    names = s.cli(
        "ps", "-a", "--filter", "label=harness.cli-session", "--format", "{{.Names}}"
    ).stdout.split()
    s.observe("names", names)
    s.check("names", names == kept, f"names {names}, expected {kept}")
    s.done()


@pytest.mark.scenario(
    "api/cli-session/logs",
    "`docker logs` MUST show a container's stdout and stderr, --tail and --timestamps",
    ref="docker CLI logs",
)
def test_logs(session: Session, test_image: str) -> None:
    s, img = session, test_image
    script = "for i in 1 2 3; do echo line$i; done; echo oops >&2"
    s.step("run", "run", "-d", *LABEL, "--name", "sess-logs", img, "sh", "-c", script, keep=lambda o: "<id>")
    s.step("wait", "wait", "sess-logs", out="0\n")
    result = s.cli("logs", "sess-logs")
    s.observe("stdout", result.stdout)
    s.observe("stderr", result.stderr)
    s.check(
        "streams", (result.stdout, result.stderr) == ("line1\nline2\nline3\n", "oops\n"), "streams mixed up"
    )
    # stdout and stderr are two pipes: which of line3 and oops was logged last is timing, so --tail counts
    # the lines of a stdout-only container
    s.step("run-stdout", "run", *LABEL, "--name", "sess-tail", img, "sh", "-c", "echo a; echo b; echo c")
    s.step("tail", "logs", "--tail", "2", "sess-tail", out="b\nc\n")
    stamped = s.cli("logs", "-t", "sess-logs").stdout
    pattern = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z line\d\n){3}")
    s.check("timestamps", bool(pattern.fullmatch(stamped)), f"timestamps: {stamped!r}")
    s.done()


@pytest.mark.scenario(
    "api/cli-session/exec",
    "`docker exec` MUST run commands in a running container: output, -e, -w, -u, the exit status, and an "
    "error for a stopped container",
    ref="docker CLI exec",
)
def test_exec(session: Session, test_image: str) -> None:
    s, img = session, test_image
    s.step("run", "run", "-d", *LABEL, "--name", "sess-exec", img, "sleep", "300", keep=lambda o: "<id>")
    s.step("echo", "exec", "sess-exec", "echo", "inside", out="inside\n")
    s.step("env", "exec", "-e", "A=b", "sess-exec", "sh", "-c", "echo $A", out="b\n")
    s.step("workdir", "exec", "-w", "/etc", "sess-exec", "pwd", out="/etc\n")
    s.step("user", "exec", "-u", "1000", "sess-exec", "id", "-u", out="1000\n")
    s.step("exit-status", "exec", "sess-exec", "sh", "-c", "exit 7", exit=7, out="")
    s.step("stdin", "exec", "-i", "sess-exec", "cat", input="in\n", out="in\n")
    s.step("stop", "stop", "-t", "1", "sess-exec", out="sess-exec\n")
    s.step("stopped", "exec", "sess-exec", "true", exit=1, out="", err="is not running")
    s.done()


def _restart_count(s: Session, name: str) -> str:
    return _inspect(s, name, "{{.RestartCount}} {{.State.Status}}")


@pytest.mark.scenario(
    "api/cli-session/restart-policies",
    "Restart policies MUST act as dockerd's: on-failure:2 restarts twice and stays exited, always is not "
    "restarted after docker stop, docker update changes the policy",
    ref="moby daemon/restartmanager",
)
def test_restart_policies(session: Session, test_image: str) -> None:
    s, img = session, test_image
    s.step(
        "on-failure",
        "run",
        "-d",
        *LABEL,
        "--name",
        "sess-flaky",
        "--restart",
        "on-failure:2",
        img,
        "sh",
        "-c",
        "exit 1",
        keep=lambda o: "<id>",
    )
    settled = wait_until(lambda: _restart_count(s, "sess-flaky") == "2 exited", 60)
    s.check("on-failure-gave-up", settled, f"sess-flaky: {_restart_count(s, 'sess-flaky')}")
    s.step(
        "always",
        "run",
        "-d",
        *LABEL,
        "--name",
        "sess-always",
        "--restart",
        "always",
        img,
        "sleep",
        "300",
        keep=lambda o: "<id>",
    )
    s.step("stop", "stop", "-t", "1", "sess-always", out="sess-always\n")
    s.check(
        "always-stays-stopped",
        _restart_count(s, "sess-always") == "0 exited",
        _restart_count(s, "sess-always"),
    )
    # dockerd prints the update's warnings after the name (--bridge=none: IPv4 forwarding is off)
    s.step(
        "update",
        "update",
        "--restart",
        "unless-stopped",
        "sess-always",
        out=re.compile(r"sess-always\n.*", re.S),
    )
    policy = _inspect(s, "sess-always", "{{.HostConfig.RestartPolicy.Name}}")
    s.check("updated", policy == "unless-stopped", f"policy {policy}")
    s.done()


@pytest.mark.scenario(
    "api/cli-session/events",
    "`docker events` MUST list a container's create, start, die and destroy in order",
    ref="docker CLI events",
)
def test_events(session: Session, test_image: str) -> None:
    s, img = session, test_image
    since = str(int(time.time()) - 1)
    s.step("run", "run", "--rm", *LABEL, "--name", "sess-events", img, "true", out="")
    until = str(int(time.time()) + 1)
    actions = s.step(
        "events",
        "events",
        "--since",
        since,
        "--until",
        until,
        "--filter",
        "container=sess-events",
        "--filter",
        "type=container",
        "--format",
        "{{.Action}}",
    )
    wanted = ["create", "attach", "start", "die", "destroy"]
    seen = [a for a in actions.split() if a in wanted]
    s.check("order", seen == wanted, f"actions {actions.split()}")
    s.done()


@pytest.fixture
def own_daemon(daemon_factory: DaemonFactory, tmp_path: Any) -> tuple[DaemonHandle, CLI, str]:
    handle = daemon_factory()
    assert handle.endpoint is not None
    image = load_test_image(handle.endpoint)
    return handle, make_cli(handle.endpoint, str(tmp_path)), image


@pytest.mark.scenario(
    "api/cli-session/kill-9-recovery",
    "A container whose process is killed with SIGKILL MUST be restarted by its policy; a daemon killed with "
    "SIGKILL MUST, started again, bring back its restart-always container and keep the exited one exited",
    ref="moby daemon/restartmanager; daemon/daemon.go restore",
)
def test_kill_9_recovery(
    own_daemon: tuple[DaemonHandle, CLI, str], daemon_factory: DaemonFactory, observe: Observations
) -> None:
    handle, cli, img = own_daemon
    s = Session(cli, observe, "")
    s.step(
        "always",
        "run",
        "-d",
        "--name",
        "sess-phoenix",
        "--restart",
        "always",
        img,
        "sleep",
        "300",
        keep=lambda o: "<id>",
    )
    s.step("exited", "run", "--name", "sess-done", img, "true", out="")
    pid = int(_inspect(s, "sess-phoenix", "{{.State.Pid}}"))
    os.kill(pid, signal.SIGKILL)
    back = wait_until(
        lambda: _inspect(s, "sess-phoenix", "{{.RestartCount}} {{.State.Running}}") == "1 true", 30
    )
    s.check("process-restarted", back, _inspect(s, "sess-phoenix", "{{.RestartCount}} {{.State.Status}}"))
    handle.kill()
    daemon_factory.restart(handle)
    up = wait_until(lambda: _inspect(s, "sess-phoenix", "{{.State.Running}}") == "true", 30)
    s.check("daemon-restarted-container", up, _inspect(s, "sess-phoenix", "{{.State.Status}}"))
    s.step(
        "ps",
        "ps",
        "-a",
        "--format",
        "{{.Names}} {{.State}}",
        keep=lambda o: "\n".join(sorted(o.splitlines())),
        out=re.compile(r"(sess-phoenix running\nsess-done exited|sess-done exited\nsess-phoenix running)\n"),
    )
    s.step("exec-after", "exec", "sess-phoenix", "echo", "alive", out="alive\n")
    s.done()


@pytest.mark.scenario(
    "api/cli-session/build",
    "`docker build` (the classic builder) MUST build from a Dockerfile with RUN, ARG and CMD, and the image "
    "MUST run",
    ref="docker CLI build; moby builder/dockerfile",
)
def test_build(session: Session, test_image: str, tmp_path: Any) -> None:
    s, img = session, test_image
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "Dockerfile").write_text(
        f'FROM {img}\nARG WHO=world\nRUN echo hello $WHO > /greeting\nCMD ["cat", "/greeting"]\n'
    )
    env = {"DOCKER_BUILDKIT": "0"}
    s.step(
        "build",
        "build",
        "-q",
        "--build-arg",
        "WHO=session",
        "-t",
        "sess-built:1",
        str(tmp_path / "ctx"),
        env=env,
        out=re.compile(r"sha256:[0-9a-f]{64}\n"),
        keep=lambda o: "<id>",
    )
    s.step("run", "run", "--rm", *LABEL, "sess-built:1", out="hello session\n")
    s.step("history", "image", "inspect", "-f", "{{.Config.Cmd}}", "sess-built:1", out="[cat /greeting]\n")
    s.step("rmi", "rmi", "sess-built:1", keep=lambda o: str(o.count("Deleted:")))
    s.done()


@pytest.mark.scenario(
    "api/cli-session/pull-run",
    "`docker pull` from a registry, then `docker run` of the pulled image, `docker images` and `docker rmi`, "
    "MUST work as on dockerd",
    ref="docker CLI pull; moby distribution",
)
def test_pull_run(own_daemon: tuple[DaemonHandle, CLI, str], registry: Any, observe: Observations) -> None:
    handle, cli, _ = own_daemon
    host = registry.attach(handle)
    ref = f"{host}/library/busybox:latest"
    s = Session(cli, observe, "")
    s.step("pull", "pull", "-q", ref, out=f"{ref}\n", keep=lambda o: o.replace(host, "<registry>"))
    s.step("run", "run", "--rm", ref, "echo", "pulled", out="pulled\n")
    s.step(
        "images",
        "images",
        "--format",
        "{{.Repository}}:{{.Tag}}",
        f"{host}/library/busybox",
        out=f"{host}/library/busybox:latest\n",
        keep=lambda o: o.replace(host, "<registry>"),
    )
    s.step("rmi", "rmi", ref, keep=lambda o: str("Untagged:" in o))
    s.done()


@pytest.mark.profiles("no-bridge", reason="what a container without a default bridge looks like")
@pytest.mark.scenario(
    "api/cli-session/no-bridge-inspect",
    "With --bridge=none a container started for the default bridge MUST have only loopback, "
    "Config.NetworkDisabled true once started, an empty 'bridge' endpoint, a sandbox on its first start "
    "only, and create MUST warn that IPv4 forwarding is disabled",
    ref="moby daemon/container_operations.go connectToNetwork, initializeNetworking",
)
def test_no_bridge_inspect(session: Session, test_image: str) -> None:
    s, img = session, test_image
    created = s.cli("create", *LABEL, "--name", "sess-nb", img, "sh", "-c", "ip -o link | cut -d: -f2")
    s.observe("create-stderr", created.stderr.strip())
    s.check("forwarding-warning", "IPv4 forwarding is disabled" in created.stderr, created.stderr)
    s.step(
        "before",
        "inspect",
        "-f",
        "{{.Config.NetworkDisabled}} {{json .NetworkSettings.Networks}}",
        "sess-nb",
        out=re.compile(r'false \{"bridge":\{.*"EndpointID":"".*\}\}\n'),
        keep=lambda o: o.split()[0],
    )
    s.step("first-start", "start", "-a", "sess-nb", out=" lo\n")
    s.step(
        "after",
        "inspect",
        "-f",
        "{{.Config.NetworkDisabled}} {{.NetworkSettings.SandboxKey}}",
        "sess-nb",
        out="true \n",
    )
    s.step("second-start", "start", "-a", "sess-nb", out=" lo\n")
    names = s.cli("network", "ls", "--format", "{{.Name}}").stdout.split()
    s.check(
        "no-bridge-network", "bridge" not in names and {"host", "none"} <= set(names), f"networks {names}"
    )
    s.done()
