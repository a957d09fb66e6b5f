"""harness.upstream.run against refd: frozen images loaded with their IDs, the daemon's namespaces prepared
(rshared, eth0) and a test binary run inside them, never in the host's."""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.client import EngineClient
from harness.fixtures import DaemonFactory
from harness.targets import resolve_target
from harness.upstream.frozen import frozen_images, save_archive
from harness.upstream.run import (
    EXTERNAL_ADDRESS,
    Package,
    UpstreamRunError,
    load_images,
    prepare_namespaces,
    run_on,
)

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="booting refd needs root")

#: a stand-in test binary: lists two tests, and in TestEnv checks where it runs (printing test2json events
#: itself; the stand-in test2json below only runs it)
BINARY = textwrap.dedent(
    """
    import json, os, subprocess, sys
    if "-test.list" in sys.argv:
        print("TestEnv\\nTestOwnDaemon")
        sys.exit(0)
    def emit(**e):
        print(json.dumps(e), flush=True)
    problems = []
    if os.stat("/proc/self/ns/net").st_ino == int(os.environ["HOST_NETNS"]):
        problems.append("runs in the host's network namespace")
    if not os.getcwd().endswith("/integration/demo") or not os.path.isfile("testdata/marker"):
        problems.append(f"cwd {os.getcwd()} is not the package's sources")
    for path in ("integration/demo/a_test.go", "testutil/h.go"):
        path = "github.com/docker/docker/" + path
        if not os.path.isfile(path):  # where -trimpath binaries say their source is
            problems.append(f"{path} is not there from {os.getcwd()}")
    addr = subprocess.run(["ip", "-o", "addr", "show", "eth0"], capture_output=True, text=True).stdout
    if "ADDRESS" not in addr:
        problems.append(f"eth0: {addr!r}")
    root = [l for l in open("/proc/self/mountinfo") if l.split()[4] == "/"]
    if not root or "shared:" not in root[-1]:
        problems.append(f"/ is not shared: {root}")
    if not os.environ.get("DOCKER_HOST", "").startswith("unix://"):
        problems.append("no DOCKER_HOST")
    own = subprocess.run(["dockerd", "--version"], capture_output=True, text=True)
    if own.returncode != 1 or "does not let moby tests start a dockerd" not in own.stderr:
        problems.append(f"dockerd on PATH is not the harness's refusal: {own}")
    if "-test.skip" not in sys.argv or "TestOwnDaemon" not in sys.argv[sys.argv.index("-test.skip") + 1]:
        problems.append(f"TestOwnDaemon is not kept out: {sys.argv}")
    emit(Action="run", Test="TestEnv")
    for p in problems:
        emit(Action="output", Test="TestEnv", Output=f"    env_test.go:1: {p}\\n")
    emit(Action="fail" if problems else "pass", Test="TestEnv", Elapsed=0.1)
    """
).replace("ADDRESS", EXTERNAL_ADDRESS.split("/")[0])

#: the stand-in test2json: runs the command after ``-t -p PKG`` and passes its output through
TEST2JSON = "import subprocess, sys\nsys.exit(subprocess.call(sys.argv[4:]))\n"


@pytest.fixture
def refd(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    import tempfile

    base = tempfile.mkdtemp(prefix="hu-", dir="/tmp")
    monkeypatch.setenv("HARNESS_WORKDIR", base)
    factory = DaemonFactory(resolve_target("refd"), "local")
    try:
        yield factory()
    finally:
        factory.close()
        os.rmdir(base)


def _script(path: Path, text: str) -> str:
    path.write_text(f"#!{sys.executable}\n{text}")
    path.chmod(0o755)
    return str(path)


@needs_root
def test_frozen_images_load_with_their_own_ids(refd: object, tmp_path: Path) -> None:
    images = frozen_images(b"".join([]) or _empty_layer(), {"amd64": b"a", "arm64": b"b"}, native="amd64")
    loaded = load_images(refd.endpoint, save_archive(images))  # type: ignore[attr-defined]
    assert sorted(loaded) == sorted(t for i in images for t in i.tags)
    client = EngineClient(refd.endpoint)  # type: ignore[attr-defined]
    try:
        for image in images:
            assert client.get(f"/images/{image.tags[0]}/json").json()["Id"] == image.id
    finally:
        client.close()


def _empty_layer() -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w"):
        pass
    return buf.getvalue()


@needs_root
def test_a_binary_runs_in_the_daemons_prepared_namespaces(refd: object, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    src = tree / "integration" / "demo"
    (src / "testdata").mkdir(parents=True)
    (src / "testdata" / "marker").write_text("x")
    (src / "a_test.go").write_text("package demo\n")
    (tree / "testutil").mkdir()
    (tree / "testutil" / "h.go").write_text("package testutil\n")
    binary = _script(tmp_path / "demo.test", BINARY)
    package = Package("demo", binary, str(src), ("TestOwnDaemon",), str(tree))
    prepare_namespaces(refd.pid)  # type: ignore[attr-defined]
    prepare_namespaces(refd.pid)  # type: ignore[attr-defined]  # again: the eth0 is there already
    host = {"HOST_NETNS": str(os.stat("/proc/self/ns/net").st_ino)}
    run = run_on(refd, package, _script(tmp_path / "test2json", TEST2JSON), extra_env=host)  # type: ignore[arg-type]
    got = {t.name: (t.outcome, t.reason) for t in run.results()}
    assert got["TestEnv"] == ("passed", ""), got
    assert got["TestOwnDaemon"][0] == "skipped" and "starts a dockerd of its own" in got["TestOwnDaemon"][1]
    assert run.problems == []
    host_links = Path("/sys/class/net")
    assert not (host_links / "eth0-peer").exists()  # the veth pair was made in the daemon's netns only


def test_the_hosts_own_namespaces_are_never_prepared() -> None:
    with pytest.raises(UpstreamRunError, match="this host's network namespace"):
        prepare_namespaces(os.getpid())


def test_an_older_daemon_gets_its_api_version_and_a_current_one_none(unix_http: str) -> None:
    from harness.endpoints import Endpoint
    from harness.upstream.run import client_version_env

    endpoint = Endpoint("unix", unix_http)  # answers /version with ApiVersion 1.41
    assert client_version_env(endpoint, "1.51") == {"DOCKER_API_VERSION": "1.41"}
    assert client_version_env(endpoint, "1.41") == {}
    assert client_version_env(endpoint, "1.9") == {}  # versions compare as numbers, not text
