"""The runner's own error base."""

from __future__ import annotations

__all__ = ["ConformanceError"]


class ConformanceError(Exception):
    """Base of every error the conformance package raises on purpose (the runner maps it to exit 2, as it
    does the harness's ``ResultsError`` for a bad results file)."""
