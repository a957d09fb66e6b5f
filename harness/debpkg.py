"""Debian binary packages of any suite, fetched through a private apt configuration, unpacked into the cache.

The harness takes real software from Debian without touching the machine's own packages: the pinned docker
CLI (sid's ``docker-cli``), the Engine API swaggers (``harness.swagger``), the vm backend's kernels
(``harness.vmimages``), the CLI plugins and Go toolchains of other areas. One module does it for all of them:

- :class:`PrivateApt` runs ``apt-get``/``apt-cache`` for one suite with an apt configuration, sources,
  lists, cache and an empty dpkg status of its own under ``$HARNESS_CACHE/apt/`` (``APT_CONFIG`` points apt
  at it before the host's ``/etc/apt`` is read, so the host's apt.conf.d, sources and dpkg database play no
  part; only the mirror URL and apt's proxy settings are taken from the host). Indexes are verified with
  Debian's archive keyring (``signed-by``) and every ``.deb`` against the signed indexes' hashes.
- A mirror that serves a snapshot may carry a ``Release`` file whose ``Valid-Until`` has passed (sid's, a
  week after the snapshot). The harness only reads files out of packages, so a stale index is no reason to
  fail: apt runs with ``Acquire::Check-Valid-Until=false`` and the output says that the Release read had
  expired, and since when.
- :func:`fetch` downloads a package (optionally with everything it depends on) and unpacks it with
  ``dpkg-deb -x`` into ``$HARNESS_CACHE/debs/<suite>/<package>_<version>_<arch>[+deps]/root/``, beside a
  ``meta.json`` naming what is inside. An entry is made in a temporary directory renamed into place, under
  a lock file, and reused (without network) until ``refresh`` asks for the suite's newest.

``python -m harness.debpkg fetch trixie docker-buildx`` fetches ahead of time; ``list`` shows the cache.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import glob
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from functools import cache
from pathlib import Path
from typing import IO, Any

from .errors import HarnessError

__all__ = [
    "DEFAULT_MIRROR",
    "KEYRING",
    "DebPkgError",
    "PrivateApt",
    "Unpacked",
    "cache_base",
    "cached",
    "debian_mirror",
    "dpkg_arch",
    "fetch",
    "host_apt_proxy",
    "locked",
    "main",
    "version_matches",
]

DEFAULT_MIRROR = "http://deb.debian.org/debian"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
META_SCHEMA = "harness.debpkg/1"
#: apt's lists are fetched again when older than this (one run fetches several packages of a suite)
LISTS_MAX_AGE = 600.0


class DebPkgError(HarnessError):
    """A Debian package could not be fetched or unpacked; the message says what failed and how to fix it."""


# -- where things are ------------------------------------------------------------------------------------


def cache_base() -> str:
    """``$HARNESS_CACHE``, else ``${XDG_CACHE_HOME:-~/.cache}/docker-conformance-harness``."""
    return os.environ.get("HARNESS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "docker-conformance-harness"
    )


@cache
def dpkg_arch() -> str:
    """The machine's Debian architecture (``amd64``), from dpkg, else from the kernel's machine name."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "armhf", "i686": "i386"}.get(machine, machine)


def debian_mirror(apt_dir: str = "/etc/apt") -> str:
    """``$HARNESS_DEBIAN_MIRROR``, else the Debian archive URL the host's apt uses, else deb.debian.org."""
    env = os.environ.get("HARNESS_DEBIAN_MIRROR")
    if env:
        return env.rstrip("/")
    found: list[str] = []
    files = [
        os.path.join(apt_dir, "sources.list"),
        *sorted(glob.glob(os.path.join(apt_dir, "sources.list.d", "*.list"))),
        *sorted(glob.glob(os.path.join(apt_dir, "sources.list.d", "*.sources"))),
    ]
    for path in files:
        try:
            with open(path) as fh:
                text = fh.read()
        except OSError:
            continue
        found += _deb822_uris(text) if path.endswith(".sources") else _one_line_uris(text)
    for uri in found:
        if "security" not in uri and re.search(r"/debian/?$", uri):
            return uri.rstrip("/")
    return DEFAULT_MIRROR


