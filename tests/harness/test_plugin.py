"""The pytest11 plugin, exercised the way users meet it: pytest in a subprocess on their own test files."""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

import pytest

from harness.results import load_results

pytest_plugins = ["pytester"]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="booting refd needs root")

USER_TESTS = """
import pytest


@pytest.mark.scenario("api/system/ping-ok", "GET /_ping MUST answer 200 OK", ref="spec 6.2")
def test_ping(engine, observe):
    response = engine.get("/_ping")
    observe("status", response.status_code)
    observe.update(body=response.text)
    assert response.status_code == 200


@pytest.mark.scenario("api/daemon/own-boot", "A daemon booted with --debug MUST answer too")
def test_own_daemon(daemon_factory, observe):
    daemon = daemon_factory(args=["--debug"])
    observe("has_endpoint", daemon.endpoint is not None)
    assert daemon.returncode is None


def test_not_a_scenario(docker_daemon):
    assert docker_daemon.endpoint is not None
"""

FAILING_TEST = """
import pytest


@pytest.mark.scenario("api/system/teapot", "GET /_ping MUST answer 418 (it does not)")
def test_teapot(engine, observe):
    status = observe("status", engine.get("/_ping").status_code)
    assert status == 418, "the daemon is not a teapot"


@pytest.mark.scenario("api/system/later", "skipped with its reason")
def test_later():
    pytest.skip("needs a kernel with cgroup v1")


@pytest.fixture
def broken():
    raise RuntimeError("fixture exploded")


@pytest.mark.scenario("api/system/broken-setup", "an error in setup is an error, not a failure")
def test_broken(broken):
    pass
"""


@pytest.fixture(autouse=True)
def _counting_checks(pytester: pytest.Pytester) -> None:
    """The users' ini the plugin needs to count each scenario's passing asserts (docs/scenarios.md)."""
    pytester.makeini("[pytest]\nenable_assertion_pass_hook = true\n")


@pytest.fixture(autouse=True)
def _no_harness_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HARNESS_TARGETS", "HARNESS_BACKEND", "HARNESS_SHARD", "HARNESS_KEEP_DAEMONS"):
        monkeypatch.delenv(name, raising=False)


def _scenarios(path: Path) -> dict[str, dict[str, object]]:
    doc = json.loads(path.read_text())
    assert doc["schema"] == "harness.results/3"
    return {s["id"]: s for s in doc["scenarios"]}


