"""spawn/exec_in on real busybox containers: PID 1, hostname, user, /dev, exit codes, errors, init, exec."""

from __future__ import annotations

import os
import pty
import signal
from pathlib import Path
from typing import Any

import pytest

from harness.daemon.runtime import process as rt
from harness.daemon.runtime.errors import ContainerStartError
from harness.daemon.runtime.rootfs import Mount

from .conftest import TOKEN, Runner

MINIMAL_DEV = {
    "fd",
    "full",
    "mqueue",
    "null",
    "ptmx",
    "pts",
    "random",
    "shm",
    "stderr",
    "stdin",
    "stdout",
    "tty",
    "urandom",
    "zero",
} | ({"core"} if os.path.exists("/proc/kcore") else set())


def test_container_is_pid1_with_hostname_user_cgroup_and_minimal_dev(runner: Runner) -> None:
    res = runner.sh("echo $$; hostname; id -u; cat /proc/self/cgroup; ls /dev", hostname="ctr-one", uid=1000)
    assert res.code == 0, res.out
    lines = res.out.splitlines()
    assert lines[:3] == ["1", "ctr-one", "1000"]
    cgroup_lines = [line for line in lines if line.count(":") >= 2]
    assert cgroup_lines and all(TOKEN in line for line in cgroup_lines if not line.startswith("0::")), (
        cgroup_lines
    )
    assert set(lines[3 + len(cgroup_lines) :]) == MINIMAL_DEV


def test_exit_code_is_returned(runner: Runner) -> None:
    assert runner.sh("exit 3").code == 3


def test_killed_by_sigkill_is_137(runner: Runner) -> None:
    started = runner.start(["sh", "-c", "echo up; exec sleep 30"])
    started.read_until("up")
    started.proc.send_signal(signal.SIGKILL)
    assert started.proc.wait(timeout=10) == 137


def test_pid1_without_handler_ignores_sigterm_like_docker(runner: Runner) -> None:
    started = runner.start(["sh", "-c", "echo up; while true; do sleep 0.05; done"])
    started.read_until("up")
    started.proc.send_signal(signal.SIGTERM)
    with pytest.raises(TimeoutError):
        started.proc.wait(timeout=0.3)


def test_unknown_command_fails_with_runc_text(runner: Runner) -> None:
    with pytest.raises(ContainerStartError) as err:
        runner.start(["nosuchcmd"])
    assert str(err.value) == 'exec: "nosuchcmd": executable file not found in $PATH'


def test_missing_absolute_command(runner: Runner) -> None:
    with pytest.raises(ContainerStartError, match=r'^exec: "/nope": stat /nope: no such file or directory$'):
        runner.start(["/nope"])


def test_bad_cwd_fails_with_runc_text(runner: Runner) -> None:
    with pytest.raises(ContainerStartError) as err:
        runner.start(["true"], cwd="/nope")
    assert str(err.value) == 'chdir to cwd ("/nope") set in config.json failed: no such file or directory'


def test_failed_start_leaves_no_cgroup(runner: Runner) -> None:
    spec = runner.spec(["nosuchcmd"])
    with pytest.raises(ContainerStartError):
        rt.spawn(spec)
    from harness.daemon.runtime.cgroups import Cgroup

    assert not Cgroup(spec.cgroup).exists()


def test_user_lookup_in_container_files(runner: Runner, rootfs: Path) -> None:
    with open(rootfs / "etc/passwd", "a") as fh:
        fh.write("alice:x:1000:1000:Alice:/home/alice:/bin/sh\n")
    with open(rootfs / "etc/group", "a") as fh:
        fh.write("alice:x:1000:\nstaff:x:50:alice\naudio:x:29:bob,alice\n")
    res = runner.sh("id -u; id -g; id -G; echo $HOME", user="alice")
    assert res.out.split("\n")[:4] == ["1000", "1000", "1000 29 50", "/home/alice"]
    res = runner.sh("id -u; id -g; id -G", user="alice:staff", additional_gids=[7])
    assert res.out.split()[:4] == ["1000", "50", "50", "7"]
    res = runner.sh("id -u; id -g; echo $HOME", user="4242:4343")
    assert res.out.split() == ["4242", "4343", "/"]


