"""DaemonFactory (behind daemon_factory/docker_daemon) and the observe store, used directly."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.cleanup import Ledger
from harness.errors import BackendStartError, ConfigValueError
from harness.fixtures import DaemonFactory, Observations
from harness.targets import resolve_target
from harness.wait import ping_once

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="booting refd needs root")


@pytest.fixture
def work_base(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A private HARNESS_WORKDIR (short: unix socket paths are limited)."""
    import tempfile

    base = tempfile.mkdtemp(prefix="hw-", dir="/tmp")
    monkeypatch.setenv("HARNESS_WORKDIR", base)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@needs_root
def test_factory_boots_and_close_removes_everything(work_base: str, ledger: Ledger) -> None:
    factory = DaemonFactory(resolve_target("refd"), "local")
    try:
        first = factory(args=["--debug"])
        second = factory(config={"debug": True})
        assert first.workdir != second.workdir
        assert os.path.basename(first.workdir).startswith("harness-refd-")
        assert os.stat(first.workdir).st_mode & 0o777 == 0o755
        assert first.endpoint is not None and second.endpoint is not None
        assert ping_once(first.endpoint) == ping_once(second.endpoint) == 200
    finally:
        factory.close()
    assert os.listdir(work_base) == []
    assert factory.handles == []
    assert first.returncode is not None and second.returncode is not None


@needs_root
def test_factory_failed_boot_leaves_nothing(work_base: str, ledger: Ledger) -> None:
    factory = DaemonFactory(resolve_target("refd"), "local")
    try:
        with pytest.raises(BackendStartError, match="unknown flag: --nope"):
            factory(args=["--nope"])
        assert factory.handles == []
        assert os.listdir(work_base) == []
    finally:
        factory.close()


@needs_root
def test_factory_keep_leaves_the_workdir(work_base: str, ledger: Ledger) -> None:
    factory = DaemonFactory(resolve_target("refd"), "local", keep=True)
    try:
        handle = factory()
    finally:
        factory.close()
    assert os.path.isdir(handle.workdir) and handle.returncode is not None
    assert "API listen on" in Path(handle.stderr_path).read_text()


@needs_root
def test_start_expecting_exit(work_base: str, ledger: Ledger) -> None:
    factory = DaemonFactory(resolve_target("refd"), "local")
    try:
        code, handle = factory.start_expecting_exit(config='{"debug": tru')
        assert code == 1 and handle.logs()
        code, handle = factory.start_expecting_exit(args=["--validate"])
        assert code == 0 and "configuration OK" in handle.logs()
    finally:
        factory.close()


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(ConfigValueError, match="unknown backend 'nowhere'"):
        DaemonFactory(resolve_target("refd"), "nowhere")


def test_observations_record_and_return() -> None:
    seen = Observations()
    assert seen("status", 200) == 200
    seen.update(body="OK")
    assert seen == {"status": 200, "body": "OK"}