def _one_line_uris(text: str) -> list[str]:
    uris = []
    for line in text.splitlines():
        words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
        if len(words) >= 2 and words[0] == "deb":
            uris.append(words[1])
    return uris


def _deb822_uris(text: str) -> list[str]:
    uris = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes").lower() != "no":
            uris += fields.get("uris", "").split()
    return uris


def _log(out: IO[str] | None, text: str) -> None:
    if out is not None:
        out.write(f"harness debpkg: {text}\n")
        out.flush()


@contextlib.contextmanager
def locked(path: str | Path, out: IO[str] | None = None, what: str = "") -> Iterator[None]:
    """Hold an exclusive lock file (created if missing), saying so when another process holds it."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _log(out, f"waiting for the lock {path} (another session is {what or 'using it'})")
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def version_matches(version: str, wanted: str) -> bool:
    """Whether Debian ``version`` (``5:28.5.2+dfsg3-1``) is ``wanted`` or within it (``28.5``, ``28``)."""
    upstream = version.split(":", 1)[-1]
    wanted = wanted.split(":", 1)[-1]
    return upstream == wanted or (upstream.startswith(wanted) and upstream[len(wanted)] in ".-+~")


def _quoted_version(version: str) -> str:
    """A version as apt writes it into a .deb's file name (``:`` is ``%3a``)."""
    return version.replace(":", "%3a")


# -- the private apt --------------------------------------------------------------------------------------

_NETWORK = re.compile(
    r"Temporary failure resolving|Could not resolve|Failed to fetch|Connection (refused|timed out)|"
    r"Network is unreachable|Unable to connect|No route to host|Could not connect"
)
_UNVERIFIED = re.compile(r"NO_PUBKEY|not signed|signature|not valid yet|is not signed|EXPKEYSIG")
_NO_PACKAGE = re.compile(r"Unable to locate package|has no installation candidate|Can't select")


