"""Parity classification (match, diverge, missing, skipped, known, stale), reference choice, serialisation."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from cf_factories import results, scenario

from conformance.normalise import RULES
from conformance.parity import (
    DEFAULT_KNOWN_PATH,
    Diff,
    KnownDivergence,
    KnownDivergenceError,
    Parity,
    ParityError,
    build_parity,
    diff_observations,
    load_known,
    pick_reference,
)
from conformance.ui import PlainUI
from harness.results import Results

ID_A = "a" * 64
ID_B = "b" * 64


def _verdict(parity: Parity, sid: str, target: str = "refd") -> str:
    return next(s for s in parity.scenarios if s.id == sid).verdicts[target].verdict


def test_match_after_normalisation() -> None:
    ref = results(
        "dockerd",
        scenario("api/x", status=201, body={"Id": ID_A}, headers={"Server": "Docker/28.5.2 (linux)"}),
    )
    tgt = results(
        "refd", scenario("api/x", status=201, body={"Id": ID_B}, headers={"Server": "Docker/0.1 (linux)"})
    )
    parity = build_parity([tgt, ref])
    assert parity.reference == "dockerd"
    assert _verdict(parity, "api/x") == "match"
    assert parity.ok()
    # raw observations are kept, not normalised
    assert parity.scenarios[0].results["refd"].observations["body"]["Id"] == ID_B


def test_diverge_reports_exact_json_pointer_paths() -> None:
    ref = results("dockerd", scenario("api/ping", status=200, headers={"Api-Version": "1.51", "a/b": 1}))
    tgt = results(
        "refd", scenario("api/ping", "failed", "boom", status=200, headers={"Api-Version": "1.41"}, x=[1])
    )
    parity = build_parity([ref, tgt])
    verdict = parity.scenarios[0].verdicts["refd"]
    assert verdict.verdict == "diverge"
    assert verdict.outcome == ("passed", "failed")
    assert verdict.diffs == (
        Diff("/headers/Api-Version", "changed", "1.51", "1.41"),
        Diff("/headers/a~1b", "removed", 1, None),
        Diff("/x", "added", None, [1]),
    )
    assert not parity.ok()
    assert [(s.id, t) for s, t, _ in parity.unexplained()] == [("api/ping", "refd")]


def test_outcome_difference_alone_is_a_divergence() -> None:
    parity = build_parity(
        [results("dockerd", scenario("api/x")), results("refd", scenario("api/x", "error", "E"))]
    )
    verdict = parity.scenarios[0].verdicts["refd"]
    assert (verdict.verdict, verdict.outcome, verdict.diffs) == ("diverge", ("passed", "error"), ())


def test_diff_is_type_aware_and_handles_lists() -> None:
    assert diff_observations({"a": 1}, {"a": True}) == [Diff("/a", "changed", 1, True)]
    assert diff_observations({"a": 1}, {"a": 1.0}) == [Diff("/a", "changed", 1, 1.0)]
    assert diff_observations([1, 2, 3], [1, 5]) == [
        Diff("/1", "changed", 2, 5),
        Diff("/2", "removed", 3, None),
    ]
    assert diff_observations({"m": {"k": 1}}, {"m": [1]}) == [Diff("/m", "changed", {"k": 1}, [1])]
    assert diff_observations({"~": 1}, {"~": 2}) == [Diff("/~0", "changed", 1, 2)]
    assert diff_observations({"a": None}, {"a": None}) == []


def test_missing_on_either_side() -> None:
    ref = results("dockerd", scenario("api/only-ref"), scenario("api/both"))
    tgt = results("refd", scenario("api/only-target"), scenario("api/both"))
    parity = build_parity([ref, tgt])
    assert [s.id for s in parity.scenarios] == ["api/both", "api/only-ref", "api/only-target"]
    only_ref = parity.scenarios[1].verdicts["refd"]
    only_tgt = parity.scenarios[2].verdicts["refd"]
    assert (only_ref.verdict, only_ref.reason) == ("missing", "absent from refd results")
    assert (only_tgt.verdict, only_tgt.reason) == ("missing", "absent from reference dockerd results")
    assert parity.scenarios[2].statement == "api/only-target MUST behave"
    assert not parity.ok()


def test_skipped_on_either_side_carries_the_reason() -> None:
    ref = results("dockerd", scenario("a/1", "skipped", "needs root", v=1), scenario("a/2", v=1))
    tgt = results("refd", scenario("a/1", v=2), scenario("a/2", "skipped", "", v=2))
    parity = build_parity([ref, tgt])
    assert [(v.verdict, v.reason) for s in parity.scenarios for v in s.verdicts.values()] == [
        ("skipped", "dockerd: needs root"),
        ("skipped", "refd: skipped"),
    ]
    assert parity.ok()


def _diverging(*names: str) -> list[Results]:
    return [results(n, scenario("api/ping", version=n)) for n in names]


def test_known_divergence_by_target_or_reference_and_stale_entries() -> None:
    known = [
        KnownDivergence("api/p*", ("refd",), "refd sends an older header", "https://example.test/1"),
        KnownDivergence("api/never", ("refd",), "gone"),
    ]
    parity = build_parity(_diverging("dockerd", "refd"), known)
    verdict = parity.scenarios[0].verdicts["refd"]
    assert (verdict.verdict, verdict.reason, verdict.link) == (
        "known",
        "refd sends an older header",
        known[0].link,
    )
    assert verdict.diffs == (Diff("/version", "changed", "dockerd", "refd"),)
    assert parity.ok()
    assert [k.matched for k in parity.known] == [1, 0]
    assert [k.entry.scenario for k in parity.stale()] == ["api/never"]
    assert parity.summary()["stale"] == [known[1].to_dict()]

    # the entry names the *reference* (dockerd-20.10 differs from the others): it covers every comparison
    old = [KnownDivergence("api/ping", ("dockerd-20*",), "20.10 is API 1.41")]
    parity = build_parity(_diverging("dockerd-20.10", "refd", "dockerd-28"), old)
    assert parity.reference == "dockerd-20.10"
    assert {t: v.verdict for t, v in parity.scenarios[0].verdicts.items()} == {
        "refd": "known",
        "dockerd-28": "known",
    }

    # ... and only the comparisons that involve it when it is not the reference
    parity = build_parity(_diverging("dockerd-28", "refd", "dockerd-20.10"), old)
    assert {t: v.verdict for t, v in parity.scenarios[0].verdicts.items()} == {
        "refd": "diverge",
        "dockerd-20.10": "known",
    }


def test_every_matching_entry_is_used_and_the_most_specific_is_quoted() -> None:
    """A broad glob listed first must neither hide a specific entry's reason nor leave it flagged stale."""
    known = [
        KnownDivergence("api/*", ("refd",), "broad: every api scenario differs this way"),
        KnownDivergence("api/p*", ("refd",), "narrower glob"),
        KnownDivergence("api/ping", ("refd",), "exact: the ping header"),
        KnownDivergence("api/ping", ("dockerd-99*",), "another target: not matching"),
    ]
    parity = build_parity(_diverging("dockerd", "refd"), known)
    assert parity.scenarios[0].verdicts["refd"].reason == "exact: the ping header"
    assert [k.matched for k in parity.known] == [1, 1, 1, 0]
    assert [k.entry.reason for k in parity.stale()] == ["another target: not matching"]

    parity = build_parity(_diverging("dockerd", "refd"), known[:2])
    assert parity.scenarios[0].verdicts["refd"].reason == "narrower glob"


