"""Container modes moby's own integration tests check and our scenarios did not: IPC sharing, writable
cgroups, seccomp profiles, an auto-removed container's restart, a kill with the stop signal under a
restart policy."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.client import EngineClient
from harness.fixtures import Observations
from harness.wait import wait_until
from suites._daemon import cli_run

CLI = Callable[..., Any]
V = "/v1.41"
_SHM_DEVICE = "awk '($5 == \"/dev/shm\") {printf $3}' /proc/self/mountinfo"
#: moby TestCgroupRW's probe: a cgroup under the container's own (cgroup2's magic, else v1's pids)
_MKDIR_CGROUP = (
    'if [ "$(stat -f -c %t /sys/fs/cgroup)" = 63677270 ]; then mkdir /sys/fs/cgroup/probe; '
    "else mkdir /sys/fs/cgroup/pids/probe; fi"
)


def _state(engine: EngineClient, cid: str) -> dict[str, Any]:
    resp = engine.get(f"{V}/containers/{cid}/json")
    return dict(resp.json()["State"]) if resp.status_code == 200 else {"Status": "gone"}


@pytest.mark.scenario(
    "api/containers/ipc-modes",
    "--ipc none MUST give a container no /dev/shm; --ipc shareable MUST let a --ipc container:<id> container "
    "share its /dev/shm; joining a private container's IPC MUST be refused at start with 'non-shareable IPC'",
    ref="moby daemon/container_operations_unix.go setupIPCDirs; integration/container/ipcmode_linux_test.go",
)
def test_ipc_modes(docker_cli: CLI, test_image: str, containers: list[str], observe: Observations) -> None:
    none = cli_run(docker_cli, containers, "--ipc", "none", test_image, "sleep", "120")
    shm_of_none = docker_cli("exec", none, "sh", "-c", _SHM_DEVICE).stdout
    donor = cli_run(docker_cli, containers, "--ipc", "shareable", test_image, "sleep", "120")
    guest = cli_run(docker_cli, containers, "--ipc", f"container:{donor}", test_image, "sleep", "120")
    wrote = docker_cli("exec", donor, "sh", "-c", "printf covfefe > /dev/shm/bar").returncode
    read = docker_cli("exec", guest, "cat", "/dev/shm/bar")
    private = cli_run(docker_cli, containers, "--ipc", "private", test_image, "sleep", "120")
    created = docker_cli("create", "--ipc", f"container:{private}", test_image, "sleep", "120")
    assert created.returncode == 0, created.stderr
    containers.append(created.stdout.strip())
    started = docker_cli("start", created.stdout.strip())
    observe("none_dev_shm", shm_of_none)
    observe("shared_read", [wrote, read.returncode, read.stdout])
    observe("private_donor", [started.returncode, started.stderr.strip().replace(private, "<id>")])
    assert shm_of_none == ""
    assert (wrote, read.returncode, read.stdout) == (0, 0, "covfefe")
    assert started.returncode != 0
    assert (
        f"container {private}: non-shareable IPC (hint: use IpcMode:shareable for the donor container)"
        in (started.stderr)
    )


@pytest.mark.scenario(
    "api/containers/writable-cgroups",
    "--security-opt writable-cgroups=true MUST mount the container's cgroups read-write (read-only by "
    "default, and with =false); a value that is not a boolean MUST be refused ('invalid --security-opt 2')",
    ref="moby daemon/daemon_unix.go parseSecurityOpt, oci_linux.go WithMounts; integration/container "
    "TestCgroupRW",
)
def test_writable_cgroups(
    docker_cli: CLI, test_image: str, containers: list[str], observe: Observations
) -> None:
    outcomes = {}
    for opt in ("", "writable-cgroups=true", "writable-cgroups=false"):
        args = ["--security-opt", opt] if opt else []
        cid = cli_run(docker_cli, containers, *args, test_image, "sleep", "120")
        made = docker_cli("exec", cid, "sh", "-c", _MKDIR_CGROUP)
        outcomes[opt or "default"] = (made.returncode, "Read-only file system" in made.stderr)
    bad = docker_cli("create", "--security-opt", "writable-cgroups=potato", test_image)
    observe("mkdir", outcomes)
    observe("bad_value", [bad.returncode != 0, bad.stderr.strip()])
    assert outcomes == {
        "default": (1, True),
        "writable-cgroups=true": (0, False),
        "writable-cgroups=false": (1, True),
    }
    assert bad.returncode != 0 and 'invalid --security-opt 2: "writable-cgroups=potato"' in bad.stderr


@pytest.mark.scenario(
    "api/containers/seccomp-profile",
    "--security-opt seccomp=<profile> MUST refuse the calls the profile refuses (EPERM) in the container and "
    "its execs, also when privileged; without a profile and with seccomp=unconfined they MUST run",
    ref="moby integration/container TestSeccomp (moby issue 47499: privileged keeps a custom profile)",
)
def test_seccomp_profile(
    docker_cli: CLI, test_image: str, containers: list[str], tmp_path: Path, observe: Observations
) -> None:
    profile = tmp_path / "confined.json"
    profile.write_text(
        json.dumps(
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["chown", "chown32", "fchownat"], "action": "SCMP_ACT_ERRNO"}],
            }
        )
    )
    cases = {
        "default": [],
        "privileged": ["--privileged"],
        "profile": ["--security-opt", f"seccomp={profile}"],
        "profile+privileged": ["--privileged", "--security-opt", f"seccomp={profile}"],
        "unconfined": ["--security-opt", "seccomp=unconfined"],
    }
    outcomes = {}
    for name, args in cases.items():
        cid = cli_run(docker_cli, containers, *args, test_image, "sleep", "120")
        chown = docker_cli("exec", cid, "chown", "42", "/bin/true")
        outcomes[name] = (chown.returncode, "Operation not permitted" in chown.stderr)
    observe("chown", outcomes)
    assert outcomes == {
        "default": (0, False),
        "privileged": (0, False),
        "profile": (1, True),
        "profile+privileged": (1, True),
        "unconfined": (0, False),
    }


@pytest.mark.scenario(
    "api/containers/restart-autoremove",
    "A --rm container MUST survive `docker restart` (running again afterwards) and MUST be removed once it "
    "is stopped for good",
    ref="moby daemon/restart.go HasBeenManuallyRestarted; integration/container "
    "TestContainerWithAutoRemoveCanBeRestarted",
)
def test_restart_autoremove(
    docker_cli: CLI, engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    cid = cli_run(docker_cli, containers, "--rm", test_image, "sleep", "120")
    restarted = docker_cli("restart", "-t", "0", cid)
    after_restart = _state(engine, cid).get("Status")
    killed = docker_cli("kill", cid)
    removed = wait_until(lambda: _state(engine, cid)["Status"] == "gone", 30, interval=0.1)
    observe("restart", [restarted.returncode, restarted.stderr.strip()])
    observe("status_after_restart", after_restart)
    observe("removed_after_kill", removed)
    assert restarted.returncode == 0, restarted.stderr
    assert after_restart == "running"
    assert killed.returncode == 0 and removed


@pytest.mark.scenario(
    "api/containers/kill-stop-signal-restart-policy",
    "A kill with the container's stop signal MUST end an --restart always container for good; a kill with "
    "another signal the container exits on MUST leave the policy to restart it",
    ref="moby daemon/kill.go killWithSignal (ExitOnNext); integration/container "
    "TestKillWithStopSignalAndRestartPolicies",
)
def test_kill_stop_signal_restart_policy(
    docker_cli: CLI, engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    script = "trap 'exit 3' TERM; touch /trapped; while :; do sleep 1; done"
    outcomes = {}
    for stop_signal in ("TERM", "CONT"):
        cid = cli_run(
            docker_cli,
            containers,
            "--restart",
            "always",
            "--stop-signal",
            stop_signal,
            test_image,
            "sh",
            "-c",
            script,
        )
        # PID 1 of a PID namespace gets only the signals it handles: kill once the trap is set
        assert wait_until(lambda c=cid: docker_cli("exec", c, "test", "-e", "/trapped").returncode == 0, 30)
        assert docker_cli("kill", "--signal", "TERM", cid).returncode == 0
        if stop_signal == "TERM":
            assert wait_until(lambda c=cid: _state(engine, c)["Status"] == "exited", 30, interval=0.1)
        else:
            assert wait_until(
                lambda c=cid: engine.get(f"{V}/containers/{c}/json").json()["RestartCount"] >= 1, 30
            )
            assert wait_until(lambda c=cid: _state(engine, c)["Status"] == "running", 30, interval=0.1)
        outcomes[stop_signal] = _state(engine, cid)["Status"]
    observe("status_after_kill_TERM", outcomes)
    assert outcomes == {"TERM": "exited", "CONT": "running"}