def host_apt_proxy() -> list[str]:
    """The host's apt proxy settings (``Acquire::http::Proxy`` ...): a private config must still get out."""
    try:
        res = subprocess.run(["apt-config", "dump"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    lines = []
    for line in res.stdout.splitlines():
        m = re.match(r'(Acquire::(?:https?|ftp)::Proxy(?:::[^ ]+)?) "(.*)";$', line)
        if m:
            lines.append(f'{m.group(1)} "{m.group(2)}";')
    return lines


class PrivateApt:
    """apt for one Debian suite with everything of its own in ``$HARNESS_CACHE/apt/<suite>-<arch>-<hash>/``.

    Use it as a context manager: the directory's lock is held while inside, so sessions share lists and
    downloads without tripping over each other. ``notes`` collects what the output must say (an expired
    Release file read anyway).
    """

    def __init__(
        self,
        suite: str,
        mirror: str | None = None,
        out: IO[str] | None = sys.stderr,
        components: Sequence[str] = ("main",),
        sources: bool = False,
    ) -> None:
        self.suite = suite
        self.mirror = (mirror or debian_mirror()).rstrip("/")
        self.arch = dpkg_arch()
        self.components = tuple(components)
        self.sources = sources  # deb-src too: source packages and build dependencies (its own lists)
        self.out = out
        spec = f"{self.mirror} {suite} {' '.join(self.components)}" + (" deb-src" if sources else "")
        key = hashlib.sha256(spec.encode()).hexdigest()[:10]
        self.base = Path(cache_base()) / "apt" / f"{suite}-{self.arch}-{key}"
        self.notes: list[str] = []
        self._lock: contextlib.ExitStack | None = None

    # context: the lock and the directory layout

    def __enter__(self) -> PrivateApt:
        stack = contextlib.ExitStack()
        stack.enter_context(locked(str(self.base) + ".lock", self.out, f"using the {self.suite} apt lists"))
        self._lock = stack
        try:
            self._layout()
        except BaseException:
            stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def _layout(self) -> None:
        b = self.base
        for sub in (
            "etc/apt.conf.d",
            "etc/sources.list.d",
            "etc/preferences.d",
            "etc/trusted.gpg.d",
            "state/lists/partial",
            "cache/archives/partial",
            "log",
            "debs",
        ):
            (b / sub).mkdir(parents=True, exist_ok=True)
        status = b / "state" / "status"
        if not status.exists():
            status.write_text("")
        if not os.path.isfile(KEYRING):
            raise DebPkgError(
                f"Debian's archive keyring {KEYRING} is missing, so packages of {self.suite} cannot be "
                "verified: apt-get install debian-archive-keyring"
            )
        kinds = ("deb", "deb-src") if self.sources else ("deb",)
        (b / "etc" / "sources.list").write_text(
            "".join(
                f"{kind} [signed-by={KEYRING}] {self.mirror} {self.suite} {' '.join(self.components)}\n"
                for kind in kinds
            )
        )
        conf = [
            f'Dir::Etc "{b}/etc";',
            f'Dir::Etc::Main "{b}/etc/apt.conf";',
            f'Dir::Etc::Parts "{b}/etc/apt.conf.d";',
            f'Dir::Etc::SourceList "{b}/etc/sources.list";',
            f'Dir::Etc::SourceParts "{b}/etc/sources.list.d";',
            f'Dir::Etc::Preferences "{b}/etc/preferences";',
            f'Dir::Etc::PreferencesParts "{b}/etc/preferences.d";',
            f'Dir::Etc::Trusted "{b}/etc/trusted.gpg";',
            f'Dir::Etc::TrustedParts "{b}/etc/trusted.gpg.d";',
            f'Dir::State "{b}/state";',
            f'Dir::State::Lists "{b}/state/lists";',
            f'Dir::State::status "{status}";',
            f'Dir::Cache "{b}/cache";',
            f'Dir::Cache::Archives "{b}/cache/archives";',
            f'Dir::Log "{b}/log";',
            f'APT::Architecture "{self.arch}";',
            f'APT::Architectures {{ "{self.arch}"; }};',
            # the closure of a package, not of the Essential set an empty status would add
            'pkgCacheGen::Essential "none";',
            'APT::Install-Recommends "false";',
            'Acquire::Languages "none";',
            # a snapshot mirror's Release may have expired: the harness reads packages, it does not
            # install them on a machine, and says so (notes)
            'Acquire::Check-Valid-Until "false";',
            'Acquire::Retries "3";',
            'Acquire::http::Timeout "60";',
            'Acquire::IndexTargets::deb::DEP-11::DefaultEnabled "false";',
            'Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled "false";',
            'Binary::apt-get::Acquire::AllowInsecureRepositories "false";',
            *host_apt_proxy(),
        ]
        if os.geteuid() == 0:
            conf.append('APT::Sandbox::User "root";')  # _apt cannot enter root's private cache directory
        (b / "apt.conf").write_text("\n".join(conf) + "\n")

    # running apt

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "APT_CONFIG": str(self.base / "apt.conf"),
            "DEBIAN_FRONTEND": "noninteractive",
            "LC_ALL": "C",
        }

    def run(self, tool: str, *args: str, what: str = "", cwd: Path | None = None) -> str:
        """``tool`` (apt-get, apt-cache) with ``args`` in the private configuration: its stdout."""
        if self._lock is None:
            raise RuntimeError("PrivateApt.run outside its with-block")
        exe = shutil.which(tool)
        if exe is None:
            raise DebPkgError(
                f"{tool} is not available, so packages of Debian {self.suite} cannot be fetched "
                "(the harness reads Debian packages with apt: run on Debian, or apt-get install apt)"
            )
        cmd = [exe, *args]
        what = what or " ".join([tool, *args])
        try:
            res = subprocess.run(
                cmd,
                cwd=cwd or self.base,
                capture_output=True,
                text=True,
                errors="replace",
                env=self._env(),
                timeout=1200,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DebPkgError(f"{what} ({self.suite}) failed: {exc}") from None
        log = res.stdout + res.stderr
        if res.returncode == 0 and not re.search(r"^(E:|W: Failed to fetch)", log, re.M):
            return res.stdout
        raise DebPkgError(
            f"{what} ({self.suite}) failed (exit {res.returncode}): {self._hint(log)}\n"
            f"command: APT_CONFIG={self.base / 'apt.conf'} {' '.join(cmd)}\n"
            f"last lines:\n{_tail(log)}"
        )

    def _hint(self, log: str) -> str:
        if _UNVERIFIED.search(log):
            return (
                f"the {self.suite} index could not be verified with {KEYRING}: update the keyring "
                "(apt-get install debian-archive-keyring), or check that HARNESS_DEBIAN_MIRROR is Debian's"
            )
        if _NO_PACKAGE.search(log):
            return f"the package is not in {self.mirror} {self.suite} {' '.join(self.components)}"
        if _NETWORK.search(log):
            return (
                f"the Debian mirror {self.mirror} could not be reached: check the network (and http_proxy), "
                "or point HARNESS_DEBIAN_MIRROR at a reachable Debian mirror"
            )
        return "see the lines below"

    # what callers use

    def _release_files(self) -> list[Path]:
        lists = self.base / "state" / "lists"
        return sorted(lists.glob(f"*_dists_{self.suite}_InRelease")) + sorted(
            lists.glob(f"*_dists_{self.suite}_Release")
        )

    def update(self, max_age: float = LISTS_MAX_AGE) -> None:
        """``apt-get update`` unless the lists were fetched less than ``max_age`` seconds ago."""
        stamp = self.base / "state" / "updated"
        fresh = stamp.exists() and time.time() - stamp.stat().st_mtime < max_age and self._release_files()
        if not fresh:
            _log(self.out, f"apt-get update for {self.suite} from {self.mirror} (private apt in {self.base})")
            self.run("apt-get", "-q", "update", what="apt-get update")
            stamp.write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()))
        self._note_expiry()

    def _note_expiry(self) -> None:
        for path in self._release_files()[:1]:
            expired = release_expired(path.read_text(errors="replace"))
            if expired:
                note = (
                    f"the {self.suite} Release file of {self.mirror} expired on {expired} (a snapshot "
                    "mirror); "
                    "its packages are read anyway (Acquire::Check-Valid-Until=false), still verified "
                    f"with {KEYRING}"
                )
                if note not in self.notes:
                    self.notes.append(note)
                    _log(self.out, note)

    def candidate(self, package: str) -> str:
        """The version apt would take of ``package`` (an error when the suite has none)."""
        out = self.run("apt-cache", "policy", package, what=f"apt-cache policy {package}")
        m = re.search(r"^\s*Candidate:\s*(\S+)", out, re.M)
        if not m or m.group(1) == "(none)":
            raise DebPkgError(
                f"Debian {self.suite} has no package {package} at {self.mirror} "
                f"({' '.join(self.components)}): check the name (apt-cache search on a {self.suite} machine)"
            )
        return m.group(1)

    def closure(self, package: str, *more: str) -> list[tuple[str, str]]:
        """``package`` (and ``more``: ``name`` or ``name=version``) and every package they need (Depends,
        Pre-Depends), as apt resolves them on an empty system: (name, version) pairs, ``package`` first."""
        wanted = " ".join((package, *more))
        what = f"apt-get -s install {wanted} (dependencies)"
        out = self.run("apt-get", "-s", "-q", "install", package, *more, what=what)
        return self._installs(out, package.split("=", 1)[0], f"apt-get -s install {wanted}")

    def _installs(self, out: str, first: str, what: str) -> list[tuple[str, str]]:
        found = re.findall(r"^Inst (\S+) \((\S+) ", out, re.M)
        if not found:
            raise DebPkgError(f"{what} ({self.suite}) named nothing to install:\n{_tail(out)}")
        found.sort(key=lambda nv: nv[0] != first)
        return [(name.split(":", 1)[0], version) for name, version in found]

    def build_closure(self, source: str, version: str) -> list[tuple[str, str]]:
        """What building source package ``source`` at ``version`` installs on an empty system (its
        Build-Depends and their dependencies, as ``apt-get build-dep`` resolves them; needs ``sources``)."""
        what = f"apt-get -s build-dep {source}={version}"
        out = self.run("apt-get", "-s", "-q", "build-dep", f"{source}={version}", what=what)
        return self._installs(out, "", what)

    def source_files(self, package: str, version: str) -> list[tuple[str, int, str, str]]:
        """The files of source package ``package`` at ``version`` as its signed Sources index lists them:
        (name, size, sha256, url) (needs ``sources``)."""
        out = self.run("apt-cache", "showsrc", package, what=f"apt-cache showsrc {package}")
        for stanza in re.split(r"\n\s*\n", out):
            if not re.search(rf"^Version: {re.escape(version)}$", stanza, re.M):
                continue
            directory = re.search(r"^Directory: (\S+)$", stanza, re.M)
            sums = re.search(r"^Checksums-Sha256:\n((?:[ \t].*\n?)+)", stanza, re.M)
            if directory and sums:
                files = []
                for line in sums.group(1).splitlines():
                    sha, size, name = line.split()
                    files.append((name, int(size), sha, f"{self.mirror}/{directory.group(1)}/{name}"))
                return files
        raise DebPkgError(
            f"Debian {self.suite} at {self.mirror} has no source package {package} {version} "
            f"(apt-cache showsrc {package} lists other versions): ask for another version, or point "
            "HARNESS_DEBIAN_MIRROR at a mirror that has it"
        )

    def download_source(self, package: str, version: str, dest: Path, names: Sequence[str]) -> list[Path]:
        """Download the named files of source package ``package`` at ``version`` into ``dest``, each checked
        against the signed Sources index's sha256 (a mirror may serve only some files of a source package,
        so only these are fetched; files already there with the right hash are kept): the paths."""
        listed = {name: (size, sha, url) for name, size, sha, url in self.source_files(package, version)}
        dest.mkdir(parents=True, exist_ok=True)
        paths = []
        for name in names:
            if name not in listed:
                raise DebPkgError(
                    f"source package {package} {version} ({self.suite}) has no file {name} "
                    f"(it has {', '.join(sorted(listed))})"
                )
            size, sha, url = listed[name]
            path = dest / name
            if not (path.is_file() and _sha256(path) == sha):
                _log(self.out, f"downloading {url} ({size / 2**20:.1f} MiB)")
                _http_get(url, path, f"{package} {version} ({self.suite})")
                if _sha256(path) != sha:
                    path.unlink()
                    raise DebPkgError(
                        f"{url} does not match the sha256 that Debian's signed Sources index gives for it; "
                        "the mirror served something else: try again or another HARNESS_DEBIAN_MIRROR"
                    )
            paths.append(path)
        return paths

    def download(self, packages: Sequence[tuple[str, str]]) -> list[Path]:
        """``apt-get download name=version ...`` into the private cache (kept between runs): the paths."""
        dest = self.base / "debs"
        want = {name: dest / f"{name}_{_quoted_version(version)}_*.deb" for name, version in packages}
        missing = [(n, v) for n, v in packages if not glob.glob(str(want[n]))]
        if missing:
            names = " ".join(f"{n}={v}" for n, v in missing)
            _log(self.out, f"downloading {names} ({self.suite})")
            self.run(
                "apt-get",
                "-q",
                "download",
                *(f"{n}={v}" for n, v in missing),
                what=f"apt-get download {names}",
                cwd=dest,
            )
        paths = []
        for name, _version in packages:
            debs = sorted(glob.glob(str(want[name])))
            if not debs:
                raise DebPkgError(f"apt-get download {name} ({self.suite}) left no .deb in {dest}")
            paths.append(Path(debs[-1]))
        return paths


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _http_get(url: str, path: Path, what: str) -> None:
    """``url`` into ``path`` (through a temporary file); http_proxy and friends apply, as for apt."""
    import urllib.error
    import urllib.request

    tmp = path.with_name(path.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=120) as resp, tmp.open("wb") as out:
            shutil.copyfileobj(resp, out, 1 << 20)
        os.replace(tmp, path)
    except (OSError, urllib.error.URLError) as exc:
        tmp.unlink(missing_ok=True)
        raise DebPkgError(
            f"downloading {url} for {what} failed: {exc}; check the network (and http_proxy), or point "
            "HARNESS_DEBIAN_MIRROR at a reachable Debian mirror"
        ) from None


