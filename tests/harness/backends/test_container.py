"""The container backend: privilege detection, the Popen look-alike and the bind mounts (fast, no engine);
then real daemons in containers on a private engine (root, the cached dockerd-28 rootfs; slow)."""

from __future__ import annotations

import inspect
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from harness import container_engine
from harness.backends import get_backend
from harness.backends.base import Backend, DaemonHandle, DaemonSpec
from harness.backends.container import ContainerBackend, ContainerProcess
from harness.cleanup import Ledger
from harness.client import EngineClient
from harness.config import BACKENDS, resolve_config
from harness.container_engine import (
    LABEL_PREFIX,
    Engine,
    engine_choice,
    missing_capabilities,
    owner_labels,
    security_settings,
)
from harness.container_images import image_tag, python_rootfs, rootfs_for
from harness.errors import BackendStartError, ReadinessTimeout, TargetUnavailable
from harness.rootfs import cache_root, locate
from harness.targets import Target, resolve_target
from harness.wait import ping_once, wait_until

# -- the protocol, over every backend ----------------------------------------------------------------------


@pytest.mark.parametrize("name", BACKENDS)
def test_every_backend_implements_the_protocol(name: str) -> None:
    backend: Backend = get_backend(name)  # mypy checks the structure; this checks the signatures
    for member_name, member in inspect.getmembers(Backend, inspect.isfunction):
        if member_name.startswith("_"):
            continue
        theirs = inspect.signature(getattr(backend, member_name))
        ours = inspect.signature(member)
        assert list(theirs.parameters) == list(ours.parameters)[1:], (name, member_name)
    assert backend.name == name


def test_container_is_a_backend_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    options = {"targets": "dockerd-28", "backend": "container", "keep_daemons": False}
    cfg = resolve_config(lambda n: options.get(n), lambda n: "")
    assert cfg.backend == "container"
    assert isinstance(get_backend("container"), ContainerBackend)


# -- privileges --------------------------------------------------------------------------------------------


def test_missing_capabilities_reads_the_bounding_set() -> None:
    assert missing_capabilities(0x1FFFEFFFFFF, 40) == ["SYS_RESOURCE"]  # this machine
    assert missing_capabilities((1 << 41) - 1, 40) == []
    assert missing_capabilities(0x3FFFFFFFFF & ~(1 << 21), 37) == ["SYS_ADMIN"]
    assert missing_capabilities((1 << 41) - 1, 42) == ["CAP_41", "CAP_42"]  # newer than our table
    here = missing_capabilities()
    assert all(isinstance(name, str) for name in here)


class _FakeContainer:
    def __init__(self, outcome: str | None) -> None:
        self.outcome = outcome
        self.removed = False

    def start(self) -> None:
        if self.outcome:
            raise docker.errors.APIError("start failed", explanation=self.outcome)

    def wait(self, timeout: float) -> dict[str, int]:
        return {"StatusCode": 0}

    def logs(self) -> bytes:
        return b""

    def remove(self, force: bool = False) -> None:
        self.removed = True


class _FakeContainers:
    """Answers each create with the outcome of the first rule the kwargs match (None: it works)."""

    def __init__(self, rules: list[tuple[Any, str | None]]) -> None:
        self.rules = rules
        self.calls: list[dict[str, Any]] = []
        self.made: list[_FakeContainer] = []

    def create(self, image: str, command: list[str], **kwargs: Any) -> _FakeContainer:
        self.calls.append(kwargs)
        outcome = next((o for match, o in self.rules if match(kwargs)), None)
        self.made.append(_FakeContainer(outcome))
        return self.made[-1]


def _engine(rules: list[tuple[Any, str | None]]) -> tuple[Engine, _FakeContainers]:
    containers = _FakeContainers(rules)
    client = type("Client", (), {"containers": containers})()
    return Engine("unix:///fake.sock", client, {}, "a fake engine"), containers


CAPS = "unable to start container process: unable to apply caps: operation not permitted"


