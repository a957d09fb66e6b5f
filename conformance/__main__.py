"""``python -m conformance``: the command-line entry point (see ``conformance.runner`` for the pipeline)."""

from __future__ import annotations

from conformance.runner import main

__all__: list[str] = []

if __name__ == "__main__":
    raise SystemExit(main())
