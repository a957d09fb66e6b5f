"""moby's integration suite (the release dockerd-28 is built from) against every target, package by package.

Each package's test binary runs against a daemon of its own (booted for it, in its own namespaces, with
moby's frozen images loaded); every test and subtest becomes a result
``upstream/moby/<package>/<Test>[/<sub>]`` with the line that says why it failed or was skipped. This
scenario itself passes when the binary ran to the end and reported every test it lists; it fails when it
could not (no tests listed, a crash between tests).
"""

from __future__ import annotations

from typing import Any

import pytest

from harness.fixtures import SubResults
from harness.upstream.build import PACKAGES

STATEMENT = "moby's integration test {name} MUST pass (as on the dockerd release the suite comes from)"


def _params() -> list[Any]:
    return [
        pytest.param(
            package,
            id=package,
            marks=pytest.mark.scenario(
                f"upstream/moby/{package}",
                f"moby's integration package {package} MUST run to the end against the daemon",
                ref=f"moby integration/{package} (Debian docker.io source package)",
            ),
        )
        for package in PACKAGES
    ]


@pytest.mark.requires_root
@pytest.mark.parametrize("package", _params())
def test_moby_package(package: str, upstream_moby: Any, daemon_factory: Any, subresults: SubResults) -> None:
    handle = daemon_factory()
    run = upstream_moby.run(handle, package)
    version = upstream_moby.build.version
    for test in run.results():
        subresults.add(
            f"upstream/moby/{package}/{test.name}",
            test.outcome,
            test.reason,
            test.duration,
            STATEMENT.format(name=test.name),
            f"moby integration/{package} {test.top} (Debian docker.io {version})",
        )
    if run.problems:
        pytest.fail("; ".join(run.problems), pytrace=False)
    assert run.tests, f"the {package} test binary reported no tests"