def test_privileged_when_the_host_allows_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(container_engine, "missing_capabilities", lambda: [])
    engine, made = _engine([])
    chosen = security_settings(engine, "img", {"network_mode": "none"})
    assert chosen.privileged and chosen.kwargs == {"privileged": True}
    assert [{k: v for k, v in c.items() if k != "labels"} for c in made.calls] == [
        {"network_mode": "none", "privileged": True}  # proven once, with the probe's other options
    ]
    assert security_settings(engine, "img", {}) is chosen and len(made.calls) == 1  # cached per engine
    assert all(c.removed for c in made.made)


def test_a_missing_capability_gives_all_the_others(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(container_engine, "missing_capabilities", lambda: ["SYS_RESOURCE"])
    engine, made = _engine([(lambda kw: kw.get("privileged"), CAPS)])
    chosen = security_settings(engine, "img", {})
    assert not chosen.privileged
    assert chosen.kwargs["cap_add"] == ["ALL"] and chosen.kwargs["cap_drop"] == ["SYS_RESOURCE"]
    assert {"seccomp=unconfined", "apparmor=unconfined"} <= set(chosen.kwargs["security_opt"])
    assert chosen.kwargs["device_cgroup_rules"] == ["a *:* rwm"]
    assert len(made.calls) == 1  # privileged is not even tried: runc could not grant CAP_SYS_RESOURCE
    assert "bounding set lacks CAP_SYS_RESOURCE" in chosen.note
    assert "cap_add=ALL minus CAP_SYS_RESOURCE" in chosen.note
    assert chosen.note in caplog.text  # said in the log


def test_privileged_failing_anyway_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(container_engine, "missing_capabilities", lambda: [])
    engine, _ = _engine([(lambda kw: kw.get("privileged"), "privileged mode is not allowed")])
    chosen = security_settings(engine, "img", {})
    assert not chosen.privileged and chosen.kwargs["cap_drop"] == []
    assert "privileged containers fail on a fake engine (privileged mode is not allowed)" in chosen.note


def test_a_capability_the_engine_does_not_know_is_not_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(container_engine, "missing_capabilities", lambda: ["SYS_RESOURCE", "BPF"])
    engine, made = _engine([(lambda kw: "BPF" in kw.get("cap_drop", []), 'unknown capability: "CAP_BPF"')])
    chosen = security_settings(engine, "img", {})
    assert chosen.kwargs["cap_drop"] == ["SYS_RESOURCE"]
    assert len(made.calls) == 2


def test_a_capability_the_engine_cannot_drop_is_not_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    """dockerd 26.1 refuses to drop a capability outside its own bounding set (seen on Debian 13)."""
    monkeypatch.setattr(container_engine, "missing_capabilities", lambda: ["SYS_RESOURCE"])
    refusal = (
        "invalid CapDrop: capability not supported by your kernel or not available in the current "
        'environment: "CAP_SYS_RESOURCE"'
    )
    engine, made = _engine([(lambda kw: "SYS_RESOURCE" in kw.get("cap_drop", []), refusal)])
    chosen = security_settings(engine, "img", {})
    assert chosen.kwargs["cap_add"] == ["ALL"] and chosen.kwargs["cap_drop"] == []
    assert len(made.calls) == 2


def test_no_working_privileges_is_a_start_error_listing_each_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(container_engine, "missing_capabilities", lambda: [])
    engine, _ = _engine([(lambda kw: True, "rootless engine says no")])
    with pytest.raises(BackendStartError) as info:
        security_settings(engine, "img", {})
    text = str(info.value)
    assert "no privilege set lets a container start on a fake engine" in text
    assert "privileged: rootless engine says no" in text and "cap_add=ALL cap_drop=[]" in text


# -- which engine ------------------------------------------------------------------------------------------


def test_engine_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HARNESS_CONTAINER_ENGINE", raising=False)
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    assert engine_choice() == ("private", "dockerd")
    monkeypatch.setenv("DOCKER_HOST", "unix:///var/run/docker.sock")
    assert engine_choice() == ("url", "unix:///var/run/docker.sock")
    monkeypatch.setenv("HARNESS_CONTAINER_ENGINE", "refd")  # wins over DOCKER_HOST
    assert engine_choice() == ("private", "refd")
    monkeypatch.setenv("HARNESS_CONTAINER_ENGINE", "tcp://127.0.0.1:2375")
    assert engine_choice() == ("url", "tcp://127.0.0.1:2375")


def test_an_engine_that_does_not_answer_is_unavailable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HARNESS_CONTAINER_ENGINE", f"unix://{tmp_path}/nobody.sock")
    with pytest.raises(TargetUnavailable, match=r"the engine unix://.*/nobody.sock does not answer"):
        container_engine._connect(os.environ["HARNESS_CONTAINER_ENGINE"], None)


def test_owner_labels_and_who_is_gone() -> None:
    labels = owner_labels("/tmp/harness-x", "dockerd-28")
    assert labels[LABEL_PREFIX + "workdir"] == "/tmp/harness-x"
    assert not container_engine._owner_gone(labels)  # this process
    dead = {**labels, LABEL_PREFIX + "owner": "1:0"}  # pid 1 did not start at tick 0
    assert container_engine._owner_gone(dead)
    elsewhere = {**dead, LABEL_PREFIX + "boot": "another-boot"}
    assert not container_engine._owner_gone(elsewhere)  # never judge another machine's containers


# -- images ------------------------------------------------------------------------------------------------


def test_images_are_named_by_their_rootfs_hash() -> None:
    entry = locate("dockerd-28")
    assert image_tag(entry) == f"harness/dockerd-28:{entry.name.rsplit('-', 1)[1]}-i1"
    assert rootfs_for(resolve_target("dockerd-28")) == entry
    py = python_rootfs()
    assert rootfs_for(resolve_target("refd")) == py == rootfs_for(resolve_target("dockerd"))
    assert os.path.dirname(py.path) == cache_root() and os.path.basename(py.path).startswith("bookworm-")
    assert "python3" in py.recipe.packages and "docker.io" in py.recipe.packages
    with pytest.raises(TargetUnavailable, match="already runs"):
        rootfs_for(resolve_target("external"))


# -- the Popen look-alike ----------------------------------------------------------------------------------


class _FakeAPI:
    def __init__(self, state: dict[str, Any] | None) -> None:
        self.state = state

    def exec_inspect(self, exec_id: str) -> dict[str, Any]:
        if self.state is None:
            raise docker.errors.NotFound("no such exec instance")
        return self.state


def test_daemon_process_follows_the_host_process_then_asks_the_engine() -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    api = _FakeAPI({"Running": True, "Pid": sleeper.pid, "ExitCode": None})
    proc = ContainerProcess(api, "abc", sleeper.pid, ["dockerd"])
    try:
        assert proc.poll() is None and proc.pid == sleeper.pid
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=0.1)
        proc.send_signal(signal.SIGTERM)
        sleeper.wait()
        api.state = {"Running": False, "Pid": 0, "ExitCode": 143}
        assert proc.wait(timeout=5) == 143  # the engine's code: 128 + SIGTERM
        proc.kill()  # a no-op once it exited
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()
    gone = ContainerProcess(_FakeAPI(None), "abc", 0, ["dockerd"])
    assert gone.poll() == -signal.SIGKILL  # removed under our feet: treated as killed
    del proc, gone  # Popen.__del__ must not trip over what was never spawned


