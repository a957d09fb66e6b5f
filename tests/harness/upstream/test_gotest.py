"""harness.upstream.gotest: test2json events folded into results; a hung test killed and the rest run."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import pytest

from harness.upstream.gotest import EventFold, first_reason, run_package, skip_pattern


def _feed(fold: EventFold, *events: dict[str, object]) -> None:
    for e in events:
        fold.feed(e)


def test_events_become_results_with_the_line_that_says_why() -> None:
    fold = EventFold(clock=lambda: 100.0)
    _feed(
        fold,
        {"Action": "run", "Test": "TestA"},
        {"Action": "output", "Test": "TestA", "Output": "=== RUN   TestA\n"},
        {"Action": "pass", "Test": "TestA", "Elapsed": 0.25},
        {"Action": "run", "Test": "TestB"},
        {"Action": "output", "Test": "TestB", "Output": "    build.go:57: Successfully built 3d5d324001d7\n"},
        {"Action": "run", "Test": "TestB/one"},
        {"Action": "output", "Test": "TestB/one", "Output": "    build.go:57: Step 1/3 : FROM busybox\n"},
        {"Action": "output", "Test": "TestB/one", "Output": '    b_test.go:76: assertion failed: id is ""\n'},
        {"Action": "output", "Test": "TestB/one", "Output": "--- FAIL: TestB/one (0.10s)\n"},
        {"Action": "fail", "Test": "TestB/one", "Elapsed": 0.1},
        {"Action": "run", "Test": "TestB/two"},
        {"Action": "output", "Test": "TestB/two", "Output": "    c_test.go:3: first log\n"},
        {"Action": "output", "Test": "TestB/two", "Output": "    c_test.go:9: reached 3, want 4\n"},
        {"Action": "fail", "Test": "TestB/two", "Elapsed": 0.1},
        {"Action": "fail", "Test": "TestB", "Elapsed": 0.3},
        {"Action": "run", "Test": "TestC"},
        {"Action": "output", "Test": "TestC", "Output": "    c_test.go:12: !testEnv.UsingSnapshotter()\n"},
        {"Action": "skip", "Test": "TestC", "Elapsed": 0},
        {"Action": "output", "Output": "FAIL\n"},
    )
    got = {t.name: (t.outcome, t.reason, t.duration) for t in fold.tests.values()}
    assert got == {
        "TestA": ("passed", "", 0.25),
        "TestB": ("failed", "subtests failed: one, two", 0.3),
        "TestB/one": ("failed", 'b_test.go:76: assertion failed: id is ""', 0.1),
        "TestB/two": ("failed", "c_test.go:9: reached 3, want 4", 0.1),
        "TestC": ("skipped", "c_test.go:12: !testEnv.UsingSnapshotter()", 0.0),
    }
    assert fold.finished_tops() == {"TestA", "TestB", "TestC"}
    assert fold.package_output == ["FAIL\n"]


def test_first_reason_prefers_failures_then_the_last_located_line() -> None:
    lines = [
        "=== RUN   T\n",
        "    a.go:1: log\n",
        "    a.go:2: assertion failed: 1 != 2\n",
        "    a.go:3: later\n",
    ]
    assert first_reason(lines) == "a.go:2: assertion failed: 1 != 2"
    assert first_reason([*lines, "panic: runtime error\n"]) == "a.go:2: assertion failed: 1 != 2"
    assert first_reason(["    a.go:1: log\n", "panic: runtime error\n"]) == "panic: runtime error"
    assert first_reason(lines[:2] + lines[3:]) == "a.go:3: later"
    assert first_reason(["free text\n", "more\n"]) == "free text"
    assert first_reason(["=== RUN   T\n", "--- FAIL: T (0.00s)\n"]) == ""


def test_skip_pattern_matches_exactly_the_named_tests() -> None:
    assert skip_pattern([]) == ""
    assert skip_pattern(["TestB", "TestA", "TestA"]) == "^(TestA|TestB)$"


#: a stand-in for Go's test2json + a test binary: it prints test2json events for the tests its -test.run
#: selects and its -test.skip leaves, hangs in TestHang (until killed) and dies in TestCrash when asked to
FAKE = textwrap.dedent(
    """
    import json, re, sys, time
    args = sys.argv[1:]
    skip = args[args.index("-test.skip") + 1] if "-test.skip" in args else "^$"
    only = args[args.index("-test.run") + 1] if "-test.run" in args else ".*"
    log = open(sys.argv[0] + ".rounds", "a")
    log.write(skip + "\\n")
    log.close()
    def emit(**e):
        print(json.dumps(e), flush=True)
    for name in ["TestOne", "TestHang", "TestCrash", "TestTwo"]:
        if re.match(skip, name) or not re.match(only, name):
            continue
        emit(Action="run", Test=name)
        if name == "TestHang":
            time.sleep(60)
        if name == "TestCrash" and "crash" in sys.argv[0]:
            emit(Action="output", Test=name, Output="panic: runtime error: nil pointer\\n")
            sys.exit(2)
        emit(Action="pass", Test=name, Elapsed=0.01)
    """
)


def _fake(tmp_path: Path, name: str) -> str:
    path = tmp_path / name
    path.write_text(f"#!{sys.executable}\n{FAKE}")
    os.chmod(path, 0o755)
    return str(path)


def test_a_hung_test_is_failed_and_the_rest_still_run(tmp_path: Path) -> None:
    fake = _fake(tmp_path, "test2json")
    tests = ["TestOne", "TestHang", "TestCrash", "TestTwo"]
    run = run_package(
        ["binary"], fake, "pkg", tests=tests, env=dict(os.environ), cwd=str(tmp_path), test_timeout=2
    )
    got = {t.name: (t.outcome, t.reason) for t in run.results()}
    assert got["TestHang"][0] == "failed" and got["TestHang"][1].startswith(
        "timed out: still running after 2s"
    )
    assert {n: o for n, (o, _) in got.items()} == {
        "TestOne": "passed",
        "TestHang": "failed",
        "TestCrash": "passed",
        "TestTwo": "passed",
    }
    assert run.rounds == 2 and run.problems == []
    rounds = Path(fake + ".rounds").read_text().splitlines()
    assert rounds == ["^$", "^(TestHang|TestOne)$"]  # the second round skips what already has a result


def test_skipped_tests_never_run_even_when_not_listed(tmp_path: Path) -> None:
    fake = _fake(tmp_path, "test2json")
    skip = {"TestHang": "starts a dockerd of its own", "TestCrash": "also"}
    run = run_package(
        ["binary"], fake, "pkg", tests=["TestOne"], skip=skip, env=dict(os.environ), cwd=str(tmp_path)
    )
    assert {t.name: t.outcome for t in run.results()} == {"TestOne": "passed"}
    assert Path(fake + ".rounds").read_text().splitlines() == ["^(TestCrash|TestHang)$"]


def test_a_crash_fails_the_running_test_and_the_rest_run_after_it(tmp_path: Path) -> None:
    fake = _fake(tmp_path, "crash-test2json")
    tests = ["TestOne", "TestCrash", "TestTwo"]
    skip = {"TestHang": "starts a dockerd of its own"}
    run = run_package(
        ["binary"],
        fake,
        "pkg",
        tests=[*tests, "TestHang"],
        skip=skip,
        env=dict(os.environ),
        cwd=str(tmp_path),
    )
    got = {t.name: (t.outcome, t.reason) for t in run.results()}
    assert got["TestCrash"] == ("failed", "panic: runtime error: nil pointer")
    assert got["TestHang"] == ("skipped", "starts a dockerd of its own")
    assert got["TestOne"][0] == "passed" and got["TestTwo"][0] == "passed"  # run again after the crash
    assert run.problems == [] and run.rounds == 2


def test_a_binary_that_runs_no_test_is_a_problem(tmp_path: Path) -> None:
    script = tmp_path / "dead"
    script.write_text(
        f"#!{sys.executable}\nimport sys\nprint('panic: failed to get info from daemon')\nsys.exit(1)\n"
    )
    os.chmod(script, 0o755)
    run = run_package(
        ["binary"], str(script), "pkg", tests=["TestOne"], env=dict(os.environ), cwd=str(tmp_path)
    )
    assert run.results() == []
    assert len(run.problems) == 1 and "exited 1 before any test ran" in run.problems[0]
    assert "panic: failed to get info from daemon" in run.problems[0]


@pytest.mark.parametrize("event", ['{"Action": "output", "Output": "x"}', "not json"])
def test_stray_output_is_package_output(tmp_path: Path, event: str) -> None:
    fold = EventFold()
    try:
        parsed = json.loads(event)
    except ValueError:
        parsed = {"Action": "output", "Output": event}
    fold.feed(parsed)
    assert fold.tests == {} and fold.package_output
