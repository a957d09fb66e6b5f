"""Build moby's integration test binaries from Debian's docker.io source package, offline after one fetch.

What dockerd-28 runs is Debian sid's ``docker.io``; the harness builds the tests of the same source package:

1. **Source**: the source package's ``orig.tar.xz`` (moby's ``engine/``, ``integration/`` and
   ``testutil/`` included; ``vendor/`` only partly: Debian strips what it packages) and ``debian.tar.xz``,
   each checked against the signed Sources index (``harness.debpkg``); Debian's patches that touch only
   ``engine/`` are applied with ``patch``.
2. **Go and the dependencies**, as Debian builds the package (GOPATH mode against its ``golang-*-dev``
   packages): every ``golang-*`` package ``apt-get build-dep docker.io=VERSION`` installs (the Go toolchain
   among them) plus ``golang-github-docker-docker-dev`` of the same version (it carries the buildkit
   sources the orig tarball's component would), downloaded once into the private apt's cache and unpacked
   into a work directory. ``GO111MODULE=off GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=0``; the engine's
   partial ``vendor/`` is also a GOPATH entry, for the buildkit sources that import from it.
3. **Binaries**: one ``go test -c`` per package (:data:`PACKAGES`), Go's ``test2json``, and the static
   ``hello`` of the frozen hello-world images for amd64 and arm64, into
   ``$HARNESS_CACHE/upstream-moby/<docker.io version>_go<go version>/`` with ``tree/integration`` and
   ``tree/testutil`` (the tests read ``testdata/`` relative to their package, and gotest.tools quotes a
   failing assertion from its source) and ``meta.json``. The work directory (about 3 GiB unpacked)
   is removed once the entry is complete; a failed build keeps it for the next try.

The version is the ``docker.io`` the dockerd-28 rootfs holds (else sid's current one); an entry that is
already built is used without any network. ``python -m harness.upstream build`` builds ahead of time.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..errors import HarnessError
from .frozen import HELLO_SOURCE
from .skips import tests_starting_daemons

__all__ = [
    "PACKAGES",
    "SCHEMA",
    "SOURCE_PACKAGE",
    "Build",
    "BuildError",
    "build",
    "cache_dir",
    "cached_builds",
    "ensure_build",
    "safe_extract",
    "target_version",
]

#: the integration packages the harness runs (moby's API-level suites; the swarm, plugin-authz and
#: daemon-level ones start dockerds of their own)
PACKAGES = (
    "container",
    "image",
    "network",
    "network/bridge",
    "networking",
    "volume",
    "system",
    "build",
    "capabilities",
    "session",
    "plugin/common",
)
SOURCE_PACKAGE = "docker.io"
SUITE = "sid"
SCHEMA = "harness.upstream-moby/1"
#: the binary package of the same source that carries the buildkit sources (the orig-buildkit component)
_LIBRARY_PACKAGE = "golang-github-docker-docker-dev"
_ENGINE_IMPORT = "github.com/docker/docker"
#: build-time patches of other components (cli/, buildkit/) do not apply to engine/
_COMPONENT = "engine"
#: the parts of the engine's tree kept beside the binaries: the packages' sources and testdata, and the
#: helpers whose assertions gotest.tools quotes from source
_TREE = ("integration", "testutil")


class BuildError(HarnessError):
    """moby's test binaries could not be built; the message says what failed and how to fix it."""


def _log(out: IO[str] | None, text: str) -> None:
    if out is not None:
        out.write(f"harness upstream-moby: {text}\n")
        out.flush()


def cache_dir() -> Path:
    from ..debpkg import cache_base

    return Path(cache_base()) / "upstream-moby"


@dataclass(frozen=True)
class Build:
    """A complete cache entry: the binaries of one docker.io version built with one Go version."""

    path: Path

    def meta(self) -> dict[str, Any]:
        data = json.loads((self.path / "meta.json").read_text())
        return data if isinstance(data, dict) else {}

    @property
    def version(self) -> str:
        return str(self.meta()["version"])

    @property
    def go_version(self) -> str:
        return str(self.meta()["go_version"])

    @property
    def api_version(self) -> str:
        """The API version the tests' client speaks unless told otherwise (``1.51`` for moby 28.5)."""
        return str(self.meta().get("api_version") or "1.51")

    @property
    def test2json(self) -> str:
        return str(self.path / "bin" / "test2json")

    def hello(self, arch: str) -> bytes:
        return (self.path / "hello" / arch).read_bytes()

    def packages(self) -> list[Any]:
        """The built packages as ``harness.upstream.run.Package`` values, in :data:`PACKAGES` order."""
        from .run import Package

        built = self.meta()["packages"]
        tree = self.path / "tree"
        return [
            Package(
                name,
                str(self.path / "bin" / f"{name.replace('/', '-')}.test"),
                str(tree / "integration" / name),
                tuple(built[name]["own_daemon"]),
                str(tree),
            )
            for name in PACKAGES
            if name in built
        ]


