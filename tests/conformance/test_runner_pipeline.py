"""The runner pipeline with a fake pytest: command lines, exit codes, runner errors, merge and report."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import pytest
from cf_factories import results, scenario

from conformance.runner import (
    AREAS,
    REPO_ROOT,
    RUN_STEPS,
    PytestRun,
    Run,
    build_pytest_command,
    main,
    parse_options,
    plugin_autoloaded,
    resolve_targets,
    run_pipeline,
)
from harness.results import Results, ScenarioResult, dump_results, load_results


@dataclass
class FakePytest:
    """Stands in for ``python -m pytest``: writes a results file per target unless told otherwise."""

    scenarios: dict[str, list[ScenarioResult]] = field(default_factory=dict)
    exit_codes: dict[str, int] = field(default_factory=dict)
    no_file: set[str] = field(default_factory=set)
    calls: list[list[str]] = field(default_factory=list)

    def __call__(self, command: Sequence[str], cwd: Path, env: Mapping[str, str], out: TextIO) -> PytestRun:
        cmd = list(command)
        self.calls.append(cmd)
        target = cmd[cmd.index("--targets") + 1]
        path = Path(cmd[cmd.index("--results-json") + 1])
        assert path.is_absolute()
        assert cwd == REPO_ROOT
        assert env["PYTHONPATH"].split(os.pathsep)[0] == str(REPO_ROOT)  # spawned daemons import harness
        out.write(f"fake pytest for {target}\n")
        if target not in self.no_file:
            dump_results(results(target, *self.scenarios.get(target, [scenario("api/a")])), path)
        code = self.exit_codes.get(target, 0)
        return PytestRun(code, f"line 1\nERROR: something about {target}" if code else "")


def _run(
    argv: list[str],
    fake: FakePytest,
    *,
    env: dict[str, str] | None = None,
    dockerd: bool = True,
    autoloaded: bool = False,
    rootfs: tuple[list[str], str] = ([], "dockerd-28 left out: (a test)"),
) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    if "--jobs" not in argv and not (argv and argv[0] in ("merge", "report", "compare")):
        argv = ["--jobs", "1", *argv]  # one process per target, one after another, unless a test asks

    run = Run(
        argv=argv,
        env=env or {},
        invoke_pytest=fake,
        which=lambda name: "/usr/bin/dockerd" if dockerd and name == "dockerd" else None,
        rootfs_targets=lambda _out: rootfs,
        plugin_autoloaded=autoloaded,
        out=out,
        err=err,
    )
    parsed = parse_options(run)
    code = parsed if isinstance(parsed, int) else run_pipeline(RUN_STEPS, parsed)
    return code, out.getvalue(), err.getvalue()


def test_all_pass_exits_0_and_writes_reports(tmp_path: Path) -> None:
    fake = FakePytest()
    code, out, err = _run(["--reports", str(tmp_path)], fake)
    assert (code, err) == (0, "")
    assert [c[c.index("--targets") + 1] for c in fake.calls] == ["refd", "dockerd"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "dockerd.json",
        "junit.xml",
        "parity.html",
        "parity.json",
        "parity.md",
        "refd.json",
    ]
    parity = json.loads((tmp_path / "parity.json").read_text())
    assert parity["reference"] == "dockerd"
    assert parity["scenarios"][0]["verdicts"]["refd"]["verdict"] == "match"
    assert "result: OK" in out
    assert "refd" in out and "1 passed" in out and "1 match" in out


def test_auto_targets_without_dockerd_is_refd_only(tmp_path: Path) -> None:
    fake = FakePytest()
    code, out, _ = _run(["--reports", str(tmp_path)], fake, dockerd=False)
    assert code == 0
    assert len(fake.calls) == 1
    assert "(reference)" in out
    assert "conformance: note: dockerd-28 left out: (a test)" in out
    assert "conformance: targets (auto): refd\n" in out


def test_auto_targets_add_dockerd_28_when_its_rootfs_can_be_had(tmp_path: Path) -> None:
    fake = FakePytest()
    code, out, _ = _run(["--reports", str(tmp_path)], fake, rootfs=(["dockerd-28"], ""))
    assert code == 0
    assert [c[c.index("--targets") + 1] for c in fake.calls] == ["refd", "dockerd", "dockerd-28"]
    assert "targets (auto): refd, dockerd, dockerd-28" in out and "note:" not in out
    # explicit targets never ask (nor build a rootfs)
    asked: list[str] = []
    run = Run(argv=[], which=lambda _: None, rootfs_targets=lambda _: asked.append("x") or ([], ""))
    parsed = parse_options(Run(argv=["--targets", "refd,dockerd"], env={}))
    assert isinstance(parsed, Run)
    run.options = parsed.options
    resolved = resolve_targets(run)
    assert isinstance(resolved, Run) and resolved.options.targets == ("refd", "dockerd") and asked == []


def test_pytest_command_line(tmp_path: Path) -> None:
    run = Run(argv=[], plugin_autoloaded=False, env={"HARNESS_PYTEST_ARGS": "-x --tb='line'"})
    parsed = parse_options(
        Run(
            argv=[
                "--suite",
                "api,socket",
                "-k",
                "ping and not slow",
                "--shard",
                "2/4",
                "--backend",
                "vm",
                "--",
                "-vv",
                "--maxfail=3",
            ],
            env=run.env,
        )
    )
    assert isinstance(parsed, Run)
    cmd = build_pytest_command(
        Run(argv=[], options=parsed.options, plugin_autoloaded=False), "refd", tmp_path / "refd.json"
    )
    assert cmd == [
        sys.executable, "-m", "pytest", "suites/api", "suites/socket",
        "-p", "harness.plugin", "-p", "conformance.progress",
        "--targets", "refd", "--backend", "vm", "--results-json", str(tmp_path / "refd.json"), "-q",
        "-k", "ping and not slow", "--harness-shard", "2/4",
        "-x", "--tb=line", "-vv", "--maxfail=3",
    ]  # fmt: skip
    # an installed pytest11 entry point loads the plugin already; '-p' again would crash pytest
    autoloaded = build_pytest_command(
        Run(argv=[], options=parsed.options, plugin_autoloaded=True), "refd", tmp_path
    )
    assert "harness.plugin" not in autoloaded and "conformance.progress" in autoloaded


def test_default_suites_are_every_area() -> None:
    parsed = parse_options(Run(argv=[], env={}))
    assert isinstance(parsed, Run)
    assert parsed.options.suites == AREAS
    assert parsed.options.targets == ("auto",)
    resolved = resolve_targets(
        Run(argv=[], options=parsed.options, which=lambda _: None, rootfs_targets=lambda _: ([], "no"))
    )
    assert isinstance(resolved, Run) and resolved.options.targets == ("refd",)
    # no --backend unless asked: the plugin resolves HARNESS_BACKEND / ini / its default (local)
    cmd = build_pytest_command(
        Run(argv=[], options=parsed.options, plugin_autoloaded=True), "refd", Path("r")
    )
    assert "--backend" not in cmd
    assert cmd[3:7] == ["suites/api", "suites/socket", "suites/config", "suites/systemd"]
    assert "--schema" not in cmd  # the plugin resolves HARNESS_SCHEMA / ini / report


def test_kernel_is_passed_to_pytest_only_when_given(tmp_path: Path) -> None:
    parsed = parse_options(Run(argv=["--backend", "vm", "--kernel", "6.1", "-k", "kernel"], env={}))
    assert isinstance(parsed, Run) and parsed.options.kernel == "6.1"
    cmd = build_pytest_command(Run(argv=[], options=parsed.options, plugin_autoloaded=True), "refd", tmp_path)
    assert cmd[cmd.index("--kernel") + 1] == "6.1" and cmd[cmd.index("-k") + 1] == "kernel"
    plain = parse_options(Run(argv=["--backend", "vm"], env={}))
    assert isinstance(plain, Run)
    cmd = build_pytest_command(Run(argv=[], options=plain.options, plugin_autoloaded=True), "refd", tmp_path)
    assert "--kernel" not in cmd  # the plugin resolves HARNESS_VM_KERNEL / ini / bookworm


def test_upstream_moby_runs_only_when_named_or_with_all(tmp_path: Path) -> None:
    def suites(*argv: str) -> list[str]:
        parsed = parse_options(Run(argv=list(argv), env={}))
        assert isinstance(parsed, Run)
        cmd = build_pytest_command(
            Run(argv=[], options=parsed.options, plugin_autoloaded=True), "refd", tmp_path
        )
        return [a for a in cmd if a.startswith("suites/")]

    assert "suites/upstream_moby" not in suites()  # the default run leaves it out
    assert suites("--suite", "upstream-moby") == ["suites/upstream_moby"]
    assert suites("--suite", "api,all")[0] == "suites/api"
    assert suites("--suite", "all")[-1] == "suites/upstream_moby" and len(suites("--suite", "all")) == 6


def test_schema_mode_is_passed_to_pytest_and_checked(tmp_path: Path) -> None:
    parsed = parse_options(Run(argv=["--schema", "strict"], env={}))
    assert isinstance(parsed, Run) and parsed.options.schema == "strict"
    cmd = build_pytest_command(Run(argv=[], options=parsed.options, plugin_autoloaded=True), "refd", tmp_path)
    assert cmd[cmd.index("--schema") + 1] == "strict"
    code, _, err = _run(["--schema", "loud"], FakePytest())
    assert code == 2 and "invalid choice: 'loud'" in err


def test_failed_scenario_is_data_and_exits_1(tmp_path: Path) -> None:
    fake = FakePytest(
        scenarios={"refd": [scenario("api/a", "failed", "assert 404 == 200")]}, exit_codes={"refd": 1}
    )
    code, out, err = _run(["--targets", "dockerd,refd", "--reports", str(tmp_path)], fake)
    assert (code, err) == (1, "")
    assert "failed scenarios (1):" in out and "assert 404 == 200" in out
    assert "result: FAILED" in out


def test_unexplained_divergence_exits_1_and_known_one_exits_0(tmp_path: Path) -> None:
    fake = FakePytest(
        scenarios={"refd": [scenario("api/a", status=404)], "dockerd": [scenario("api/a", status=200)]}
    )
    code, out, _ = _run(["--targets", "refd,dockerd", "--reports", str(tmp_path)], fake)
    assert code == 1
    assert "unexplained divergences (1):" in out
    assert "/status: dockerd=200 refd=404" in out

    known = tmp_path / "known.toml"
    known.write_text('[[divergence]]\nscenario = "api/a"\ntargets = ["refd"]\nreason = "not yet"\n')
    code, out, _ = _run(
        ["--targets", "refd,dockerd", "--reports", str(tmp_path), "--known", str(known)], fake
    )
    assert code == 0
    assert "1 known" in out


def test_pytest_usage_error_is_a_runner_error_with_command_and_tail(tmp_path: Path) -> None:
    fake = FakePytest(exit_codes={"refd": 4}, no_file={"refd"})
    code, _, err = _run(["--targets", "refd,dockerd", "--reports", str(tmp_path)], fake)
    assert code == 2
    assert "pytest for target refd exited 4 (usage error)" in err
    assert "command: " in err and "--results-json" in err and "suites/api" in err
    assert "ERROR: something about refd" in err
    assert len(fake.calls) == 2  # the other target still ran
    assert not (tmp_path / "parity.json").exists()


def test_exit_4_with_a_results_file_is_still_a_runner_error(tmp_path: Path) -> None:
    code, _, err = _run(["--targets", "refd", "--reports", str(tmp_path)], FakePytest(exit_codes={"refd": 4}))
    assert code == 2 and "exited 4" in err


def test_missing_results_file_is_a_runner_error(tmp_path: Path) -> None:
    stale = tmp_path / "refd.json"
    dump_results(results("refd", scenario("api/old")), stale)  # a previous run's file must not count
    code, _, err = _run(["--targets", "refd", "--reports", str(tmp_path)], FakePytest(no_file={"refd"}))
    assert code == 2
    assert f"pytest for target refd exited 0 but wrote no results file {stale}" in err
    assert "(no output)" in err


def test_invalid_results_file_is_a_runner_error(tmp_path: Path) -> None:
    def broken(command: Sequence[str], cwd: Path, env: Mapping[str, str], out: TextIO) -> PytestRun:
        Path(command[list(command).index("--results-json") + 1]).write_text('{"schema": "nope"}')
        return PytestRun(0)

    out, err = io.StringIO(), io.StringIO()
    argv = ["--jobs", "1", "--targets", "refd", "--reports", str(tmp_path)]
    run = parse_options(Run(argv=argv, env={}, out=out, err=err))
    assert isinstance(run, Run)
    run.invoke_pytest = broken
    run.plugin_autoloaded = False
    assert run_pipeline(RUN_STEPS, run) == 2
    assert "refd.json: invalid results file at schema" in err.getvalue()


def test_empty_shard_is_tolerated_but_no_tests_otherwise_is_an_error(tmp_path: Path) -> None:
    fake = FakePytest(exit_codes={"refd": 5}, scenarios={"refd": []})
    code, out, _ = _run(["--targets", "refd", "--reports", str(tmp_path), "--shard", "3/3"], fake)
    assert code == 0 and "selected no scenarios" in out
    code, _, err = _run(["--targets", "refd", "--reports", str(tmp_path)], fake)
    assert code == 2 and "exited 5 (no tests collected)" in err


def test_pytest_failure_outside_the_results_counts_as_failed(tmp_path: Path) -> None:
    code, out, _ = _run(["--targets", "refd", "--reports", str(tmp_path)], FakePytest(exit_codes={"refd": 1}))
    assert code == 1
    assert "not in its results file" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--shard", "0/2"], "--shard '0/2': expected I/N"),
        (["--shard", "3/2"], "expected I/N"),
        (["--suite", "api,nosuch"], "--suite: unknown area(s) nosuch"),
        (["--targets", "refd,refd"], "--targets: duplicate name(s) refd"),
        (["--targets", ","], "--targets: empty list"),
        (["--targets", "../x"], "invalid name(s)"),
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["report"], "the following arguments are required: dir"),
        (["merge", "out"], "no results files given, only 'out'"),
        (["merge", "out", "a.json", "--reports", "r"], "give the output directory once"),
        (["report", "d", "--", "-x"], "'--' passthrough arguments only apply to a run"),
    ],
)
def test_usage_errors_exit_2(argv: list[str], message: str) -> None:
    code, _, err = _run(argv, FakePytest())
    assert code == 2
    assert message in err
    assert "usage:" in err


def test_bad_harness_pytest_args_is_a_usage_error() -> None:
    code, _, err = _run([], FakePytest(), env={"HARNESS_PYTEST_ARGS": "'unclosed"})
    assert code == 2 and "HARNESS_PYTEST_ARGS" in err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "--targets" in capsys.readouterr().out


def _shards(tmp_path: Path) -> list[Path]:
    files = {
        "a/refd-1.json": results("refd", scenario("api/a"), scenario("api/b")),
        "b/refd-2.json": results("refd", scenario("api/c", "failed", "no")),
        "a/dockerd.json": results(
            "dockerd", scenario("api/a"), scenario("api/b"), scenario("api/c", "failed", "no")
        ),
    }
    for name, res in files.items():
        dump_results(res, tmp_path / name)
    return [tmp_path / name for name in files]


def test_merge_combines_shards_and_rebuilds_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "merged"
    code = main(["merge", str(out_dir), *map(str, _shards(tmp_path))])
    assert code == 1  # api/c failed on both targets (parity: match)
    merged: Results = load_results(out_dir / "refd.json")
    assert [s.id for s in merged.scenarios] == ["api/a", "api/b", "api/c"]
    parity = json.loads((out_dir / "parity.json").read_text())
    assert {s["id"]: s["verdicts"]["refd"]["verdict"] for s in parity["scenarios"]} == dict.fromkeys(
        ("api/a", "api/b", "api/c"), "match"
    )
    assert (out_dir / "junit.xml").is_file() and (out_dir / "parity.md").is_file()
    assert "3 match" in capsys.readouterr().out


def test_merge_in_the_issues_spelling_skips_parity_documents(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``harness report merge reports/*.json``: the glob holds parity.json too, which is skipped."""
    reports = tmp_path / "reports"
    dump_results(results("refd", scenario("api/a")), reports / "refd.shard-1.json")
    dump_results(results("refd", scenario("api/b")), reports / "refd.shard-2.json")
    dump_results(results("dockerd", scenario("api/a"), scenario("api/b")), reports / "dockerd.json")
    (reports / "parity.json").write_text(json.dumps({"schema": "harness.parity/2"}))
    monkeypatch.chdir(tmp_path)
    code = main(["merge", *sorted(str(p.relative_to(tmp_path)) for p in reports.glob("*.json"))])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "skipping reports/parity.json (a parity document" in out
    assert [s.id for s in load_results(reports / "refd.json").scenarios] == ["api/a", "api/b"]
    parity = json.loads((reports / "parity.json").read_text())
    assert [t["name"] for t in parity["targets"]] == ["dockerd", "refd"]


