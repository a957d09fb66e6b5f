"""The newcomer check's parts: the README's commands, the environment, the host snapshot, and a real run in
a small busybox root (private mount and PID namespaces, pivot_root, interruption). The full check (a fresh
Debian root running the README's two commands) is ``nox -s fresh`` itself: it takes most of an hour."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from harness import newcomer
from harness.newcomer import HostState, NewcomerError
from harness.wait import wait_until

REPO = Path(__file__).resolve().parents[2]


def test_the_readmes_two_commands_are_read_verbatim() -> None:
    commands = newcomer.readme_commands((REPO / "README.md").read_text())
    assert len(commands) == 2
    assert commands[0].startswith("sh scripts/bootstrap.sh && .venv/bin/nox -s conformance")
    assert commands[1].startswith("sh scripts/bootstrap.sh && .venv/bin/nox -s tests")


def test_a_readme_without_commands_is_an_error() -> None:
    with pytest.raises(NewcomerError, match="no ```sh block"):
        newcomer.readme_commands("# Title\n\nJust words.\n")
    with pytest.raises(NewcomerError, match="holds no command"):
        newcomer.readme_commands("```sh\n# only a comment\n```\n")


def test_the_environment_is_a_root_login_plus_proxy_and_ca_settings(tmp_path: Path) -> None:
    (tmp_path / "etc/ssl/certs").mkdir(parents=True)
    (tmp_path / "etc/ssl/certs/ca-certificates.crt").write_text("certs")
    host = {
        "PIP_CERT": "/etc/ssl/certs/ca-certificates.crt",
        "REQUESTS_CA_BUNDLE": "/opt/only-on-the-host.pem",
        "https_proxy": "http://proxy.example:3128",
        "PYENV_ROOT": "/root/.pyenv",
        "PATH": "/root/.pyenv/shims:/usr/bin",
        "HARNESS_CACHE": "/somewhere",
    }
    env = newcomer.clean_env(host, root=tmp_path)
    assert env["PATH"] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert env["HOME"] == "/root" and env["USER"] == "root"
    assert env["PIP_CERT"] == "/etc/ssl/certs/ca-certificates.crt"
    assert env["https_proxy"] == "http://proxy.example:3128"
    assert "REQUESTS_CA_BUNDLE" not in env  # a file the fresh machine does not have
    assert "PYENV_ROOT" not in env and "HARNESS_CACHE" not in env


def test_the_debian_installers_sources() -> None:
    assert newcomer._sources("trixie", "http://deb.debian.org/debian") == (
        "deb http://deb.debian.org/debian trixie main\n"
        "deb http://deb.debian.org/debian trixie-updates main\n"
        "deb http://deb.debian.org/debian-security trixie-security main\n"
    )


def test_host_differences_are_named() -> None:
    before = HostState(
        etc={"/etc/group": "644 aa", "/etc/hosts": "644 bb"},
        mounts=["/ ext4 /dev/vda"],
        links=["eth0", "lo"],
        rules=["*filter", ":INPUT ACCEPT"],
    )
    after = HostState(
        etc={"/etc/hosts": "644 cc", "/etc/new": "644 dd"},
        mounts=["/ ext4 /dev/vda", "/tmp/x tmpfs tmpfs"],
        links=["docker0", "eth0", "lo"],
        rules=["*filter", ":INPUT ACCEPT", "-A FORWARD -j DOCKER"],
    )
    assert before.diff(after) == [
        "/etc/group removed",
        "/etc/hosts changed",
        "/etc/new added",
        "link added: docker0",
        "iptables added: -A FORWARD -j DOCKER",
    ]
    assert before.mounts_elsewhere(after) == ["+ /tmp/x tmpfs tmpfs"]
    assert before.diff(before) == []


def test_other_sessions_namespace_files_are_not_counted_as_host_mounts() -> None:
    assert newcomer._OTHER_SESSIONS.match("/tmp/harness-dockerd-28-abc/ns/net")
    assert newcomer._OTHER_SESSIONS.match("/run/harness-engine-dockerd-x/ns")
    assert not newcomer._OTHER_SESSIONS.match("/etc")


def test_the_summary_of_a_log_is_pytests_and_noxs_last_words() -> None:
    log = textwrap.dedent(
        """\
        nox > Running session tests
        ....
        ========== 1548 passed, 5 failed, 12 skipped in 778.12s (0:12:58) ==========
        nox > Command python -m pytest failed with exit code 1
        nox > Session tests failed.
        """
    )
    assert newcomer.summary_of(log) == (
        "1548 passed, 5 failed, 12 skipped in 778.12s (0:12:58) | Session tests failed"
    )


# -- a real run in a busybox root ------------------------------------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="namespaces and pivot_root need root")


@pytest.fixture
def busybox_root(tmp_path: Path) -> Path:
    """A small root filesystem: busybox, and the mount points a machine has."""
    from harness.daemon.images.tarsafe import extract
    from harness.errors import ImageBuildError
    from harness.images import busybox_rootfs

    try:
        image = busybox_rootfs()
    except ImageBuildError as exc:
        pytest.skip(str(exc))
    root = tmp_path / "root"
    with open(image.path, "rb") as fh:
        extract(fh, str(root))
    for d in ("proc", "sys", "dev", "run", "tmp", "root", "lib/modules"):
        (root / d).mkdir(parents=True, exist_ok=True)
    return root


def _mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as fh:
        return [ln.split()[4] for ln in fh if ln.split()[4].startswith(str(path))]


@needs_root
def test_commands_run_in_the_root_as_a_machine_not_a_chroot(busybox_root: Path, tmp_path: Path) -> None:
    marker = f"newcomer-{uuid.uuid4().hex}"
    (busybox_root / "etc/marker").write_text(marker + "\n")
    assert not Path("/etc/marker").exists()
    done = newcomer.run_in_root(
        busybox_root,
        [
            "cat /etc/marker",
            # a process joining the namespace (as docker exec or a health check does) lands in the root:
            # under a chroot it would land in the host's / and find no /etc/marker
            "nsenter -t 1 -m cat /etc/marker",
            "echo pid=$$ init=$(cat /proc/1/cmdline | tr '\\0' ' ' | cut -c1-80)",
            "cut -d' ' -f5 /proc/self/mountinfo && touch /tmp/x",
            "exit 3",
        ],
        {"PATH": "/bin:/sbin:/usr/bin:/usr/sbin"},
        "/",
        "t",
    )
    assert [d["exit"] for d in done] == [0, 0, 0, 0, 3]
    logs = [(busybox_root / f"root/newcomer/{i}.log").read_text() for i in range(1, 6)]
    assert logs[0] == logs[1] == marker + "\n"
    # the commands are the first processes of their own PID namespace, under the launcher as PID 1
    assert re.match(r"pid=[2-6] init=\S+python\S* -m harness.newcomer", logs[2]), logs[2]
    assert {"/", "/proc", "/sys", "/sys/fs/cgroup", "/dev", "/run", "/tmp"} <= set(logs[3].split())
    assert not (busybox_root / "tmp/x").exists()  # /tmp was the run's tmpfs, gone with it
    assert _mounts_under(busybox_root) == []


@needs_root
def test_an_interrupted_run_leaves_no_process_and_no_mount(busybox_root: Path, tmp_path: Path) -> None:
    script = tmp_path / "drive.py"
    script.write_text(
        textwrap.dedent(
            f"""\
            import sys
            from pathlib import Path
            from harness import newcomer
            try:
                command = "sleep 600 & echo $! > /root/sleeper; wait"
                newcomer.run_in_root(Path({str(busybox_root)!r}), [command], {{"PATH": "/bin"}}, "/", "t")
            except KeyboardInterrupt:
                sys.exit(42)
            """
        )
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith("[t 1] $ sleep 600")
    sleeper = busybox_root / "root/sleeper"
    assert wait_until(lambda: sleeper.exists() and bool(sleeper.read_text().strip()), 10)
    inner_pid = sleeper.read_text().strip()
    assert inner_pid  # the sleep's pid inside its PID namespace
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 42
    proc.stdout.close()
    left = subprocess.run(["pgrep", "-f", "^sleep 600$"], capture_output=True, text=True).stdout.split()
    assert not [p for p in left if Path(f"/proc/{p}/root").resolve() == busybox_root]
    assert _mounts_under(busybox_root) == []


@needs_root
def test_a_command_that_lacks_a_package_fails_the_check(
    busybox_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing install step, as the check sees it: this host has debootstrap, the fresh root does not, so
    the command that needs it fails there; its verdict is FAIL and the check exits 1 (failing nox -s fresh and
    .ci/run), while the next command still runs."""
    (busybox_root / newcomer.PROJECT.lstrip("/")).mkdir(parents=True)  # where the project would be
    monkeypatch.setattr(newcomer, "prepare_root", lambda suite, work, repo, out: (busybox_root, "0" * 40))
    reports = tmp_path / "reports"
    code = newcomer.main(
        [
            *("run", "bookworm", "--repo", str(REPO), "--reports", str(reports)),
            *("--command", "command -v debootstrap", "--command", "echo the next command runs"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 1, out
    assert re.search(
        r"^newcomer bookworm: FAIL \(exit [1-9]\d* after \d+ s\): command -v debootstrap$", out, re.M
    )
    assert re.search(
        r"^newcomer bookworm: PASS \(exit 0 after \d+ s\): echo the next command runs$", out, re.M
    )
    assert (reports / "bookworm/2.log").read_text() == "the next command runs\n"
    assert _mounts_under(busybox_root) == []


def _dpkg_status(root: Path) -> dict[str, dict[str, str]]:
    """The root's installed packages: name -> their dpkg status fields."""
    packages: dict[str, dict[str, str]] = {}
    for para in (root / "var/lib/dpkg/status").read_text().split("\n\n"):
        fields = dict(m.groups() for m in re.finditer(r"^([\w-]+): (.*)$", para, re.M))
        if fields.get("Status", "").endswith(" installed"):
            packages[fields["Package"]] = fields
    return packages


def _depended_on(fields: dict[str, str]) -> set[str]:
    deps = ", ".join(fields.get(k, "") for k in ("Depends", "Pre-Depends"))
    return {alt.strip().split(" ")[0].split(":")[0] for alt in re.split(r"[,|]", deps) if alt.strip()}


@needs_root
def test_the_fresh_root_lacks_every_package_the_sessions_install() -> None:
    """The check sees a missing install step only because its machine does not have the package already:
    every package the sessions (and scripts/bootstrap.sh) install is absent from the fresh bookworm root,
    save those every Debian has (Essential) or that its own few packages need (apt, python3, ca-certificates
    depend on them). Leaving one of the others out of harness.ospkgs.SETS leaves it missing in there."""
    from harness import ospkgs

    root = newcomer.pristine_root("bookworm")
    wanted = sorted(
        {p for name in ("conformance", "tests") for p in ospkgs.SETS[name]} | {"python3-venv", "git"}
    )
    present = sorted(set(wanted) - set(ospkgs.missing(wanted, root=str(root))))
    status = _dpkg_status(root)
    base = {n for n, f in status.items() if f.get("Priority") == "required"} | set(newcomer.NEWCOMER_PACKAGES)
    needed_by_base = set().union(*(_depended_on(status[n]) for n in base if n in status))
    unexplained = [
        p for p in present if status.get(p, {}).get("Essential") != "yes" and p not in needed_by_base
    ]
    assert unexplained == [], f"the fresh root already has {unexplained}: their install step goes unchecked"
    assert "util-linux" in present  # Essential: the probe looks inside the root, not at this host
    assert "docker.io" not in present and "debootstrap" not in present