def test_known_entry_does_not_turn_a_match_into_known() -> None:
    same = [results(n, scenario("api/ping", v=1)) for n in ("dockerd", "refd")]
    parity = build_parity(same, [KnownDivergence("*", ("*",), "everything")])
    assert _verdict(parity, "api/ping") == "match"
    assert len(parity.stale()) == 1


def test_a_failure_the_reference_shares_is_expected_when_an_entry_names_it() -> None:
    both = [
        results(n, scenario("upstream/moby/x/TestPull", "failed", "no registry")) for n in ("dockerd", "refd")
    ]
    assert not build_parity(both).ok()  # nothing diverged, but two failures nobody explained
    entry = KnownDivergence("upstream/moby/x/TestPull", ("dockerd",), "needs Docker Hub")
    parity = build_parity(both, [entry])
    s = parity.scenarios[0]
    assert s.verdicts["refd"].verdict == "match"
    assert s.expected_failures == {"dockerd": "needs Docker Hub", "refd": "needs Docker Hub"}
    assert parity.ok() and parity.stale() == []
    assert Parity.from_dict(json.loads(json.dumps(parity.to_dict()))) == parity
    # the entry excuses only shared failures: a failure of refd alone is still a divergence
    split = [
        results("dockerd", scenario("upstream/moby/x/TestPull")),
        results("refd", scenario("upstream/moby/x/TestPull", "failed", "boom")),
    ]
    other = KnownDivergence("upstream/moby/x/*", ("dockerd-20.10",), "another target")
    parity = build_parity(split, [other])
    assert parity.scenarios[0].expected_failures == {} and not parity.ok()


def test_the_result_line_says_what_the_verdict_rests_on() -> None:
    both = [
        results(n, scenario("upstream/moby/x/TestPull", "failed", "no registry"), scenario("api/ping"))
        for n in ("dockerd", "refd")
    ]
    assert build_parity(both).failures() == {"expected": 0, "known": 0, "unexcused": 2}
    assert build_parity(both).result_line() == "FAILED (2 failure(s) no entry excuses)"
    excused = build_parity(both, [KnownDivergence("upstream/moby/x/TestPull", ("dockerd",), "needs Hub")])
    assert excused.summary()["failures"] == {"expected": 2, "known": 0, "unexcused": 0}
    assert excused.summary()["result"] == (
        "OK (all 2 failure(s) excused: 2 expected, the reference failing too; 0 by known divergences)"
    )
    out = io.StringIO()
    PlainUI(out).summary(excused, [], [])
    assert "refd  upstream/moby/x/TestPull  failed: no registry (expected: needs Hub)" in out.getvalue()
    # a failure a known divergence excuses (the compared target differs) is counted as such
    split = [
        results("dockerd", scenario("api/ping", v=1)),
        results("refd", scenario("api/ping", "failed", "x")),
    ]
    known = build_parity(split, [KnownDivergence("api/ping", ("refd",), "refd differs")])
    assert known.failures() == {"expected": 0, "known": 1, "unexcused": 0} and known.ok()
    out = io.StringIO()
    PlainUI(out).summary(known, [], [])
    assert "refd  api/ping  failed: x (expected, a known divergence: refd differs)" in out.getvalue()
    assert build_parity(split).result_line() == (
        "FAILED (1 failure(s) no entry excuses, 1 unexplained divergence(s))"
    )
    assert build_parity(_diverging("dockerd", "refd")[:1]).result_line() == "OK"


def test_a_subtest_a_failed_parent_never_reached_is_skipped_not_missing() -> None:
    ref = results(
        "dockerd",
        scenario("upstream/moby/x"),
        scenario("upstream/moby/x/TestA"),
        scenario("upstream/moby/x/TestA/one"),
        scenario("upstream/moby/x/TestB/two"),
    )
    tgt = results(
        "refd",
        scenario("upstream/moby/x"),
        scenario("upstream/moby/x/TestA", "failed", "setup failed"),
        scenario("upstream/moby/x/TestB", "skipped", "needs snapshotter"),
    )
    parity = build_parity([ref, tgt])
    one = next(s for s in parity.scenarios if s.id == "upstream/moby/x/TestA/one").verdicts["refd"]
    assert (one.verdict, one.reason) == (
        "skipped",
        "refd: not reached, upstream/moby/x/TestA failed before it",
    )
    two = next(s for s in parity.scenarios if s.id == "upstream/moby/x/TestB/two").verdicts["refd"]
    assert two.verdict == "skipped"  # the parent is absent on the reference but skipped on refd
    # a scenario of our own suites has no parent test: absent is missing
    flat = build_parity(
        [results("dockerd", scenario("api/x/y")), results("refd", scenario("api/x", "failed"))]
    )
    assert _verdict(flat, "api/x/y") == "missing"


def test_reference_choice() -> None:
    assert pick_reference(["refd", "dockerd-28", "dockerd"]) == "dockerd-28"
    assert pick_reference(["refd", "other"]) == "refd"
    assert pick_reference(["refd", "dockerd"], "refd") == "refd"
    with pytest.raises(ParityError, match="reference target 'x' is not among the targets"):
        pick_reference(["refd"], "x")
    with pytest.raises(ParityError, match="no targets"):
        pick_reference([])


def test_duplicate_targets_must_be_merged_first() -> None:
    with pytest.raises(ParityError, match="refd appear in more than one results file; merge shards first"):
        build_parity([results("refd"), results("refd")])


def test_summary_counts() -> None:
    ref = results("dockerd", scenario("a/1", v=1), scenario("a/2", v=1), scenario("a/3", "skipped", "r"))
    tgt = results("refd", scenario("a/1", v=1), scenario("a/2", "failed", "x", v=2), scenario("a/4"))
    summary = build_parity([ref, tgt]).summary()
    assert summary["reference"] == "dockerd"
    no_schema = {
        "mode": "",
        "error": "",
        "checked": 0,
        "findings": 0,
        "own_findings": 0,
        "scenarios_with_findings": 0,
    }
    assert summary["targets"]["dockerd"] == {
        "scenarios": 3,
        "outcomes": {"passed": 2, "failed": 0, "skipped": 1, "error": 0},
        "verdicts": None,
        "schema": no_schema,
    }
    assert summary["targets"]["refd"] == {
        "scenarios": 3,
        "outcomes": {"passed": 2, "failed": 1, "skipped": 0, "error": 0},
        "verdicts": {"match": 1, "diverge": 1, "known": 0, "missing": 2, "skipped": 0},
        "schema": no_schema,
    }
    assert summary["ok"] is False
    assert [u["scenario"] for u in summary["unexplained"]] == ["a/2", "a/3", "a/4"]


