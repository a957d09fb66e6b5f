"""The build of moby's integration test binaries, shared by every package's scenario in a session."""

from __future__ import annotations

import contextlib
import sys
from typing import Any

import pytest


@pytest.fixture(scope="session")
def upstream_moby(request: pytest.FixtureRequest) -> Any:
    """moby's test binaries (built on first use: minutes once, then cached) and their frozen images."""
    from harness.fixtures import _CONFIG_KEY
    from harness.upstream.build import ensure_build
    from harness.upstream.run import UpstreamMoby

    backend = request.config.stash[_CONFIG_KEY].backend
    if backend != "local":
        pytest.skip(
            f"upstream-moby runs moby's test binaries in the daemon's own namespaces, which only the local "
            f"backend gives this process (the run uses --backend {backend})"
        )
    capman = request.config.pluginmanager.getplugin("capturemanager")
    with capman.global_and_fixture_disabled() if capman else contextlib.nullcontext():
        return UpstreamMoby(ensure_build(out=sys.stderr))