# -- what the container gets -------------------------------------------------------------------------------


def _handle(target: Target, spec: DaemonSpec, workdir: str) -> DaemonHandle:
    backend = ContainerBackend()
    handle = DaemonHandle(target=target, spec=spec, workdir=workdir, command=[])
    handle.command = backend.command(target, spec, handle)
    return handle


def test_refd_runs_on_the_images_python_from_the_bound_tree(tmp_path: Path) -> None:
    refd = resolve_target("refd")
    handle = _handle(refd, DaemonSpec(), "/tmp/harness-refd-x")
    assert handle.command[:4] == ["/usr/bin/python3", "-S", "-m", "harness.daemon"]
    binds = ContainerBackend()._volumes(handle)
    root = refd.env["PYTHONPATH"]
    assert (root, root, "ro") in binds
    assert ("/tmp", "/tmp", "rw") in binds and ("/sys/fs/cgroup", "/sys/fs/cgroup", "rw") in binds
    assert not any(h == "/tmp/harness-refd-x" for h, _, _ in binds)  # under /tmp already
    system = Target("refd", "refd", ("python",), env={"PYTHONPATH": "/usr/lib/python3/dist-packages"})
    assert ContainerBackend._project_mount(system) == (
        "/usr/lib/python3/dist-packages",
        "/opt/docker-conformance-harness",  # never over the image's own /usr
    )


