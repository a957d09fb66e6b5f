"""The local backend boots real daemons in private namespaces, reports failed boots clearly, and cleans up."""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.backends.base import Backend, DaemonHandle, DaemonSpec
from harness.backends.local import LocalBackend
from harness.cleanup import Ledger
from harness.client import EngineClient
from harness.errors import BackendStartError, HarnessError, ReadinessTimeout, TargetUnavailable
from harness.targets import Target, resolve_target
from harness.wait import ping_once, wait_until

from ..conftest import pids_in_netns

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the local backend needs root (namespaces)")

HOST_NETNS = os.stat("/proc/self/ns/net").st_ino


class Booter:
    """Boots daemons into short ``/tmp/harness-t*`` workdirs (unix socket paths are limited) and tears every
    one down at the end, removing even the workdirs of failed boots."""

    def __init__(self) -> None:
        self.backend = LocalBackend()
        self.handles: list[DaemonHandle] = []
        self.workdirs: list[str] = []

    @property
    def last_workdir(self) -> str:
        return self.workdirs[-1]

    def __call__(
        self, spec: DaemonSpec | None = None, flavour: Target | None = None, workdir: str | None = None
    ) -> DaemonHandle:
        if workdir is None:
            workdir = tempfile.mkdtemp(prefix="harness-t", dir="/tmp")
        self.workdirs.append(workdir)
        handle = self.backend.start(flavour or resolve_target("refd"), spec or DaemonSpec(), workdir)
        self.handles.append(handle)
        return handle

    def close(self) -> None:
        while self.handles:
            self.backend.teardown(self.handles.pop())
        for workdir in self.workdirs:
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def boot(ledger: Ledger) -> Iterator[Booter]:
    booter = Booter()
    try:
        yield booter
    finally:
        booter.close()


def _ledger_entries(ledger: Ledger) -> list[str]:
    return sorted(os.listdir(ledger.directory)) if os.path.isdir(ledger.directory) else []


def _connector_threads() -> list[str]:
    names = [t.name for t in threading.enumerate()]
    return [n for n in names if n == "netns-connector" or n.startswith("forward-")]


def test_backend_implements_the_protocol() -> None:
    backend: Backend = LocalBackend()  # mypy checks the structure; this checks the signatures
    for name, member in inspect.getmembers(Backend, inspect.isfunction):
        if name.startswith("_"):
            continue
        theirs = inspect.signature(getattr(backend, name))
        ours = inspect.signature(member)
        assert list(theirs.parameters) == list(ours.parameters)[1:], name
    assert backend.name == "local"


# the happy path --------------------------------------------------------------------------------------------
def test_refd_boots_answers_stops_and_leaves_nothing(boot: Booter, ledger: Ledger) -> None:
    handle = boot()
    assert handle.endpoint is not None and handle.endpoint.kind == "unix"
    assert handle.endpoint.address == os.path.join(handle.workdir, "docker.sock")
    assert ping_once(handle.endpoint) == 200
    ino = handle.extras["netns_ino"]
    assert ino and ino != HOST_NETNS  # its own network namespace
    record = _ledger_entries(ledger)
    assert record == [f"{handle.pid}.json"]
    assert f'"netns": {ino}' in Path(ledger.directory, record[0]).read_text()  # the reaper can sweep it
    # something the daemon "left behind" in its netns, escaping its process group
    straggler = subprocess.Popen(["nsenter", f"--net={handle.netns_path}", "setsid", "sleep", "30"])
    try:
        assert wait_until(lambda: straggler.pid in pids_in_netns(ino), 5)  # refd may have helpers there too
        assert handle.stop() == 0
        with pytest.raises(OSError):
            ping_once(handle.endpoint)  # stopped means not answering
        boot.backend.teardown(boot.handles.pop())
        assert straggler.wait(timeout=5) == -signal.SIGKILL
    finally:
        if straggler.poll() is None:
            straggler.kill()
            straggler.wait()
    assert not os.path.exists(handle.workdir)
    assert pids_in_netns(ino) == []
    assert _ledger_entries(ledger) == []


def test_default_command_line(boot: Booter) -> None:
    handle = boot(DaemonSpec(args=["--debug"]))
    wd = handle.workdir
    assert handle.command[len(handle.target.argv) :] == [
        f"--data-root={wd}/root",
        f"--exec-root={wd}/exec",
        f"--pidfile={wd}/daemon.pid",
        f"--config-file={wd}/daemon.json",
        f"--cgroup-parent=/{os.path.basename(wd)}",
        f"-H=unix://{wd}/docker.sock",
        "--debug",
    ]
    assert Path(handle.config_path).read_text() == "{}\n"


