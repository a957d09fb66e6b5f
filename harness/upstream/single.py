"""``python -m harness.upstream run TARGET PACKAGE [TEST ...]``: a package (or some tests), one target.

The conformance area runs whole packages; looking into one failing test needs that test alone, on a daemon
booted the same way (local backend, the package's own daemon, frozen images, the daemon's namespaces).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from typing import IO

from ..errors import HarnessError
from .gotest import GoTest

__all__ = ["run_tests"]


def run_tests(
    target_name: str,
    package: str,
    tests: Sequence[str] = (),
    *,
    test_timeout: float = 300.0,
    log: IO[str] | None = None,
    keep: bool = False,
) -> tuple[list[GoTest], list[str]]:
    """Boot ``target_name`` and run ``package`` (only its top-level ``tests`` when given) against it; the
    results and the run's problems. The daemon is torn down afterwards (its work directory kept with
    ``keep``)."""
    from ..backends import get_backend
    from ..backends.base import DaemonHandle, DaemonSpec
    from ..targets import resolve_target
    from .build import ensure_build
    from .run import UpstreamMoby

    moby = UpstreamMoby(ensure_build())
    if package not in moby.packages:
        raise HarnessError(f"no package {package} in the build (has {', '.join(moby.packages)})")
    backend = get_backend("local")
    target = resolve_target(target_name)
    base = os.environ.get("HARNESS_WORKDIR", "/tmp")
    os.makedirs(base, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix=f"harness-{target.name}-", dir=base)
    os.chmod(workdir, 0o755)
    spec = DaemonSpec()
    handle = DaemonHandle(target, spec, workdir, [])
    try:
        handle = backend.start(target, spec, workdir)
        run = moby.run(handle, package, log=log, test_timeout=test_timeout, only=tests)
    finally:
        backend.teardown(handle, keep=keep)
    missing = [t for t in tests if t not in run.tests]
    problems = list(run.problems)
    if missing:
        problems.append(f"{package} has no test {', '.join(missing)}")
    return run.results(), problems
