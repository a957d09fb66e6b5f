"""The CI entry point, .ci/run: its phases, their times and its verdict, with stand-ins for the bootstrap and
nox (the real phases take most of CI's 90 minutes; the newcomer check itself is tested in tests/harness)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _ci(
    tmp_path: Path, bootstrap: str, nox: str, env: dict[str, str] | None = None
) -> tuple[int, str, list[str]]:
    """Run a copy of .ci/run in ``tmp_path`` whose bootstrap and .venv/bin/nox are the given sh bodies;
    returns its exit status, output and the nox calls it made."""
    (tmp_path / ".ci").mkdir()
    shutil.copy(REPO / ".ci/run", tmp_path / ".ci/run")
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts/bootstrap.sh").write_text(bootstrap)
    fake = tmp_path / ".venv/bin/nox"
    fake.parent.mkdir(parents=True)
    fake.write_text('#!/bin/sh\necho "nox $*" >> calls\n' + nox)
    fake.chmod(0o755)
    proc = subprocess.run(
        ["sh", str(tmp_path / ".ci/run")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=60,
        cwd="/",
        env={**os.environ, **(env or {})},
    )
    calls = (tmp_path / "calls").read_text().splitlines() if (tmp_path / "calls").exists() else []
    return proc.returncode, proc.stdout, calls


def test_ci_runs_the_newcomer_check_then_the_tests_and_reports_each_phase(tmp_path: Path) -> None:
    code, out, calls = _ci(tmp_path, "echo bootstrap: ready\n", "exit 0\n")
    assert code == 0, out
    assert calls == ["nox -s fresh -- bookworm", "nox -s tests"]
    summary = out[out.index("ci: summary") :].splitlines()
    assert [re.sub(r"\d+ s", "N s", line) for line in summary] == [
        "ci: summary (wall time; the budget is N s)",
        "ci: phase bootstrap: ok, N s",
        "ci: phase newcomer: ok, N s",
        "ci: phase tests: ok, N s",
        "ci: passed, N s in all",
    ]


def test_a_failed_newcomer_check_fails_ci_and_says_what_to_do(tmp_path: Path) -> None:
    code, out, calls = _ci(tmp_path, "true\n", '[ "$2" = fresh ] && exit 1\nexit 0\n')
    assert code == 1, out
    assert calls == [
        "nox -s fresh -- bookworm",
        "nox -s tests",
    ]  # the tests still run: one run, every failure
    assert re.search(
        r"^ci: phase newcomer: FAILED \(exit 1\), \d+ s: "
        r"the README's commands failed on a fresh Debian 12 root",
        out,
        re.M,
    )
    assert "add it to harness/ospkgs.py SETS" in out
    assert re.search(r"^ci: phase tests: ok, \d+ s$", out, re.M)
    assert re.fullmatch(r"ci: FAILED: newcomer, \d+ s in all", out.rstrip().splitlines()[-1])


def test_a_failed_bootstrap_stops_ci(tmp_path: Path) -> None:
    code, out, calls = _ci(tmp_path, "echo no python3-venv >&2; exit 3\n", "exit 0\n")
    assert code == 1 and calls == []
    assert re.search(r"^ci: phase bootstrap: FAILED \(exit 3\), \d+ s: scripts/bootstrap.sh", out, re.M)
    assert re.fullmatch(r"ci: FAILED: bootstrap, \d+ s in all", out.rstrip().splitlines()[-1])


def test_the_host_tests_wait_for_a_budget_that_covers_them(tmp_path: Path) -> None:
    """When the newcomer phase leaves less time than nox -s tests takes here, they do not start only to be
    killed by CI's timeout: the summary says they did not run, how much was left and what ran instead."""
    env = {"CI_BUDGET_SECONDS": "100", "CI_HOST_TESTS_SECONDS": "200"}
    code, out, calls = _ci(tmp_path, "true\n", "exit 0\n", env)
    assert code == 0, out
    assert calls == ["nox -s fresh -- bookworm"]
    summary = out[out.index("ci: summary") :]
    assert re.search(
        r"^ci: phase tests: NOT RUN: \d+ s of the budget left, "
        r"nox -s tests takes about 200 s on this machine \(CI_HOST_TESTS_SECONDS\); "
        r"the newcomer phase ran the same tests on Debian's Python 3.11.2$",
        summary,
        re.M,
    )


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_ci_run_passes_shellcheck() -> None:
    proc = subprocess.run(["shellcheck", str(REPO / ".ci/run")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout
