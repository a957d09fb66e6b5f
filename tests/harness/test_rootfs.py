"""Cached dockerd rootfs: recipe hashing, cache layout, the build lock, errors, the chroot launcher, targets.

Everything but the last test is fast: debootstrap, chroot and dockerd are replaced by small fakes. The last
test boots the real ``dockerd-28`` from its cached rootfs and is skipped (with the reason) when that rootfs
has not been built: ``python -m harness.rootfs build dockerd-28``.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import chroot_exec, rootfs
from harness.errors import TargetUnavailable
from harness.rootfs import RECIPES, Recipe, RootfsBuildError, RootfsEntry
from harness.targets import KNOWN_TARGETS, ROOTFS_TARGETS, resolve_target


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private HARNESS_CACHE (never the machine's real rootfs cache)."""
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "rootfs"


FAKE_DEBOOTSTRAP = """#!/bin/sh
# fake debootstrap: $5 is the target directory
echo "I: Retrieving InRelease"
echo "I: Retrieving docker.io 1.0"
echo "I: Retrieving runc 1.0"
echo "I: Extracting docker.io..."
dir="$5"
mkdir -p "$dir/usr/sbin" "$dir/etc/docker" "$dir/var/cache/apt/archives"
echo '#!/bin/sh' > "$dir/usr/sbin/dockerd"
chmod +x "$dir/usr/sbin/dockerd"
printf 'root:x:0:\\ndocker:x:101:\\nstaff:x:50:\\n' > "$dir/etc/group"
echo '{"packaged": true}' > "$dir/etc/docker/daemon.json"
echo deb > "$dir/var/cache/apt/archives/docker.io_1.0_amd64.deb"
echo "$@" > "$dir/../argv"
echo "I: Base system installed successfully."
"""


@pytest.fixture
def fake_debootstrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """debootstrap and ``dockerd --version`` replaced; root assumed (nothing privileged happens)."""
    script = tmp_path / "bin" / "debootstrap"
    script.parent.mkdir()
    script.write_text(FAKE_DEBOOTSTRAP)
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{script.parent}:{os.environ['PATH']}")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(rootfs, "dockerd_version_in", lambda root: "99.1.2+dfsg1")
    monkeypatch.setenv("HARNESS_DEBIAN_MIRROR", "http://mirror.example/debian")
    return script


# -- recipes and layout --------------------------------------------------------------------------------------


def test_recipes_cover_the_targets() -> None:
    assert set(ROOTFS_TARGETS) == set(RECIPES) and set(ROOTFS_TARGETS) <= set(KNOWN_TARGETS)
    assert {n: r.suite for n, r in RECIPES.items()} == {
        "dockerd-20.10": "bookworm",
        "dockerd-26": "trixie",
        "dockerd-28": "sid",
    }
    for recipe in RECIPES.values():
        assert {"docker.io", "iptables", "iproute2", "ca-certificates"} <= set(recipe.packages)
        assert recipe.variant == "minbase"


def test_recipe_digest_changes_with_what_the_tree_holds_only() -> None:
    base = Recipe("dockerd-28", "sid", ("docker.io", "iptables"))
    digest = base.digest("amd64", 105)
    assert len(digest) == 16 and digest == base.digest("amd64", 105)
    # package order, duplicates and the target's name do not change the tree
    assert Recipe("other-name", "sid", ("iptables", "docker.io", "iptables")).digest("amd64", 105) == digest
    changed = [
        Recipe("dockerd-28", "trixie", ("docker.io", "iptables")).digest("amd64", 105),
        Recipe("dockerd-28", "sid", ("docker.io", "iptables", "curl")).digest("amd64", 105),
        Recipe("dockerd-28", "sid", ("docker.io", "iptables"), version="2").digest("amd64", 105),
        Recipe("dockerd-28", "sid", ("docker.io", "iptables"), variant="buildd").digest("amd64", 105),
        base.digest("arm64", 105),
        base.digest("amd64", 999),
        base.digest("amd64", None),
    ]
    assert digest not in changed and len(set(changed)) == len(changed)


def test_cache_layout(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rootfs, "host_docker_gid", lambda: 105)
    entry = rootfs.locate("dockerd-28")
    digest = RECIPES["dockerd-28"].digest(entry.arch, 105)
    assert entry.path == str(cache / f"sid-{digest}")
    assert entry.root == f"{entry.path}/root" and entry.meta_path == f"{entry.path}/meta.json"
    assert entry.lock_path == f"{entry.path}.lock"
    assert not entry.is_built() and entry.dockerd_version == ""
    assert not cache.exists()  # locating creates nothing