def test_merge_again_over_its_own_output_does_not_count_twice(tmp_path: Path) -> None:
    shards = [results("refd", scenario("api/a")), results("refd", scenario("api/b"))]
    paths = [tmp_path / f"refd-{i}.json" for i in (1, 2)]
    for res, path in zip(shards, paths, strict=True):
        dump_results(res, path)
    out = tmp_path / "out"
    assert main(["merge", *map(str, paths), "--reports", str(out)]) == 0
    once = load_results(out / "refd.json")
    assert once.duration == 3.0 and [s.id for s in once.scenarios] == ["api/a", "api/b"]
    # the previous merge's output globbed in with its shards (merge out/*.json shards...) subsumes them
    assert main(["merge", str(out / "refd.json"), *map(str, paths), "-o", str(out)]) == 0
    assert load_results(out / "refd.json") == once


def test_merge_of_only_parity_documents_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "parity.json").write_text(json.dumps({"schema": "harness.parity/2"}))
    assert main(["merge", str(tmp_path / "parity.json"), "--reports", str(tmp_path / "o")]) == 2
    assert "no results files among the inputs" in capsys.readouterr().err


def test_harness_report_passes_merge_and_means_report_otherwise(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness.cli import main as harness_main

    dump_results(results("refd", scenario("api/a")), tmp_path / "refd.json")
    dump_results(results("dockerd", scenario("api/a")), tmp_path / "dockerd.json")
    assert harness_main(["report", str(tmp_path)]) == 0  # harness report DIR: rebuild
    assert (tmp_path / "parity.html").is_file()
    out = tmp_path / "merged"
    assert harness_main(["report", "merge", str(tmp_path / "refd.json"), "--reports", str(out)]) == 0
    assert (out / "refd.json").is_file() and (out / "parity.json").is_file()
    capsys.readouterr()
    assert harness_main(["report"]) == 2
    assert "required: dir" in capsys.readouterr().err


def test_report_rebuilds_from_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dump_results(results("refd", scenario("api/a", v=1)), tmp_path / "refd.json")
    dump_results(results("dockerd", scenario("api/a", v=1)), tmp_path / "dockerd.json")
    assert main(["report", str(tmp_path)]) == 0
    assert main(["report", str(tmp_path)]) == 0  # parity.json written by the first call is not a results file
    assert json.loads((tmp_path / "parity.json").read_text())["reference"] == "dockerd"
    assert main(["report", str(tmp_path), "--reference", "refd"]) == 0
    assert json.loads((tmp_path / "parity.json").read_text())["reference"] == "refd"
    capsys.readouterr()
    assert main(["report", str(tmp_path), "--reference", "nope"]) == 2
    assert "reference target 'nope' is not among the targets" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "empty")]) == 2


