"""The docker CLI scenarios drive: the harness's own, pinned, never whatever the host happens to have.

A scenario that runs ``docker run ...`` observes the CLI as much as the daemon (its flags, its error
texts: CLI 20.10 has no ``--health-start-interval`` and words a missing image ``Error: No such image:
nosuch``, where CLI 28 prints the daemon's ``Error response from daemon: No such image: nosuch:latest``). So
the CLI is part of the harness, like the dockerd rootfs: Debian's own package of a stated version, fetched
with ``harness.debpkg`` (private apt, verified, cached under ``$HARNESS_CACHE/debs/``), and the same on every
host. The default is Debian sid's ``docker-cli`` 28.5, the CLI of the newest dockerd the project follows.

``--docker-cli`` (plugin and ``python -m conformance``; ``HARNESS_DOCKER_CLI``) chooses another:

- ``28.5`` (default): Debian sid's ``docker-cli``, refused if sid has moved on to another version (a cached
  one is used as long as it is there);
- ``26.1``: Debian trixie's ``docker-cli``;
- ``20.10``: Debian bookworm's ``docker.io`` (bookworm's CLI lives in that package);
- a path (``/usr/local/bin/docker``): that binary, as the user asked; never chosen by itself.

Every results file and report names the CLI's version and where it came from (``TargetInfo.docker_cli``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from functools import cache

from .debpkg import DebPkgError, fetch, version_matches
from .errors import HarnessError

__all__ = ["DEFAULT", "ENV", "PINS", "DockerCLI", "DockerCLIError", "resolve", "selected"]

ENV = "HARNESS_DOCKER_CLI"
#: --docker-cli VERSION -> (Debian suite, package holding /usr/bin/docker)
PINS = {
    "28.5": ("sid", "docker-cli"),
    "26.1": ("trixie", "docker-cli"),
    "20.10": ("bookworm", "docker.io"),
}
DEFAULT = "28.5"
_VERSION = re.compile(r"Docker version ([^\s,]+)")


class DockerCLIError(HarnessError):
    """The chosen docker CLI cannot be had; the message says what was tried and how to fix it."""


@dataclass(frozen=True)
class DockerCLI:
    """A docker CLI binary, its version (``28.5.2+dfsg4``) and where it came from."""

    path: str
    version: str
    source: str

    def describe(self) -> str:
        """``28.5.2+dfsg4 (Debian sid docker-cli 28.5.2+dfsg4-5)``: what reports show."""
        return f"{self.version} ({self.source})"


def _version_of(path: str) -> str:
    try:
        res = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DockerCLIError(f"{path} --version failed: {exc}") from None
    m = _VERSION.search(res.stdout)
    if res.returncode != 0 or not m:
        raise DockerCLIError(
            f"{path} --version exited {res.returncode} without a version: "
            f"{(res.stdout + res.stderr).strip()[:200] or '(no output)'}"
        )
    return m.group(1)


@cache
def resolve(spec: str = DEFAULT) -> DockerCLI:
    """The CLI ``spec`` names (a pinned version or a path), fetched into the cache when needed (once per
    process; what the fetch says goes to stderr)."""
    spec = spec.strip() or DEFAULT
    if spec.startswith("/") or spec.startswith("."):
        path = os.path.abspath(spec)
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise DockerCLIError(f"--docker-cli {spec}: no executable file there")
        return DockerCLI(path, _version_of(path), f"path {path}")
    if spec not in PINS:
        raise DockerCLIError(
            f"--docker-cli {spec!r}: choose a pinned version ({', '.join(PINS)}; default {DEFAULT}) or the "
            "path of a docker binary"
        )
    suite, package = PINS[spec]
    try:
        unpacked = fetch(suite, package, version=spec, out=sys.stderr)
    except DebPkgError as exc:
        raise DockerCLIError(
            f"the pinned docker CLI {spec} (Debian {suite}'s {package}) cannot be fetched: {exc}\n"
            "Point --docker-cli (or HARNESS_DOCKER_CLI) at a docker binary to use that one instead."
        ) from None
    path = str(unpacked.root / "usr/bin/docker")
    if not os.path.isfile(path):
        raise DockerCLIError(f"{unpacked.describe()} holds no /usr/bin/docker ({unpacked.root})")
    version = _version_of(path)
    if not version_matches(version, spec):
        raise DockerCLIError(f"{path} says it is {version}, not the pinned {spec}")
    return DockerCLI(path, version, unpacked.describe())


def selected() -> str:
    """The ``--docker-cli`` of this run: ``HARNESS_DOCKER_CLI`` (the plugin sets it), else the default."""
    return os.environ.get(ENV, "").strip() or DEFAULT
