"""Cached Debian root filesystems holding upstream dockerd (targets ``dockerd-20.10``, ``-26``, ``-28``).

Each recipe (a Debian suite and a package list) is built once with ``debootstrap --variant=minbase`` into
``$HARNESS_CACHE/rootfs/<suite>-<hash>/`` (default ``~/.cache/docker-conformance-harness/rootfs/``) and reused
until the recipe changes: the hash covers the suite, the packages, the variant, ``RECIPE_VERSION``, the
architecture and the host's ``docker`` gid. A build runs in a temporary directory that is renamed into place
only when complete, under a lock file, so concurrent sessions never see half a rootfs nor build it twice.
The host's packages and apt sources are never touched: debootstrap only reads the host's mirror URL.

An entry holds ``root/`` (the chroot) and ``meta.json`` (the recipe, the dockerd version, build time, size).
``harness/chroot_exec.py`` boots dockerd from ``root/`` without modifying it (an overlay per daemon).

``python -m harness.rootfs build dockerd-28`` builds ahead of time; ``list`` shows the cache; ``clean``
empties it.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import glob
import grp
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from .debpkg import DEFAULT_MIRROR, cache_base, debian_mirror, dpkg_arch
from .errors import HarnessError

__all__ = [
    "DEFAULT_MIRROR",
    "RECIPES",
    "RECIPE_VERSION",
    "Recipe",
    "RootfsBuildError",
    "RootfsEntry",
    "build",
    "cache_root",
    "clean",
    "debian_mirror",
    "ensure",
    "entries",
    "entry_for",
    "locate",
    "main",
]

#: bump to rebuild every cached rootfs (a change in how entries are finished, not in what they hold)
RECIPE_VERSION = "1"
#: procps: dockerd runs the host's ``ps`` for ``docker top``
BASE_PACKAGES = ("docker.io", "iptables", "iproute2", "ca-certificates", "procps")
_VERSION = re.compile(r"version ([^\s,]+)")


class RootfsBuildError(HarnessError):
    """A rootfs could not be built or used; the message says what failed and how to fix it."""


@dataclass(frozen=True)
class Recipe:
    """What goes into one rootfs: a Debian suite and the packages debootstrap adds to ``minbase``."""

    target: str
    suite: str
    packages: tuple[str, ...] = BASE_PACKAGES
    variant: str = "minbase"
    version: str = RECIPE_VERSION
    #: a dockerd host (finished as one: no packaged daemon.json, the host's docker gid, dockerd's version
    #: recorded); False for a plain Debian root (the newcomer check's fresh machine)
    dockerd: bool = True

    @property
    def probe(self) -> str:
        """A path inside the tree whose presence shows the build finished."""
        return "usr/sbin/dockerd" if self.dockerd else "usr/bin/apt-get"

    def key(self, arch: str, docker_gid: int | None) -> dict[str, Any]:
        """Everything the built tree depends on (the target name does not: two names may share a tree)."""
        key: dict[str, Any] = {
            "suite": self.suite,
            "packages": sorted(set(self.packages)),
            "variant": self.variant,
            "recipe_version": self.version,
            "arch": arch,
            "docker_gid": docker_gid,
        }
        if not self.dockerd:
            key["dockerd"] = False
        return key

    def digest(self, arch: str, docker_gid: int | None) -> str:
        blob = json.dumps(self.key(arch, docker_gid), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


RECIPES: dict[str, Recipe] = {
    "dockerd-20.10": Recipe("dockerd-20.10", "bookworm"),
    "dockerd-26": Recipe("dockerd-26", "trixie"),
    "dockerd-28": Recipe("dockerd-28", "sid"),
}


# -- where things are


def cache_root() -> str:
    """``$HARNESS_CACHE/rootfs``, else ``${XDG_CACHE_HOME:-~/.cache}/docker-conformance-harness/rootfs``."""
    return os.path.join(cache_base(), "rootfs")


def host_docker_gid() -> int | None:
    """The host's ``docker`` group id: the rootfs's ``docker`` group is given the same id (socket group)."""
    try:
        return grp.getgrnam("docker").gr_gid
    except KeyError:
        return None


@dataclass(frozen=True)
class RootfsEntry:
    """One cache entry: ``<cache>/<suite>-<hash>/`` with ``root/`` and ``meta.json``."""

    recipe: Recipe
    path: str
    arch: str
    docker_gid: int | None

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    @property
    def root(self) -> str:
        return os.path.join(self.path, "root")

    @property
    def meta_path(self) -> str:
        return os.path.join(self.path, "meta.json")

    @property
    def lock_path(self) -> str:
        return self.path + ".lock"

    def is_built(self) -> bool:
        return os.path.isfile(self.meta_path) and os.path.isfile(os.path.join(self.root, self.recipe.probe))

    def meta(self) -> dict[str, Any]:
        try:
            with open(self.meta_path) as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    @property
    def dockerd_version(self) -> str:
        """The version recorded at build time (``28.5.2+dfsg1``), or ``""`` when not built."""
        return str(self.meta().get("dockerd_version", ""))


def _recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise RootfsBuildError(f"no rootfs recipe named {name!r}: choose from {', '.join(RECIPES)}") from None


def locate(name: str) -> RootfsEntry:
    """The cache entry for recipe ``name`` on this host, built or not (nothing is created)."""
    return entry_for(_recipe(name))


def entry_for(recipe: Recipe) -> RootfsEntry:
    """The cache entry for ``recipe`` on this host, built or not (nothing is created)."""
    arch, gid = dpkg_arch(), host_docker_gid()
    path = os.path.join(cache_root(), f"{recipe.suite}-{recipe.digest(arch, gid)}")
    return RootfsEntry(recipe, path, arch, gid)


# -- build


def _log(out: IO[str] | None, entry: RootfsEntry, text: str) -> None:
    if out is not None:
        out.write(f"harness rootfs {entry.recipe.target} ({entry.recipe.suite}): {text}\n")
        out.flush()


@contextlib.contextmanager
def _locked(
    entry: RootfsEntry, out: IO[str] | None, shared: bool = False, wait: bool = True
) -> Iterator[bool]:
    """Hold the entry's lock file (exclusive to build or clean, shared while a daemon runs from it)."""
    os.makedirs(os.path.dirname(entry.lock_path), exist_ok=True)
    fd = os.open(entry.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    try:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                yield False
                return
            _log(
                out,
                entry,
                f"waiting for the lock {entry.lock_path} (another session is building or "
                "cleaning this rootfs)",
            )
            fcntl.flock(fd, mode)
        yield True
    finally:
        os.close(fd)


def ensure(name: str, out: IO[str] | None = sys.stderr, mirror: str | None = None) -> RootfsEntry:
    """The built entry for recipe ``name``, building it first when it is not cached."""
    entry = locate(name)
    if entry.is_built():
        return entry
    with _locked(entry, out):
        if entry.is_built():  # built by the session we waited for
            return entry
        build(entry, mirror=mirror, out=out)
    return entry


def _preflight(entry: RootfsEntry) -> str:
    if os.geteuid() != 0:
        raise RootfsBuildError(
            f"building the {entry.recipe.target} rootfs needs root (debootstrap, chroot): "
            f"run as root, e.g. sudo python -m harness.rootfs build {entry.recipe.target}"
        )
    debootstrap = shutil.which("debootstrap") or next(
        (p for p in ("/usr/sbin/debootstrap", "/sbin/debootstrap") if os.access(p, os.X_OK)), None
    )
    if debootstrap is None:
        raise RootfsBuildError(
            f"debootstrap is not installed, so the {entry.recipe.target} rootfs "
            f"({entry.recipe.suite}) cannot be built: apt-get install debootstrap"
        )
    return debootstrap


_NETWORK = re.compile(
    r"Failed getting release file|Couldn't download|Temporary failure resolving|"
    r"Could not resolve|Connection (refused|timed out)|Network is unreachable|"
    r"Failure trying to run:.*wget|Release signed by unknown key|Invalid Release signature"
)


def _debootstrap_error(
    entry: RootfsEntry, mirror: str, code: int, log: str, log_path: str
) -> RootfsBuildError:
    tail = "\n".join(log.splitlines()[-15:]) or "(no output)"
    if _NETWORK.search(log):
        if "signature" in log or "unknown key" in log:
            hint = (
                "the suite's Release file could not be verified: update the host's debian-archive-keyring "
                "(apt-get install debian-archive-keyring)"
            )
        else:
            hint = (
                f"the Debian mirror {mirror} could not be reached: check the network (and http_proxy), or "
                "point HARNESS_DEBIAN_MIRROR at a reachable Debian mirror"
            )
    elif re.search(r"No space left on device", log):
        hint = f"the disk holding {cache_root()} is full: free space or set HARNESS_CACHE elsewhere"
    else:
        hint = f"see the full log {log_path}"
    return RootfsBuildError(
        f"debootstrap {entry.recipe.suite} for {entry.recipe.target} failed (exit {code}): "
        f"{hint}\nlast lines:\n{tail}"
    )


def _run_debootstrap(
    entry: RootfsEntry, debootstrap: str, tmp: str, mirror: str, out: IO[str] | None
) -> None:
    recipe = entry.recipe
    cmd = [
        debootstrap,
        f"--variant={recipe.variant}",
        f"--arch={entry.arch}",
        f"--include={','.join(sorted(set(recipe.packages)))}",
        recipe.suite,
        os.path.join(tmp, "root"),
        mirror,
    ]
    log_path = os.path.join(tmp, "debootstrap.log")
    _log(out, entry, f"building with {' '.join(cmd)} (a few minutes the first time; log: {log_path})")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
    lines: list[str] = []
    seen: set[str] = set()
    try:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            env=env,
        )
    except OSError as exc:
        raise RootfsBuildError(f"cannot run {debootstrap}: {exc}; apt-get install debootstrap") from None
    assert proc.stdout is not None
    with proc, open(log_path, "w") as log:
        for line in proc.stdout:
            log.write(line)
            lines.append(line.rstrip("\n"))
            words = line.split()
            # the first line of each phase (Retrieving, Validating, Extracting, Configuring, ...), every W:/E:
            if len(words) >= 2 and (words[0] in ("W:", "E:") or (words[0] == "I:" and words[1] not in seen)):
                seen.add(words[1])
                _log(out, entry, line.strip())
    if proc.returncode != 0:
        raise _debootstrap_error(entry, mirror, proc.returncode, "\n".join(lines), log_path)