def test_teardown_removes_the_daemons_cgroup_parent(boot: Booter) -> None:
    """Containers a daemon leaves behind (a forced exit, a kill) are swept with its private cgroup parent."""
    from harness.backends.local import cgroup_parent, remove_cgroup_tree

    handle = boot()
    parent = cgroup_parent(handle)
    leaf = f"/sys/fs/cgroup/pids{parent}/leftover"
    os.makedirs(leaf)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        with open(os.path.join(leaf, "cgroup.procs"), "w") as fh:
            fh.write(str(sleeper.pid))
        assert remove_cgroup_tree(parent) >= 2
        assert sleeper.wait(10) == -9 and not os.path.exists(f"/sys/fs/cgroup/pids{parent}")
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()
    assert remove_cgroup_tree("/not-ours") == 0  # only the harness's own parents are ever touched


@pytest.mark.parametrize("graceful", [False, True], ids=["throwaway", "graceful"])
def test_teardown_kills_a_throwaway_daemon_and_stops_a_kept_one_with_sigterm(
    boot: Booter, ledger: Ledger, graceful: bool
) -> None:
    """A throwaway daemon's shutdown is not waited for (SIGKILL); one with a kept data-root gets SIGTERM.

    Either way its container, namespace members, cgroup parent, ledger entry and files are gone after."""
    from harness.backends.local import cgroup_parent
    from harness.testimage import load_test_image

    handle = boot(DaemonSpec(graceful_teardown=graceful))
    assert handle.endpoint is not None
    image = load_test_image(handle.endpoint)
    client = EngineClient(handle.endpoint)
    try:
        made = client.post("/containers/create", json={"Image": image, "Cmd": ["sleep", "300"]})
        assert client.post(f"/containers/{made.json()['Id']}/start").status_code == 204
    finally:
        client.close()
    ino, parent, proc = handle.extras["netns_ino"], cgroup_parent(handle), handle.process
    assert proc is not None
    boot.backend.teardown(boot.handles.pop())
    assert proc.returncode == (0 if graceful else -signal.SIGKILL)
    assert pids_in_netns(ino) == [] and _ledger_entries(ledger) == []
    assert not [d for d in os.listdir("/sys/fs/cgroup/pids") if d == parent.strip("/")]
    assert not os.path.exists(handle.workdir)


def test_restart_keeps_the_workdir_and_answers_again(boot: Booter) -> None:
    handle = boot()
    first = handle.pid
    boot.backend.restart(handle)
    assert handle.pid != first
    assert handle.endpoint is not None and ping_once(handle.endpoint) == 200


# failed boots ----------------------------------------------------------------------------------------------
def test_daemon_exiting_during_boot_is_a_start_error_with_the_log(boot: Booter, ledger: Ledger) -> None:
    with pytest.raises(BackendStartError) as info:
        boot(DaemonSpec(args=["--nope"]))
    assert "unknown flag: --nope" in str(info.value)
    assert "refd exited with status 1 while booting" in str(info.value)
    assert info.value.returncode == 1 and "--nope" in info.value.command
    assert _ledger_entries(ledger) == []
    assert os.path.isdir(boot.last_workdir)  # the log stays for the caller, who owns the workdir


def test_start_error_with_a_tcp_host_closes_its_forwarders(boot: Booter) -> None:
    before = _connector_threads()
    with pytest.raises(BackendStartError, match="unknown flag: --nope"):
        boot(DaemonSpec(args=["--nope"], hosts=["tcp://127.0.0.1:2375"]))
    assert wait_until(lambda: _connector_threads() == before, 5), _connector_threads()


@pytest.fixture
def sleeper_target(tmp_path: Path) -> Target:
    """A "daemon" that ignores its flags and never listens; it notes its pid first."""
    script = tmp_path / "sleeper.sh"
    script.write_text(f"#!/bin/sh\necho $$ > {tmp_path}/sleeper.pid\nexec sleep 30\n")
    script.chmod(0o755)
    return Target("sleeper", "dockerd", (str(script),), "it is a test script")


def test_daemon_that_never_answers_is_a_readiness_timeout(
    boot: Booter, ledger: Ledger, tmp_path: Path, sleeper_target: Target
) -> None:
    with pytest.raises(ReadinessTimeout) as info:
        boot(DaemonSpec(timeout=1), sleeper_target)
    message = str(info.value)
    assert "sleeper was not ready after 1." in message
    assert f"tried: GET /_ping on unix://{boot.last_workdir}/docker.sock" in message
    assert "last error:" in message
    pid = int((tmp_path / "sleeper.pid").read_text())
    assert not os.path.exists(f"/proc/{pid}")  # the stuck daemon was killed, not leaked
    assert _ledger_entries(ledger) == []