def test_document_round_trips_through_json() -> None:
    known = [KnownDivergence("a/2", ("refd",), "why", "link")]
    ref = results("dockerd", scenario("a/1", v=1), scenario("a/2", v=1), scenario("a/3", "skipped", "r"))
    tgt = results("refd", scenario("a/1", v=2), scenario("a/2", v=3), scenario("a/4", "error", "E"))
    parity = build_parity([ref, tgt], known, generated="2026-11-27T19:00:00Z")
    data = json.loads(json.dumps(parity.to_dict()))
    assert data["schema"] == "harness.parity/4"
    assert data["normalisation"] == [{"name": r.name, "description": r.description} for r in RULES]
    assert data["known_divergences"][0]["matched"] == 1
    assert data["trend"] is None  # no previous report to compare with
    again = Parity.from_dict(data)
    assert again == parity
    assert again.to_dict() == parity.to_dict()
    # version 2 documents (no trend) still load
    assert Parity.from_dict({**data, "schema": "harness.parity/2"} | {"trend": None}) == parity
    del data["trend"]
    assert Parity.from_dict({**data, "schema": "harness.parity/2"}) == parity
    with pytest.raises(ParityError, match="not a parity document"):
        Parity.from_dict({"schema": "harness.results/1"})


def test_packaged_known_divergences_file_parses() -> None:
    assert DEFAULT_KNOWN_PATH.is_file()
    assert all(isinstance(k, KnownDivergence) for k in load_known())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[[divergence]]\nscenario = 'a'\ntargets = ['x']\n", "'reason' must be a non-empty string"),
        (
            "[[divergence]]\nscenario = 'a'\ntargets = []\nreason = 'r'\n",
            "'targets' must be a non-empty list",
        ),
        ("[[divergence]]\ntargets = ['x']\nreason = 'r'\n", "divergence #1: 'scenario' must be"),
        (
            "[[divergence]]\nscenario = 'a'\ntargets = ['x']\nreason = 'r'\nversion = 1\n",
            "unknown key(s) 'version'",
        ),
        ("[divergences]\n", "unknown top-level key(s) 'divergences'"),
        ("divergence = 3\n", "must be an array of tables"),
        ("[[divergence]\n", "not valid TOML"),
    ],
)
def test_bad_known_divergence_files(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "known.toml"
    path.write_text(text)
    with pytest.raises(KnownDivergenceError) as info:
        load_known(path)
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_known_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "known.toml"
    path.write_text(
        '[[divergence]]\nscenario = "api/*"\ntargets = ["dockerd-20.10"]\nreason = " old API "\n'
        'link = "https://x"\n'
    )
    assert load_known(path) == [KnownDivergence("api/*", ("dockerd-20.10",), "old API", "https://x")]
    assert load_known(tmp_path / "absent.toml", missing_ok=True) == []
    with pytest.raises(KnownDivergenceError, match="file does not exist"):
        load_known(tmp_path / "absent.toml")


def test_a_shared_expected_failure_stays_expected_when_a_third_target_skipped_it() -> None:
    # upstream/moby/volume/TestRunMountImage: dockerd 20.10 skips it (API too old), the reference and refd
    # fail it as an entry says; the skip is no divergence, so the reference's failure is expected too
    runs = [
        results("dockerd", scenario("upstream/moby/x/TestMount", "failed", "safepath wording")),
        results("refd", scenario("upstream/moby/x/TestMount", "failed", "safepath wording")),
        results("refd-old", scenario("upstream/moby/x/TestMount", "skipped", "requires API v1.48")),
    ]
    entry = KnownDivergence("upstream/moby/x/TestMount", ("dockerd",), "safepath's wording")
    parity = build_parity(runs, [entry])
    assert parity.reference == "dockerd"
    s = parity.scenarios[0]
    assert s.verdicts["refd-old"].verdict == "skipped"
    assert s.expected_failures == {"dockerd": "safepath's wording", "refd": "safepath's wording"}
    assert parity.ok()