def _set_group_gid(group_file: str, name: str, gid: int) -> bool:
    """Give group ``name`` the id ``gid`` in an /etc/group file; False when the group is absent."""
    with open(group_file) as fh:
        rows = fh.read().splitlines()
    changed = False
    for i, row in enumerate(rows):
        fields = row.split(":")
        if len(fields) == 4 and fields[0] == name:
            fields[2] = str(gid)
            rows[i] = ":".join(fields)
            changed = True
    if changed:
        with open(group_file, "w") as fh:
            fh.write("\n".join(rows) + "\n")
    return changed


def dockerd_version_in(root: str) -> str:
    """``chroot root /usr/sbin/dockerd --version`` parsed to ``28.5.2+dfsg1``."""
    try:
        res = subprocess.run(
            ["chroot", root, "/usr/sbin/dockerd", "--version"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RootfsBuildError(f"chroot {root} /usr/sbin/dockerd --version failed: {exc}") from None
    match = _VERSION.search(res.stdout)
    if res.returncode != 0 or not match:
        raise RootfsBuildError(
            f"chroot {root} /usr/sbin/dockerd --version exited {res.returncode}: "
            f"{(res.stdout + res.stderr).strip() or '(no output)'}; is docker.io installed in "
            "the rootfs?"
        )
    return match.group(1)


def _finish(entry: RootfsEntry, root: str, out: IO[str] | None) -> str:
    """Make the tree a neutral dockerd host: no packaged daemon.json, the host's docker gid, no .deb cache."""
    if not entry.recipe.dockerd:
        for deb in glob.glob(os.path.join(root, "var/cache/apt/archives/*.deb")):
            os.unlink(deb)
        return ""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(root, "etc/docker/daemon.json"))
        _log(out, entry, "removed the packaged /etc/docker/daemon.json")
    gid = entry.docker_gid
    if gid is not None and _set_group_gid(os.path.join(root, "etc/group"), "docker", gid):
        _log(out, entry, f"docker group gid set to the host's ({entry.docker_gid})")
    for deb in glob.glob(os.path.join(root, "var/cache/apt/archives/*.deb")):
        os.unlink(deb)
    return dockerd_version_in(root)


def _du(path: str) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(dirpath, f))
                total += st.st_blocks * 512
    return total


