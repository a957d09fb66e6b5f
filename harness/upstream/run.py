"""Run one of moby's integration test binaries against a daemon the harness booted.

moby runs these tests inside its development container, next to the dockerd they test: same mount and
network namespaces, an ``eth0`` with an address, ``/`` made rshared (``hack/dind``). The harness gives each
binary the same, with the booted daemon's namespaces instead of a container:

- the daemon's mount namespace is made rshared (``mount --make-rshared /`` inside it: it was made private
  from the host's when the daemon booted, so nothing propagates to the host) and its network namespace gets
  an ``eth0`` with a TEST-NET address (one end of a veth pair whose other end stays there too: no traffic
  leaves the namespace; moby's NAT tests look the address up);
- the binary runs in both namespaces (``nsenter``) from a run directory inside the daemon's work directory
  (which every target sees at the same path, a rootfs target too): the binary, the package's sources (the
  tests read ``testdata/`` relative to them), ``HOME``, ``TMPDIR`` and a ``bin/`` with ``registry`` (Debian's
  ``docker-registry``, which two packages' tests start);
- the frozen images are loaded first (``harness.upstream.frozen``).

So whatever a test does on "the host" (mounts, links, iptables, sysctls) happens in the daemon's namespaces
and goes when the daemon is torn down.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from ..errors import HarnessError
from .gotest import PackageRun, list_tests, run_package
from .skips import OWN_DAEMON_REASON

if TYPE_CHECKING:
    from ..backends.base import DaemonHandle
    from ..endpoints import Endpoint
    from .build import Build

__all__ = [
    "EXTERNAL_ADDRESS",
    "REGISTRY_BINARY",
    "Package",
    "UpstreamMoby",
    "UpstreamRunError",
    "client_version_env",
    "load_images",
    "prepare_namespaces",
    "run_on",
]

#: the address of eth0 in the daemon's network namespace (TEST-NET-1: never routed anywhere)
EXTERNAL_ADDRESS = "192.0.2.10/24"
REGISTRY_BINARY = "/usr/bin/docker-registry"
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NO_DOCKERD = (
    "#!/bin/sh\necho 'the conformance harness does not let moby tests start a dockerd of their own "
    "(it would be this machine'\\''s dockerd, not the target under test)' >&2\nexit 1\n"
)


class UpstreamRunError(HarnessError):
    """A package could not be run against the daemon (not a test failing: the run itself)."""


@dataclass(frozen=True)
class Package:
    """One built moby integration package: its name (``network/bridge``), test binary and sources, the
    tests that start a dockerd of their own (skipped), and the tree holding ``integration/`` and
    ``testutil/`` (the import path ``github.com/docker/docker``'s root; ``""``: the package alone)."""

    name: str
    binary: str
    source: str
    own_daemon: tuple[str, ...] = ()
    tree: str = ""

    @property
    def slug(self) -> str:
        return self.name.replace("/", "-")


def load_images(endpoint: Endpoint, archive: bytes) -> list[str]:
    """``POST /images/load`` the frozen images' archive; the tags the daemon reports loaded."""
    from ..client import EngineClient

    client = EngineClient(endpoint, timeout=300)
    try:
        resp = client.post(
            "/images/load?quiet=1", data=archive, headers={"Content-Type": "application/x-tar"}
        )
        if resp.status_code != 200:
            raise UpstreamRunError(
                f"loading moby's frozen images into {endpoint.docker_host} failed: {resp.status_code} "
                f"{resp.text.strip()[:500]}"
            )
        loaded = []
        for line in resp.text.splitlines():
            if not line.strip():
                continue
            msg = json.loads(line)
            if "error" in msg or "errorDetail" in msg:
                raise UpstreamRunError(f"loading moby's frozen images failed: {line.strip()[:500]}")
            text = str(msg.get("stream", ""))
            if text.startswith("Loaded image: "):
                loaded.append(text.removeprefix("Loaded image: ").strip())
        return loaded
    finally:
        client.close()


def client_version_env(endpoint: Endpoint, suite_version: str) -> dict[str, str]:
    """``DOCKER_API_VERSION`` for a daemon older than the suite's client (moby's test client does not
    negotiate: against dockerd 20.10 every request would be 'client version 1.51 is too new'), as one runs
    moby's suite against an older daemon; nothing when the daemon speaks the suite's version."""
    from ..client import EngineClient

    client = EngineClient(endpoint, timeout=30)
    try:
        served = str(client.get("/version").json().get("ApiVersion", ""))
    finally:
        client.close()

    def key(v: str) -> tuple[int, ...]:
        return tuple(int(p) for p in v.split(".") if p.isdigit())

    if served and key(served) < key(suite_version):
        return {"DOCKER_API_VERSION": served}
    return {}


def _nsenter(pid: int, *argv: str, mount: bool = True) -> list[str]:
    ns = [f"--mount=/proc/{pid}/ns/mnt"] if mount else []
    return ["nsenter", *ns, f"--net=/proc/{pid}/ns/net", "--", *argv]


def prepare_namespaces(pid: int, address: str = EXTERNAL_ADDRESS) -> None:
    """Make the daemon's mount namespace rshared and give its network namespace an ``eth0``."""
    if os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat("/proc/self/ns/net").st_ino:
        raise UpstreamRunError(f"pid {pid} runs in this host's network namespace: refusing to change it")
    if os.stat(f"/proc/{pid}/ns/mnt").st_ino == os.stat("/proc/self/ns/mnt").st_ino:
        raise UpstreamRunError(f"pid {pid} runs in this host's mount namespace: refusing to change it")
    steps = [_nsenter(pid, "mount", "--make-rshared", "/")]
    has_eth0 = subprocess.run(_nsenter(pid, "ip", "link", "show", "eth0", mount=False), capture_output=True)
    if has_eth0.returncode != 0:
        steps += [
            _nsenter(
                pid, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0-peer", mount=False
            ),
            _nsenter(pid, "ip", "addr", "add", address, "dev", "eth0", mount=False),
            _nsenter(pid, "ip", "link", "set", "eth0-peer", "up", mount=False),
            _nsenter(pid, "ip", "link", "set", "eth0", "up", mount=False),
        ]
    for cmd in steps:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        if res.returncode != 0:
            raise UpstreamRunError(f"{' '.join(cmd)} failed: {(res.stderr or res.stdout).strip()}")


def _place(src: str, dest: str) -> None:
    """A hard link when ``src`` and ``dest`` share a file system, else a copy."""
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


def _run_dir(handle: DaemonHandle, package: Package) -> tuple[str, str, dict[str, str]]:
    """The run directory, the binary's working directory (its package's sources) and its environment.

    The tree goes to ``src/github.com/docker/docker`` and the package directory gets a ``github.com`` link
    to ``src/github.com``: the binaries are built with -trimpath, so a failing gotest.tools assertion reads
    its source at ``github.com/docker/docker/...`` relative to the working directory.
    """
    base = os.path.join(handle.workdir, "upstream", package.slug)
    shutil.rmtree(base, ignore_errors=True)
    for sub in ("bin", "home", "tmp", "dest"):
        os.makedirs(os.path.join(base, sub))
    _place(package.binary, os.path.join(base, "pkg.test"))
    root = os.path.join(base, "src", "github.com", "docker", "docker")
    cwd = os.path.join(root, "integration", package.name)
    if package.tree:
        shutil.copytree(package.tree, root, symlinks=True)
    else:
        shutil.copytree(package.source, cwd, symlinks=True)
    os.symlink(os.path.join(base, "src", "github.com"), os.path.join(cwd, "github.com"))
    if os.path.exists(REGISTRY_BINARY):
        _place(REGISTRY_BINARY, os.path.join(base, "bin", "registry"))
    # first on PATH: a test that would start a dockerd of its own and slipped past the skips fails
    # instead of starting the machine's dockerd
    with open(os.path.join(base, "bin", "dockerd"), "w") as fh:
        fh.write(NO_DOCKERD)
    os.chmod(os.path.join(base, "bin", "dockerd"), 0o755)
    assert handle.endpoint is not None
    env = {
        "PATH": f"{base}/bin:{_PATH}",
        "HOME": f"{base}/home",
        "TMPDIR": f"{base}/tmp",
        "TEMP": f"{base}/tmp",
        "DEST": f"{base}/dest",
        "DOCKER_INTEGRATION_DAEMON_DEST": f"{base}/dest",
        "DOCKER_HOST": handle.endpoint.docker_host,
        "GOTRACEBACK": "all",
        "LANG": "C.UTF-8",
    }
    return base, cwd, env


def run_on(
    handle: DaemonHandle,
    package: Package,
    test2json: str,
    *,
    test_timeout: float = 300.0,
    log: IO[str] | None = None,
    extra_env: Mapping[str, str] | None = None,
    only: Sequence[str] = (),
) -> PackageRun:
    """Run ``package``'s binary against ``handle`` (booted, frozen images loaded) to the end (only the
    top-level tests ``only`` names, when given)."""
    if handle.process is None or handle.returncode is not None:
        raise UpstreamRunError(f"the {handle.target.name} daemon is not running")
    base, cwd, env = _run_dir(handle, package)
    env.update(extra_env or {})
    argv = ["nsenter", f"--mount=/proc/{handle.pid}/ns/mnt", f"--net=/proc/{handle.pid}/ns/net"]
    argv += [f"--wd={cwd}", "--", f"{base}/pkg.test"]
    try:
        tests = list_tests(argv, env, base)
        if only:
            tests = [t for t in tests if t in only]
    except RuntimeError as exc:
        run = PackageRun()
        run.problems.append(f"{package.name}: {exc}")
        return run
    skip = dict.fromkeys(package.own_daemon, OWN_DAEMON_REASON)
    return run_package(
        argv,
        test2json,
        f"github.com/docker/docker/integration/{package.name}",
        tests=tests,
        skip=skip,
        env=env,
        cwd=base,
        test_timeout=test_timeout,
        log=log,
    )


class UpstreamMoby:
    """A build of moby's test binaries and its frozen images, ready to run packages against daemons."""

    def __init__(self, build: Build) -> None:
        self.build = build
        self.packages = {p.name: p for p in build.packages()}
        self._archive: bytes | None = None

    @property
    def archive(self) -> bytes:
        """The frozen images' ``docker save`` archive (built once per process, byte-for-byte the same)."""
        if self._archive is None:
            from ..images import busybox_rootfs
            from .frozen import frozen_images, save_archive

            busybox = busybox_rootfs().read()
            hello = {arch: self.build.hello(arch) for arch in ("amd64", "arm64")}
            self._archive = save_archive(frozen_images(busybox, hello))
        return self._archive

    def run(
        self,
        handle: DaemonHandle,
        name: str,
        log: IO[str] | None = None,
        test_timeout: float = 300.0,
        only: Sequence[str] = (),
    ) -> PackageRun:
        """Load the frozen images into ``handle``, prepare its namespaces, run package ``name`` there."""
        package = self.packages.get(name)
        if package is None:
            raise UpstreamRunError(
                f"package {name} is not in the build {self.build.path} (has {', '.join(self.packages)})"
            )
        assert handle.endpoint is not None
        load_images(handle.endpoint, self.archive)
        prepare_namespaces(handle.pid)
        env = client_version_env(handle.endpoint, self.build.api_version)
        return run_on(
            handle,
            package,
            self.build.test2json,
            test_timeout=test_timeout,
            log=log,
            only=only,
            extra_env=env,
        )