def _entry_name(version: str, go_version: str) -> str:
    return f"{version.replace(':', '%3a')}_go{go_version}"


def cached_builds(version: str | None = None) -> list[Build]:
    """The complete entries in the cache (of ``version`` when given), newest first."""
    found = []
    for meta in cache_dir().glob("*/meta.json"):
        with contextlib.suppress(OSError, ValueError, KeyError):
            data = json.loads(meta.read_text())
            if data.get("schema") == SCHEMA and (version is None or data["version"] == version):
                found.append((meta.stat().st_mtime, Build(meta.parent)))
    return [b for _, b in sorted(found, key=lambda f: -f[0])]


def target_version(out: IO[str] | None = None) -> str:
    """The docker.io version to build: ``$HARNESS_UPSTREAM_MOBY_VERSION``, else the one in the dockerd-28
    rootfs, else the newest already built, else sid's current one."""
    pinned = os.environ.get("HARNESS_UPSTREAM_MOBY_VERSION")
    if pinned:
        return pinned
    from ..rootfs import locate

    entry = locate("dockerd-28")
    if entry.is_built():
        version = _installed_version(Path(entry.root), SOURCE_PACKAGE)
        if version:
            return version
    built = cached_builds()
    if built:
        return built[0].version
    from ..debpkg import PrivateApt

    with PrivateApt(SUITE, out=out) as apt:
        apt.update()
        return apt.candidate(SOURCE_PACKAGE)


def _installed_version(root: Path, package: str) -> str:
    try:
        status = (root / "var/lib/dpkg/status").read_text(errors="replace")
    except OSError:
        return ""
    for stanza in status.split("\n\n"):
        if re.search(rf"^Package: {re.escape(package)}$", stanza, re.M):
            m = re.search(r"^Version: (\S+)$", stanza, re.M)
            return m.group(1) if m else ""
    return ""


def ensure_build(
    out: IO[str] | None = sys.stderr, version: str | None = None, rebuild: bool = False
) -> Build:
    """The built entry for ``version`` (default :func:`target_version`), building it when none is cached."""
    version = version or target_version(out)
    if not rebuild:
        have = cached_builds(version)
        if have:
            return have[0]
    from ..debpkg import locked

    with locked(
        cache_dir() / f".{version.replace(':', '%3a')}.lock", out, f"building moby {version}'s tests"
    ):
        if not rebuild and (have := cached_builds(version)):
            return have[0]  # built by the session we waited for
        return build(version, out=out)


# -- the build


@contextlib.contextmanager
def _step(out: IO[str] | None, what: str) -> Iterator[None]:
    _log(out, f"{what} ...")
    started = time.monotonic()
    yield
    _log(out, f"{what}: done in {time.monotonic() - started:.0f}s")


