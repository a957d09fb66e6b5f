"""Fixtures the scenario suites share (the harness plugin provides the daemons and their clients)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

# the scenarios' helper modules assert too: rewritten, their passing asserts count as checks
pytest.register_assert_rewrite("suites._daemon", "suites._box", "suites.api._build", "suites.tutorial._text")

from harness.client import EngineClient  # noqa: E402
from suites._daemon import V  # noqa: E402


@pytest.fixture
def containers(engine: EngineClient) -> Iterator[list[str]]:
    """Container ids to force-remove after the scenario, so a failing one leaves none behind."""
    ids: list[str] = []
    yield ids
    for cid in ids:
        engine.delete(f"{V}/containers/{cid}?force=1")
