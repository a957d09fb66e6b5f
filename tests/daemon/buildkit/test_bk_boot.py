"""refd's boot stays standard-library only: the routes it registers load neither BuildKit nor h2."""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

PROBE = """
import sys
from harness.daemon import api
from harness.daemon.server import Router
class D:
    config = {}
api.register(Router(D()))
loaded = sorted(m for m in sys.modules if m == "h2" or m.startswith(("h2.", "harness.daemon.buildkit")))
print(",".join(loaded) or "none")
"""


def test_registering_the_routes_loads_no_buildkit() -> None:
    out = subprocess.run(
        [sys.executable, "-S", "-c", PROBE],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": ROOT},
        check=True,
    )
    assert out.stdout.strip() == "none", out.stdout + out.stderr


def test_buildkit_loads_h2_when_imported() -> None:
    out = subprocess.run(
        [sys.executable, "-S", "-c", "import sys, harness.daemon.buildkit.grpc; print('h2' in sys.modules)"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": ROOT},
        check=True,
    )
    assert out.stdout.strip() == "True", out.stderr
