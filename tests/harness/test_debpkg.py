"""harness.debpkg against a real (tiny) Debian archive served on loopback: signed with a key minted here,
fetched with the private apt, unpacked, cached; expired, foreign-signed and missing cases; the mirror and
version helpers."""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from harness import debpkg
from harness.debpkg import DebPkgError, PrivateApt

pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in ("apt-get", "dpkg-deb", "gpg", "gpg-agent")),
    reason="needs apt-get, dpkg-deb, gpg and gpg-agent (nox -s tests installs them)",
)


def _gpg(home: Path, *args: str, input: bytes | None = None) -> bytes:
    cmd = [
        "gpg",
        "--homedir",
        str(home),
        "--batch",
        "--quiet",
        "--pinentry-mode",
        "loopback",
        "--passphrase",
        "",
    ]
    res = subprocess.run([*cmd, *args], input=input, capture_output=True)
    assert res.returncode == 0, f"gpg {' '.join(args)} failed: {res.stderr.decode(errors='replace')}"
    return res.stdout


_HOMES: list[Path] = []


@pytest.fixture(autouse=True)
def _no_agent_left() -> Iterator[None]:
    """gpg starts an agent per GNUPGHOME that outlives it: stop each one a test made."""
    yield
    while _HOMES:
        home = _HOMES.pop()
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True, check=False)


def _key(tmp: Path, name: str) -> tuple[Path, Path]:
    """A signing key's GNUPGHOME and its public keyring file (what ``signed-by`` names)."""
    home = tmp / f"gnupg-{name}"
    home.mkdir(mode=0o700)
    _HOMES.append(home)
    _gpg(home, "--quick-gen-key", f"{name} <{name}@example.test>", "ed25519", "sign", "never")
    keyring = tmp / f"{name}.gpg"
    keyring.write_bytes(_gpg(home, "--export"))
    return home, keyring


def _deb(out: Path, name: str, version: str, depends: str = "") -> Path:
    root = out / f"build-{name}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "usr" / "share" / name).mkdir(parents=True)
    (root / "usr" / "share" / name / "version").write_text(version + "\n")
    control = (
        f"Package: {name}\nVersion: {version}\nArchitecture: {debpkg.dpkg_arch()}\n"
        "Maintainer: t <t@example.test>\nDescription: test package\n"
    )
    if depends:
        control += f"Depends: {depends}\n"
    (root / "DEBIAN" / "control").write_text(control)
    deb = out / f"{name}_{version}_{debpkg.dpkg_arch()}.deb"
    subprocess.run(
        ["dpkg-deb", "--build", "--root-owner-group", str(root), str(deb)], check=True, capture_output=True
    )
    shutil.rmtree(root)
    return deb


@dataclass
class Archive:
    """A one-suite Debian archive on disk, served over HTTP on loopback while ``url`` is set."""

    path: Path
    keyring: Path
    home: Path
    url: str = ""

    def publish(
        self,
        suite: str,
        debs: list[Path],
        valid_until: datetime | None = None,
        sign_with: Path | None = None,
        sources: list[SourcePackage] | None = None,
    ) -> None:
        pool = self.path / "pool"
        pool.mkdir(parents=True, exist_ok=True)
        stanzas = []
        for deb in debs:
            shutil.copy(deb, pool / deb.name)
            control = subprocess.run(
                ["dpkg-deb", "-f", str(deb)], capture_output=True, text=True, check=True
            ).stdout.strip()
            data = deb.read_bytes()
            stanzas.append(
                f"{control}\nFilename: pool/{deb.name}\nSize: {len(data)}\n"
                f"SHA256: {hashlib.sha256(data).hexdigest()}\n"
            )
        rel = f"main/binary-{debpkg.dpkg_arch()}/Packages"
        packages = self.path / "dists" / suite / rel
        packages.parent.mkdir(parents=True, exist_ok=True)
        packages.write_text("\n".join(stanzas))
        indexes = [rel]
        if sources is not None:
            indexes.append(self._publish_sources(suite, sources))
        now = datetime.now(UTC)
        release = (
            f"Origin: Test\nSuite: {suite}\nCodename: {suite}\nDate: {format_datetime(now, usegmt=True)}\n"
            + (f"Valid-Until: {format_datetime(valid_until, usegmt=True)}\n" if valid_until else "")
            + f"Architectures: {debpkg.dpkg_arch()}\nComponents: main\nSHA256:\n"
        )
        for index in indexes:
            body = (self.path / "dists" / suite / index).read_bytes()
            release += f" {hashlib.sha256(body).hexdigest()} {len(body)} {index}\n"
        signed = _gpg(sign_with or self.home, "--clearsign", input=release.encode())
        (self.path / "dists" / suite / "InRelease").write_bytes(signed)

    def _publish_sources(self, suite: str, sources: list[SourcePackage]) -> str:
        stanzas = []
        for src in sources:
            directory = f"pool/main/{src.name[0]}/{src.name}"
            (self.path / directory).mkdir(parents=True, exist_ok=True)
            sums = ""
            for name, data in sorted(src.files.items()):
                (self.path / directory / name).write_bytes(data)
                sums += f" {hashlib.sha256(data).hexdigest()} {len(data)} {name}\n"
            for name in src.withheld:  # listed in the index, not served (as a mirror may do)
                (self.path / directory / name).unlink()
            stanzas.append(
                f"Package: {src.name}\nBinary: {src.name}\nVersion: {src.version}\n"
                f"Maintainer: t <t@example.test>\nArchitecture: any\nFormat: 3.0 (quilt)\n"
                + (f"Build-Depends: {src.build_depends}\n" if src.build_depends else "")
                + f"Checksums-Sha256:\n{sums}Directory: {directory}\n"
            )
        index = "main/source/Sources"
        (self.path / "dists" / suite / index).parent.mkdir(parents=True, exist_ok=True)
        (self.path / "dists" / suite / index).write_text("\n".join(stanzas))
        return index


@dataclass
class SourcePackage:
    """A source package of the test archive: its files (name -> bytes), some of which the mirror withholds."""

    name: str
    version: str
    files: dict[str, bytes]
    build_depends: str = ""
    withheld: tuple[str, ...] = ()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Archive]:
    """A private cache, an archive signed by a key minted here (the private apt trusts only that key)."""
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    home, keyring = _key(tmp_path, "archive")
    monkeypatch.setattr(debpkg, "KEYRING", str(keyring))
    arc = Archive(tmp_path / "archive", keyring, home)
    arc.path.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(arc.path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    arc.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield arc
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_package_is_fetched_verified_unpacked_and_then_cached(
    archive: Archive, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive.publish("testing", [_deb(tmp_path, "hello", "1:2.5-1", depends="libhello")])
    got = debpkg.fetch("testing", "hello", mirror=archive.url, out=sys.stderr)
    assert (got.package, got.version, got.depends) == ("hello", "1:2.5-1", False)
    assert (got.root / "usr/share/hello/version").read_text() == "1:2.5-1\n"
    assert not (got.root / "usr/share/libhello").exists()  # no dependencies unless asked
    assert got.path.name == f"hello_1%3a2.5-1_{debpkg.dpkg_arch()}"
    assert got.meta()["packages"] == ["hello=1:2.5-1"] and got.notes == []
    assert "apt-get update for testing from http://127.0.0.1:" in capsys.readouterr().err
    shutil.rmtree(archive.path)  # the second time needs no network and no archive
    assert debpkg.fetch("testing", "hello", mirror=archive.url) == got
    assert debpkg.cached("testing", "hello", version="2.5") == got
    assert debpkg.cached("testing", "hello", version="2.4") is None


def test_depends_unpacks_what_apt_resolves_beside_the_package(archive: Archive, tmp_path: Path) -> None:
    archive.publish(
        "testing",
        [
            _deb(tmp_path, "hello", "2.5-1", depends="libhello (>= 1.0)"),
            _deb(tmp_path, "libhello", "1.1-1"),
            _deb(tmp_path, "unrelated", "9"),
        ],
    )
    got = debpkg.fetch("testing", "hello", depends=True, mirror=archive.url, out=None)
    assert got.meta()["packages"] == ["hello=2.5-1", "libhello=1.1-1"]
    assert (got.root / "usr/share/libhello/version").is_file()
    assert not (got.root / "usr/share/unrelated").exists()
    assert got.path.name.endswith("+deps")
    assert debpkg.cached("testing", "hello") is None  # the plain package is another entry


def test_an_expired_release_is_read_and_said(
    archive: Archive, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    until = datetime(2026, 11, 6, 8, 8, 1, tzinfo=UTC)
    archive.publish("sid", [_deb(tmp_path, "hello", "3")], valid_until=until)
    got = debpkg.fetch("sid", "hello", mirror=archive.url, out=sys.stderr)
    said = f"the sid Release file of {archive.url} expired on Fri, 06 Nov 2026 08:08:01 GMT"
    assert said in capsys.readouterr().err
    assert any(said in n for n in got.notes) and "Check-Valid-Until=false" in got.notes[0]


def test_an_index_signed_by_another_key_is_refused(archive: Archive, tmp_path: Path) -> None:
    other, _ = _key(tmp_path, "intruder")
    archive.publish("testing", [_deb(tmp_path, "hello", "1")], sign_with=other)
    with pytest.raises(DebPkgError, match=r"could not be verified with .*archive\.gpg: update the keyring"):
        debpkg.fetch("testing", "hello", mirror=archive.url, out=None)
    assert debpkg.entries() == []


def test_a_missing_package_or_version_is_named(archive: Archive, tmp_path: Path) -> None:
    archive.publish("testing", [_deb(tmp_path, "hello", "28.5.2-1")])
    with pytest.raises(DebPkgError, match=r"Debian testing has no package nosuch at http://127\.0\.0\.1"):
        debpkg.fetch("testing", "nosuch", mirror=archive.url, out=None)
    with pytest.raises(DebPkgError, match=r"Debian testing's hello is 28\.5\.2-1 now, not 27"):
        debpkg.fetch("testing", "hello", version="27", mirror=archive.url, out=None)
    assert (
        debpkg.fetch("testing", "hello", version="28.5", mirror=archive.url, out=None).version == "28.5.2-1"
    )


def test_an_unreachable_mirror_is_named_with_the_fix(archive: Archive) -> None:
    # a closed port on loopback: apt fails at once, no traffic leaves the machine
    with pytest.raises(DebPkgError) as info:
        debpkg.fetch("testing", "hello", mirror="http://127.0.0.1:9/debian", out=None)
    assert "apt-get update (testing) failed" in str(info.value)
    assert "the Debian mirror http://127.0.0.1:9/debian could not be reached" in str(info.value)


def test_a_missing_keyring_says_which_package_brings_it(
    archive: Archive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(debpkg, "KEYRING", str(tmp_path / "absent.gpg"))
    with pytest.raises(DebPkgError, match="apt-get install debian-archive-keyring"):
        debpkg.fetch("testing", "hello", mirror=archive.url, out=None)


def test_the_private_apt_reads_none_of_the_hosts_configuration(archive: Archive) -> None:
    with PrivateApt("testing", archive.url, out=None) as apt:
        dump = apt.run("apt-config", "dump").lower()  # apt keeps keys as first spelt
        assert f'dir::etc::parts "{apt.base}/etc/apt.conf.d"'.lower() in dump
        assert f'dir::state::status "{apt.base}/state/status"'.lower() in dump
        assert 'acquire::check-valid-until "false"' in dump
        assert '"/etc/apt' not in dump  # neither the host's apt.conf.d nor its sources
    with pytest.raises(RuntimeError, match="outside its with-block"):
        apt.run("apt-config", "dump")


def test_version_matches_whole_components_only() -> None:
    assert debpkg.version_matches("5:28.5.2+dfsg4-5", "28.5")
    assert debpkg.version_matches("28.5.2+dfsg4-5", "28")
    assert debpkg.version_matches("28.5.2+dfsg4-5", "28.5.2+dfsg4-5")
    assert not debpkg.version_matches("28.50.1-1", "28.5")
    assert not debpkg.version_matches("2.5-1", "28")


def test_release_expiry_is_read_from_valid_until() -> None:
    text = "Origin: Debian\nValid-Until: Fri, 06 Nov 2026 08:08:01 UTC\n"
    before = time.mktime((2026, 11, 1, 0, 0, 0, 0, 0, 0))
    assert debpkg.release_expired(text, now=before) == ""
    assert debpkg.release_expired(text, now=before + timedelta(days=30).total_seconds()) == (
        "Fri, 06 Nov 2026 08:08:01 UTC"
    )
    assert debpkg.release_expired("Origin: Debian\n") == ""  # stable suites carry no Valid-Until


def test_mirror_comes_from_the_hosts_deb822_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HARNESS_DEBIAN_MIRROR", raising=False)
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n# http://snapshot.debian.org/archive/debian/20250520T000000Z\n"
        "URIs: http://mirror.local/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://mirror.local/debian/\nSuites: bookworm bookworm-updates\nComponents: main\n"
    )
    (tmp_path / "sources.list.d" / "other.sources").write_text(
        "Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\n"
    )
    assert debpkg.debian_mirror(str(tmp_path)) == "http://mirror.local/debian"


def test_mirror_from_one_line_sources_env_override_and_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HARNESS_DEBIAN_MIRROR", raising=False)
    assert debpkg.debian_mirror(str(tmp_path)) == debpkg.DEFAULT_MIRROR  # no sources at all
    (tmp_path / "sources.list").write_text(
        "# deb http://commented.example/debian sid main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://ftp.example.org/debian bookworm main\n"
    )
    assert debpkg.debian_mirror(str(tmp_path)) == "http://ftp.example.org/debian"
    monkeypatch.setenv("HARNESS_DEBIAN_MIRROR", "http://env.example/debian/")
    assert debpkg.debian_mirror(str(tmp_path)) == "http://env.example/debian"


def test_command_line_fetch_and_list(
    archive: Archive, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive.publish("testing", [_deb(tmp_path, "hello", "1.0-1")])
    assert debpkg.main(["fetch", "testing", "hello", "--mirror", archive.url]) == 0
    out = capsys.readouterr().out
    assert out.startswith("hello 1.0-1 (testing) in ") and out.strip().endswith("/root")
    assert debpkg.main(["list"]) == 0
    assert "testing   hello" in capsys.readouterr().out
    assert debpkg.main(["fetch", "testing", "nosuch", "--mirror", archive.url]) == 1
    assert "harness.debpkg: error: Debian testing has no package nosuch" in capsys.readouterr().err
    assert not [
        p
        for p in Path(os.environ["HARNESS_CACHE"], "debs", "testing").iterdir()
        if p.name.startswith(".unpack-")
    ]


def test_a_closure_of_several_packages_and_a_build_closure(archive: Archive, tmp_path: Path) -> None:
    archive.publish(
        "sid",
        [
            _deb(tmp_path, "hello", "2.5-1", depends="libhello"),
            _deb(tmp_path, "libhello", "1.1-1"),
            _deb(tmp_path, "tool", "3", depends="libtool"),
            _deb(tmp_path, "libtool", "4"),
            _deb(tmp_path, "unrelated", "9"),
            _deb(tmp_path, "build-essential", "12"),  # what apt adds to every build-dep
        ],
        sources=[SourcePackage("hello", "2.5-1", {"hello_2.5-1.dsc": b"d"}, build_depends="tool, libhello")],
    )
    with PrivateApt("sid", archive.url, out=None, sources=True) as apt:
        apt.update()
        assert apt.closure("hello", "tool=3") == [
            ("hello", "2.5-1"),
            ("libhello", "1.1-1"),
            ("libtool", "4"),
            ("tool", "3"),
        ]
        assert sorted(apt.build_closure("hello", "2.5-1")) == [
            ("build-essential", "12"),
            ("libhello", "1.1-1"),
            ("libtool", "4"),
            ("tool", "3"),
        ]
    with PrivateApt("sid", archive.url, out=None) as apt:  # without deb-src there is nothing to build from
        apt.update()
        with pytest.raises(DebPkgError, match=re.escape("build-dep hello=2.5-1")):
            apt.build_closure("hello", "2.5-1")


def test_source_files_are_downloaded_and_checked_against_the_signed_index(
    archive: Archive, tmp_path: Path
) -> None:
    files = {
        "hello_2.5.orig.tar.xz": b"upstream source",
        "hello_2.5-1.debian.tar.xz": b"debian packaging",
        "hello_2.5.orig-extra.tar.xz": b"a component the mirror does not serve",
    }
    archive.publish(
        "sid",
        [_deb(tmp_path, "hello", "2.5-1")],
        sources=[SourcePackage("hello", "2.5-1", files, withheld=("hello_2.5.orig-extra.tar.xz",))],
    )
    dest = tmp_path / "src"
    with PrivateApt("sid", archive.url, out=None, sources=True) as apt:
        apt.update()
        listed = {name: (size, sha) for name, size, sha, _url in apt.source_files("hello", "2.5-1")}
        assert listed["hello_2.5.orig.tar.xz"] == (15, hashlib.sha256(b"upstream source").hexdigest())
        wanted = ["hello_2.5.orig.tar.xz", "hello_2.5-1.debian.tar.xz"]
        got = apt.download_source("hello", "2.5-1", dest, wanted)
        assert [p.read_bytes() for p in got] == [b"upstream source", b"debian packaging"]
        with pytest.raises(DebPkgError, match=re.escape("has no source package hello 9")):
            apt.source_files("hello", "9")
        with pytest.raises(DebPkgError, match=re.escape("has no file hello_2.5.orig-cli.tar.xz")):
            apt.download_source("hello", "2.5-1", dest, ["hello_2.5.orig-cli.tar.xz"])
        with pytest.raises(DebPkgError, match=re.escape("hello_2.5.orig-extra.tar.xz for hello 2.5-1")):
            apt.download_source("hello", "2.5-1", dest, ["hello_2.5.orig-extra.tar.xz"])
        # the mirror now serves other bytes than the index lists: refused, and nothing is left behind
        pool = archive.path / "pool/main/h/hello"
        (pool / "hello_2.5-1.debian.tar.xz").write_bytes(b"tampered")
        got[1].unlink()
        with pytest.raises(DebPkgError, match="does not match the sha256"):
            apt.download_source("hello", "2.5-1", dest, wanted)
        assert not got[1].exists()
        # a file already downloaded with the right hash is not fetched again
        shutil.rmtree(archive.path / "pool")
        assert apt.download_source("hello", "2.5-1", dest, wanted[:1]) == got[:1]