def test_paths_in_flags_are_bound_at_the_same_path(tmp_path: Path) -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    if here == "/tmp" or here.startswith("/tmp/"):  # a checkout under /tmp (CI's clone) is covered by /tmp
        here = os.path.dirname(os.path.abspath(os.__file__))
    workdir = "/run/harness-unit-test-x"  # not under /tmp: bound itself (/run is otherwise the image's)
    spec = DaemonSpec(args=[f"--tlscacert={tmp_path}/ca.pem", f"--tlscert={here}/cert.pem"])
    handle = _handle(resolve_target("dockerd-28"), spec, workdir)
    binds = ContainerBackend()._volumes(handle)
    assert (workdir, workdir, "rw") in binds and (here, here, "rw") in binds
    assert not any(h.startswith(str(tmp_path)) for h, _, _ in binds)  # under /tmp: covered already
    assert handle.command[0] == "/usr/sbin/dockerd"


def test_external_is_refused_before_anything_boots(tmp_path: Path) -> None:
    with pytest.raises(TargetUnavailable, match="nothing to boot"):
        ContainerBackend().start(Target("external", "external"), DaemonSpec(), str(tmp_path))
    assert os.listdir(tmp_path) == []


# -- real daemons in containers (root, cached dockerd-28 rootfs; slow) --------------------------------------


def _needs_real_engine() -> None:
    if os.geteuid() != 0:
        pytest.skip("the container backend's private engine needs root")
    if not os.access("/usr/sbin/dockerd", os.X_OK):
        pytest.skip("the private engine is the host's dockerd, which is not installed")
    entry = locate("dockerd-28")
    if not entry.is_built():
        pytest.skip(
            f"the dockerd-28 rootfs is not cached ({entry.path}): python -m harness.rootfs build dockerd-28"
        )


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    """This process's private engine, booted once for the module (into the real ledger), torn down after."""
    _needs_real_engine()
    for key in ("HARNESS_CONTAINER_ENGINE", "DOCKER_HOST"):
        if os.environ.get(key):
            pytest.skip(f"{key} is set: these tests prove the private engine")
    container_engine.close_shared_engine()
    shared = container_engine.shared_engine()
    try:
        yield shared
    finally:
        handle = shared.private
        container_engine.close_shared_engine()
        assert handle.returncode is not None and not os.path.exists(handle.workdir)
        assert not os.path.exists(f"/sys/fs/cgroup/pids/{os.path.basename(handle.workdir)}")


class Booter:
    def __init__(self) -> None:
        self.backend = ContainerBackend()
        self.handles: list[DaemonHandle] = []
        self.workdirs: list[str] = []

    @property
    def last_workdir(self) -> str:
        return self.workdirs[-1]

    def __call__(self, spec: DaemonSpec | None = None, flavour: str = "dockerd-28") -> DaemonHandle:
        workdir = tempfile.mkdtemp(prefix="harness-tc", dir="/tmp")
        self.workdirs.append(workdir)
        handle = self.backend.start(resolve_target(flavour), spec or DaemonSpec(), workdir)
        self.handles.append(handle)
        return handle

    def close(self) -> None:
        while self.handles:
            self.backend.teardown(self.handles.pop())
        for workdir in self.workdirs:
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def boot(engine: Engine, ledger: Ledger) -> Iterator[Booter]:
    booter = Booter()
    try:
        yield booter
    finally:
        booter.close()