def build(version: str, out: IO[str] | None = sys.stderr, packages: Sequence[str] = PACKAGES) -> Build:
    """Build moby ``version``'s integration test binaries now (the caller holds the lock)."""
    from ..debpkg import PrivateApt

    if os.geteuid() != 0:
        raise BuildError("building moby's test binaries unpacks Debian packages as root: run as root")
    _require_tools()
    work = cache_dir() / f".work-{version.replace(':', '%3a')}"
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with PrivateApt(SUITE, out=out, sources=True) as apt:
        apt.update()
        with _step(out, f"the {SOURCE_PACKAGE} {version} source package"):
            engine = _source(apt, version, work)
        with _step(out, "Go and the Go packages Debian builds it with"):
            golang, go_version = _toolchain(apt, version, work)
    entry = cache_dir() / _entry_name(version, go_version)
    env = _go_env(work, golang)
    tmp = cache_dir() / f".build-{entry.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "bin").mkdir(parents=True)
    (tmp / "hello").mkdir()
    try:
        with _step(out, f"go test -c of {len(packages)} packages (minutes the first time)"):
            _go(
                env,
                engine,
                out,
                "test",
                "-c",
                "-o",
                str(tmp / "bin") + "/",
                *(f"./integration/{p}" for p in packages),
            )
            for p in packages:  # go names them <last element>.test: give each its package path
                os.replace(
                    tmp / "bin" / f"{p.rsplit('/', 1)[-1]}.test",
                    tmp / "bin" / f"{p.replace('/', '-')}.test.new",
                )
            for p in packages:
                os.replace(
                    tmp / "bin" / f"{p.replace('/', '-')}.test.new",
                    tmp / "bin" / f"{p.replace('/', '-')}.test",
                )
            _go(env, engine, out, "build", "-o", str(tmp / "bin" / "test2json"), "cmd/test2json")
        with _step(out, "the hello binaries of the frozen hello-world images"):
            _hello(env, work, tmp / "hello")
        meta_packages: dict[str, Any] = {}
        for part in _TREE:  # gotest.tools reads a failing assertion's source by its import path
            shutil.copytree(engine / part, tmp / "tree" / part, symlinks=True)
        for p in packages:
            meta_packages[p] = {"own_daemon": tests_starting_daemons(str(engine / "integration" / p))}
        meta = {
            "schema": SCHEMA,
            "version": version,
            "go_version": go_version,
            "api_version": _api_version(engine),
            "source": f"Debian {SUITE} {SOURCE_PACKAGE} {version}",
            "packages": meta_packages,
            "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "build_seconds": round(time.monotonic() - started, 1),
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        if entry.exists():
            shutil.rmtree(entry)
        os.rename(tmp, entry)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(work, ignore_errors=True)
    _log(
        out, f"moby {version} test binaries (Go {go_version}) ready in {entry} ({meta['build_seconds']:.0f}s)"
    )
    return Build(entry)


def _api_version(engine: Path) -> str:
    """The API version moby's client speaks by default (``api.DefaultVersion``), e.g. ``1.51``."""
    m = re.search(r'DefaultVersion\s*=\s*"([0-9.]+)"', (engine / "api" / "common.go").read_text())
    if not m:
        raise BuildError(f"no DefaultVersion in {engine / 'api' / 'common.go'}: not a moby source tree?")
    return m.group(1)


def _subpackages(directory: Path) -> Any:
    """A copytree ignore that leaves out nested Go packages (other entries of :data:`PACKAGES`)."""

    def ignore(path: str, names: list[str]) -> list[str]:
        if Path(path) != directory:
            return []
        return [
            n
            for n in names
            if (directory / n).is_dir() and n != "testdata" and any((directory / n).glob("*.go"))
        ]

    return ignore


def _require_tools() -> None:
    from ..ospkgs import ensure

    missing = [t for t in ("patch", "dpkg-deb", "xz") if shutil.which(t) is None]
    if missing and ensure([{"xz": "xz-utils", "dpkg-deb": "dpkg"}.get(t, t) for t in missing]) != 0:
        raise BuildError(
            f"building moby's test binaries needs {', '.join(missing)}: apt-get install patch xz-utils"
        )


def _source(apt: Any, version: str, work: Path) -> Path:
    """The patched engine tree, at ``work/gopath/src/github.com/docker/docker`` (made once per work dir)."""
    engine = work / "gopath" / "src" / _ENGINE_IMPORT
    done = work / "source.done"
    if done.exists():
        return engine
    upstream = version.split(":", 1)[-1].rsplit("-", 1)[0]
    names = [
        f"{SOURCE_PACKAGE}_{upstream}.orig.tar.xz",
        f"{SOURCE_PACKAGE}_{version.split(':', 1)[-1]}.debian.tar.xz",
    ]
    orig, debian = apt.download_source(SOURCE_PACKAGE, version, cache_dir() / "sources", names)
    unpack = work / "unpack"
    shutil.rmtree(unpack, ignore_errors=True)
    unpack.mkdir()
    for tarball in (orig, debian):
        safe_extract(tarball, unpack)
    tops = [p for p in unpack.iterdir() if p.is_dir() and p.name != "debian"]
    roots = [p for top in tops for p in (top, *top.iterdir()) if (p / _COMPONENT).is_dir()]
    if not roots or not (roots[0] / _COMPONENT / "integration").is_dir():
        raise BuildError(f"{orig.name} has no {_COMPONENT}/integration directory: not a moby source package?")
    tree = roots[0] / _COMPONENT
    _patch(tree, unpack / "debian" / "patches")
    shutil.rmtree(engine, ignore_errors=True)
    engine.parent.mkdir(parents=True, exist_ok=True)
    os.rename(tree, engine)
    shutil.rmtree(unpack)
    done.write_text(version + "\n")
    return engine


def safe_extract(tarball: Path, dest: Path) -> None:
    """Extract refusing absolute paths, ``..``, devices and links leaving ``dest`` (checked here: Python
    3.11.2 has no extraction filters)."""
    base = os.path.realpath(dest)
    trusted: dict[str, Any] = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}
    with tarfile.open(tarball) as tar:
        for member in tar.getmembers():
            target = os.path.realpath(os.path.join(base, member.name))
            if not (target == base or target.startswith(base + os.sep)):
                raise BuildError(f"{tarball.name}: member {member.name!r} would land outside {dest}")
            if member.issym() or member.islnk():
                link = member.linkname if member.issym() else os.path.join(base, member.linkname)
                resolved = os.path.realpath(os.path.join(os.path.dirname(target), link))
                if not (resolved == base or resolved.startswith(base + os.sep)):
                    raise BuildError(
                        f"{tarball.name}: link {member.name!r} -> {member.linkname!r} leaves {dest}"
                    )
            if member.isdev():
                continue
            tar.extract(member, base, set_attrs=not member.issym(), **trusted)