def test_users_tests_pass_on_refd_and_are_recorded(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    out = pytester.path / "reports" / "refd.json"
    result = pytester.runpytest_subprocess("--targets", "refd", f"--results-json={out}")
    result.assert_outcomes(passed=3)
    assert result.ret == 0
    scenarios = _scenarios(out)
    assert sorted(scenarios) == ["api/daemon/own-boot", "api/system/ping-ok"]  # only scenarios are recorded
    ping = scenarios["api/system/ping-ok"]
    assert ping["outcome"] == "passed" and ping["reason"] == ""
    assert ping["observations"] == {"status": 200, "body": "OK"}
    assert ping["area"] == "api" and ping["ref"] == "spec 6.2"
    assert ping["statement"] == "GET /_ping MUST answer 200 OK"
    assert ping["nodeid"] == "test_user.py::test_ping"
    assert scenarios["api/daemon/own-boot"]["observations"] == {"has_endpoint": True}
    results = load_results(out)  # what the runner and parity read back
    assert results.target.name == "refd" and results.target.backend == "local" and results.target.version


def test_a_failing_scenario_is_recorded_with_its_assertion(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_teapot=FAILING_TEST)
    out = pytester.path / "refd.json"
    result = pytester.runpytest_subprocess("--targets", "refd", f"--results-json={out}")
    result.assert_outcomes(failed=1, skipped=1, errors=1)
    scenarios = _scenarios(out)
    teapot = scenarios["api/system/teapot"]
    assert teapot["outcome"] == "failed"
    assert "the daemon is not a teapot" in str(teapot["reason"])
    assert "assert 200 == 418" in str(teapot["reason"])
    assert teapot["observations"] == {"status": 200}
    later = scenarios["api/system/later"]
    assert (later["outcome"], later["reason"]) == ("skipped", "Skipped: needs a kernel with cgroup v1")
    broken = scenarios["api/system/broken-setup"]
    assert broken["outcome"] == "error" and "fixture exploded" in str(broken["reason"])
    assert {s.outcome for s in load_results(out).scenarios} == {"failed", "skipped", "error"}


SHARDED = "\n".join(
    f"""
@pytest.mark.scenario("api/shard/s{i}", "scenario {i} MUST pass")
def test_s{i}():
    assert {i} in range(8)
"""
    for i in range(8)
)


def test_shards_partition_the_scenarios(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_sharded="import pytest\n" + SHARDED)
    every = {f"api/shard/s{i}" for i in range(8)}
    seen: list[set[str]] = []
    for shard in ("1/2", "2/2"):
        out = pytester.path / f"shard-{shard[0]}.json"
        result = pytester.runpytest_subprocess(
            "--targets", "refd", "--harness-shard", shard, f"--results-json={out}"
        )
        assert result.ret == 0
        ids = set(_scenarios(out))
        result.assert_outcomes(passed=len(ids), deselected=8 - len(ids))
        expected = {i for i in every if zlib.crc32(i.encode()) % 2 == int(shard[0]) - 1}
        assert ids == expected
        seen.append(ids)
    assert seen[0] and seen[1], "the chosen ids should land in both shards"
    assert seen[0] | seen[1] == every and not seen[0] & seen[1]


def test_parts_partition_a_shard_and_shuffle_keeps_the_set_and_records_its_seed(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_sharded="import pytest\n" + SHARDED)
    every = {f"api/shard/s{i}" for i in range(8)}
    costs = pytester.path / "costs.json"
    costs.write_text(json.dumps({"api/shard/s0": 100.0}))  # one costly scenario: a part of its own
    seen: list[set[str]] = []
    for part in ("1/2", "2/2"):
        out = pytester.path / f"part-{part[0]}.json"
        result = pytester.runpytest_subprocess(
            "--targets",
            "refd",
            "--harness-part",
            part,
            f"--harness-costs={costs}",
            f"--results-json={out}",
            "--schema=off",
        )
        assert result.ret == 0
        seen.append(set(_scenarios(out)))
    assert seen[0] == {"api/shard/s0"} and seen[1] == every - {"api/shard/s0"}
    out = pytester.path / "shuffled.json"
    result = pytester.runpytest_subprocess(
        "--targets", "refd", "--harness-shuffle", "3", f"--results-json={out}", "-v", "--schema=off"
    )
    assert result.ret == 0
    order = [ln.split("::")[1].split()[0].split("[")[0] for ln in result.outlines if " PASSED" in ln]
    assert sorted(order) == sorted(f"test_s{i}" for i in range(8)) and order != sorted(order)
    assert json.loads(out.read_text())["shuffle_seed"] == 3 and load_results(out).shuffle_seed == 3


LEAKY = """
import pytest


@pytest.mark.scenario("api/volumes/leaky", "a scenario that forgets its volume")
def test_leaky(engine):
    assert engine.post("/volumes/create", json={"Name": "forgotten"}).status_code == 201


@pytest.mark.scenario("api/volumes/after", "the next scenario finds the daemon as it was")
def test_after(engine, observe):
    names = [v["Name"] for v in engine.get("/volumes").json().get("Volumes") or []]
    observe("volumes", names)
    assert names == []


@pytest.mark.scenario("api/volumes/tidy", "a scenario that removes what it made")
def test_tidy(engine):
    assert engine.post("/volumes/create", json={"Name": "tidy"}).status_code == 201
    assert engine.delete("/volumes/tidy").status_code == 204
"""


def test_state_a_scenario_leaves_on_the_shared_daemon_is_a_finding_and_is_removed(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_leaky=LEAKY)
    out = pytester.path / "refd.json"
    result = pytester.runpytest_subprocess("--targets", "refd", f"--results-json={out}", "--schema=off")
    assert result.ret == 0
    scenarios = _scenarios(out)
    assert scenarios["api/volumes/leaky"]["left_behind"] == ["left volume forgotten"]
    assert scenarios["api/volumes/after"]["observations"] == {"volumes": []}  # removed before the next one
    assert (
        "left_behind" not in scenarios["api/volumes/after"]
        and "left_behind" not in scenarios["api/volumes/tidy"]
    )
    assert load_results(out).by_id()["api/volumes/leaky"].left_behind == ("left volume forgotten",)


def test_unknown_target_is_a_usage_error_naming_the_source(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess("--targets", "nosuch")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown target 'nosuch' from command line: choose from refd, dockerd*"])
    monkeypatch.setenv("HARNESS_TARGETS", "refd,nosuch")
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown target 'nosuch' from environment variable HARNESS_TARGETS*"])


def test_duplicate_scenario_ids_are_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_dup="""
import pytest


@pytest.mark.scenario("api/dup/same", "first")
def test_first():
    pass


@pytest.mark.scenario("api/dup/same", "second")
def test_second():
    pass
"""
    )
    result = pytester.runpytest_subprocess("--targets", "refd")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*scenario id 'api/dup/same' is used by both test_dup.py::test_first and test_dup.py::test_second*"]
    )


