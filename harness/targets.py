"""Targets: *which* daemon to boot (refd, the host's dockerd, a Debian dockerd in a cached rootfs, or an
external DOCKER_HOST)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cache
from typing import IO

from .errors import TargetUnavailable

__all__ = [
    "KNOWN_TARGETS",
    "MAIN_JOB_ROOTFS_TARGET",
    "ROOTFS_TARGETS",
    "Target",
    "default_targets",
    "main_job_rootfs_targets",
    "resolve_target",
]


@dataclass(frozen=True)
class Target:
    """A daemon flavour: its name, how to exec it, and how it reports itself."""

    name: str
    kind: str  # "refd" | "dockerd" | "external"
    argv: tuple[str, ...] = ()
    package_hint: str = ""
    env: dict[str, str] = field(default_factory=dict)
    rootfs: str = ""  # a harness.rootfs recipe: dockerd (argv, a path inside it) runs chrooted in that rootfs
    launcher: tuple[str, ...] = ()  # argv prefix that execs the daemon, run before a DaemonSpec's wrapper

    @property
    def is_refd(self) -> bool:
        return self.kind == "refd"

    def check_available(self) -> None:
        """Raise TargetUnavailable naming what is missing and how to get it."""
        if self.kind == "external":
            if not os.environ.get("DOCKER_HOST"):
                raise TargetUnavailable(
                    self.name,
                    "DOCKER_HOST is not set",
                    "export DOCKER_HOST (and DOCKER_TLS_VERIFY/DOCKER_CERT_PATH) first",
                )
            return
        if os.geteuid() != 0:
            raise TargetUnavailable(
                self.name,
                "booting a daemon needs root (namespaces, mounts, sockets)",
                "run the tests as root",
            )
        if self.rootfs:
            _check_rootfs(self)
        elif not self.argv or not (os.path.isabs(self.argv[0]) and os.access(self.argv[0], os.X_OK)):
            raise TargetUnavailable(
                self.name, f"binary {self.argv[0] if self.argv else '?'} not found", self.package_hint
            )
        for tool in ("unshare", "ip"):
            if shutil.which(tool) is None:
                raise TargetUnavailable(
                    self.name, f"{tool} is not installed", "apt-get install util-linux iproute2"
                )

    def prepare(self, out: IO[str] | None = None) -> None:
        """Build what the target needs on first use (a dockerd-N rootfs: minutes once, then cached)."""
        if self.rootfs:
            from .rootfs import ensure

            ensure(self.rootfs, out=sys.stderr if out is None else out)

    @property
    def version(self) -> str:
        if self.rootfs:
            from .rootfs import locate

            return locate(self.rootfs).dockerd_version  # recorded at build time; "" before
        if self.kind == "dockerd":
            return _binary_version(self.argv)
        return _refd_version() if self.is_refd else ""


@cache
def _binary_version(argv: tuple[str, ...]) -> str:
    try:
        out = subprocess.run([*argv, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    match = re.search(r"version ([^\s,]+)", out)
    return match.group(1) if match else ""


def _refd_version() -> str:
    from .daemon import ENGINE_VERSION

    return ENGINE_VERSION


def _refd() -> Target:
    # refd runs from the same tree as the harness that boots it, installed or not. It is stdlib-only,
    # so -S: no site-packages and no .pth hooks (an editable install's finder alone costs ~10 ms of
    # every boot); its shims' zygote inherits the flag. PYTHONDONTWRITEBYTECODE is off for it (empty
    # is off): refd keeps its bytecode in the __pycache__ the tree ignores, or every boot compiles it again.
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {"PYTHONPATH": root, "PYTHONDONTWRITEBYTECODE": ""}
    return Target("refd", "refd", (sys.executable, "-S", "-m", "harness.daemon"), env=env)


def _dockerd() -> Target:
    path = shutil.which("dockerd") or "/usr/sbin/dockerd"
    return Target("dockerd", "dockerd", (path,), "apt-get install docker.io (Debian/Ubuntu)")


def _check_rootfs(target: Target) -> None:
    from .rootfs import locate

    entry = locate(target.rootfs)
    if entry.is_built():
        return
    if shutil.which("debootstrap") is None and not os.access("/usr/sbin/debootstrap", os.X_OK):
        raise TargetUnavailable(
            target.name,
            f"its Debian {entry.recipe.suite} rootfs is not built and debootstrap is not installed",
            f"apt-get install debootstrap; it is then built on first use (or now: "
            f"python -m harness.rootfs build {target.name})",
        )


def _rootfs_dockerd(name: str) -> Target:
    """Debian's docker.io dockerd from a debootstrapped rootfs (built on first use, see harness.rootfs)."""
    from .rootfs import locate

    entry = locate(name)
    launcher = (
        sys.executable,
        "-I",
        "-S",
        os.path.join(os.path.dirname(os.path.abspath(__file__)), "chroot_exec.py"),
        "--lock",
        entry.lock_path,
        entry.root,
        "--",
    )
    hint = f"python -m harness.rootfs build {name} (needs debootstrap)"
    return Target(name, "dockerd", ("/usr/sbin/dockerd",), hint, rootfs=name, launcher=launcher)


ROOTFS_TARGETS = ("dockerd-20.10", "dockerd-26", "dockerd-28")
KNOWN_TARGETS = ("refd", "dockerd", *ROOTFS_TARGETS, "external")


def resolve_target(name: str) -> Target:
    """Look a target up by name; unknown names list the known ones."""
    if name == "refd":
        return _refd()
    if name == "dockerd":
        return _dockerd()
    if name in ROOTFS_TARGETS:
        return _rootfs_dockerd(name)
    if name == "external":
        return Target("external", "external")
    raise TargetUnavailable(name, "unknown target", f"choose from {', '.join(KNOWN_TARGETS)}")


def default_targets() -> list[str]:
    """refd, plus the host's dockerd when installed."""
    return ["refd", "dockerd"] if shutil.which("dockerd") or os.path.exists("/usr/sbin/dockerd") else ["refd"]


#: the dockerd version the conformance main job adds by default (the newest, which refd follows)
MAIN_JOB_ROOTFS_TARGET = "dockerd-28"


def main_job_rootfs_targets(out: IO[str] | None = None, build: bool = True) -> tuple[list[str], str]:
    """The rootfs target the conformance main job adds to ``default_targets()``: ``dockerd-28`` when its
    Debian sid rootfs is cached, or can be built here (root and debootstrap; built now, about a minute once,
    progress on ``out``). Returns the names and, when it is left out, a note saying why (else ``""``)."""
    from .rootfs import RootfsBuildError, ensure, locate

    name = MAIN_JOB_ROOTFS_TARGET
    try:
        entry = locate(name)
        if entry.is_built():
            return [name], ""
    except (RootfsBuildError, OSError) as exc:
        return [], f"{name} left out: {exc}"
    why = ""
    if os.geteuid() != 0:
        why = "building its Debian sid rootfs needs root"
    elif shutil.which("debootstrap") is None and not os.access("/usr/sbin/debootstrap", os.X_OK):
        why = "its Debian sid rootfs cannot be built without debootstrap (apt-get install debootstrap)"
    elif not build:
        why = "its Debian sid rootfs is not built (python -m harness.rootfs build dockerd-28)"
    if why:
        return [], f"{name} left out: {why}"
    try:
        ensure(name, out=out)
    except (RootfsBuildError, OSError) as exc:
        first = (str(exc).splitlines() or [""])[0]
        return [], f"{name} left out: its Debian sid rootfs could not be built: {first}"
    return [name], ""