def _patch(tree: Path, patches: Path) -> list[str]:
    """Apply Debian's quilt series: the patches that touch only ``engine/`` (others are cli's, buildkit's)."""
    series = patches / "series"
    applied: list[str] = []
    if not series.is_file():
        return applied
    for line in series.read_text().splitlines():
        name = line.split("#", 1)[0].strip().split(" ")[0]
        if not name:
            continue
        text = (patches / name).read_text(errors="replace")
        targets = {t.split("/")[1] if "/" in t else t for t in re.findall(r"^\+\+\+ (\S+)", text, re.M)}
        if targets != {_COMPONENT}:
            continue
        res = subprocess.run(
            [
                "patch",
                "-p2",
                "--forward",
                "--batch",
                "--no-backup-if-mismatch",
                "-s",
                "-i",
                str(patches / name),
            ],
            cwd=tree,
            capture_output=True,
            text=True,
        )
        if res.returncode != 0:
            raise BuildError(
                f"Debian's patch {name} does not apply to {tree}: {(res.stdout + res.stderr).strip()[-800:]}"
            )
        applied.append(name)
    return applied


def _toolchain(apt: Any, version: str, work: Path) -> tuple[Path, str]:
    """Unpack the golang-* build dependencies into ``work/golang``; (that root, the Go version)."""
    root = work / "golang"
    stamp = work / "golang.done"
    wanted = [
        (n, v)
        for n, v in apt.build_closure(SOURCE_PACKAGE, version)
        if n.startswith("golang-") or n == "gogoprotobuf"
    ]
    wanted += [(n, v) for n, v in apt.closure(f"{_LIBRARY_PACKAGE}={version}") if n == _LIBRARY_PACKAGE]
    go = [(n, v) for n, v in wanted if re.fullmatch(r"golang-1\.\d+-go", n)]
    if not go:
        raise BuildError(
            f"{SOURCE_PACKAGE} {version}'s build dependencies name no golang-1.N-go: cannot tell the Go"
        )
    go_version = go[0][1]
    if stamp.exists() and stamp.read_text().strip() == go_version:
        return root, go_version
    debs = apt.download(wanted)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    for deb in debs:
        res = subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], capture_output=True, text=True)
        if res.returncode != 0:
            raise BuildError(f"dpkg-deb -x {deb} failed: {res.stderr.strip()}")
    stamp.write_text(go_version + "\n")
    return root, go_version


def _go_env(work: Path, golang: Path) -> dict[str, str]:
    goroot = sorted(golang.glob("usr/lib/go-1.*"))
    if not goroot:
        raise BuildError(f"no usr/lib/go-1.N in {golang}: the Go toolchain package did not unpack")
    vendor = work / "vendorpath"
    vendor.mkdir(exist_ok=True)
    link = vendor / "src"
    if not link.is_symlink():
        link.symlink_to(work / "gopath" / "src" / _ENGINE_IMPORT / "vendor")
    return {
        "PATH": f"{goroot[-1]}/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(work),
        "GOROOT": str(goroot[-1]),
        "GOPATH": os.pathsep.join([str(work / "gopath"), str(golang / "usr/share/gocode"), str(vendor)]),
        "GOCACHE": str(work / "gocache"),
        "GO111MODULE": "off",
        "GOPROXY": "off",
        "GOTOOLCHAIN": "local",
        "GOFLAGS": "-trimpath",
        "CGO_ENABLED": "0",
        "LC_ALL": "C",
    }


def _go(env: dict[str, str], cwd: Path, out: IO[str] | None, *args: str) -> None:
    res = subprocess.run(["go", *args], cwd=cwd, env=env, capture_output=True, text=True, errors="replace")
    if res.returncode != 0:
        tail = "\n".join((res.stdout + res.stderr).strip().splitlines()[-25:])
        raise BuildError(f"go {' '.join(args[:3])} ... failed (exit {res.returncode}) in {cwd}:\n{tail}")


def _hello(env: dict[str, str], work: Path, dest: Path) -> None:
    src = work / "hello"
    src.mkdir(exist_ok=True)
    (src / "hello.go").write_text(HELLO_SOURCE)
    for arch in ("amd64", "arm64"):
        _go(
            {**env, "GOARCH": arch, "GOOS": "linux"},
            src,
            None,
            "build",
            "-ldflags=-s -w",
            "-o",
            str(dest / arch),
            "hello.go",
        )
