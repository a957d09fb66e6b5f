"""What a container's process spec gives it on a live refd, as dockerd's OCI spec does: writable cgroups
on request, the first console size, the default sysctls, and another container's PID namespace."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from .livedaemon import LiveRefd, running_as_root

pytestmark = pytest.mark.skipif(not running_as_root(), reason="running containers needs root")

TOP = ["top"]
#: moby's TestCgroupRW probe: a new cgroup under the container's own (cgroup2's magic, else v1's pids)
MKDIR_CGROUP = (
    'if [ "$(stat -f -c %t /sys/fs/cgroup)" = 63677270 ]; then mkdir /sys/fs/cgroup/x; '
    "else mkdir /sys/fs/cgroup/pids/x; fi"
)


@pytest.fixture(scope="module")
def refd() -> Iterator[LiveRefd]:
    daemon = LiveRefd("spec")
    try:
        yield daemon
    finally:
        daemon.close()


@pytest.mark.parametrize(
    ("security_opt", "privileged", "writable"),
    [
        ([], False, False),
        (["writable-cgroups"], False, True),
        (["writable-cgroups=true"], False, True),
        (["writable-cgroups=false"], False, False),
        ([], True, True),  # privileged: writable unless said otherwise
        (["writable-cgroups=false"], True, False),
    ],
)
def test_writable_cgroups(refd: LiveRefd, security_opt: list[str], privileged: bool, writable: bool) -> None:
    cid = refd.run(TOP, HostConfig={"SecurityOpt": security_opt, "Privileged": privileged})
    code, _ = refd.exec(cid, ["sh", "-c", MKDIR_CGROUP])
    assert (code == 0) is writable


def test_a_malformed_security_option_is_refused_at_create(refd: LiveRefd) -> None:
    created = refd.create(TOP, HostConfig={"SecurityOpt": ["writable-cgroups=potato"]})
    assert (created.status_code, created.json()["message"]) == (
        500,
        'invalid --security-opt 2: "writable-cgroups=potato"',
    )


def test_the_console_size_is_the_ttys_first_size(refd: LiveRefd) -> None:
    cid = refd.run(["stty", "size"], Tty=True, HostConfig={"ConsoleSize": [123, 57]})
    refd.wait_status(cid, "exited")
    logs = refd.client.get(f"/containers/{cid}/logs?stdout=1").content
    assert logs.strip() == b"123 57"
    old = refd.create(["true"], version="v1.41", Tty=True, HostConfig={"ConsoleSize": [123, 57]})
    assert refd.inspect(old.json()["Id"])["HostConfig"]["ConsoleSize"] == [0, 0]  # before API 1.42


def test_an_execs_console_size(refd: LiveRefd) -> None:
    cid = refd.run(TOP)
    code, out = refd.exec(cid, ["stty", "size"], Tty=True, ConsoleSize=[57, 123])
    assert (code, out.strip()) == (0, b"57 123")


def test_default_sysctls_and_the_nis_domain_name(refd: LiveRefd) -> None:
    cid = refd.run(TOP, User="1000:1000", Hostname="foobar", Domainname="baz.example")
    assert refd.exec(cid, ["cat", "/proc/sys/net/ipv4/ping_group_range"])[1].split() == [b"0", b"2147483647"]
    assert refd.exec(cid, ["cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"])[1].strip() == b"0"
    assert refd.exec(cid, ["cat", "/proc/sys/kernel/domainname"])[1].strip() == b"baz.example"
    own = refd.run(TOP, HostConfig={"Sysctls": {"net.ipv4.ip_unprivileged_port_start": "80"}})
    assert refd.exec(own, ["cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"])[1].strip() == b"80"


def test_joining_another_containers_pid_namespace(refd: LiveRefd) -> None:
    donor = refd.run(TOP)
    guest = refd.run(TOP, HostConfig={"PidMode": f"container:{donor[:12]}"})
    assert refd.inspect(guest)["HostConfig"]["PidMode"] == f"container:{donor}"
    assert os.readlink(f"/proc/{refd.pid(guest)}/ns/pid") == os.readlink(f"/proc/{refd.pid(donor)}/ns/pid")


def test_pid_namespace_donors_that_cannot_be_joined(refd: LiveRefd) -> None:
    missing = refd.create(TOP, HostConfig={"PidMode": "container:nosuchcontainer"})
    assert (missing.status_code, missing.json()["message"]) == (400, "No such container: nosuchcontainer")
    stopped = refd.create(TOP).json()["Id"]
    guest = refd.create(TOP, HostConfig={"PidMode": f"container:{stopped}"})
    assert guest.status_code == 201, guest.text
    started = refd.start(guest.json()["Id"])
    assert (started.status_code, started.json()["message"]) == (
        500,
        f"failed to join PID namespace: container {stopped} is not running",
    )


CONFINED = (
    '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["chown", "chown32", "fchownat"], '
    '"action": "SCMP_ACT_ERRNO"}]}'
)


@pytest.mark.parametrize(
    ("security_opt", "privileged", "refused"),
    [
        ([], False, False),
        ([], True, False),
        ([f"seccomp={CONFINED}"], False, True),
        ([f"seccomp={CONFINED}"], True, True),  # kept when privileged (moby issue 47499)
        (["seccomp=unconfined"], False, False),
    ],
)
def test_a_seccomp_profile_binds_the_process_and_its_execs(
    refd: LiveRefd, security_opt: list[str], privileged: bool, refused: bool
) -> None:
    cid = refd.run(TOP, HostConfig={"SecurityOpt": security_opt, "Privileged": privileged})
    code, _ = refd.exec(cid, ["chown", "42", "/bin/true"])
    assert (code != 0) is refused
