"""Pure helpers: user resolution, secure_join, mount options, mountinfo, resources from HostConfig."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.daemon.runtime import syscalls as sc
from harness.daemon.runtime.cgroups import DEFAULT_DEVICE_RULES, Resources, resources_from_host_config
from harness.daemon.runtime.mountinfo import read_mountinfo
from harness.daemon.runtime.rootfs import Mount, default_mounts, merge_mounts, parse_options
from harness.daemon.runtime.users import ExecUser, UserLookupError, resolve_user, secure_join

PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1001::/home/alice:/bin/sh\n\nbob:x:1002:1002::/b:/bin/sh\n"
)
GROUP = "root:x:0:\nalice:x:1001:\nstaff:x:50:alice,bob\nwheel:x:10:alice\n"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("", ExecUser(0, 0, (), "/root")),
        ("alice", ExecUser(1000, 1001, (50, 10), "/home/alice")),
        ("1000", ExecUser(1000, 1001, (50, 10), "/home/alice")),
        ("alice:staff", ExecUser(1000, 50, (), "/home/alice")),
        ("alice:77", ExecUser(1000, 77, (), "/home/alice")),
        ("4242", ExecUser(4242, 0, (), "/")),
        ("4242:4343", ExecUser(4242, 4343, (), "/")),
        ("bob:wheel", ExecUser(1002, 10, (), "/b")),
    ],
)
def test_resolve_user(spec: str, expected: ExecUser) -> None:
    assert resolve_user(spec, PASSWD, GROUP) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nosuch", "unable to find user nosuch: no matching entries in passwd file"),
        ("alice:nogroup", "unable to find group nogroup: no matching entries in group file"),
        ("-5", "uids and gids must be in range 0-2147483647"),
    ],
)
def test_resolve_user_errors(spec: str, message: str) -> None:
    with pytest.raises(UserLookupError) as err:
        resolve_user(spec, PASSWD, GROUP)
    assert str(err.value) == message


def test_resolve_user_without_files() -> None:
    assert resolve_user("7:8", None, None) == ExecUser(7, 8, (), "/")
    with pytest.raises(UserLookupError, match="no matching entries in passwd file"):
        resolve_user("alice", None, None)


def test_secure_join_stays_inside(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "evil").symlink_to("/etc/shadow")
    (tmp_path / "up").symlink_to("../../../..")
    assert secure_join(str(tmp_path), "/etc/evil") == str(tmp_path / "etc" / "shadow")
    assert secure_join(str(tmp_path), "/up/etc/passwd") == str(tmp_path / "etc" / "passwd")
    assert secure_join(str(tmp_path), "../../x") == str(tmp_path / "x")


def test_parse_options() -> None:
    flags, prop, data = parse_options(["rbind", "ro", "nosuid", "rprivate", "size=1m", "mode=1777"])
    assert flags == sc.MS_BIND | sc.MS_REC | sc.MS_RDONLY | sc.MS_NOSUID
    assert prop == sc.MS_PRIVATE | sc.MS_REC
    assert data == "size=1m,mode=1777"
    assert parse_options(["ro", "rw"])[0] == 0


def test_merge_mounts_user_overrides_defaults() -> None:
    user = [Mount("/dev/shm", "bind", "/host/shm"), Mount("/a/b/c", "tmpfs"), Mount("/a", "tmpfs")]
    merged = merge_mounts(default_mounts(), user)
    dests = [m.destination for m in merged]
    assert dests.count("/dev/shm") == 1 and merged[dests.index("/dev/shm")].source == "/host/shm"
    assert dests.index("/a") < dests.index("/a/b/c")
    assert dests[:3] == ["/proc", "/dev", "/dev/pts"]


def test_default_mounts_privileged_are_rw() -> None:
    by_dest = {m.destination: m for m in default_mounts(privileged=True)}
    assert "rw" in by_dest["/sys"].options and "rw" in by_dest["/sys/fs/cgroup"].options
    assert "size=1048576" in {m.destination: m for m in default_mounts(1 << 20)}["/dev/shm"].options


def test_mountinfo_parses_this_process() -> None:
    mounts = read_mountinfo()
    assert any(m.mountpoint == "/" for m in mounts)
    assert any(m.fstype == "proc" for m in mounts)


def test_resources_from_host_config() -> None:
    r = resources_from_host_config(
        {"Memory": 64 << 20, "NanoCpus": 1_500_000_000, "PidsLimit": 100, "CpuShares": 512, "CpusetCpus": "0"}
    )
    assert r.memory == 64 << 20 and r.memory_swap == 128 << 20
    assert (r.cpu_quota, r.cpu_period) == (150_000, 100_000)
    assert r.pids_limit == 100 and r.cpu_shares == 512 and r.cpuset_cpus == "0"
    assert r.devices == DEFAULT_DEVICE_RULES
    assert resources_from_host_config({"Privileged": True}).devices == ("a *:* rwm",)
    assert resources_from_host_config({"Memory": 1 << 20, "MemorySwap": -1}).memory_swap == -1
    assert Resources.from_dict(r.to_dict()) == r