def _harness_containers(engine: Engine) -> list[str]:
    found = engine.client.containers.list(all=True, filters={"label": LABEL_PREFIX + "session"})
    return [c.name for c in found]


def _ledger_entries(ledger: Ledger) -> list[str]:
    return sorted(os.listdir(ledger.directory)) if os.path.isdir(ledger.directory) else []


@pytest.mark.slow
@pytest.mark.requires_root
@pytest.mark.requires_dockerd
def test_dockerd_28_boots_in_a_container_runs_a_container_and_leaves_nothing(
    boot: Booter, engine: Engine, ledger: Ledger
) -> None:
    from harness.testimage import load_test_image

    started = time.monotonic()
    handle = boot()
    boot_seconds = time.monotonic() - started
    assert handle.endpoint is not None and handle.endpoint.address == handle.socket_path
    client = EngineClient(handle.endpoint)
    try:
        assert client.get("/version").json()["Version"] == locate("dockerd-28").dockerd_version
        info = client.get("/info").json()
        assert info["DockerRootDir"] == handle.data_root and info["Driver"] == "overlay2"
        image = load_test_image(handle.endpoint)
        created = client.post(
            "/containers/create", json={"Image": image, "Cmd": ["sh", "-c", "echo nested"]}
        ).json()
        assert client.post(f"/containers/{created['Id']}/start").status_code == 204
        assert client.post(f"/containers/{created['Id']}/wait").json()["StatusCode"] == 0
    finally:
        client.close()
    assert Path(handle.pidfile).read_text().strip() == str(handle.pid)  # the host's pid namespace
    cid = handle.extras["container_id"]
    attrs = engine.client.containers.get(cid).attrs
    assert attrs["HostConfig"]["NetworkMode"] == "none" and attrs["HostConfig"]["PidMode"] == "host"
    assert attrs["Config"]["Labels"][LABEL_PREFIX + "workdir"] == handle.workdir
    tmp = next(m for m in attrs["HostConfig"]["Mounts"] if m["Target"] == "/tmp")
    assert tmp["BindOptions"]["NonRecursive"] is True  # other daemons' mounts under /tmp stay out
    ino = handle.extras["netns_ino"]
    assert ino and ino != os.stat("/proc/self/ns/net").st_ino  # its own network namespace
    assert _ledger_entries(ledger) == [f"{handle.pid}.json"]
    assert handle.extras["security"]  # what privileges it got, and why
    cgroup = f"/sys/fs/cgroup/pids/{os.path.basename(handle.workdir)}"
    assert os.path.isdir(cgroup)  # the nested container's cgroup parent, on the host's tree
    assert handle.stop() == 0
    boot.backend.teardown(boot.handles.pop())
    assert _harness_containers(engine) == []
    assert not os.path.exists(handle.workdir) and not os.path.exists(cgroup)
    assert _ledger_entries(ledger) == []
    print(f"dockerd-28 in a container answered after {boot_seconds:.2f}s")