def build(entry: RootfsEntry, mirror: str | None = None, out: IO[str] | None = sys.stderr) -> RootfsEntry:
    """Build ``entry`` now (the caller holds its lock): debootstrap into a temp dir, finish, rename it."""
    debootstrap = _preflight(entry)
    mirror = mirror or debian_mirror()
    parent = os.path.dirname(entry.path)
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".build-{entry.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    started = time.monotonic()
    try:
        _run_debootstrap(entry, debootstrap, tmp, mirror, out)
        version = _finish(entry, os.path.join(tmp, "root"), out)
        seconds = round(time.monotonic() - started, 1)
        size = _du(os.path.join(tmp, "root"))
        meta = {
            "schema": "harness.rootfs/1",
            "target": entry.recipe.target,
            **entry.recipe.key(entry.arch, entry.docker_gid),
            "mirror": mirror,
            "dockerd_version": version,
            "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "build_seconds": seconds,
            "size_bytes": size,
        }
        with open(os.path.join(tmp, "meta.json"), "w") as fh:
            json.dump(meta, fh, indent=1)
        if os.path.exists(entry.path):  # an unfinished leftover (no meta.json): never merge into it
            shutil.rmtree(entry.path)
        os.rename(tmp, entry.path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    what = f"dockerd {version}" if version else f"Debian {entry.recipe.suite}"
    _log(out, entry, f"{what} ready in {entry.path} ({seconds:.0f}s, {size / 2**20:.0f} MiB)")
    return entry


# -- inspect and clean


def entries() -> list[tuple[str, dict[str, Any]]]:
    """Every entry in the cache as (path, meta); meta is ``{}`` for an unfinished or foreign directory."""
    root = cache_root()
    found = []
    with contextlib.suppress(FileNotFoundError):
        for name in sorted(os.listdir(root)):
            path = os.path.join(root, name)
            if name.startswith(".") or name.endswith(".lock") or not os.path.isdir(path):
                continue
            try:
                with open(os.path.join(path, "meta.json")) as fh:
                    meta = json.load(fh)
            except (OSError, ValueError):
                meta = {}
            found.append((path, meta if isinstance(meta, dict) else {}))
    return found


def clean(names: list[str] | None = None, stale_only: bool = False, out: IO[str] | None = sys.stderr) -> int:
    """Remove cache entries (all, those of ``names``, or only those no current recipe uses); returns how many.

    An entry in use by a running daemon (its lock held shared) is skipped with a message.
    """
    current = {locate(n).path for n in RECIPES}
    removed = 0
    for path, meta in entries():
        target = str(meta.get("target", ""))
        if names and target not in names:
            continue
        if stale_only and path in current:
            continue
        recipe = RECIPES.get(target) or Recipe(target or "?", str(meta.get("suite", "?")))
        entry = RootfsEntry(recipe, path, "", None)
        with _locked(entry, None, wait=False) as got:
            if not got:
                _log(out, entry, f"{path} is in use (a daemon runs from it or a build holds it); skipped")
                continue
            shutil.rmtree(path)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.lock_path)
        _log(out, entry, f"removed {path}")
        removed += 1
    for tmp in glob.glob(os.path.join(cache_root(), ".build-*")):
        pid = tmp.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- command line


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m harness.rootfs",
        description="Build, list and clean the cached Debian rootfs of the dockerd-N targets.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build (if not cached) the rootfs of the given targets")
    b.add_argument("targets", nargs="*", default=list(RECIPES), help=f"default: all of {', '.join(RECIPES)}")
    b.add_argument("--mirror", default=None, help="Debian mirror (default: the host's apt mirror)")
    b.add_argument("--rebuild", action="store_true", help="remove the cached entry first")
    sub.add_parser("list", help="show the recipes and the cache entries")
    c = sub.add_parser("clean", help="remove cache entries")
    c.add_argument("targets", nargs="*", help="only these targets' entries (default: every entry)")
    c.add_argument("--stale", action="store_true", help="only entries no current recipe uses")
    args = p.parse_args(argv)
    try:
        if args.command == "build":
            for name in args.targets:
                _recipe(name)
            for name in args.targets:
                if args.rebuild:
                    clean([name])
                entry = ensure(name, mirror=args.mirror)
                print(f"{name}: dockerd {entry.dockerd_version} in {entry.root}")
            return 0
        if args.command == "list":
            _list()
            return 0
        for name in args.targets:
            _recipe(name)
        n = clean(args.targets or None, stale_only=args.stale)
        print(f"removed {n} entr{'y' if n == 1 else 'ies'} from {cache_root()}")
        return 0
    except RootfsBuildError as exc:
        sys.stderr.write(f"harness.rootfs: error: {exc}\n")
        return 1
    except OSError as exc:
        sys.stderr.write(f"harness.rootfs: error: {exc}\n")
        return 1


def _list() -> None:
    print(f"cache: {cache_root()}")
    current = {}
    for name in RECIPES:
        entry = locate(name)
        current[entry.path] = name
        state = f"dockerd {entry.dockerd_version}" if entry.is_built() else "not built"
        print(f"  {name:<14} {entry.recipe.suite:<9} {entry.name:<28} {state}")
    for path, meta in entries():
        if path not in current:
            print(
                f"  (stale) {os.path.basename(path)} target={meta.get('target', '?')} "
                f"dockerd={meta.get('dockerd_version', '?')}; remove: python -m harness.rootfs clean --stale"
            )
    for path, meta in entries():
        if meta:
            print(
                f"  {os.path.basename(path)}: built {meta.get('built', '?')} "
                f"in {meta.get('build_seconds', '?')}s, "
                f"{int(meta.get('size_bytes', 0)) / 2**20:.0f} MiB, mirror {meta.get('mirror', '?')}"
            )


if __name__ == "__main__":
    raise SystemExit(main())