def test_python_dash_m_entry_point() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "conformance", "--shard", "x"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "--shard 'x'" in proc.stderr


def test_plugin_autoload_detection(tmp_path: Path) -> None:
    dist = tmp_path / "docker_conformance_harness.egg-info"
    dist.mkdir()
    (dist / "PKG-INFO").write_text(
        "Metadata-Version: 2.1\nName: docker-conformance-harness\nVersion: 0.1.0\n"
    )
    (dist / "entry_points.txt").write_text("[pytest11]\nharness = harness.plugin\n")
    assert plugin_autoloaded(Run(argv=[], env={}), [str(tmp_path)])
    assert not plugin_autoloaded(Run(argv=[], env={}), [str(tmp_path / "elsewhere")])
    assert not plugin_autoloaded(Run(argv=[], env={"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}), [str(tmp_path)])
    assert plugin_autoloaded(Run(argv=[], env={}, plugin_autoloaded=True), [])


def test_docker_cli_is_passed_to_pytest_only_when_given(tmp_path: Path) -> None:
    parsed = parse_options(Run(argv=["--docker-cli", "26.1"], env={}))
    assert isinstance(parsed, Run) and parsed.options.docker_cli == "26.1"
    cmd = build_pytest_command(Run(argv=[], options=parsed.options, plugin_autoloaded=True), "refd", tmp_path)
    assert cmd[cmd.index("--docker-cli") + 1] == "26.1"
    plain = parse_options(Run(argv=[], env={}))
    assert isinstance(plain, Run)
    cmd = build_pytest_command(Run(argv=[], options=plain.options, plugin_autoloaded=True), "refd", tmp_path)
    assert "--docker-cli" not in cmd  # the plugin resolves HARNESS_DOCKER_CLI / ini / 28.5


@dataclass
class PartedPytest:
    """A pytest that honours ``--harness-part I/N``: scenario i of a target goes to part (i % N) + 1."""

    scenarios: dict[str, list[str]]
    calls: list[list[str]] = field(default_factory=list)

    def __call__(self, command: Sequence[str], cwd: Path, env: Mapping[str, str], out: TextIO) -> PytestRun:
        cmd = list(command)
        self.calls.append(cmd)
        target = cmd[cmd.index("--targets") + 1]
        index, total = 1, 1
        if "--harness-part" in cmd:
            index, total = map(int, cmd[cmd.index("--harness-part") + 1].split("/"))
        mine = [s for i, s in enumerate(self.scenarios[target]) if i % total == index - 1]
        out.write(f"{target} part {index}: {len(mine)}\n")
        dump_results(results(target, *map(scenario, mine)), Path(cmd[cmd.index("--results-json") + 1]))
        return PytestRun(5 if not mine else 0)


def test_jobs_split_targets_into_parts_run_side_by_side_and_merged(tmp_path: Path) -> None:
    ids = ["api/a", "api/b", "api/c"]
    fake = PartedPytest({"refd": ids, "dockerd": ids})
    code, out, err = _run(["--targets", "refd,dockerd", "--reports", str(tmp_path), "--jobs", "6"], fake)
    assert (code, err) == (0, "")
    parts = sorted((c[c.index("--targets") + 1], c[c.index("--harness-part") + 1]) for c in fake.calls)
    # no previous run: dockerd weighs twice refd, so it gets twice the parts
    assert parts == [("dockerd", f"{i}/4") for i in (1, 2, 3, 4)] + [("refd", "1/2"), ("refd", "2/2")]
    for target in ("refd", "dockerd"):
        merged = load_results(tmp_path / f"{target}.json")
        assert [s.id for s in merged.scenarios] == ids  # every part's scenarios, once
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # parts merged away
    assert "6 pytest process(es), 6 at a time (--jobs 6)" in out
    assert "refd 2/2| refd part 2: 1" in out  # parallel output is labelled per process


def test_jobs_balance_parts_by_the_previous_run_and_tolerate_an_empty_part(tmp_path: Path) -> None:
    dump_results(results("refd", scenario("api/a"), scenario("api/b")), tmp_path / "refd.json")
    costs: list[dict[str, float]] = []

    class Spy(PartedPytest):
        def __call__(self, command: Sequence[str], *rest: object) -> PytestRun:  # type: ignore[override]
            cmd = list(command)
            costs.append(json.loads(Path(cmd[cmd.index("--harness-costs") + 1]).read_text()))
            return super().__call__(command, *rest)  # type: ignore[arg-type]

    fake = Spy({"refd": ["api/a"]})  # one scenario now, two parts: part 2 runs nothing (pytest exit 5)
    code, _, err = _run(["--targets", "refd", "--reports", str(tmp_path), "--jobs", "2"], fake)
    assert (code, err) == (0, "")
    assert costs and all(set(c) == {"api/a", "api/b"} for c in costs)  # the previous results' durations
    assert [s.id for s in load_results(tmp_path / "refd.json").scenarios] == ["api/a"]
    assert not (tmp_path / ".refd.costs.json").exists()


def test_shuffle_passes_one_seed_to_every_target_and_reports_it(tmp_path: Path) -> None:
    fake = FakePytest()
    code, out, _ = _run(["--targets", "refd,dockerd", "--reports", str(tmp_path), "--shuffle", "77"], fake)
    assert code == 0
    assert all(c[c.index("--harness-shuffle") + 1] == "77" for c in fake.calls)
    assert "shuffled with seed 77 (--shuffle 77)" in out
    code, out, _ = _run(["--targets", "refd", "--reports", str(tmp_path), "--shuffle"], FakePytest())
    assert code == 0 and "shuffled with seed " in out
    code, _, err = _run(["--shuffle", "x"], FakePytest())
    assert code == 2 and "--shuffle 'x': expected an integer seed" in err
    code, _, err = _run(["--jobs", "0"], FakePytest())
    assert code == 2 and "--jobs '0': expected a number >= 1 or 'auto'" in err


def test_split_jobs_gives_the_longest_targets_more_parts() -> None:
    from conformance.runner import split_jobs

    assert split_jobs({"refd": 300.0, "dockerd": 900.0, "dockerd-28": 800.0}, 4) == {
        "refd": 1,
        "dockerd": 2,
        "dockerd-28": 1,
    }
    assert split_jobs({"refd": 300.0, "dockerd": 900.0, "dockerd-28": 800.0}, 6) == {
        "refd": 1,
        "dockerd": 3,
        "dockerd-28": 2,
    }
    assert split_jobs({"refd": 1.0, "dockerd": 2.0}, 1) == {"refd": 1, "dockerd": 1}  # one per target
