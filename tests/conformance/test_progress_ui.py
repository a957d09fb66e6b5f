"""Progress while the runner runs and the terminal summary: the pytest progress plugin, the tail, both UIs."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import pytest
from cf_factories import results, scenario

from conformance.progress import ENV
from conformance.runner import REPO_ROOT, RUN_STEPS, PytestRun, Run, parse_options, run_pipeline
from conformance.ui import PlainUI, ProgressTail, RichUI, Tally, make_ui, rich_available
from harness.results import dump_results

needs_rich = pytest.mark.skipif(not rich_available(), reason="rich is not installed")

TESTS = textwrap.dedent(
    """
    import pytest

    @pytest.fixture
    def broken():
        raise RuntimeError("fixture blew up")

    @pytest.mark.scenario("api/demo/passes", "MUST pass", "ref")
    def test_passes():
        pass

    def test_fails():
        assert 1 == 2, "one is not two"

    def test_skips():
        pytest.skip("not here")

    def test_errors(broken):
        pass
    """
)


def test_the_pytest_plugin_writes_an_event_per_test(tmp_path: Path) -> None:
    (tmp_path / "test_demo.py").write_text(TESTS)
    (tmp_path / "conftest.py").write_text(
        "def pytest_configure(config):\n"
        "    config.addinivalue_line('markers', 'scenario(id, statement, ref): a scenario')\n"
    )
    events = tmp_path / "events.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update({ENV: str(events), "PYTHONPATH": str(REPO_ROOT), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "conformance.progress", "-q", "-p", "no:cacheprovider", "."],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert lines[0] == {"event": "collected", "count": 4}
    done = {e["id"].split("::")[-1]: e for e in lines if e["event"] == "done"}
    assert set(done) == {"api/demo/passes", "test_fails", "test_skips", "test_errors"}  # scenario ids
    assert done["api/demo/passes"]["outcome"] == "passed"
    assert done["test_fails"]["outcome"] == "failed" and "one is not two" in done["test_fails"]["reason"]
    assert done["test_skips"] == {"event": "done", "id": done["test_skips"]["id"], "outcome": "skipped",
                                  "reason": "not here"}  # fmt: skip
    assert done["test_errors"]["outcome"] == "error" and "fixture blew up" in done["test_errors"]["reason"]
    assert [e["event"] for e in lines].count("start") == 4


def test_without_the_variable_the_plugin_does_nothing(tmp_path: Path) -> None:
    (tmp_path / "test_one.py").write_text("def test_one():\n    pass\n")
    env = {k: v for k, v in os.environ.items() if k != ENV and not k.startswith("PYTEST_")}
    env.update({"PYTHONPATH": str(REPO_ROOT), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "conformance.progress", "-q", "-p", "no:cacheprovider", "."],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {p.name for p in tmp_path.iterdir()} <= {"__pycache__", "test_one.py"}  # no event file anywhere


def test_tail_reads_complete_lines_as_they_come(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    seen: list[dict[str, Any]] = []
    with ProgressTail(path, seen.append, interval=0.01) as tail, path.open("a") as fh:
        fh.write('{"event": "collected", "count": 2}\n{"event": "start", ')
        fh.flush()
        tail._read()
        assert seen == [{"event": "collected", "count": 2}]  # the half line waits
        fh.write('"id": "a/b"}\nnot json\n[1]\n{"event": "done", "id": "a/b", "outcome": "passed"}\n')
    assert [e["event"] for e in seen] == ["collected", "start", "done"]
    assert not path.exists()  # removed at the end


def test_tally_counts_events() -> None:
    tally = Tally()
    for event in (
        {"event": "collected", "count": 3},
        {"event": "start", "id": "a/1"},
        {"event": "done", "id": "a/1", "outcome": "passed"},
        {"event": "start", "id": "a/2"},
    ):
        tally.add(event)
    assert (tally.total, tally.done, tally.current, tally.counts()) == (3, 1, "a/2", "1 passed")


def test_make_ui_picks_rich_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert type(make_ui("plain", Tty(), {})[0]) is PlainUI
    assert type(make_ui("auto", io.StringIO(), {})[0]) is PlainUI  # a pipe, a CI log, the e2e test
    if rich_available():
        assert type(make_ui("auto", Tty(), {"TERM": "xterm"})[0]) is RichUI
        assert type(make_ui("auto", Tty(), {"TERM": "dumb"})[0]) is PlainUI
        assert type(make_ui("rich", io.StringIO(), {})[0]) is RichUI
    monkeypatch.setattr("conformance.ui.rich_available", lambda: False)
    ui, note = make_ui("rich", Tty(), {})
    assert type(ui) is PlainUI and "rich is not installed" in note
    assert make_ui("auto", Tty(), {}) [1] == ""  # fmt: skip


def _fake(command: Sequence[str], cwd: Path, env: Mapping[str, str], out: TextIO) -> PytestRun:
    """A pytest that writes progress events, -q output and a results file; refd fails api/a."""
    cmd = list(command)
    target = cmd[cmd.index("--targets") + 1]
    failing = target == "refd"
    with Path(env[ENV]).open("a") as fh:
        for event in (
            {"event": "collected", "count": 2},
            {"event": "start", "id": "api/a"},
            {"event": "done", "id": "api/a", "outcome": "failed" if failing else "passed", "reason": "boom"},
            {"event": "start", "id": "api/b"},
            {"event": "done", "id": "api/b", "outcome": "passed"},
        ):
            fh.write(json.dumps(event) + "\n")
    out.write(".F" if failing else "..")
    out.write("  [100%]\nFAILED suites/api/test_a.py::test_a - boom\n" if failing else "  [100%]\n")
    first = scenario("api/a", "failed", "boom") if failing else scenario("api/a")
    dump_results(results(target, first, scenario("api/b")), Path(cmd[cmd.index("--results-json") + 1]))
    return PytestRun(1 if failing else 0)


def _run(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    if "--jobs" not in argv:
        argv = ["--jobs", "1", *argv]
    run = Run(argv=argv, env={}, invoke_pytest=_fake, plugin_autoloaded=True, out=out, err=io.StringIO())
    parsed = parse_options(run)
    assert isinstance(parsed, Run)
    return run_pipeline(RUN_STEPS, parsed), out.getvalue()


def test_plain_output_streams_pytest_and_says_when_each_target_finished(tmp_path: Path) -> None:
    code, out = _run(["--targets", "dockerd,refd", "--reports", str(tmp_path), "--ui", "plain"])
    assert code == 1
    assert ".F  [100%]" in out  # pytest's own progress, as before
    assert "conformance: target dockerd finished in " in out and "(pytest exit 0): 2 passed" in out
    assert "(pytest exit 1): 1 passed, 1 failed" in out
    assert "refd  api/a  failed: boom" in out and "result: FAILED" in out
    assert not list(tmp_path.glob(".*progress*"))  # the event files are gone


@needs_rich
def test_rich_output_has_bars_failures_as_they_happen_and_a_summary_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "120")  # rich's width when the output is not a terminal
    code, out = _run(["--targets", "dockerd,refd", "--reports", str(tmp_path), "--ui", "rich"])
    assert code == 1
    assert ".F  [100%]" not in out  # pytest's progress dots are replaced by the bars
    assert "refd| FAILED suites/api/test_a.py::test_a - boom" in out  # other pytest lines still shown
    assert "✗ refd  api/a  failed: boom" in out
    assert "2/2" in out  # the bars' final state
    assert "┃ target" in out and "1 match · 1 diverge" in out
    assert "failed scenarios (1):" in out and "unexplained divergences (1):" in out
    assert "result: FAILED" in out
    assert out.index("2/2") < out.index("┃ target") < out.index("result: FAILED")


def test_a_long_list_of_stale_known_divergences_is_cut(tmp_path: Path) -> None:
    known = tmp_path / "known.toml"
    known.write_text(
        "".join(f'[[divergence]]\nscenario = "x/{i}"\ntargets = ["refd"]\nreason = "r"\n' for i in range(15))
    )
    code, out = _run(
        ["--targets", "dockerd", "--reports", str(tmp_path), "--known", str(known), "--ui", "plain"]
    )
    assert code == 0
    assert out.count("stale known divergence: ") == 10
    assert "... and 5 more stale known divergences" in out


def _parted(command: Sequence[str], cwd: Path, env: Mapping[str, str], out: TextIO) -> PytestRun:
    """A pytest that honours ``--harness-part``: part 1 runs api/a, part 2 api/b."""
    cmd = list(command)
    target = cmd[cmd.index("--targets") + 1]
    part = int(cmd[cmd.index("--harness-part") + 1].split("/")[0]) if "--harness-part" in cmd else 0
    ids = ["api/a", "api/b"] if not part else [["api/a", "api/b"][part - 1]]
    with Path(env[ENV]).open("a") as fh:
        fh.write(json.dumps({"event": "collected", "count": len(ids)}) + "\n")
        for sid in ids:
            fh.write(json.dumps({"event": "start", "id": sid}) + "\n")
            fh.write(json.dumps({"event": "done", "id": sid, "outcome": "passed"}) + "\n")
    out.write("." * len(ids) + "  [100%]\n")
    dump_results(results(target, *map(scenario, ids)), Path(cmd[cmd.index("--results-json") + 1]))
    return PytestRun(0)


def test_a_targets_parts_add_up_to_one_line_per_target(tmp_path: Path) -> None:
    out = io.StringIO()
    argv = ["--targets", "refd", "--reports", str(tmp_path), "--ui", "plain", "--jobs", "2"]
    run = Run(argv=argv, env={}, invoke_pytest=_parted, plugin_autoloaded=True, out=out, err=io.StringIO())
    parsed = parse_options(run)
    assert isinstance(parsed, Run)
    assert run_pipeline(RUN_STEPS, parsed) == 0
    text = out.getvalue()
    assert "refd 1/2| .  [100%]" in text and "refd 2/2| .  [100%]" in text
    assert text.count("conformance: target refd finished in ") == 1 and "(pytest exit 0): 2 passed" in text