def test_user_lookup_errors(runner: Runner) -> None:
    with pytest.raises(ContainerStartError) as err:
        runner.start(["true"], user="nosuch")
    assert str(err.value) == "unable to find user nosuch: no matching entries in passwd file"
    with pytest.raises(ContainerStartError) as err:
        runner.start(["true"], user="root:nosuchgroup")
    assert str(err.value) == "unable to find group nosuchgroup: no matching entries in group file"


def test_env_home_umask_and_rlimits(runner: Runner) -> None:
    res = runner.sh(
        "echo $HOME $FOO; umask; ulimit -n; ulimit -Hn",
        env=["PATH=/bin", "FOO=bar"],
        umask=0o027,
        rlimits={"nofile": (512, 1024)},
    )
    assert res.out.split() == ["/root", "bar", "0027", "512", "1024"]


def test_raising_rlimit_beyond_hard_limit_fails_like_runc(runner: Runner) -> None:
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no hard nofile limit to exceed")
    has_sys_resource = _host_has_cap(24)
    if has_sys_resource:
        pytest.skip("root can raise hard limits here (CAP_SYS_RESOURCE)")
    with pytest.raises(ContainerStartError, match=r"^error setting rlimit type 7: operation not permitted$"):
        runner.start(["true"], rlimits={"nofile": (hard + 1, hard + 1)})


def _host_has_cap(number: int) -> bool:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> number & 1)
    return False


def test_sigpipe_is_default_in_the_container(runner: Runner) -> None:
    # Python ignores SIGPIPE; a container must not inherit that (yes | head would never end)
    assert runner.sh("yes | head -n 2", timeout=10).out.splitlines() == ["y", "y"]
    res = runner.run(["grep", "-E", "SigIgn|SigBlk", "/proc/self/status"])
    assert [line.split()[1] for line in res.out.splitlines()] == ["0000000000000000"] * 2


def test_readonly_rootfs_gives_erofs(runner: Runner) -> None:
    res = runner.sh("touch /x; echo rc=$?; echo ok > /dev/shm/y && cat /dev/shm/y", readonly_rootfs=True)
    assert "Read-only file system" in res.out
    assert "rc=1" in res.out and "ok" in res.out.split("rc=1", 1)[1]


def test_masked_and_readonly_paths(runner: Runner) -> None:
    masked = [
        p for p in ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug") if os.path.exists(p)
    ]
    assert masked, "no maskable /proc file on this kernel"
    script = "; ".join(f"echo {p} $(cat {p} | wc -c)" for p in masked)
    script += "; ls -A /sys/firmware | wc -l; echo 1 > /proc/sys/kernel/domainname; echo rc=$?"
    res = runner.sh(script)
    lines = res.out.splitlines()
    for p, line in zip(masked, lines, strict=False):
        assert line == f"{p} 0", res.out
    assert lines[len(masked)] == "0"
    assert "Read-only file system" in res.out and "rc=1" in res.out


def test_privileged_has_no_masked_paths_and_rw_sys(runner: Runner) -> None:
    probe = next(p for p in ("/proc/keys", "/proc/timer_list", "/proc/kcore") if os.path.exists(p))
    res = runner.sh(
        f"cat {probe} | wc -c; grep -c ' /sys .*rw,' /proc/self/mountinfo || true", privileged=True
    )
    size, rw = res.out.split()[:2]
    assert int(size) > 0 or probe == "/proc/kcore"
    assert rw == "1"


