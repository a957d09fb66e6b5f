"""harness.daemonprocs finds a daemon's processes by network namespace and cgroup parent, never the host's."""

from __future__ import annotations

import os
import subprocess

import pytest

from harness.daemonprocs import describe, in_cgroup_parent, in_netns


def test_the_host_namespace_and_the_root_cgroup_are_never_a_daemons() -> None:
    assert in_netns(os.stat("/proc/self/ns/net").st_ino) == set()
    assert in_netns(0) == set()
    assert in_cgroup_parent("") == set() and in_cgroup_parent("/") == set()


def test_describe_names_the_command_line() -> None:
    assert describe(os.getpid()).startswith(f"{os.getpid()}: ")
    assert describe(2**22 + 7) == f"{2**22 + 7}: ?"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for unshare --net")
def test_a_process_in_a_private_netns_is_found_until_it_ends() -> None:
    proc = subprocess.Popen(["unshare", "--net", "sh", "-c", "read x"], stdin=subprocess.PIPE)
    try:
        from harness.wait import wait_until

        ino: list[int] = []

        def switched() -> bool:
            ino[:] = [os.stat(f"/proc/{proc.pid}/ns/net").st_ino]
            return ino[0] != os.stat("/proc/self/ns/net").st_ino

        assert wait_until(switched, 10, interval=0.02)
        assert proc.pid in in_netns(ino[0])
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=10)
    assert proc.pid not in in_netns(ino[0])
