"""The vm backend and its kernels: what needs no VM runs everywhere; booting runs in nox -s tests-vm."""

from __future__ import annotations

import io
import os
import tempfile
import time

import pytest

from harness.backends.base import DaemonHandle, DaemonSpec
from harness.backends.vm import GUEST_SOCKET, VMBackend, vm_available
from harness.errors import TargetUnavailable
from harness.targets import resolve_target
from harness.vmimages import VMImageError, _module_order, kernel_suite, write_cpio


def test_kernel_names_and_aliases() -> None:
    assert kernel_suite("bookworm") == "bookworm"
    assert kernel_suite("6.12") == "trixie"
    assert kernel_suite("SID") == "sid"
    with pytest.raises(VMImageError, match="unknown kernel 'buster' from HARNESS_VM_KERNEL: choose from"):
        kernel_suite("buster", "HARNESS_VM_KERNEL")


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
        with open(os.path.join(workdir, "console.log"), errors="replace") as fh:
            assert "harness initramfs" in fh.read()
        print(f"dockerd-28 in a VM answered after {time.monotonic() - started:.1f}s: {handle.extras}")
    finally:
        backend.teardown(handle)
    assert not os.path.exists(workdir)