@pytest.mark.slow
@pytest.mark.requires_root
@pytest.mark.requires_dockerd
def test_restart_keeps_live_restored_containers_and_tcp_hosts_work(boot: Booter) -> None:
    from harness.testimage import load_test_image

    handle = boot(DaemonSpec(args=["--live-restore"], extra_hosts=["tcp://127.0.0.1:2375"]))
    tcp = handle.endpoint_for("tcp")
    assert tcp.address.startswith("127.0.0.1:") and ping_once(tcp) == 200  # forwarded into its netns
    image = load_test_image(tcp)
    client = EngineClient(tcp)
    try:
        body = {"Image": image, "Cmd": ["sleep", "120"], "StopTimeout": 1}
        cid = client.post("/containers/create", json=body).json()["Id"]
        assert client.post(f"/containers/{cid}/start").status_code == 204
    finally:
        client.close()
    first = handle.pid
    boot.backend.restart(handle)
    assert handle.pid != first and Path(handle.pidfile).read_text().strip() == str(handle.pid)
    assert handle.endpoint is not None and ping_once(handle.endpoint) == 200
    client = EngineClient(handle.endpoint_for("tcp"))
    try:
        # the daemon was exec'd again into the same container: the shim and the container lived on
        assert client.get(f"/containers/{cid}/json").json()["State"]["Running"] is True
        assert client.post(f"/containers/{cid}/stop?t=1", timeout=60).status_code == 204
    finally:
        client.close()


