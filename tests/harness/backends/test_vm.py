"""The vm backend and its kernels: what needs no VM runs everywhere; booting runs in nox -s tests-vm."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import time

import pytest

from harness.backends.base import DaemonHandle, DaemonSpec
from harness.backends.vm import GUEST_CGROUP, GUEST_CTL, GUEST_SOCKET, VMBackend, vm_available
from harness.errors import TargetUnavailable
from harness.targets import resolve_target
from harness.vmimages import (
    KernelEntry,
    VMImageError,
    _check_version,
    _module_order,
    kernel_suite,
    write_cpio,
)


def test_kernel_names_and_aliases() -> None:
    assert kernel_suite("bookworm") == "bookworm"
    assert kernel_suite("6.12") == "trixie"
    assert kernel_suite("SID") == "sid"
    with pytest.raises(VMImageError, match="unknown kernel 'buster' from HARNESS_VM_KERNEL: choose from"):
        kernel_suite("buster", "HARNESS_VM_KERNEL")


def test_a_version_alias_must_match_the_suites_kernel() -> None:
    assert kernel_suite("7.2") == "sid"
    sid = KernelEntry("sid", "7.2.13+deb14-amd64", "/k")
    assert _check_version("7.2", sid) is sid and _check_version("sid", sid) is sid
    assert _check_version("6.1", KernelEntry("bookworm", "6.1.0-50-amd64", "/k")).release == "6.1.0-50-amd64"
    # sid moved on: '7.2' must not silently boot 7.3; nor may '6.1' match 6.12
    with pytest.raises(
        VMImageError, match=r"--kernel 7.2 means Debian sid's kernel, which is 7.3.1-amd64 now"
    ):
        _check_version("7.2", KernelEntry("sid", "7.3.1-amd64", "/k"))
    with pytest.raises(VMImageError, match="ask for --kernel trixie"):
        _check_version("6.1", KernelEntry("trixie", "6.12.117+deb13-amd64", "/k"))


def test_the_daemon_runs_in_its_own_guest_cgroup() -> None:
    # in the root cgroup (no memory.swap.max) dockerd and refd both warn that swap limits are unsupported
    target = resolve_target("refd")
    workdir = tempfile.mkdtemp(prefix="harness-vmunit-")
    try:
        handle = DaemonHandle(target=target, spec=DaemonSpec(), workdir=workdir, command=["refd"])
        os.makedirs(os.path.join(workdir, "vm"))
        VMBackend()._write_daemon_script(handle)
        with open(os.path.join(workdir, "vm", "daemon.sh")) as fh:
            first, *rest = fh.read().splitlines()
        assert first == f"echo $$ > /sys/fs/cgroup/{GUEST_CGROUP}/cgroup.procs 2>/dev/null"
        assert rest[-1].startswith("exec env -i") and rest[-1].endswith(" refd")
        assert f"mkdir -p $C/{GUEST_CGROUP}" in GUEST_CTL.replace("__CGROUP__", GUEST_CGROUP)
    finally:
        shutil.rmtree(workdir)


def test_cpio_is_newc_with_a_trailer() -> None:
    out = io.BytesIO()
    write_cpio(out, [("init", 0o100755, b"#!/bin/sh\n"), ("bin", 0o40755, b"")])
    data = out.getvalue()
    assert data.startswith(b"070701")
    assert b"init\0" in data and b"#!/bin/sh\n" in data and b"TRAILER!!!\0" in data
    assert len(data) % 4 == 0


def test_module_order_puts_dependencies_first_and_writes_modules_dep(tmp_path: object) -> None:
    moddir = tempfile.mkdtemp()
    os.makedirs(os.path.join(moddir, "kernel"))
    for name, deps in {"a": "b,c", "b": "c", "c": "", "d": ""}.items():
        with open(os.path.join(moddir, "kernel", f"{name}.ko"), "wb") as fh:
            fh.write(b"\x7fELF\0license=GPL\0depends=" + deps.encode() + b"\0name=" + name.encode() + b"\0")
    order = _module_order(moddir, ["a", "missing"])
    assert order == ["kernel/c.ko", "kernel/b.ko", "kernel/a.ko"]
    with open(os.path.join(moddir, "modules.dep")) as fh:
        assert "kernel/a.ko: kernel/b.ko kernel/c.ko" in fh.read().splitlines()


def test_command_listens_on_a_guest_socket_and_refd_uses_the_rootfs_python() -> None:
    target = resolve_target("refd")
    spec = DaemonSpec()
    handle = DaemonHandle(target=target, spec=spec, workdir="/tmp/harness-refd-x", command=[])
    argv = VMBackend().command(target, spec, handle)
    assert argv[0] == "/usr/bin/python3"
    assert f"-H=unix://{GUEST_SOCKET}" in argv
    assert "--data-root=/tmp/harness-refd-x/root" in argv


def test_external_is_refused(tmp_path: object) -> None:
    with pytest.raises(TargetUnavailable, match="nothing to boot"):
        VMBackend().start(resolve_target("external"), DaemonSpec(), tempfile.mkdtemp())


@pytest.mark.slow
def test_dockerd_boots_in_a_vm_and_reports_the_guest_kernel() -> None:
    missing = vm_available()
    if missing:
        pytest.skip(missing)
    if os.environ.get("HARNESS_VM_TESTS") != "1":
        pytest.skip("VM boots take minutes here (TCG): run nox -s tests-vm (HARNESS_VM_TESTS=1)")
    backend = VMBackend()
    workdir = tempfile.mkdtemp(prefix="harness-vmtest-")
    started = time.monotonic()
    handle = backend.start(resolve_target("dockerd-28"), DaemonSpec(), workdir)
    try:
        import platform

        from harness.wait import ping_once

        assert handle.endpoint is not None and ping_once(handle.endpoint, timeout=30) == 200
        assert handle.extras["kernel"] != platform.release()
        assert "API listen on" in handle.logs()
        # the data-root is guest tmpfs: the host sees an empty directory, the handle asks the guest
        overlay = os.path.join(handle.data_root, "overlay2")
        assert handle.is_dir(overlay) and not os.path.isdir(overlay)
        assert not handle.is_dir(os.path.join(handle.data_root, "no-such-dir"))
        with open(os.path.join(workdir, "console.log"), errors="replace") as fh:
            assert "harness initramfs" in fh.read()
        print(f"dockerd-28 in a VM answered after {time.monotonic() - started:.1f}s: {handle.extras}")
    finally:
        backend.teardown(handle)
    assert not os.path.exists(workdir)


_OWNER = """
import sys, time
from harness.backends.base import DaemonSpec
from harness.backends.vm import VMBackend
from harness.targets import resolve_target
handle = VMBackend().start(resolve_target("refd"), DaemonSpec(), sys.argv[1])
print(handle.pid, flush=True)
time.sleep(600)
"""


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"  # exited, not yet reaped by init
    except OSError:
        return True


@pytest.mark.slow
def test_a_killed_owner_leaves_no_vm_and_the_next_session_removes_its_files() -> None:
    missing = vm_available()
    if missing:
        pytest.skip(missing)
    if os.environ.get("HARNESS_VM_TESTS") != "1":
        pytest.skip("VM boots take minutes here (TCG): run nox -s tests-vm (HARNESS_VM_TESTS=1)")
    import signal
    import subprocess
    import sys

    from harness.cleanup import Ledger

    workdir = tempfile.mkdtemp(prefix="harness-vmkill-")
    # a private ledger: another session's reaper (every pytest session reaps at start) must not win the race
    ledger = tempfile.mkdtemp(prefix="vmkill-ledger-")
    env = {**os.environ, "HARNESS_LEDGER_DIR": ledger}
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER, workdir], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert owner.stdout is not None
        line = owner.stdout.readline()
        assert line.strip().isdigit(), f"the owner printed {line!r} instead of qemu's pid"
        qemu = int(line)
        assert not _gone(qemu)
    finally:
        owner.send_signal(signal.SIGKILL)  # no finaliser runs: what a killed pytest or CI timeout leaves
        owner.wait(timeout=30)
        if owner.stdout is not None:
            owner.stdout.close()
    # the guest reads EOF on its control port and powers off: qemu does not outlive its owner
    deadline = time.monotonic() + 90
    while not _gone(qemu):
        if time.monotonic() > deadline:
            os.kill(qemu, signal.SIGKILL)
            pytest.fail(f"qemu {qemu} was still running 90 s after its owner was killed")
        time.sleep(0.5)
    assert os.path.isdir(workdir) and os.listdir(ledger)  # nothing ran to remove it ...
    reaped = Ledger(ledger).reap()  # ... until a later session reaps what the dead owner recorded
    assert reaped == [f"pid {qemu} ({workdir})"] and not os.path.exists(workdir)
    shutil.rmtree(ledger)