def test_mounts_bind_tmpfs_and_etc_files(runner: Runner, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "hello").write_text("hi\n")
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n10.0.0.9 buddy\n")
    hostname = tmp_path / "hostname"
    hostname.write_text("ctr-m\n")
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 10.0.0.53\n")
    single = tmp_path / "single.txt"
    single.write_text("one file\n")
    mounts = [
        Mount("/data", "bind", str(data), ("rbind", "ro", "rprivate")),
        Mount("/new/dir/file.txt", "bind", str(single), ("bind", "rw")),
        Mount("/scratch", "tmpfs", "tmpfs", ("nosuid", "size=1m", "mode=1770")),
    ]
    res = runner.sh(
        "cat /data/hello; touch /data/x; echo rc=$?; cat /new/dir/file.txt; stat -c %a /scratch;"
        " grep ' /scratch ' /proc/self/mountinfo; grep buddy /etc/hosts; cat /etc/hostname;"
        " cat /etc/resolv.conf",
        mounts=mounts,
        hosts_path=str(hosts),
        hostname_path=str(hostname),
        resolv_conf_path=str(resolv),
    )
    assert res.code == 0, res.out
    assert "hi\n" in res.out and "rc=1" in res.out and "one file" in res.out
    assert "\n1770\n" in res.out and "size=1024k" in res.out
    assert "10.0.0.9 buddy" in res.out and "ctr-m" in res.out and "nameserver 10.0.0.53" in res.out
    assert not (data / "x").exists()


def test_tty_gets_console_and_controlling_terminal(runner: Runner) -> None:
    master, slave = pty.openpty()
    try:
        spec = runner.spec(
            ["sh", "-c", "test -c /dev/console && echo console; test -t 0 && echo tty; ls /dev"], tty=True
        )
        proc = rt.spawn(spec, slave, slave, slave)
        runner.procs.append(proc)
        assert proc.cgroup is not None
        runner.cgroups.append(proc.cgroup)
        os.close(slave)
        slave = -1
        out = b""
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO once the slave side is gone
                break
            if not data:
                break
            out += data
        assert proc.wait(timeout=10) == 0
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    text = out.decode().replace("\r", "")
    assert "console\ntty\n" in text
    assert "console" in text.split("tty\n", 1)[1]


def test_init_reaps_and_forwards_signals(runner: Runner) -> None:
    started = runner.start(["sh", "-c", "echo pid=$$; sleep 0.01 & exec sleep 30"], init=True)
    out = started.read_until("pid=")
    started.drain(0.2)
    assert "pid=1" not in out.splitlines()
    with open(f"/proc/{started.proc.pid}/status") as fh:
        assert any(line.split() == ["NSpid:", str(started.proc.pid), "1"] for line in fh)
    started.proc.send_signal(signal.SIGTERM)
    assert started.proc.wait(timeout=10) == 128 + signal.SIGTERM


def test_exec_in_joins_the_running_container(runner: Runner) -> None:
    ctr = runner.start(["sh", "-c", "echo ready; exec sleep 30"], hostname="ctr-exec")
    ctr.read_until("ready")
    ex = runner.exec(
        ctr.proc,
        [
            "sh",
            "-c",
            "hostname; tr '\\0' ' ' < /proc/1/cmdline; echo; echo $$; cat /proc/self/cgroup; ls /dev | wc -l",
        ],
    )
    res = ex.finish()
    assert res.code == 0, res.out
    lines = res.out.splitlines()
    assert lines[0] == "ctr-exec"
    assert lines[1].strip() == "sleep 30"
    assert int(lines[2]) > 1
    with open(f"/proc/{ctr.proc.pid}/cgroup") as fh:
        theirs = {line for line in fh.read().splitlines() if not line.startswith("0::")}
    assert theirs <= set(lines), (theirs, lines)
    assert int(lines[-1]) == len(MINIMAL_DEV)


def test_exec_in_errors(runner: Runner) -> None:
    ctr = runner.start(["sh", "-c", "echo ready; exec sleep 30"])
    ctr.read_until("ready")
    with pytest.raises(
        ContainerStartError, match=r'^exec: "nosuchcmd": executable file not found in \$PATH$'
    ):
        runner.exec(ctr.proc, ["nosuchcmd"])
    with pytest.raises(
        ContainerStartError, match=r"^unable to find user bob: no matching entries in passwd file$"
    ):
        runner.exec(ctr.proc, ["true"], user="bob")
    ex = runner.exec(ctr.proc, ["sh", "-c", "exit 7"], user="nobody")
    assert ex.finish().code == 7


