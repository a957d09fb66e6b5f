"""harness.upstream.single (``python -m harness.upstream run``): a package's named tests alone, on a daemon it
boots for them and tears down."""

from __future__ import annotations

import os
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.upstream import __main__ as cli
from harness.upstream import build, single
from harness.upstream.frozen import frozen_images, save_archive
from harness.upstream.run import Package, UpstreamMoby

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="booting refd needs root")

#: a stand-in test binary with two tests; TestA passes only against a daemon that answers /_ping
BINARY = textwrap.dedent(
    """
    import json, os, socket, sys
    if "-test.list" in sys.argv:
        print("TestA\\nTestB")
        sys.exit(0)
    run = sys.argv[sys.argv.index("-test.run") + 1] if "-test.run" in sys.argv else ""
    def emit(**e):
        print(json.dumps(e), flush=True)
    for name in ("TestA", "TestB"):
        if run and name not in run:
            continue
        emit(Action="run", Test=name)
        s = socket.socket(socket.AF_UNIX)
        s.connect(os.environ["DOCKER_HOST"].removeprefix("unix://"))
        s.sendall(b"GET /_ping HTTP/1.0\\r\\n\\r\\n")
        ok = b"OK" in s.recv(4096)
        if not ok:
            emit(Action="output", Test=name, Output="    a_test.go:1: no ping\\n")
        emit(Action="pass" if ok else "fail", Test=name, Elapsed=0.1)
    """
)
TEST2JSON = "import subprocess, sys\nsys.exit(subprocess.call(sys.argv[4:]))\n"


def _script(path: Path, text: str) -> str:
    path.write_text(f"#!{sys.executable}\n{text}")
    path.chmod(0o755)
    return str(path)


@dataclass
class FakeBuild:
    package: Package
    test2json: str
    path: Path
    version: str = "28.5.2+dfsg4-5"
    api_version: str = "1.51"

    def packages(self) -> list[Package]:
        return [self.package]


@pytest.fixture
def fake_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBuild]:
    src = tmp_path / "tree" / "integration" / "demo"
    src.mkdir(parents=True)
    package = Package("demo", _script(tmp_path / "demo.test", BINARY), str(src))
    fake = FakeBuild(package, _script(tmp_path / "test2json", TEST2JSON), tmp_path)
    monkeypatch.setattr(build, "ensure_build", lambda **_: fake)
    empty = save_archive(frozen_images(_empty_layer(), {"amd64": b"a", "arm64": b"b"}, native="amd64"))
    monkeypatch.setattr(UpstreamMoby, "archive", property(lambda self: empty))
    base = tempfile.mkdtemp(prefix="hs-", dir="/tmp")
    monkeypatch.setenv("HARNESS_WORKDIR", base)
    try:
        yield fake
    finally:
        assert os.listdir(base) == []  # the daemon's work directory went with it
        os.rmdir(base)


def _empty_layer() -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w"):
        pass
    return buf.getvalue()


@needs_root
def test_only_the_named_tests_run_on_a_daemon_booted_for_them(fake_build: FakeBuild) -> None:
    results, problems = single.run_tests("refd", "demo", ["TestB"])
    assert [(t.name, t.outcome) for t in results] == [("TestB", "passed")]
    assert problems == []


@needs_root
def test_a_test_the_package_lacks_is_a_problem(
    fake_build: FakeBuild, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["run", "refd", "demo", "TestA", "TestNope"]) == 1
    out = capsys.readouterr().out
    assert "refd  demo/TestA  passed" in out
    assert "problem: demo has no test TestNope" in out


def test_an_unknown_package_is_refused_before_any_daemon_boots(fake_build: FakeBuild) -> None:
    with pytest.raises(Exception, match="no package network in the build \\(has demo\\)"):
        single.run_tests("refd", "network")