def test_parametrized_scenario_may_share_its_id(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_param="""
import pytest


@pytest.mark.scenario("api/param/many", "each value MUST pass")
@pytest.mark.parametrize("value", [1, 2])
def test_many(value):
    assert value in (1, 2)
"""
    )
    pytester.runpytest_subprocess("--targets", "refd").assert_outcomes(passed=2)


REFD_ONLY_TEST = """
import pytest

@pytest.mark.refd_only("only refd loads this")
@pytest.mark.scenario("api/x/refd-only", "refd MUST do x", ref="here")
def test_x(target, observe):
    assert observe("ran", True)
"""


def test_refd_only_scenarios_skip_elsewhere_with_the_reason(pytester: pytest.Pytester) -> None:
    import shutil

    if shutil.which("dockerd") is None:
        pytest.skip("needs the dockerd target installed (apt-get install docker.io)")
    pytester.makepyfile(test_refd_only=REFD_ONLY_TEST)
    out = pytester.path / "reports"
    result = pytester.runpytest_subprocess("--targets", "refd,dockerd", f"--results-dir={out}", "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*refd-only: only refd loads this*"])
    on_dockerd = _scenarios(out / "dockerd.json")["api/x/refd-only"]
    assert on_dockerd["outcome"] == "skipped" and "refd-only: only refd loads this" in on_dockerd["reason"]
    assert _scenarios(out / "refd.json")["api/x/refd-only"]["outcome"] == "passed"


SUBRESULTS = """
import pytest

@pytest.mark.scenario("upstream/demo/pkg", "the binary ran")
def test_pkg(subresults):
    subresults.add("upstream/demo/pkg/TestA", "passed", duration=0.5, statement="TestA passes")
    subresults.add("upstream/demo/pkg/TestB/sub", "failed", "b_test.go:3: assertion failed", 0.1)
    subresults.add("upstream/demo/pkg/TestC", "skipped", "c_test.go:9: needs snapshotter")
    with pytest.raises(ValueError, match="not one of"):
        subresults.add("upstream/demo/pkg/TestD", "flaky")
    with pytest.raises(ValueError, match="looks like"):
        subresults.add("TestE", "passed")
    assert len(subresults) == 3
"""


def test_a_scenario_reports_results_under_ids_of_their_own(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_sub=SUBRESULTS)
    out = pytester.path / "refd.json"
    result = pytester.runpytest_subprocess("--targets", "refd", f"--results-json={out}")
    result.assert_outcomes(passed=1)
    scenarios = _scenarios(out)
    assert sorted(scenarios) == [
        "upstream/demo/pkg",
        "upstream/demo/pkg/TestA",
        "upstream/demo/pkg/TestB/sub",
        "upstream/demo/pkg/TestC",
    ]
    a, b, c = (scenarios[f"upstream/demo/pkg/{n}"] for n in ("TestA", "TestB/sub", "TestC"))
    assert (a["outcome"], a["duration"], a["statement"], a["area"]) == (
        "passed",
        0.5,
        "TestA passes",
        "upstream",
    )
    assert (b["outcome"], b["reason"]) == ("failed", "b_test.go:3: assertion failed")
    assert (c["outcome"], c["reason"]) == ("skipped", "c_test.go:9: needs snapshotter")
    assert a["nodeid"] == scenarios["upstream/demo/pkg"]["nodeid"] == "test_sub.py::test_pkg"
    assert len(load_results(out).scenarios) == 4  # the runner and parity read them back as scenarios