def test_spec_round_trips_through_json(rootfs: Path) -> None:
    import json

    from harness.daemon.runtime.cgroups import Resources

    spec = rt.ProcessSpec(
        args=["sh"],
        rootfs=str(rootfs),
        mounts=[Mount("/x", "tmpfs", "tmpfs", ("size=1m",))],
        resources=Resources(memory=1 << 20, devices=("a *:* rwm",)),
        rlimits={"nofile": (1, 2)},
    )
    again = rt.ProcessSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec
    with pytest.raises(ValueError, match="unknown process settings"):
        rt.ProcessSpec.from_dict({"args": ["x"], "bogus": 1})


def _in_private_mount_namespace(fn: Any) -> Any:
    """``fn()`` on a thread of its own in a new mount namespace (made rslave: nothing reaches the host),
    so the submounts a test makes for its containers vanish with the thread."""
    import threading

    from harness.daemon.runtime import syscalls as sc

    out: list[Any] = []

    def body() -> None:
        try:
            sc.unshare(sc.CLONE_NEWNS)
            sc.mount(None, "/", None, sc.MS_REC | sc.MS_SLAVE)
            out.append((True, fn()))
        except BaseException as exc:
            out.append((False, exc))

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    ok, value = out[0]
    if not ok:
        raise value
    return value


def test_rro_makes_submounts_read_only_and_ro_does_not(runner: Runner, tmp_path: Path) -> None:
    from harness.daemon.runtime import syscalls as sc

    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)

    def run() -> Any:
        sc.mount("tmpfs", str(data / "sub"), "tmpfs", 0, "size=1m")
        mounts = [
            Mount("/rro", "bind", str(data), ("rbind", "rro", "rprivate")),
            Mount("/ro", "bind", str(data), ("rbind", "ro", "rprivate")),
        ]
        return runner.sh("touch /rro/sub/x; echo rro=$?; touch /ro/sub/y; echo ro=$?", mounts=mounts)

    res = _in_private_mount_namespace(run)
    assert res.code == 0, res.out
    assert "rro=1" in res.out and "ro=0" in res.out, res.out


def test_root_propagation_shared_lets_a_shared_bind_propagate_back(runner: Runner, tmp_path: Path) -> None:
    """moby's shared bind (TestContainerVolumesMountedAsShared): with rootfsPropagation "shared" a mount the
    container makes under a shared bind appears at its source outside."""
    from harness.daemon.runtime import syscalls as sc

    source = tmp_path / "shared"
    (source / "mnt").mkdir(parents=True)

    def run() -> Any:
        sc.mount(str(source), str(source), None, sc.MS_BIND)
        sc.mount(None, str(source), None, sc.MS_SHARED)
        res = runner.sh(
            "mount -t tmpfs tmpfs /v/mnt && echo mounted",
            mounts=[Mount("/v", "bind", str(source), ("rbind", "rw", "shared"))],
            privileged=True,
            rootfs_propagation="shared",
        )
        with open("/proc/thread-self/mountinfo") as fh:  # this thread's namespace, not the process's
            seen = any(line.split()[4] == str(source / "mnt") for line in fh)
        return res, seen

    res, seen = _in_private_mount_namespace(run)
    assert res.code == 0 and "mounted" in res.out, res.out
    assert seen


def test_each_bind_gets_its_own_detached_tree(tmp_path: Path) -> None:
    """A container joining a user namespace attaches pre-opened trees; two binds of one source (and a
    network file) need one tree each, since attaching a tree uses it up."""
    from harness.daemon.runtime import rootfs as rfs

    source = tmp_path / "src"
    source.mkdir()
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    cfg = rfs.RootfsConfig(
        rootfs=str(tmp_path),
        mounts=[
            Mount("/b", "bind", str(source), ("rbind", "rro")),
            Mount("/legacy", "bind", str(source), ("rbind", "ro")),
            Mount("/t", "tmpfs", "tmpfs", ()),
        ],
        hosts_path=str(hosts),
    )
    pinned: list[int] = []
    try:
        trees = rt._pin_bind_sources(cfg, pinned).trees
        assert sorted(trees) == sorted(
            [
                rfs.tree_key(cfg.mounts[0]),
                rfs.tree_key(cfg.mounts[1]),
                rfs.tree_key(Mount("/etc/hosts", "bind", str(hosts))),
            ]
        )
        assert len(set(trees.values())) == 3 and sorted(pinned) == sorted(trees.values())
    finally:
        for fd in pinned:
            os.close(fd)
