"""Fixtures the scenario suites share (the harness plugin provides the daemons and their clients)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.client import EngineClient
from suites._daemon import V


@pytest.fixture
def containers(engine: EngineClient) -> Iterator[list[str]]:
    """Container ids to force-remove after the scenario, so a failing one leaves none behind."""
    ids: list[str] = []
    yield ids
    for cid in ids:
        engine.delete(f"{V}/containers/{cid}?force=1")