def test_cache_root_defaults_to_the_user_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("HARNESS_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert rootfs.cache_root() == f"{tmp_path}/docker-conformance-harness/rootfs"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert rootfs.cache_root() == os.path.expanduser("~/.cache/docker-conformance-harness/rootfs")


def test_unknown_recipe_lists_the_known_ones() -> None:
    with pytest.raises(
        RootfsBuildError, match=r"no rootfs recipe named 'dockerd-1'.*dockerd-20\.10, dockerd-26"
    ):
        rootfs.locate("dockerd-1")


# -- building ------------------------------------------------------------------------------------------------


def test_build_finishes_the_tree_and_records_the_version(
    cache: Path, fake_debootstrap: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rootfs, "host_docker_gid", lambda: 105)
    out = io.StringIO()
    entry = rootfs.ensure("dockerd-28", out=out)
    assert entry.is_built() and entry.dockerd_version == "99.1.2+dfsg1"
    root = Path(entry.root)
    assert not (root / "etc/docker/daemon.json").exists()  # the packaged daemon.json would skew scenarios
    assert "docker:x:105:" in (root / "etc/group").read_text().splitlines()  # the host's docker gid
    assert "staff:x:50:" in (root / "etc/group").read_text().splitlines()
    assert list((root / "var/cache/apt/archives").iterdir()) == []
    argv = (Path(entry.path) / "argv").read_text().split()
    assert argv[:2] == ["--variant=minbase", f"--arch={entry.arch}"]
    assert argv[2] == "--include=ca-certificates,docker.io,iproute2,iptables,procps"
    assert argv[3] == "sid" and argv[5] == "http://mirror.example/debian"
    assert argv[4].startswith(f"{cache}/.build-{entry.name}-") and argv[4].endswith("/root")  # renamed later
    meta = json.loads(Path(entry.meta_path).read_text())
    assert meta["target"] == "dockerd-28" and meta["suite"] == "sid" and meta["docker_gid"] == 105
    assert meta["dockerd_version"] == "99.1.2+dfsg1" and meta["build_seconds"] >= 0 and meta["size_bytes"] > 0
    assert sorted(os.listdir(cache)) == [entry.name, f"{entry.name}.lock"]  # no temp dir left behind
    text = out.getvalue()
    assert "harness rootfs dockerd-28 (sid): building with" in text and "a few minutes" in text
    assert text.count("I: Retrieving") == 1  # one line per phase, not per package
    assert "dockerd 99.1.2+dfsg1 ready in" in text


def test_a_cached_rootfs_is_not_rebuilt(
    cache: Path, fake_debootstrap: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = rootfs.ensure("dockerd-26", out=None)
    fake_debootstrap.write_text("#!/bin/sh\nexit 99\n")
    assert rootfs.ensure("dockerd-26", out=None) == first
    assert first.is_built()


def test_recipe_change_means_a_new_entry(
    cache: Path, fake_debootstrap: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = rootfs.ensure("dockerd-26", out=None)
    monkeypatch.setitem(
        RECIPES, "dockerd-26", Recipe("dockerd-26", "trixie", (*rootfs.BASE_PACKAGES, "curl"))
    )
    new = rootfs.ensure("dockerd-26", out=None)
    assert new.path != old.path and new.is_built() and old.is_built()
    assert rootfs.clean(stale_only=True, out=None) == 1
    assert not os.path.exists(old.path) and new.is_built()


def test_a_second_session_waits_for_the_build_instead_of_building(
    cache: Path, fake_debootstrap: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = rootfs.locate("dockerd-20.10")
    os.makedirs(cache, exist_ok=True)
    holder = os.open(entry.lock_path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)  # "another session" is building
    real_build = rootfs.build

    def other_session() -> None:
        time.sleep(0.3)
        real_build(entry, out=None)
        os.close(holder)  # releases the lock

    calls: list[RootfsEntry] = []
    monkeypatch.setattr(rootfs, "build", lambda e, **kw: calls.append(e))
    thread = threading.Thread(target=other_session)
    thread.start()
    out = io.StringIO()
    got = rootfs.ensure("dockerd-20.10", out=out)
    thread.join()
    assert got.is_built() and calls == []  # it saw the other session's tree and did not build again
    assert "waiting for the lock" in out.getvalue()


def test_missing_debootstrap_says_how_to_install_it(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(rootfs.shutil, "which", lambda name: None)
    monkeypatch.setattr(rootfs.os, "access", lambda path, mode: False)
    with pytest.raises(RootfsBuildError) as info:
        rootfs.ensure("dockerd-28", out=None)
    assert str(info.value) == (
        "debootstrap is not installed, so the dockerd-28 rootfs (sid) cannot be built: "
        "apt-get install debootstrap"
    )
    assert not any(n for n in os.listdir(cache) if not n.endswith(".lock"))


def test_building_needs_root(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(RootfsBuildError, match=r"needs root .*python -m harness.rootfs build dockerd-20.10"):
        rootfs.ensure("dockerd-20.10", out=None)


def test_unreachable_mirror_is_named_with_the_fix(cache: Path, fake_debootstrap: Path) -> None:
    fake_debootstrap.write_text(
        "#!/bin/sh\necho 'I: Retrieving InRelease'\n"
        "echo 'E: Failed getting release file http://mirror.example/debian/dists/sid/Release'\nexit 1\n"
    )
    with pytest.raises(RootfsBuildError) as info:
        rootfs.ensure("dockerd-28", out=None)
    message = str(info.value)
    assert message.startswith(
        "debootstrap sid for dockerd-28 failed (exit 1): the Debian mirror "
        "http://mirror.example/debian could not be reached"
    )
    assert "HARNESS_DEBIAN_MIRROR" in message and "E: Failed getting release file" in message
    assert not any(n for n in os.listdir(cache) if not n.endswith(".lock"))  # the temp dir is gone
    assert not rootfs.locate("dockerd-28").is_built()


def test_other_debootstrap_failures_point_at_the_log(cache: Path, fake_debootstrap: Path) -> None:
    fake_debootstrap.write_text("#!/bin/sh\necho 'E: Couldn'\\''t find these debs: docker.io'\nexit 1\n")
    with pytest.raises(RootfsBuildError, match=r"failed \(exit 1\): see the full log .*debootstrap\.log"):
        rootfs.ensure("dockerd-28", out=None)


def test_clean_skips_a_rootfs_a_daemon_runs_from(cache: Path, fake_debootstrap: Path) -> None:
    entry = rootfs.ensure("dockerd-28", out=None)
    other = rootfs.ensure("dockerd-26", out=None)
    fd = os.open(entry.lock_path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)  # what chroot_exec holds for the daemon's lifetime
    out = io.StringIO()
    try:
        assert rootfs.clean(out=out) == 1
    finally:
        os.close(fd)
    assert entry.is_built() and not os.path.exists(other.path)
    assert "is in use" in out.getvalue()
    assert rootfs.clean(["dockerd-28"], out=None) == 1 and not os.path.exists(entry.path)


def test_command_line(cache: Path, fake_debootstrap: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert rootfs.main(["build", "dockerd-28"]) == 0
    assert "dockerd-28: dockerd 99.1.2+dfsg1 in " in capsys.readouterr().out
    assert rootfs.main(["list"]) == 0
    listing = capsys.readouterr().out
    assert "dockerd-28     sid" in listing and "dockerd 99.1.2+dfsg1" in listing and "not built" in listing
    assert rootfs.main(["build", "dockerd-99"]) == 1
    assert "no rootfs recipe named 'dockerd-99'" in capsys.readouterr().err
    assert rootfs.main(["clean"]) == 0
    assert "removed 1 entry" in capsys.readouterr().out


# -- the launcher --------------------------------------------------------------------------------------------


def test_bind_candidates_are_the_directories_of_path_arguments(tmp_path: Path) -> None:
    work, certs, elsewhere = tmp_path / "work", tmp_path / "certs", tmp_path / "else"
    for d in (work, certs, elsewhere):
        d.mkdir()
    config = work / "daemon.json"
    config.write_text(
        json.dumps({"pidfile": f"{elsewhere}/x.pid", "hosts": ["unix:///var/run/docker.sock"], "debug": True})
    )
    args = [
        f"--data-root={work}/root",
        f"--config-file={config}",
        f"--tlscacert={certs}/ca.pem",
        "-H=unix:///run/other.sock",
        "--pidfile",
        f"{certs}/sub/dir/d.pid",
        "--exec-root=/var/run/x",
    ]
    found = chroot_exec.bind_candidates(args, str(work), [str(work)])
    assert found == [str(certs), str(elsewhere)]  # /var and /run stay the rootfs's own; work is covered
    assert chroot_exec.bind_candidates([f"--pidfile={tmp_path}/p"], "/", []) == [str(tmp_path)]
    assert chroot_exec.bind_candidates(["--pidfile=/p", "--debug"], "/", []) == []


def test_launcher_refuses_the_callers_mount_namespace(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the launcher checks root first")
    res = subprocess.run(
        [sys.executable, "-I", "-S", chroot_exec.__file__, str(tmp_path), "--", "true"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert res.returncode == chroot_exec.EXIT_LAUNCHER
    assert "refusing to mount in the caller's mount namespace" in res.stderr


def test_launcher_usage() -> None:
    res = subprocess.run(
        [sys.executable, "-I", "-S", chroot_exec.__file__, "/x"], capture_output=True, text=True
    )
    assert res.returncode == 2 and "usage: chroot_exec.py [--lock FILE] ROOTFS -- PROGRAM" in res.stderr


# -- targets -------------------------------------------------------------------------------------------------


def test_rootfs_targets_resolve_to_the_launcher(cache: Path) -> None:
    for name in ROOTFS_TARGETS:
        t = resolve_target(name)
        entry = rootfs.locate(name)
        assert (t.name, t.kind, t.rootfs, t.argv) == (name, "dockerd", name, ("/usr/sbin/dockerd",))
        assert t.launcher == (
            sys.executable,
            "-I",
            "-S",
            chroot_exec.__file__,
            "--lock",
            entry.lock_path,
            entry.root,
            "--",
        )
        assert t.version == ""  # not built


def test_unbuilt_rootfs_without_debootstrap_is_unavailable(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(
        "harness.targets.shutil.which", lambda name: None if name == "debootstrap" else "/bin/x"
    )
    monkeypatch.setattr("harness.targets.os.access", lambda path, mode: False)
    with pytest.raises(TargetUnavailable) as info:
        resolve_target("dockerd-26").check_available()
    assert info.value.reason == "its Debian trixie rootfs is not built and debootstrap is not installed"
    assert info.value.fix.startswith("apt-get install debootstrap")
    assert "python -m harness.rootfs build dockerd-26" in info.value.fix


def test_built_rootfs_is_available_and_reports_its_version(
    cache: Path, fake_debootstrap: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolve_target("dockerd-20.10").prepare(out=io.StringIO())
    t = resolve_target("dockerd-20.10")
    monkeypatch.setattr(
        "harness.targets.shutil.which", lambda name: None if name == "debootstrap" else "/bin/x"
    )
    t.check_available()  # cached: debootstrap is not needed any more
    assert t.version == "99.1.2+dfsg1"


# -- the real thing (slow) -----------------------------------------------------------------------------------


@pytest.fixture
def cached_dockerd_28() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("booting dockerd needs root")
    entry = rootfs.locate("dockerd-28")
    if not entry.is_built():
        reason = (
            f"the dockerd-28 rootfs is not cached ({entry.path}); build it with "
            "python -m harness.rootfs build dockerd-28"
        )
        print(reason)
        pytest.skip(reason)
    yield entry.dockerd_version


@pytest.mark.slow
@pytest.mark.requires_root
def test_dockerd_28_boots_from_its_rootfs(cached_dockerd_28: str, ledger: object) -> None:
    import grp
    import tempfile

    from harness.backends.base import DaemonSpec
    from harness.backends.local import LocalBackend
    from harness.client import EngineClient

    root = rootfs.locate("dockerd-28").root
    before = _snapshot(root)
    backend = LocalBackend()
    workdir = tempfile.mkdtemp(prefix="harness-t", dir="/tmp")
    flavour = resolve_target("dockerd-28")
    handle = backend.start(flavour, DaemonSpec(), workdir)
    try:
        assert handle.endpoint is not None
        client = EngineClient(handle.endpoint)
        try:
            assert client.get("/_ping").text == "OK"
            assert client.get("/version").json()["Version"] == cached_dockerd_28
        finally:
            client.close()
        with open(handle.pidfile) as fh:
            assert int(fh.read()) == handle.pid  # exec'd: the launcher's pid is dockerd's
        st = os.stat(handle.socket_path)  # created inside the chroot, visible at the same path outside
        with contextlib.suppress(KeyError):  # no docker group on this host: the rootfs keeps its own gid
            assert st.st_gid == grp.getgrnam("docker").gr_gid
    finally:
        backend.teardown(handle)
    assert not os.path.exists(workdir)
    assert _snapshot(root) == before  # the cached tree is untouched (the daemon wrote to its overlay)


def _snapshot(root: str) -> dict[str, list[str]]:
    return {d: sorted(os.listdir(os.path.join(root, d))) for d in ("", "tmp", "run", "etc/docker", "var/lib")}
