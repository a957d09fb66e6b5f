"""The systemd box's pure parts: which box a target gets, the entry script, the tutorial's words for refd,
the outputs made comparable, and commands run through a stand-in container (no engine, no systemd)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness import systemd_box
from harness.errors import HarnessError, TargetUnavailable
from harness.systemd_box import DOCKER, REFD, BoxResult, SystemdBox, box_entry, box_suite
from harness.targets import resolve_target


def test_each_dockerd_target_gets_its_own_debian(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(systemd_box.BOX_ENV, raising=False)
    assert box_suite(resolve_target("dockerd-28")) == "sid"
    assert box_suite(resolve_target("dockerd-26")) == "trixie"
    assert box_suite(resolve_target("dockerd-20.10")) == "bookworm"
    assert box_suite(resolve_target("dockerd")) == systemd_box._host_suite()  # the host's own docker.io
    assert box_suite(resolve_target("refd")) == "bookworm"  # Python 3.11, the project's oldest
    monkeypatch.setenv(systemd_box.BOX_ENV, "sid")
    assert box_suite(resolve_target("refd")) == "sid"
    monkeypatch.setenv(systemd_box.BOX_ENV, "jessie")
    with pytest.raises(HarnessError, match="choose one of bookworm, trixie, sid"):
        box_suite(resolve_target("refd"))
    with pytest.raises(TargetUnavailable):
        box_suite(resolve_target("external"))


def test_the_hosts_dockerd_gets_a_box_of_the_hosts_release(tmp_path: Path) -> None:
    release = tmp_path / "os-release"
    release.write_text('PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nVERSION_CODENAME=trixie\nID=debian\n')
    assert systemd_box._host_suite(str(release)) == "trixie"  # its docker.io is 26.1, not bookworm's 20.10
    release.write_text("VERSION_CODENAME=noble\nID=ubuntu\n")
    assert systemd_box._host_suite(str(release)) == "bookworm"
    assert systemd_box._host_suite(str(tmp_path / "absent")) == "bookworm"


def test_recipes_hold_systemd_and_the_tutorials_tools() -> None:
    for recipe in systemd_box.BOX_RECIPES.values():
        assert {"systemd", "systemd-sysv", "docker.io", "python3", "openssl", "curl", "lsof", "sudo"} <= set(
            recipe.packages
        )
        assert recipe.target.startswith("systemd-")


def test_entry_script_gives_systemd_its_cgroups_then_execs_it() -> None:
    legacy, unified = box_entry("legacy"), box_entry("unified")
    assert "remount,bind,rw" in legacy and "cgroup2" not in legacy
    assert "umount -R /sys/fs/cgroup" in unified and "mount -t cgroup2" in unified
    for script in (legacy, unified):
        assert script.rstrip().endswith('exec "$@"')
        assert "mount -t proc proc /proc" in script
    assert systemd_box.CGROUP_MODE == {"bookworm": "legacy", "trixie": "unified", "sid": "unified"}


@pytest.mark.parametrize(
    "text,refd",
    [
        ("sudo systemctl restart docker", "sudo systemctl restart refd"),
        ("sudo systemctl stop docker.socket docker", "sudo systemctl stop refd.socket refd"),
        ("sudo journalctl -u docker -xe", "sudo journalctl -u refd -xe"),
        ("sudo dockerd --debug", "sudo refd --debug"),
        ("sudo lsof -i -P -n | grep dockerd", "sudo lsof -i -P -n | grep refd"),
        ("ExecStart=/usr/bin/dockerd --debug", "ExecStart=/usr/bin/refd --debug"),
        # the docker CLI and dockerd's default socket (refd's too) are not the daemon's name
        ("docker -H tcp://127.0.0.1:2376 ps", "docker -H tcp://127.0.0.1:2376 ps"),
        ("sudo dockerd --host=unix:///var/run/docker.sock", "sudo refd --host=unix:///var/run/docker.sock"),
    ],
)
def test_tutorial_words_for_refd(text: str, refd: str) -> None:
    assert REFD.subst(text) == refd
    assert DOCKER.subst(text) == text


def test_neutral_hides_each_daemons_names() -> None:
    for flavour in (DOCKER, REFD):
        line = (
            f"{flavour.unit}.service: Main process exited; {flavour.socket_unit} listens on "
            f"{flavour.socket}; {flavour.binary} is {flavour.daemon}; /var/run/docker.sock"
        )
        assert flavour.neutral(line) == (
            "<unit>.service: Main process exited; <unit>.socket listens on <unit-socket>; "
            "<daemon-binary> is <daemon>; /var/run/docker.sock"
        )
    assert DOCKER.cli_env == {} and REFD.cli_env == {"DOCKER_HOST": "unix:///run/refd.sock"}
    assert DOCKER.tutorial_socket == "/var/run/docker.sock" and REFD.tutorial_socket == "/run/refd.sock"


class _Container:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def exec_run(self, argv: list[str], **kw: Any) -> Any:
        self.calls.append({"argv": argv, **kw})
        if kw.get("tty"):
            return SimpleNamespace(exit_code=0, output=b"edited\r\n")
        if "systemctl show" in argv[-1]:
            return SimpleNamespace(exit_code=0, output=(b"MainPID=42\nType=notify\n", None))
        return SimpleNamespace(exit_code=3, output=(b"out", b"err"))


def _box() -> tuple[SystemdBox, _Container]:
    box = SystemdBox(resolve_target("dockerd-28"), "sid", DOCKER, "/nonexistent")
    container = _Container()
    box.container = container
    return box, container


def test_sh_runs_bash_as_root_under_a_timeout() -> None:
    box, container = _box()
    assert box.sh("echo hi", env={"A": "1"}, timeout=7) == BoxResult(3, "out", "err")
    call = container.calls[-1]
    assert call["argv"] == ["timeout", "-k", "5", "7", "/bin/bash", "-c", "echo hi"]
    assert call["environment"] == {"A": "1"} and call["workdir"] == "/root" and call["demux"] is True
    assert box.sh("systemctl edit docker", tty=True) == BoxResult(0, "edited\r\n", "")


def test_show_parses_systemctl_show() -> None:
    box, _ = _box()
    assert box.show("docker", "MainPID", "Type") == {"MainPID": "42", "Type": "notify"}


def test_neutral_box_output() -> None:
    box, _ = _box()
    text = 'Nov 27 23:27:26 docker-host dockerd[353]: time="2026-11-27T23:27:26.4Z" level=info'
    assert box.neutral(text) == 'Nov 27 23:27:26 <host> <daemon>[<pid>]: time="<time>" level=info'


def test_file_state_reads_the_box_from_the_host_as_stat_prints_it(tmp_path: Path) -> None:
    import os
    import socket
    import subprocess

    box, _ = _box()
    box.pid = os.getpid()  # /proc/<pid>/root of this process: its files stand in for the box's
    path = tmp_path / "unit.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        os.chmod(path, 0o660)
        expected = subprocess.run(["stat", "-c", "%F %a %U %G", str(path)], capture_output=True, text=True)
        assert box.file_state(str(path)) == expected.stdout.strip()
        assert box.file_state(str(path)).startswith("socket 660 ")
    expected = subprocess.run(["stat", "-c", "%F %a %U %G", str(tmp_path)], capture_output=True, text=True)
    assert box.file_state(str(tmp_path)) == expected.stdout.strip()
    assert box.file_state(str(tmp_path / "gone")) == ""