def test_missing_binary_names_the_package(boot: Booter, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("harness.targets.shutil.which", lambda name: "/nonexistent/dockerd")
    with pytest.raises(
        TargetUnavailable, match=r"binary /nonexistent/dockerd not found; apt-get install docker\.io"
    ):
        boot(flavour=resolve_target("dockerd"))
    assert os.listdir(boot.last_workdir) == []  # nothing was started


@pytest.mark.skipif(not os.access("/usr/sbin/dockerd", os.X_OK), reason="dockerd is not installed")
def test_workdir_too_long_for_unix_sockets_is_refused_up_front(boot: Booter, tmp_path: Path) -> None:
    workdir = str(tmp_path / ("w" * 40))
    with pytest.raises(
        HarnessError, match=r"too long for the daemon's unix sockets.*shorter HARNESS_WORKDIR"
    ):
        boot(flavour=resolve_target("dockerd"), workdir=workdir)
    assert not os.path.exists(workdir)


# listeners -------------------------------------------------------------------------------------------------
def test_tcp_host_is_reached_through_a_forwarder(boot: Booter) -> None:
    handle = boot(DaemonSpec(hosts=["tcp://127.0.0.1:2375"]))
    assert handle.endpoint is not None and handle.endpoint.kind == "tcp"
    assert handle.endpoint.address != "127.0.0.1:2375"  # a host-side loopback port relaying into the netns
    client = EngineClient(handle.endpoint)
    try:
        assert client.get("/_ping").text == "OK"
    finally:
        client.close()
    not_listening = boot.backend.forward(handle, 2376)
    with pytest.raises(OSError):
        ping_once(not_listening)


def test_socket_activation(boot: Booter, tmp_path: Path) -> None:
    path = str(tmp_path / "activated.sock")
    handle = boot(DaemonSpec(hosts=["fd://"], activation=[path]))
    assert handle.endpoints[0].address == path
    assert ping_once(handle.endpoints[0]) == 200


def test_socket_activation_without_sockets_fails(boot: Booter) -> None:
    handle = boot(DaemonSpec(hosts=["fd://"], wait=False))
    assert handle.wait_exit(30) == 1
    assert "no sockets found via socket activation" in handle.logs()


def test_socket_activation_leaves_this_processes_fds_alone(boot: Booter, tmp_path: Path) -> None:
    probe = 100
    try:
        os.fstat(probe)
        pytest.skip("fd 100 is in use in this process")
    except OSError:
        pass
    with open(tmp_path / "precious", "w") as fh:
        os.dup2(fh.fileno(), probe)
        try:
            handle = boot(
                DaemonSpec(hosts=["fd://"], activation=[str(tmp_path / "a.sock"), str(tmp_path / "b.sock")])
            )
            assert os.fstat(probe).st_ino == os.fstat(fh.fileno()).st_ino
            assert [ping_once(e) for e in handle.endpoints[:2]] == [200, 200]
        finally:
            os.close(probe)


def test_notify_collects_ready(boot: Booter) -> None:
    handle = boot(DaemonSpec(notify=True))
    assert wait_until(lambda: "READY=1" in handle.notify_messages(), 10)
    assert handle.notify_messages() == ["READY=1"]


def test_without_notify_nothing_is_collected(boot: Booter) -> None:
    handle = boot()
    assert handle.notify_listener is None and handle.notify_messages() == []


# dockerd ---------------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.skipif(not os.access("/usr/sbin/dockerd", os.X_OK), reason="dockerd is not installed")
def test_dockerd_boots_the_same_way(boot: Booter, ledger: Ledger) -> None:
    """The host's own dockerd (Debian 12: 20.10, Debian 13: 26.1) answers as the version its binary prints."""
    flavour = resolve_target("dockerd")
    printed = subprocess.run([*flavour.argv, "--version"], capture_output=True, text=True, timeout=30).stdout
    match = re.fullmatch(r"Docker version (\d+\.\d+\.\S+), build \S+\n", printed)
    assert match, f"{flavour.argv[0]} --version printed {printed!r}"
    handle = boot(flavour=flavour)
    assert handle.endpoint is not None and ping_once(handle.endpoint) == 200
    client = EngineClient(handle.endpoint)
    try:
        assert client.get("/version").json()["Version"] == match.group(1)  # that binary, not another dockerd
    finally:
        client.close()
    ino = handle.extras["netns_ino"]
    assert handle.stop() == 0
    boot.backend.teardown(boot.handles.pop())
    assert not os.path.exists(handle.workdir)
    assert wait_until(lambda: pids_in_netns(ino) == [], 5)  # containerd and shims went with it
    assert _ledger_entries(ledger) == []


def test_a_daemon_that_remaps_users_gets_private_account_files(boot: Booter) -> None:
    """``--userns-remap=default`` makes dockerd create ``dockremap``: never in the host's /etc."""
    handle = boot(DaemonSpec(args=["--userns-remap=default"]))
    with open(f"/proc/{handle.pid}/mountinfo") as fh:
        theirs = [line.split()[4] for line in fh if " harness-etc " in line or " harness-varlog " in line]
    assert theirs == ["/etc", "/var/log"]
    with open("/proc/self/mountinfo") as fh:
        assert not [line for line in fh if " harness-etc " in line or f"{handle.workdir}/private" in line]
    assert "HARNESS_CALLER_MNT_NS" not in Path(f"/proc/{handle.pid}/environ").read_text()
    # the remapped root traverses to <data-root>/<uid>.<gid>: dockerd refuses a data-root without o+x above it
    assert os.stat(handle.workdir).st_mode & 0o777 == 0o711


def test_unix_socket_is_in_the_shared_filesystem(boot: Booter) -> None:
    handle = boot()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(handle.socket_path)  # no forwarding needed: mount namespaces share this tree


# the kept mount namespace (live-restore) --------------------------------------------------------------------
def _mark_mount_ns(handle: DaemonHandle) -> None:
    """Mount a tmpfs named ``harness-marker`` in the daemon's mount namespace only."""
    marker = os.path.join(handle.workdir, "marker")
    os.makedirs(marker, exist_ok=True)
    subprocess.run(
        ["nsenter", f"--mount=/proc/{handle.pid}/ns/mnt", "mount", "-t", "tmpfs", "harness-marker", marker],
        check=True,
    )


def _sees_marker(pid: int) -> bool:
    with open(f"/proc/{pid}/mountinfo") as fh:
        return any(" harness-marker " in line for line in fh)


def _as_dockerd(target: Target) -> Target:
    """refd's command line as a target of kind ``dockerd``, whose mount namespace the backend keeps."""
    return dataclasses.replace(target, name="refd-as-dockerd", kind="dockerd")


def test_a_dockerd_restarts_in_its_kept_mount_namespace(boot: Booter) -> None:
    handle = boot(flavour=_as_dockerd(resolve_target("refd")))
    _mark_mount_ns(handle)
    assert not _sees_marker(os.getpid())
    boot.backend.restart(handle)
    assert handle.endpoint is not None and ping_once(handle.endpoint) == 200
    assert _sees_marker(handle.pid)  # its mounts (sandbox netns files, overlays, /run) are still there
    boot.backend.teardown(boot.handles.pop())
    with open("/proc/self/mountinfo") as fh:
        assert [line for line in fh if handle.workdir in line] == []  # the kept namespace files are unmounted


def test_refd_restarts_in_a_fresh_mount_namespace(boot: Booter) -> None:
    handle = boot()
    _mark_mount_ns(handle)
    assert _sees_marker(handle.pid)
    boot.backend.restart(handle)
    assert handle.endpoint is not None and ping_once(handle.endpoint) == 200
    assert not _sees_marker(handle.pid)


def test_reaping_a_killed_sessions_dockerd_unmounts_its_kept_namespaces(boot: Booter, ledger: Ledger) -> None:
    handle = boot(flavour=_as_dockerd(resolve_target("refd")))
    boot.backend.restart(handle)  # the kept mount namespace is in use
    record_path = os.path.join(ledger.directory, f"{handle.pid}.json")
    with open(record_path) as fh:
        record = json.load(fh)
    record["owner_start"] = "0"  # as if the session that booted it had been killed
    with open(record_path, "w") as fh:
        json.dump(record, fh)
    boot.handles.remove(handle)
    assert [r for r in ledger.reap() if r.startswith(f"pid {handle.pid} ")]
    assert handle.process is not None and handle.process.wait(timeout=10) is not None
    with open("/proc/self/mountinfo") as fh:
        assert [line for line in fh if handle.workdir in line] == []
    assert not os.path.exists(handle.workdir)


def test_a_zombie_containerds_pidfile_is_forgotten_before_a_restart(tmp_path: Path) -> None:
    """dockerd 20.10 takes a dead containerd's pid for a live one while PID 1 has not reaped it yet."""
    from harness.backends.local import forget_zombie_pidfiles

    handle = DaemonHandle(resolve_target("refd"), DaemonSpec(), str(tmp_path), [])
    pidfile = Path(handle.exec_root) / "containerd" / "containerd.pid"
    pidfile.parent.mkdir(parents=True)
    child = subprocess.Popen(["true"])
    assert wait_until(
        lambda: Path(f"/proc/{child.pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z", 10
    )
    try:
        pidfile.write_text(str(child.pid))
        assert forget_zombie_pidfiles(handle) == [str(pidfile)] and not pidfile.exists()
    finally:
        child.wait()
    pidfile.write_text(str(os.getpid()))  # a live containerd's pidfile stays
    assert forget_zombie_pidfiles(handle) == [] and pidfile.exists()
    pidfile.write_text("garbage")
    assert forget_zombie_pidfiles(handle) == []


_EINVAL = "unshare: mount /proc/9599/ns/mnt on /tmp/harness-dockerd-x/ns/mnt failed: Invalid argument"


def test_a_failure_of_the_namespace_wrapper_is_told_from_the_daemons() -> None:
    from harness.backends.local import namespace_step_failed

    assert namespace_step_failed(f"some line\n{_EINVAL}\n")
    assert namespace_step_failed("nsenter: reassociate to namespace 'ns/net' failed: Invalid argument")
    assert not namespace_step_failed("unknown flag: --nope\nSee 'refd --help'.")
    assert not namespace_step_failed("")


def test_propagation_tags_of_a_mountinfo_line() -> None:
    from harness.backends.local import _propagation_tags

    shared = "36 35 98:0 /mnt1 /mnt1 rw,noatime master:1 shared:2 - ext3 /dev/root rw,errors=continue"
    private = "36 35 0:31 /x /tmp/h/ns rw,nosuid,nodev - tmpfs tmpfs rw,mode=1777"
    assert _propagation_tags(shared) == ["master:1", "shared:2"]
    assert _propagation_tags(private) == []


def test_a_boot_whose_namespace_wrapper_failed_is_tried_again_with_unshare_pinned(
    boot: Booter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The retry pins unshare to a CPU (a namespace numbered there binds); the daemon gets every CPU back."""
    real_spawn = LocalBackend._spawn
    calls: list[int | None] = []

    def spawn(self: LocalBackend, handle: DaemonHandle, cpu: int | None = None) -> None:
        calls.append(cpu)
        if len(calls) == 1:
            raise BackendStartError(handle.target.name, handle.command, 1, _EINVAL)
        real_spawn(self, handle, cpu)

    monkeypatch.setattr(LocalBackend, "_spawn", spawn)
    handle = boot()
    first_cpu = min(os.sched_getaffinity(0))
    assert calls == [None, first_cpu]
    assert "the namespace wrapper failed before the daemon ran" in handle.extras["boot_retry"]
    assert _EINVAL in handle.extras["boot_retry"]
    assert handle.extras["boot_retry"].endswith(f"booted with unshare on CPU {first_cpu}")
    assert handle.endpoint is not None and ping_once(handle.endpoint) == 200
    assert os.sched_getaffinity(handle.pid) == os.sched_getaffinity(0)  # only unshare was pinned


def test_a_wrapper_failing_on_every_cpu_names_each_and_a_daemon_failure_is_not_retried(
    boot: Booter, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int | None] = []

    def spawn(self: LocalBackend, handle: DaemonHandle, cpu: int | None = None) -> None:
        calls.append(cpu)
        raise BackendStartError(handle.target.name, handle.command, 1, f"{_EINVAL} (attempt {len(calls)})")

    monkeypatch.setattr(LocalBackend, "_spawn", spawn)
    with pytest.raises(BackendStartError) as info:
        boot()
    cpus = sorted(os.sched_getaffinity(0))
    assert calls == [None, *cpus]
    for n, cpu in enumerate(cpus, start=2):
        assert f"on CPU {cpu}: {_EINVAL} (attempt {n})" in str(info.value)
    assert "(attempt 1)" in str(info.value) and "failed on every attempt" in str(info.value)
    assert "PROPAGATION" in str(info.value)

    monkeypatch.undo()
    real_spawn = LocalBackend._spawn
    daemon_calls: list[str] = []

    def counted(self: LocalBackend, handle: DaemonHandle, cpu: int | None = None) -> None:
        daemon_calls.append(handle.workdir)
        real_spawn(self, handle, cpu)

    monkeypatch.setattr(LocalBackend, "_spawn", counted)
    with pytest.raises(BackendStartError, match="unknown flag: --nope"):
        boot(DaemonSpec(args=["--nope"]))
    assert len(daemon_calls) == 1
