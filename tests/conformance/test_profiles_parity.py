"""Daemon profiles in the conformance pipeline: results, parity, known divergences, reports, merge, runner."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from cf_factories import results, scenario

from conformance.htmlreport import render_html
from conformance.parity import KnownDivergence, build_parity, load_known
from conformance.report import render_markdown
from conformance.runner import Run, build_pytest_command, main, parse_options
from harness.results import Results, ResultsError, dump_results, load_results

NO_BRIDGE = {"description": "no default bridge", "args": ["--bridge=none"], "daemon_json": {}}


def _profiled(name: str, *scenarios: object, version: str = "28.5.2") -> Results:
    r = results(name, *scenarios, version=version)  # type: ignore[arg-type]
    return replace(r, profiles={"default": {"description": "defaults"}, "no-bridge": NO_BRIDGE})


def test_parity_compares_each_profile_with_the_reference_in_that_profile() -> None:
    ref = _profiled("dockerd-28", scenario("api/run", v=1), scenario("api/run@no-bridge", v=2))
    tgt = _profiled(
        "refd", scenario("api/run", v=1), scenario("api/run@no-bridge", v=3), version="28.5.2-refd"
    )
    parity = build_parity([ref, tgt])
    verdicts = {s.id: s.verdicts["refd"].verdict for s in parity.scenarios}
    assert verdicts == {"api/run": "match", "api/run@no-bridge": "diverge"}
    assert [s.profile for s in parity.scenarios] == ["default", "no-bridge"]
    assert parity.profile_names() == ["default", "no-bridge"]
    summary = parity.summary()
    assert summary["profiles"]["no-bridge"]["refd"]["verdicts"]["diverge"] == 1
    assert summary["profiles"]["default"]["refd"]["verdicts"]["match"] == 1
    assert summary["targets"]["refd"]["scenarios"] == 2
    assert parity.to_dict()["profiles"]["no-bridge"] == NO_BRIDGE
    assert not parity.ok()


def test_a_known_divergence_may_name_profiles_or_hold_in_all_of_them(tmp_path: Path) -> None:
    ref = _profiled("dockerd-28", *(scenario(f"api/{s}{p}", v=1) for s in "ab" for p in ("", "@no-bridge")))
    tgt = _profiled("refd", *(scenario(f"api/{s}{p}", v=2) for s in "ab" for p in ("", "@no-bridge")))
    known_file = tmp_path / "known.toml"
    known_file.write_text(
        '[[divergence]]\nscenario = "api/a"\ntargets = ["refd"]\nreason = "everywhere"\n\n'
        '[[divergence]]\nscenario = "api/b"\ntargets = ["refd"]\nprofiles = ["no-*"]\nreason = "no bridge"\n'
    )
    known = load_known(known_file)
    assert known[1].profiles == ("no-*",)
    parity = build_parity([ref, tgt], known)
    verdicts = {s.id: (s.verdicts["refd"].verdict, s.verdicts["refd"].reason) for s in parity.scenarios}
    assert verdicts == {
        "api/a": ("known", "everywhere"),
        "api/a@no-bridge": ("known", "everywhere"),  # an entry without profiles holds in every profile
        "api/b": ("diverge", ""),  # the no-bridge entry does not excuse the default profile
        "api/b@no-bridge": ("known", "no bridge"),
    }
    assert [k.matched for k in parity.known] == [2, 1]
    # the more specific entry (one naming profiles) is the one quoted
    both = [
        KnownDivergence("api/b", ("refd",), "all"),
        KnownDivergence("api/b", ("refd",), "nb", "", ("no-bridge",)),
    ]
    picked = build_parity([ref, tgt], both).scenarios[3].verdicts["refd"]
    assert picked.reason == "nb"


def test_a_known_divergence_with_bad_profiles_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "k.toml"
    path.write_text('[[divergence]]\nscenario = "a"\ntargets = ["refd"]\nreason = "r"\nprofiles = "ipv6"\n')
    with pytest.raises(Exception, match="'profiles' must be a list"):
        load_known(path)


def test_reports_show_the_profiles_and_the_default_run_shows_none() -> None:
    ref = _profiled("dockerd-28", scenario("api/run"), scenario("api/run@no-bridge"))
    tgt = _profiled("refd", scenario("api/run"), scenario("api/run@no-bridge", "failed", "boom"))
    md = render_markdown(build_parity([ref, tgt]))
    assert "## Profiles" in md and "`--bridge=none`" in md
    assert re.search(r"\| `no-bridge` \| refd \| 1 \| 0 \| 1 \|", md), md
    html = render_html(build_parity([ref, tgt]))
    assert 'data-group="profile" value="no-bridge"' in html and 'id="profiles"' in html
    assert 'data-profile="no-bridge"' in html
    plain = build_parity([results("dockerd-28", scenario("api/run")), results("refd", scenario("api/run"))])
    assert "## Profiles" not in render_markdown(plain)
    assert 'value="default"' not in render_html(plain)


def test_version_2_results_load_but_may_not_carry_profiles() -> None:
    doc = results("refd", scenario("api/run")).to_dict()
    doc["schema"] = "harness.results/2"
    del doc["profiles"]
    assert Results.from_dict(doc).profiles == {}
    doc["profiles"] = {}
    with pytest.raises(ResultsError, match="unknown field"):
        Results.from_dict(doc)


def test_merge_keeps_profiles_of_matrix_entries(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """CI runs each profile as its own matrix entry: same target, different profiles, one merged report."""
    for profile, suffix in (("default", ""), ("no-bridge", "@no-bridge")):
        for name in ("refd", "dockerd-28"):
            part = replace(
                results(name, scenario(f"api/run{suffix}"), version="28.5.2"),
                profiles={profile: {"args": [] if profile == "default" else ["--bridge=none"]}},
            )
            dump_results(part, tmp_path / "shards" / f"{name}-{profile}" / f"{name}.json")
    files = sorted(str(p) for p in (tmp_path / "shards").glob("*/*.json"))
    assert main(["merge", *files, "--reports", str(tmp_path / "out"), "--ui", "plain"]) == 0, (
        capsys.readouterr()
    )
    merged = load_results(tmp_path / "out" / "refd.json")
    assert sorted(s.id for s in merged.scenarios) == ["api/run", "api/run@no-bridge"]
    assert set(merged.profiles) == {"default", "no-bridge"}
    parity = json.loads((tmp_path / "out" / "parity.json").read_text())
    assert set(parity["summary"]["profiles"]) == {"default", "no-bridge"}
    out = capsys.readouterr().out
    assert "refd @no-bridge" in out  # the terminal summary has a row per target x profile


def test_merge_refuses_one_profile_defined_two_ways(tmp_path: Path) -> None:
    for i, args in enumerate((["--bridge=none"], ["--bridge=br0"])):
        part = replace(
            results("refd", scenario(f"api/s{i}@no-bridge")), profiles={"no-bridge": {"args": args}}
        )
        dump_results(part, tmp_path / f"{i}" / "refd.json")
    code = main(["merge", str(tmp_path / "0/refd.json"), str(tmp_path / "1/refd.json"), "-o", str(tmp_path)])
    assert code == 2


def test_the_runner_checks_profiles_and_passes_them_to_pytest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = tmp_path / "mine.toml"
    mine.write_text('[profile.prod]\ndescription = "ours"\ndaemon-json = { "debug" = true }\n')
    parsed = parse_options(
        Run(argv=["--targets", "refd", "--profiles", "all", "--profiles-file", str(mine)], env={})
    )
    assert isinstance(parsed, Run)
    cmd = build_pytest_command(Run(argv=[], options=parsed.options, plugin_autoloaded=True), "refd", tmp_path)
    profiles = cmd[cmd.index("--profiles") + 1].split(",")
    assert profiles[0] == "default" and profiles[-1] == "prod" and "no-bridge" in profiles
    assert cmd[cmd.index("--profiles-file") + 1] == str(mine.resolve())
    default = parse_options(Run(argv=["--targets", "refd"], env={}))
    assert isinstance(default, Run)
    plain = build_pytest_command(
        Run(argv=[], options=default.options, plugin_autoloaded=True), "refd", tmp_path
    )
    assert "--profiles" not in plain  # the default run's command line is unchanged
    assert main(["--targets", "refd", "--profiles", "default,ipv7"]) == 2
    assert "unknown profile 'ipv7' from --profiles" in capsys.readouterr().err
