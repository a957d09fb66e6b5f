"""The private accounts launcher: a daemon that creates users writes overlays, never the host's /etc."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import private_accounts
from harness.backends.base import DaemonSpec
from harness.backends.local import private_accounts_launcher, remaps_users
from harness.targets import resolve_target

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mount namespaces need root")

HOST_FILES = ("/etc/passwd", "/etc/group", "/etc/subuid", "/etc/subgid", "/etc/shadow", "/etc/gshadow")


def _digests() -> dict[str, str]:
    out = {}
    for path in HOST_FILES:
        if os.path.exists(path):
            out[path] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return out


def _in_new_mount_ns(script: str, caller: str | None = None) -> subprocess.CompletedProcess[str]:
    """``script`` (sh) in a fresh private mount namespace; ``$LAUNCH`` runs the launcher.

    Even a launcher that failed to refuse would mount only in that throwaway namespace.
    """
    launch = f"{sys.executable} -I -S {private_accounts.__file__}"
    env = {**os.environ, "LAUNCH": launch}
    env[private_accounts.CALLER_ENV] = str(os.stat("/proc/self/ns/mnt").st_ino) if caller is None else caller
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def _this_mount_ns_mounts(state: Path) -> list[str]:
    with open("/proc/self/mountinfo") as fh:
        return [line for line in fh if str(state) in line or " harness-etc " in line]


def test_writes_land_in_the_state_dir_and_the_host_files_stay(tmp_path: Path) -> None:
    before = _digests()
    state = tmp_path / "private"
    res = _in_new_mount_ns(
        f"$LAUNCH {state} -- sh -c 'echo probe:x:4242:4242::/:/bin/false >> /etc/passwd && "
        "echo probe:100000:65536 >> /etc/subuid && echo line >> /var/log/harness-probe.log && "
        "grep -c probe /etc/passwd'"
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "1"
    assert _digests() == before
    assert not os.path.exists("/var/log/harness-probe.log")
    assert "probe:x:4242" in (state / "etc/upper/passwd").read_text()
    assert (state / "etc/upper/subuid").read_text().endswith("probe:100000:65536\n")
    assert (state / "varlog/upper/harness-probe.log").read_text() == "line\n"
    assert _this_mount_ns_mounts(state) == []  # the overlays lived in the throwaway namespace only
    # the next boot (a fresh namespace, the same state dir) sees what the last one wrote
    again = _in_new_mount_ns(f"$LAUNCH {state} -- grep -c probe /etc/passwd")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "1"


def test_mounts_below_etc_are_kept_on_top_of_the_overlay(tmp_path: Path) -> None:
    marker = tmp_path / "hostname"
    marker.write_text("bound-in\n")
    res = _in_new_mount_ns(
        f"mount --bind {marker} /etc/hostname && $LAUNCH {tmp_path / 'private'} -- cat /etc/hostname"
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout == "bound-in\n"


def test_a_kept_namespace_is_not_mounted_twice(tmp_path: Path) -> None:
    state = tmp_path / "private"
    res = _in_new_mount_ns(
        f"$LAUNCH {state} -- true && $LAUNCH {state} -- grep -c ' harness-etc ' /proc/self/mountinfo"
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "1"


@pytest.mark.parametrize(
    ("caller", "why"),
    [
        ("$(stat -L -c %i /proc/self/ns/mnt)", "this is the caller's own mount namespace"),
        ("", "HARNESS_CALLER_MNT_NS is not set"),
    ],
)
def test_refuses_the_callers_mount_namespace(tmp_path: Path, caller: str, why: str) -> None:
    """Run where the caller's namespace is the launcher's own (a throwaway one, should the check fail)."""
    state = tmp_path / "private"
    res = _in_new_mount_ns(
        f'HARNESS_CALLER_MNT_NS="{caller}" $LAUNCH {state} -- true; echo "exit $?"; '
        "grep -c ' harness-etc ' /proc/self/mountinfo",
        caller="",
    )
    assert res.stdout.split("\n")[:2] == [f"exit {private_accounts.EXIT_LAUNCHER}", "0"], res.stderr
    assert f"refusing to mount: {why}" in res.stderr
    assert not (state / "etc").exists()
    assert _this_mount_ns_mounts(state) == []


def test_usage_error() -> None:
    res = subprocess.run(
        [sys.executable, "-I", "-S", private_accounts.__file__, "/x"], capture_output=True, text=True
    )
    assert res.returncode == 2
    assert "usage:" in res.stderr


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (DaemonSpec(args=["--userns-remap=default"]), True),
        (DaemonSpec(args=["--userns-remap", "default"]), True),
        (DaemonSpec(config={"userns-remap": "default"}), True),
        (DaemonSpec(config='{"userns-remap": "default"}'), True),
        (DaemonSpec(args=["--debug"], config={"debug": True}), False),
    ],
)
def test_which_daemons_remap_users(spec: DaemonSpec, expected: bool) -> None:
    assert remaps_users(spec) is expected


def test_only_targets_on_the_hosts_etc_get_the_launcher(tmp_path: Path) -> None:
    spec = DaemonSpec(args=["--userns-remap=default"])
    launcher = private_accounts_launcher(resolve_target("refd"), spec, str(tmp_path))
    assert launcher[-3:] == [private_accounts.__file__, str(tmp_path / "private"), "--"]
    assert private_accounts_launcher(resolve_target("dockerd"), spec, str(tmp_path))
    # a rootfs target runs on its own rootfs's /etc already
    assert private_accounts_launcher(resolve_target("dockerd-28"), spec, str(tmp_path)) == []
    assert private_accounts_launcher(resolve_target("refd"), DaemonSpec(), str(tmp_path)) == []
