"""Namespace modes (new, host, join by path), sysctls, no_new_privileges, oom_score_adj, device rules."""

from __future__ import annotations

import os

import pytest

from harness.daemon.runtime import namespaces as ns
from harness.daemon.runtime.cgroups import DEFAULT_DEVICE_RULES, CgroupFS, Resources
from harness.daemon.runtime.errors import ContainerStartError

from .conftest import Runner

ALL_NEW = {"mnt": "new", "uts": "new", "ipc": "new", "pid": "new", "net": "new"}


def test_mode_validation() -> None:
    assert ns.unshare_flags({"network": "new", "mount": "new", "pid": "host"}) == (
        ns.KINDS["net"] | ns.KINDS["mnt"]
    )
    with pytest.raises(ValueError, match="unknown namespace kind"):
        ns.normalise_modes({"bogus": "new"})
    with pytest.raises(ValueError, match="mode must be"):
        ns.normalise_modes({"net": "relative/path"})


def test_new_net_namespace_has_only_loopback_up(runner: Runner) -> None:
    res = runner.sh("ls /sys/class/net; cat /sys/class/net/lo/operstate; cat /sys/class/net/lo/flags")
    lines = res.out.split()
    assert lines[0] == "lo" and int(lines[-1], 16) & 1


def test_join_another_containers_net_namespace_by_path(runner: Runner) -> None:
    first = runner.start(["sh", "-c", "readlink /proc/self/ns/net; echo ready; exec sleep 30"])
    first_ns = first.read_until("ready").split()[0]
    path = ns.ns_path(first.proc.pid, "net")
    res = runner.sh("readlink /proc/self/ns/net", namespaces={**ALL_NEW, "net": path})
    assert res.out.strip() == first_ns
    mine = os.readlink("/proc/self/ns/net")
    assert first_ns != mine


def test_host_network_mounts_sysfs_and_sees_host_interfaces(runner: Runner) -> None:
    res = runner.sh("readlink /proc/self/ns/net; ls /sys/class/net", namespaces={**ALL_NEW, "net": "host"})
    assert res.out.split()[0] == os.readlink("/proc/self/ns/net")
    assert set(res.out.split()[1:]) == set(os.listdir("/sys/class/net"))


def test_host_pid_namespace_is_not_pid1(runner: Runner) -> None:
    res = runner.sh("echo $$", namespaces={**ALL_NEW, "pid": "host"})
    assert int(res.out) > 1


def test_hostname_needs_a_private_uts_namespace(runner: Runner) -> None:
    with pytest.raises(ContainerStartError, match="unable to set hostname without a private UTS namespace"):
        runner.start(["true"], hostname="x", namespaces={**ALL_NEW, "uts": "host"})


def test_missing_namespace_path_is_a_start_error(runner: Runner) -> None:
    with pytest.raises(ContainerStartError, match="no such file or directory"):
        runner.start(["true"], namespaces={**ALL_NEW, "net": "/nonexistent/netns"})


def test_private_cgroup_namespace_on_v1(runner: Runner) -> None:
    if CgroupFS.detect().version != 1:
        pytest.skip("v1 host only")
    res = runner.sh("cat /proc/self/cgroup", namespaces={**ALL_NEW, "cgroup": "new"})
    assert all(line.endswith(":/") for line in res.out.splitlines()), res.out


def test_sysctls_no_new_privs_and_oom_score_adj(runner: Runner) -> None:
    res = runner.sh(
        "cat /proc/sys/net/ipv4/ip_forward; grep NoNewPrivs /proc/self/status; cat /proc/self/oom_score_adj;"
        " echo 0 > /proc/sys/net/ipv4/ip_forward; echo rc=$?",
        sysctls={"net.ipv4.ip_forward": "1"},
        no_new_privileges=True,
        oom_score_adj=500,
    )
    lines = res.out.splitlines()
    assert lines[0] == "1"
    assert lines[1].split() == ["NoNewPrivs:", "1"]
    assert lines[2] == "500"
    assert "rc=1" in res.out  # /proc/sys is read-only once the sysctls are written


def test_device_rules_deny_other_devices(runner: Runner) -> None:
    if CgroupFS.detect().hierarchy("devices") is None:
        pytest.skip("no v1 devices controller")
    res = runner.sh(
        "mknod /tmp/blk b 7 0 && head -c1 /tmp/blk > /dev/null; echo rc=$?; head -c1 /dev/zero | wc -c",
        resources=Resources(devices=DEFAULT_DEVICE_RULES),
    )
    assert "Operation not permitted" in res.out and "rc=1" in res.out
    assert res.out.split()[-1] == "1"


def test_privileged_gets_host_devices(runner: Runner) -> None:
    res = runner.sh("ls /dev | wc -l", privileged=True, resources=Resources(devices=("a *:* rwm",)))
    assert int(res.out) > 20
