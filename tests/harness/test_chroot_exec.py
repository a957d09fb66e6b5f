"""The rootfs launcher joins a kept mount namespace on a restart (live-restore) and names a bad one."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import chroot_exec

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mount namespaces need root")

_libc = ctypes.CDLL(None, use_errno=True)


@pytest.fixture
def kept_mount_ns(tmp_path: Path) -> Iterator[Path]:
    """A mount namespace kept on a file, as the local backend keeps a dockerd's (``unshare --mount=FILE``)."""
    holder = tmp_path / "ns"
    holder.mkdir()
    subprocess.run(["mount", "--bind", str(holder), str(holder)], check=True)
    subprocess.run(["mount", "--make-private", str(holder)], check=True)
    ns_file = holder / "mnt"
    ns_file.touch()
    try:
        subprocess.run(["unshare", f"--mount={ns_file}", "--propagation", "private", "true"], check=True)
        yield ns_file
    finally:
        _libc.umount2(os.fsencode(ns_file), 2)
        _libc.umount2(os.fsencode(holder), 2)


def _launch(tmp_path: Path, join: str, *program: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, chroot_exec.JOIN_ENV: join}
    return subprocess.run(
        [sys.executable, "-I", "-S", chroot_exec.__file__, str(tmp_path), "--", *program],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
    )


def test_launcher_joins_the_kept_mount_namespace(tmp_path: Path, kept_mount_ns: Path) -> None:
    res = _launch(
        tmp_path,
        str(kept_mount_ns),
        "sh",
        "-c",
        f'readlink /proc/self/ns/mnt; echo "${chroot_exec.JOIN_ENV}"',
    )
    assert res.returncode == 0, res.stderr
    ns, leaked = res.stdout.split("\n")[:2]
    assert ns == f"mnt:[{kept_mount_ns.stat().st_ino}]"
    assert ns != os.readlink("/proc/self/ns/mnt")
    assert leaked == ""  # the program (dockerd) does not inherit the request


def test_launcher_names_a_kept_namespace_that_is_not_one(tmp_path: Path) -> None:
    plain = tmp_path / "mnt"
    plain.touch()
    res = _launch(tmp_path, str(plain), "true")
    assert res.returncode == chroot_exec.EXIT_LAUNCHER
    assert f"setns into the kept mount namespace {plain}: Invalid argument" in res.stderr
    assert f"unset {chroot_exec.JOIN_ENV}" in res.stderr
