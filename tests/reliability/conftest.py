"""Reliability fixtures: a throwaway refd per module, the figures every test reports, long or fast variants.

``HARNESS_RELIABILITY=long`` (set by ``nox -s reliability``) selects the long variants: more fuzzed requests,
the full load test, dockerd for comparison. Each test adds its figures with the ``figures`` fixture; when
``HARNESS_RELIABILITY_REPORT`` names a file, the session writes them there as JSON at the end
and renders it as Markdown beside it (``reports/reliability.md``; ``tests/reliability/report.py``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest

from harness.backends.base import DaemonHandle, DaemonSpec
from harness.backends.local import LocalBackend
from harness.targets import Target, resolve_target

LONG = os.environ.get("HARNESS_RELIABILITY", "") == "long"
ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="booting refd with containers needs root")

_FIGURES: dict[str, Any] = {}


def scale(fast: int, long: int) -> int:
    """A count for the fast variant (``nox -s tests``) or the long one (``nox -s reliability``)."""
    return long if LONG else fast


@pytest.fixture(scope="session")
def figures() -> dict[str, Any]:
    return _FIGURES


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    out = os.environ.get("HARNESS_RELIABILITY_REPORT")
    if out and _FIGURES:
        old: dict[str, Any] = {}
        if os.path.exists(out):
            with open(out) as fh:
                old = json.load(fh)
        old.update(_FIGURES)
        old["_variant"] = "long" if LONG else "fast"
        old["_exitstatus"] = max(int(exitstatus), int(old.get("_exitstatus", 0)))  # runs merge into one file
        old["_when"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        old["_commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
        with open(out, "w") as fh:
            json.dump(old, fh, indent=2, sort_keys=True)
            fh.write("\n")
        from .report import write

        write(old, os.path.splitext(out)[0] + ".md")


def boot(
    target: str | Target = "refd", spec: DaemonSpec | None = None, prefix: str = "harness-rel-"
) -> tuple[LocalBackend, DaemonHandle]:
    """A daemon on a fresh work directory; a boot that fails leaves no directory behind."""
    backend = LocalBackend()
    workdir = tempfile.mkdtemp(prefix=prefix)
    try:
        handle = backend.start(
            resolve_target(target) if isinstance(target, str) else target, spec or DaemonSpec(), workdir
        )
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)  # the backend leaves the files to the caller
        raise
    return backend, handle


def own_netns(handle: DaemonHandle) -> bool:
    """Safety check before hostile traffic: the daemon is not in the host's network namespace."""
    return os.stat(f"/proc/{handle.pid}/ns/net").st_ino != os.stat("/proc/self/ns/net").st_ino


@pytest.fixture(scope="module")
def refd() -> Iterator[DaemonHandle]:
    if not ROOT:
        pytest.skip("booting refd with containers needs root")
    backend, handle = boot()
    try:
        assert own_netns(handle)
        yield handle
    finally:
        backend.teardown(handle)
