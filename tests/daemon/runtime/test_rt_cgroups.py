"""Cgroups on this host: v1 limits, OOM, pids, freeze, stats, EBUSY delete; v2 on a private cgroup2 mount."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator

import pytest

from harness.daemon.runtime import cgroups as cg
from harness.daemon.runtime import syscalls as sc
from harness.daemon.runtime.cgroups import Cgroup, CgroupFS, Resources
from harness.daemon.runtime.errors import CgroupError
from harness.daemon.runtime.mountinfo import mounts_under

from .conftest import TOKEN, Runner

HOST = CgroupFS.detect()
v1_only = pytest.mark.skipif(HOST.version != 1, reason="the host's cgroups are not v1")


def _read(path: str) -> str:
    with open(path) as fh:
        return fh.read().strip()


def _file(group: Cgroup, controller: str, name: str) -> str:
    d = group.dir_for(controller)
    assert d is not None, f"no {controller} hierarchy"
    return os.path.join(d, name)


@v1_only
def test_v1_layout_detected() -> None:
    names = {c for h in HOST.hierarchies for c in h.controllers}
    assert {"memory", "pids", "freezer", "cpu"} <= names


@v1_only
def test_memory_cpu_pids_limits_applied(runner: Runner) -> None:
    res = Resources(
        memory=32 << 20,
        memory_swap=48 << 20,
        memory_reservation=16 << 20,
        cpu_shares=512,
        cpu_quota=50_000,
        cpu_period=100_000,
        cpuset_cpus="0",
        pids_limit=20,
    )
    started = runner.start(
        ["sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; echo ready; sleep 30"], resources=res
    )
    out = started.read_until("ready")
    assert out.split()[0] == str(32 << 20)
    group = started.proc.cgroup
    assert group is not None
    assert _read(_file(group, "memory", "memory.limit_in_bytes")) == str(32 << 20)
    if os.path.exists(_file(group, "memory", "memory.memsw.limit_in_bytes")):
        assert _read(_file(group, "memory", "memory.memsw.limit_in_bytes")) == str(48 << 20)
    assert _read(_file(group, "memory", "memory.soft_limit_in_bytes")) == str(16 << 20)
    assert _read(_file(group, "cpu", "cpu.shares")) == "512"
    assert _read(_file(group, "cpu", "cpu.cfs_quota_us")) == "50000"
    assert _read(_file(group, "cpuset", "cpuset.cpus")) == "0"
    assert _read(_file(group, "pids", "pids.max")) == "20"
    group.apply(Resources(memory=64 << 20, memory_swap=-1, pids_limit=0, cpu_quota=-1))  # docker update
    assert _read(_file(group, "memory", "memory.limit_in_bytes")) == str(64 << 20)
    assert _read(_file(group, "pids", "pids.max")) == "max"
    assert _read(_file(group, "cpu", "cpu.cfs_quota_us")) == "-1"


@v1_only
def test_invalid_cpuset_is_a_start_error(runner: Runner) -> None:
    from harness.daemon.runtime.errors import ContainerStartError

    with pytest.raises(
        ContainerStartError, match=r'unable to apply cgroup configuration: failed to write "999"'
    ):
        runner.start(["true"], resources=Resources(cpuset_cpus="999"))


def test_oom_kill_is_detected(runner: Runner) -> None:
    res = Resources(memory=16 << 20, memory_swap=16 << 20)
    started = runner.start(["tail", "/dev/zero"], resources=res)
    assert started.proc.wait(timeout=30) == 137
    group = started.proc.cgroup
    assert group is not None
    assert group.oom_kill_count() >= 1
    assert cg.oom_killed(group) and cg.oom_killed(group.path)


def test_no_oom_for_a_normal_exit(runner: Runner) -> None:
    started = runner.start(["true"], resources=Resources(memory=16 << 20))
    assert started.finish().code == 0
    assert started.proc.cgroup is not None and not started.proc.cgroup.oom_killed()


def test_pids_limit_contains_a_fork_bomb(runner: Runner) -> None:
    # the inner shell dies of its failed fork (busybox sh gives up), PID 1 must live on
    bomb = "sh -c 'for i in $(seq 50); do sleep 30 & done'; echo alive; sleep 30"
    started = runner.start(["sh", "-c", bomb], resources=Resources(pids_limit=10))
    out = started.read_until("alive")
    assert "can't fork" in out
    group = started.proc.cgroup
    assert group is not None
    assert group.stats().pids_current <= 10
    assert group.stats().pids_limit == 10
    assert started.proc.poll() is None  # the container survives


def test_freeze_and_thaw(runner: Runner) -> None:
    started = runner.start(["sh", "-c", "i=0; while true; do i=$((i+1)); echo $i; sleep 0.02; done"])
    started.read_until("3\n")
    group = started.proc.cgroup
    assert group is not None
    cg.freeze(group)
    assert group.state() == "FROZEN"
    started.drain(0.05)
    assert started.drain(0.3) == b""
    cg.thaw(group.path)
    assert group.state() == "THAWED"
    assert started.drain(0.3) != b""


def test_stats_report_usage(runner: Runner) -> None:
    started = runner.start(
        ["sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; echo done; sleep 30"],
        resources=Resources(memory=64 << 20, pids_limit=50),
    )
    started.read_until("done", timeout=30)
    group = started.proc.cgroup
    assert group is not None
    st = cg.stats(group)
    assert st.cpu_usage_ns > 0 and st.memory_usage > 0
    assert st.memory_limit == 64 << 20 and st.pids_limit == 50 and 1 <= st.pids_current <= 3
    assert st.to_dict()["pids_current"] == st.pids_current


def test_delete_kills_what_is_left_and_prunes_created_parents(runner: Runner) -> None:
    started = runner.start(["sh", "-c", "echo up; sleep 30 & sleep 30"])
    started.read_until("up")
    group = started.proc.cgroup
    assert group is not None
    cg.freeze(group)  # a frozen cgroup must still go: delete thaws first
    parents = {os.path.dirname(d) for d in group.dirs.values()}
    group.delete(timeout=10)
    assert not group.exists()
    assert started.proc.wait(timeout=10) == 137
    assert not any(os.path.isdir(p) for p in parents)  # TOKEN/ was created by this cgroup


def test_delete_keeps_a_parent_it_did_not_create() -> None:
    first = Cgroup(f"{TOKEN}/keep-a").create()
    second = Cgroup(f"{TOKEN}/keep-b").create()
    try:
        second.delete()
        assert first.exists() and all(os.path.isdir(os.path.dirname(d)) for d in first.dirs.values())
    finally:
        second.delete()
        first.delete()
    assert not any(os.path.isdir(os.path.dirname(d)) for d in first.dirs.values())


def test_container_cgroup_path_and_remove_helper() -> None:
    assert cg.container_cgroup_path("abc") == "/docker/abc"
    assert cg.container_cgroup_path("abc", "/my/parent/") == "/my/parent/abc"
    group = Cgroup(f"/{TOKEN}/rm-helper").create()
    try:
        cg.remove_container_cgroup(f"/{TOKEN}", "rm-helper")
        assert not group.exists()
    finally:
        group.delete()


# -- cgroup v2 on a private mount -------------------------------------------------------------
@pytest.fixture
def v2_fs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CgroupFS]:
    """A private cgroup2 mount (on a hybrid host: the same hierarchy as /sys/fs/cgroup/unified).

    Kept outside the test's tmp_path and requested before ``runner`` so that it is unmounted only
    after the runner has deleted the containers' cgroups through it.
    """
    mnt = tmp_path_factory.mktemp("cg2")
    try:
        sc.mount("none", str(mnt), "cgroup2", 0)
    except OSError as exc:
        pytest.skip(f"cannot mount cgroup2 here: {exc}")
    try:
        yield CgroupFS.v2(str(mnt))
    finally:
        with contextlib.suppress(OSError):
            sc.umount2(str(mnt))
        assert not mounts_under(str(mnt)), f"{mnt} still mounted"


def test_v2_create_join_freeze_kill_delete(v2_fs: CgroupFS, runner: Runner) -> None:
    group = Cgroup(f"{TOKEN}/v2-{os.getpid()}", v2_fs)
    started = runner.start(
        [
            "sh",
            "-c",
            "cat /proc/self/cgroup; cat /sys/fs/cgroup/cgroup.procs | wc -l; echo ready;"
            " while true; do echo tick; sleep 0.02; done",
        ],
        cgroup=group,
        namespaces={"mnt": "new", "pid": "new", "uts": "new", "ipc": "new", "net": "new", "cgroup": "new"},
    )
    out = started.read_until("ready")
    assert "0::/\n" in out  # the container's own cgroup namespace
    assert group.pids() and started.proc.pid in group.pids()
    assert _read(os.path.join(group.dirs[""], "cgroup.procs")).split()[0] == str(started.proc.pid)
    group.freeze()
    assert group.state() == "FROZEN"
    started.drain(0.05)
    assert started.drain(0.3) == b""
    group.thaw()
    assert started.drain(0.3) != b""
    assert group.oom_kill_count() == 0  # no memory controller needed to answer
    group.delete()  # cgroup.kill, then rmdir
    assert started.proc.wait(timeout=10) == 137
    assert not os.path.exists(os.path.join(v2_fs.hierarchies[0].mountpoint, TOKEN))


def test_v2_limits_need_their_controller(v2_fs: CgroupFS) -> None:
    available = v2_fs.available_controllers()
    group = Cgroup(f"{TOKEN}/v2-limits", v2_fs).create(controllers=())
    try:
        if "pids" in available or "memory" in available:
            pytest.skip(f"controllers are delegated to v2 here ({sorted(available)}): nothing to refuse")
        with pytest.raises(CgroupError, match='cgroup controller "memory" is not available'):
            group.apply(Resources(memory=1 << 20))
        assert group.stats().memory_usage == 0 and group.stats().pids_limit is None
    finally:
        group.delete()


def test_enter_cgroups_of_moves_a_process(runner: Runner) -> None:
    started = runner.start(["sh", "-c", "echo up; sleep 30"])
    started.read_until("up")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            cg.enter_cgroups_of(started.proc.pid)
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_delete_kills_plain_processes_and_nested_groups() -> None:
    group = Cgroup(f"{TOKEN}/stubborn").create()
    child = os.fork()
    if child == 0:  # pragma: no cover - child: ignores SIGTERM, sleeps
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(30)
        os._exit(0)
    try:
        group.add(child)
        sub = os.path.join(next(iter(group.dirs.values())), "nested")
        os.mkdir(sub)
        group.delete(timeout=5)  # kills the child (SIGKILL) and removes nested dirs bottom-up
        assert not group.exists()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)


def test_join_single_threaded_moves_the_forked_caller_everywhere() -> None:
    """What the runtime's intermediate does: a fresh child joins (v1: through ``tasks``) every hierarchy."""
    group = Cgroup(f"{TOKEN}/joiner").create()
    read_fd, write_fd = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - child: joins, reports, waits to be looked at
        code = 1
        try:
            os.close(read_fd)
            group.join_single_threaded()
            code = 0
        finally:
            os.write(write_fd, b"%d" % code)
            time.sleep(30)
            os._exit(code)
    try:
        os.close(write_fd)
        assert os.read(read_fd, 8) == b"0"
        os.close(read_fd)
        assert child in group.pids()
        for d in group.dirs.values():
            assert str(child) in _read(os.path.join(d, "cgroup.procs")).split()
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        group.delete(timeout=5)


def test_enter_cgroups_of_single_threaded_lands_where_the_container_is(runner: Runner) -> None:
    started = runner.start(["sh", "-c", "echo up; sleep 30"])
    started.read_until("up")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child: joins through tasks, compares, reports by exit status
        try:
            cg.enter_cgroups_of(started.proc.pid, single_threaded=True)
            same = _read(f"/proc/{started.proc.pid}/cgroup") == _read("/proc/self/cgroup")
            os._exit(0 if same else 2)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.parametrize(
    ("shares", "weight"),
    [(0, 0), (1, 1), (2, 1), (512, 59), (1024, 100), (2048, 174), (262144, 10000), (10**6, 10000)],
)
def test_cpu_shares_become_runc_13s_cpu_weight(shares: int, weight: int) -> None:
    # 512 -> 59 is what dockerd 28.5 (sid's runc 1.3.6) wrote in a VM on 6.1; the old linear formula gave 20
    assert cg.cpu_shares_to_weight(shares) == weight