def release_expired(text: str, now: float | None = None) -> str:
    """The ``Valid-Until`` of a Release file when it has passed (as written there), else ``""``."""
    m = re.search(r"^Valid-Until:\s*(.+)$", text, re.M)
    if not m:
        return ""
    try:
        until = parsedate_to_datetime(m.group(1).strip()).timestamp()
    except (TypeError, ValueError):
        return ""
    return m.group(1).strip() if until < (time.time() if now is None else now) else ""


def _tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:]) or "(no output)"


# -- unpacked packages ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Unpacked:
    """One cache entry: a package (with its dependencies when ``depends``) unpacked under ``root``."""

    suite: str
    package: str
    version: str
    arch: str
    depends: bool
    path: Path

    @property
    def root(self) -> Path:
        return self.path / "root"

    def meta(self) -> dict[str, Any]:
        try:
            data = json.loads((self.path / "meta.json").read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    @property
    def notes(self) -> list[str]:
        """What the fetch had to say about its sources (an expired Release read anyway)."""
        return [str(n) for n in self.meta().get("notes", [])]

    def describe(self) -> str:
        return f"Debian {self.suite} {self.package} {self.version}"


def _suite_dir(suite: str) -> Path:
    return Path(cache_base()) / "debs" / suite


def _entry_name(package: str, version: str, arch: str, depends: bool) -> str:
    return f"{package}_{_quoted_version(version)}_{arch}{'+deps' if depends else ''}"


def cached(suite: str, package: str, *, depends: bool = False, version: str | None = None) -> Unpacked | None:
    """The newest cached entry of ``package`` from ``suite`` (within ``version`` when given), or None."""
    arch = dpkg_arch()
    found = []
    for meta_path in _suite_dir(suite).glob(f"{package}_*_{arch}{'+deps' if depends else ''}/meta.json"):
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            continue
        if meta.get("package") != package or bool(meta.get("depends")) != depends:
            continue
        v = str(meta.get("version", ""))
        if version and not version_matches(v, version):
            continue
        found.append(
            (meta_path.stat().st_mtime, Unpacked(suite, package, v, arch, depends, meta_path.parent))
        )
    return max(found, key=lambda f: f[0])[1] if found else None


def fetch(
    suite: str,
    package: str,
    *,
    depends: bool = False,
    version: str | None = None,
    refresh: bool = False,
    mirror: str | None = None,
    out: IO[str] | None = sys.stderr,
) -> Unpacked:
    """``package`` of Debian ``suite`` unpacked in the cache (with its dependencies when ``depends``).

    A cached entry (within ``version``, e.g. ``28.5``, when given) is used without network unless ``refresh``;
    otherwise the suite's current version is fetched, and refused when it is not within ``version``.
    """
    if not refresh and (have := cached(suite, package, depends=depends, version=version)):
        return have
    lock = _suite_dir(suite) / f".{package}.lock"
    with locked(lock, out, f"fetching {package}"):
        if not refresh and (have := cached(suite, package, depends=depends, version=version)):
            return have  # fetched by the session we waited for
        with PrivateApt(suite, mirror, out) as apt:
            apt.update(0 if refresh else LISTS_MAX_AGE)
            current = apt.candidate(package)
            if version and not version_matches(current, version):
                raise DebPkgError(
                    f"Debian {suite}'s {package} is {current} now, not {version}: ask for that version "
                    f"(or another suite), or point HARNESS_DEBIAN_MIRROR at a snapshot that has it"
                )
            entry = _suite_dir(suite) / _entry_name(package, current, apt.arch, depends)
            if (entry / "meta.json").is_file():
                return Unpacked(suite, package, current, apt.arch, depends, entry)
            started = time.monotonic()
            packages = apt.closure(package) if depends else [(package, current)]
            debs = apt.download(packages)
            _unpack(
                entry,
                debs,
                {
                    "schema": META_SCHEMA,
                    "suite": suite,
                    "package": package,
                    "version": current,
                    "arch": apt.arch,
                    "depends": depends,
                    "packages": [f"{n}={v}" for n, v in packages],
                    "mirror": apt.mirror,
                    "notes": apt.notes,
                    "fetched": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                },
            )
            _log(
                out, f"{package} {current} ({suite}) unpacked in {entry} ({time.monotonic() - started:.0f}s)"
            )
            return Unpacked(suite, package, current, apt.arch, depends, entry)


def _unpack(entry: Path, debs: Sequence[Path], meta: dict[str, Any]) -> None:
    tmp = entry.parent / f".unpack-{entry.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "root").mkdir(parents=True)
    try:
        for deb in debs:
            try:
                res = subprocess.run(
                    ["dpkg-deb", "-x", str(deb), str(tmp / "root")],
                    capture_output=True,
                    text=True,
                    timeout=600,
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise DebPkgError(
                    f"cannot run dpkg-deb to unpack {deb.name}: {exc} (apt-get install dpkg)"
                ) from None
            if res.returncode != 0:
                raise DebPkgError(f"dpkg-deb -x {deb} failed (exit {res.returncode}):\n{_tail(res.stderr)}")
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        if entry.exists():  # an unfinished leftover (no meta.json): never merge into it
            shutil.rmtree(entry)
        os.rename(tmp, entry)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def entries() -> list[Unpacked]:
    """Every finished entry in the cache."""
    found = []
    for meta_path in sorted(Path(cache_base(), "debs").glob("*/*/meta.json")):
        try:
            m = json.loads(meta_path.read_text())
            found.append(
                Unpacked(
                    str(m["suite"]),
                    str(m["package"]),
                    str(m["version"]),
                    str(m["arch"]),
                    bool(m["depends"]),
                    meta_path.parent,
                )
            )
        except (OSError, ValueError, KeyError):
            continue
    return found


# -- command line -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m harness.debpkg",
        description="Fetch Debian packages of any suite with a private apt and unpack them into the cache.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fetch", help="fetch and unpack a package (cached: no network the second time)")
    f.add_argument("suite", help="Debian suite: bookworm, trixie, sid, ...")
    f.add_argument("package", help="binary package name, e.g. docker-cli")
    f.add_argument("--depends", action="store_true", help="also unpack everything it depends on")
    f.add_argument("--version", default=None, help="refuse another version (a prefix: 28.5)")
    f.add_argument("--refresh", action="store_true", help="ask the mirror for the suite's newest")
    f.add_argument("--mirror", default=None, help="Debian mirror (default: the host's apt mirror)")
    sub.add_parser("list", help="show the unpacked packages in the cache")
    args = p.parse_args(argv)
    try:
        if args.command == "fetch":
            got = fetch(
                args.suite,
                args.package,
                depends=args.depends,
                version=args.version,
                refresh=args.refresh,
                mirror=args.mirror,
            )
            for note in got.notes:
                print(f"note: {note}")
            print(f"{got.package} {got.version} ({got.suite}) in {got.root}")
            return 0
        print(f"cache: {Path(cache_base(), 'debs')}")
        for e in entries():
            print(f"  {e.suite:<9} {e.package:<24} {e.version:<24} {'+deps ' if e.depends else ''}{e.root}")
        return 0
    except DebPkgError as exc:
        sys.stderr.write(f"harness.debpkg: error: {exc}\n")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