@pytest.mark.slow
@pytest.mark.requires_root
@pytest.mark.requires_dockerd
def test_socket_activation_binds_inside_the_container(boot: Booter) -> None:
    where = tempfile.mkdtemp(prefix="harness-act", dir="/tmp")
    try:
        paths = [os.path.join(where, "a.sock"), os.path.join(where, "b.sock")]
        handle = boot(DaemonSpec(hosts=["fd://"], activation=paths))
        assert [e.address for e in handle.endpoints] == paths
        assert [ping_once(e) for e in handle.endpoints] == [200, 200]
        assert oct(os.stat(paths[0]).st_mode & 0o777) == "0o660"
        bad = boot(DaemonSpec(hosts=["fd://9"], activation=paths[:1], wait=False))
        assert bad.wait_exit(30) == 1 and "too few socket activated files" in bad.logs()
    finally:
        boot.close()
        shutil.rmtree(where, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.requires_root
@pytest.mark.requires_dockerd
def test_daemon_exiting_during_boot_is_a_start_error_with_the_log(
    boot: Booter, engine: Engine, ledger: Ledger
) -> None:
    with pytest.raises(BackendStartError) as info:
        boot(DaemonSpec(args=["--nope"]))
    assert "unknown flag: --nope" in str(info.value)
    assert info.value.returncode == 1
    assert _harness_containers(engine) == []  # removed at once, not at the end of the session
    assert _ledger_entries(ledger) == []
    assert os.path.isdir(boot.last_workdir)  # the log stays for the caller, who owns the workdir


@pytest.mark.slow
@pytest.mark.requires_root
@pytest.mark.requires_dockerd
def test_a_socket_only_inside_the_container_is_a_readiness_timeout(boot: Booter, engine: Engine) -> None:
    with pytest.raises(ReadinessTimeout) as info:
        boot(DaemonSpec(hosts=["unix:///var/run/docker.sock"], timeout=3))
    assert "tried: GET /_ping on unix:///var/run/docker.sock" in str(info.value)
    assert "API listen on /var/run/docker.sock" in str(info.value)  # the log says where it did listen
    assert _harness_containers(engine) == []


@pytest.mark.slow
@pytest.mark.requires_root
@pytest.mark.requires_dockerd
def test_killed_daemon_and_dead_session_are_cleaned_up(
    boot: Booter, engine: Engine, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    handle = boot()
    handle.kill()
    assert handle.returncode == 128 + signal.SIGKILL  # the engine's convention
    boot.backend.teardown(boot.handles.pop())
    assert _harness_containers(engine) == []
    # a session that died: its ledger record and its container's owner label name a dead process
    dead = {LABEL_PREFIX + "owner": "1:0"}
    monkeypatch.setattr(
        "harness.backends.container.owner_labels", lambda w, t: {**owner_labels(w, t), **dead}
    )
    orphan = boot()
    boot.handles.clear()  # nobody tears it down: the reapers must
    record = Path(ledger.directory, f"{orphan.pid}.json")
    data = json.loads(record.read_text())
    record.write_text(json.dumps({**data, "owner": 1, "owner_start": "0"}))
    assert ledger.reap() == [f"pid {orphan.pid} ({orphan.workdir})"]
    assert wait_until(lambda: orphan.returncode is not None, 10)
    assert container_engine._reap_containers(engine, everything=False) == [os.path.basename(orphan.workdir)]
    assert _harness_containers(engine) == [] and not os.path.exists(orphan.workdir)
    from harness.backends.local import remove_cgroup_tree

    remove_cgroup_tree("/" + os.path.basename(orphan.workdir))  # (the local reaper leaves those too)


@pytest.mark.slow
@pytest.mark.requires_root
def test_refd_boots_in_a_container(boot: Booter) -> None:
    if not python_rootfs().is_built():
        pytest.skip(
            f"the refd image's rootfs is not cached ({python_rootfs().path}); it is built on first use"
        )
    handle = boot(flavour="refd")
    assert handle.endpoint is not None
    client = EngineClient(handle.endpoint)
    try:
        assert client.get("/_ping").text == "OK"
        assert client.get("/info").json()["DockerRootDir"] == handle.data_root
    finally:
        client.close()
    assert Path(handle.pidfile).read_text().strip() == str(handle.pid)


@pytest.mark.slow
@pytest.mark.requires_root
@pytest.mark.requires_dockerd
def test_scenarios_run_unchanged_with_backend_container(engine: Engine, tmp_path: Path) -> None:
    """``pytest suites/api/test_system.py --backend container --targets dockerd-28`` on our engine."""
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "HARNESS_CONTAINER_ENGINE": engine.docker_host}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(root / "suites/api/test_system.py"),
            "--backend",
            "container",
            "--targets",
            "dockerd-28",
            "--results-json",
            str(tmp_path / "results.json"),
            "-q",
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["target"]["backend"] == "container"
    outcomes = {s["outcome"] for s in doc["scenarios"]}
    assert outcomes <= {"passed", "skipped"} and "passed" in outcomes
    assert _harness_containers(engine) == []  # the session removed its containers


@pytest.mark.slow
@pytest.mark.requires_root
@pytest.mark.requires_dockerd
def test_harness_boot_with_backend_container(engine: Engine) -> None:
    env = {**os.environ, "HARNESS_CONTAINER_ENGINE": engine.docker_host}
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "boot", "dockerd-28", "--backend", "container"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline()
        assert line.startswith("export DOCKER_HOST=unix://"), line or proc.stderr.read()
        socket_path = line.strip().split("unix://", 1)[1]
        from harness.endpoints import Endpoint

        assert ping_once(Endpoint("unix", socket_path)) == 200
        workdir = proc.stdout.readline().split(" in ", 1)[1].split(";", 1)[0]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        assert "harness: container backend: " in proc.stderr.read()  # the privileges it chose, and why
        assert not os.path.exists(workdir)
        assert _harness_containers(engine) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.slow
@pytest.mark.requires_root
@pytest.mark.requires_dockerd
def test_refd_as_the_engine() -> None:
    """``HARNESS_CONTAINER_ENGINE=refd``: refd, as the private engine, runs the container of a dockerd-28."""
    _needs_real_engine()
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    env["HARNESS_CONTAINER_ENGINE"] = "refd"
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "boot", "dockerd-28", "--backend", "container"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline()
        assert line.startswith("export DOCKER_HOST=unix://"), line or proc.stderr.read()
        from harness.endpoints import Endpoint

        endpoint = Endpoint("unix", line.strip().split("unix://", 1)[1])
        client = EngineClient(endpoint)
        try:
            assert client.get("/version").json()["Version"] == locate("dockerd-28").dockerd_version
        finally:
            client.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        err = proc.stderr.read()
        assert "booted a private refd engine" in err
        engine_dir = err.split("unix://", 1)[1].split("/docker.sock", 1)[0]
        assert not os.path.exists(engine_dir)  # the private engine went with the daemon
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
