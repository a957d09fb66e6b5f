"""Targets: *which* daemon to boot (refd, the host's dockerd, or an external DOCKER_HOST)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cache

from .errors import TargetUnavailable

__all__ = ["KNOWN_TARGETS", "Target", "default_targets", "resolve_target"]


@dataclass(frozen=True)
class Target:
    """A daemon flavour: its name, how to exec it, and how it reports itself."""

    name: str
    kind: str  # "refd" | "dockerd" | "external"
    argv: tuple[str, ...] = ()
    package_hint: str = ""
    env: dict[str, str] = field(default_factory=dict)

    @property
    def is_refd(self) -> bool:
        return self.kind == "refd"

    def check_available(self) -> None:
        """Raise TargetUnavailable naming what is missing and how to get it."""
        if self.kind == "external":
            if not os.environ.get("DOCKER_HOST"):
                raise TargetUnavailable(self.name, "DOCKER_HOST is not set",
                                        "export DOCKER_HOST (and DOCKER_TLS_VERIFY/DOCKER_CERT_PATH) first")
            return
        if os.geteuid() != 0:
            raise TargetUnavailable(self.name, "booting a daemon needs root (namespaces, mounts, sockets)",
                                    "run the tests as root")
        if not self.argv or not (os.path.isabs(self.argv[0]) and os.access(self.argv[0], os.X_OK)):
            raise TargetUnavailable(self.name, f"binary {self.argv[0] if self.argv else '?'} not found",
                                    self.package_hint)
        for tool in ("unshare", "ip"):
            if shutil.which(tool) is None:
                raise TargetUnavailable(self.name, f"{tool} is not installed",
                                        "apt-get install util-linux iproute2")

    @property
    def version(self) -> str:
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
    # refd runs from the same tree as the harness that boots it, installed or not
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return Target("refd", "refd", (sys.executable, "-m", "harness.daemon"), env={"PYTHONPATH": root})


def _dockerd() -> Target:
    path = shutil.which("dockerd") or "/usr/sbin/dockerd"
    return Target("dockerd", "dockerd", (path,), "apt-get install docker.io (Debian/Ubuntu)")


KNOWN_TARGETS = ("refd", "dockerd", "external")


def resolve_target(name: str) -> Target:
    """Look a target up by name; unknown names list the known ones."""
    if name == "refd":
        return _refd()
    if name == "dockerd":
        return _dockerd()
    if name == "external":
        return Target("external", "external")
    raise TargetUnavailable(name, "unknown target", f"choose from {', '.join(KNOWN_TARGETS)}")


def default_targets() -> list[str]:
    """refd, plus the host's dockerd when installed."""
    return ["refd", "dockerd"] if shutil.which("dockerd") or os.path.exists("/usr/sbin/dockerd") else ["refd"]
