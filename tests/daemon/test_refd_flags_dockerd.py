"""refd's command line against the newest Debian dockerd's (``dockerd-28``, from its cached sid rootfs).

``dockerd --help`` is the list of flags users script: refd must print the same text (every flag, its
spelling, short form, type and default, in pflag's layout), so a flag a new dockerd adds fails here instead
of going unnoticed. dockerd only prints here: it runs through the harness's rootfs launcher in a private
mount and network namespace and starts no daemon.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.targets import resolve_target

ROOT = Path(__file__).resolve().parents[2]
ENV = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "HOME": "/root", "LANG": "C.UTF-8"}
FLAG_LINE = re.compile(r"^  (?:-(\w), |    )--([\w-]+)(?: ([\w-]+))?", re.M)


def _dockerd(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    from harness.rootfs import ensure

    target = resolve_target("dockerd-28")
    if os.geteuid() != 0:
        pytest.skip("running dockerd from its rootfs needs root (a private mount namespace)")
    # Built (cached, locked), not skipped: on a fresh machine a skip would hide a new dockerd flag.
    ensure("dockerd-28")
    command = ["unshare", "--mount", "--net", "--propagation", "private", "--", *target.launcher]
    return subprocess.run(
        [*command, "/usr/sbin/dockerd", *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=ENV,
        cwd=cwd,
        timeout=60,
    )


def _refd(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-S", "-m", "harness.daemon", *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env={**ENV, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )


def _flags(help_text: str) -> dict[str, tuple[str, str]]:
    return {m.group(2): (m.group(1) or "", m.group(3) or "") for m in FLAG_LINE.finditer(help_text)}


def test_refd_help_is_dockerds(tmp_path: Path) -> None:
    theirs = _dockerd(["--help"], tmp_path)
    assert theirs.returncode == 0, theirs.stderr
    mine = _refd(["--help"])
    assert mine.returncode == 0, mine.stderr
    missing = sorted(set(_flags(theirs.stdout)) - set(_flags(mine.stdout)))
    extra = sorted(set(_flags(mine.stdout)) - set(_flags(theirs.stdout)))
    assert (missing, extra) == ([], []), f"dockerd-28 lists flags refd lacks: {missing}; refd's own: {extra}"
    assert len(_flags(theirs.stdout)) >= 87
    assert _flags(mine.stdout) == _flags(theirs.stdout)  # short forms and value types
    assert mine.stdout == theirs.stdout  # help texts, defaults, wrapping


def test_refd_version_answers_as_dockerd_does(tmp_path: Path) -> None:
    theirs = _dockerd(["--version"], tmp_path)
    pattern = re.compile(r"Docker version (\S+), build (\S+)\n")
    assert theirs.returncode == 0 and pattern.fullmatch(theirs.stdout), theirs.stdout
    for spelling in (["--version"], ["-v"], ["-v", "--debug"]):
        mine = _refd(spelling)
        found = pattern.fullmatch(mine.stdout)
        assert mine.returncode == 0 and found and mine.stderr == "", mine
        assert found.group(1).endswith("-refd")  # refd's own version (and its build: the tree's commit)


@pytest.mark.parametrize(
    "args",
    [
        ["--bogus"],
        ["--version", "--bogus"],
        ["--dns=1.1.1.1,x"],
        ["--ip=x"],
        ["--feature=x=maybe"],
        ["--default-network-opt=a=b"],
        ["--default-address-pool=base=x"],
        ["--default-address-pool=foo=1"],
        ["--default-address-pool=base=300.1.1.1/8,size=24"],
        ["--default-address-pool=base=10.0.0.0/08,size=24"],
        ["--default-address-pool=base=10.0.0.0/8,size=2_4"],
        ["--host-gateway-ip=x"],
        ["-h"],
        ["-r", "--validate", "--config-file=/dev/null"],
        ["--help=false", "--validate", "--config-file=/dev/null"],
    ],
)
def test_refd_answers_bad_and_special_flags_as_dockerd_does(tmp_path: Path, args: list[str]) -> None:
    theirs = _dockerd(args, tmp_path)
    mine = _refd(args)
    assert (mine.returncode, mine.stdout, mine.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr)


@pytest.mark.parametrize(
    "pools",
    [
        [{"base": "x", "size": 99}],
        [{"base": 5, "size": 24}],
        [{"base": True, "size": 24}],
        [{"base": "1.2.3.4/40", "size": 24}],
        [{"base": "10.0.0/8", "size": 24}],
        [{"base": "fe80::1%eth0/64", "size": 80}],
        [{"base": "10.0.0.0/8", "size": "24"}],
        [{"base": "10.0.0.0/8", "size": 24.5}],
        [{"base": "10.97.0.0/16", "size": 24}, "x"],
        [{"BASE": "10.97.1.0/16", "Size": 24, "other": 1}],
    ],
)
def test_refd_decodes_address_pools_as_dockerd_does(tmp_path: Path, pools: list[object]) -> None:
    """daemon.json's default-address-pools through dockerd 28.5's decoder (``--validate``): the same
    netip.ParsePrefix and json refusals, and the same acceptance of unknown fields and unmasked bases."""
    config = tmp_path / "daemon.json"
    config.write_text(json.dumps({"default-address-pools": pools}))
    args = ["--validate", f"--config-file={config}"]
    theirs = _dockerd(args, tmp_path)
    mine = _refd(args)
    assert (mine.returncode, mine.stdout, mine.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr)
