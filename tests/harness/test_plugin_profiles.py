"""``--profiles`` in the pytest plugin: every daemon boots in each profile, results are kept per profile."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness.results import load_results

pytest_plugins = ["pytester"]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="booting refd needs root")

PROFILED_TESTS = """
import subprocess

import pytest


@pytest.mark.scenario("api/profile/session-daemon", "the session daemon MUST boot in the profile")
def test_session(docker_daemon, profile, observe):
    observe("profile", profile.name)
    observe("args", [a for a in docker_daemon.command if a.startswith(("--bridge", "--debug"))])
    with open(docker_daemon.config_path) as fh:
        observe("daemon_json", fh.read())
    link = subprocess.run(
        ["nsenter", f"--net={docker_daemon.netns_path}", "ip", "-o", "link", "show", "probe0"],
        capture_output=True, text=True,
    )
    observe("probe0", link.returncode == 0)
    assert docker_daemon.endpoint is not None


@pytest.mark.scenario("api/profile/own-daemon", "a daemon the scenario boots MUST be in the profile too")
def test_own(daemon_factory, observe):
    daemon = daemon_factory(args=["--debug"], config={"labels": ["mine=1"]})
    with open(daemon.config_path) as fh:
        observe("daemon_json", json.loads(fh.read()))
    observe("args", [a for a in daemon.command if a.startswith(("--bridge", "--debug"))])
    assert daemon.endpoint is not None


@pytest.mark.profiles("default", reason="only meaningful without a profile")
@pytest.mark.scenario("api/profile/default-only", "runs in the default profile only")
def test_default_only(docker_daemon):
    assert docker_daemon.endpoint is not None


@pytest.mark.scenario("api/profile/no-daemon", "a scenario without a daemon belongs to the default profile")
def test_no_daemon(request):
    assert "docker_daemon" not in request.fixturenames  # the plugin holds every scenario to one check
""".replace("import subprocess", "import json\nimport subprocess")

PROFILES_FILE = """
[profile.probe]
description = "a bridge in the daemon's netns and a label"
daemon-json = { "labels" = ["profile=probe"] }
netns-setup = ["ip link show probe0 >/dev/null 2>&1 || ip link add name probe0 type bridge"]
"""


@pytest.fixture(autouse=True)
def _counting_checks(pytester: pytest.Pytester) -> None:
    """The ini the plugin needs to count each scenario's passing asserts (docs/architecture.md)."""
    pytester.makeini("[pytest]\nenable_assertion_pass_hook = true\n")


@pytest.fixture(autouse=True)
def _no_harness_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "HARNESS_TARGETS",
        "HARNESS_BACKEND",
        "HARNESS_SHARD",
        "HARNESS_PROFILES",
        "HARNESS_PROFILES_FILE",
    ):
        monkeypatch.delenv(name, raising=False)


def test_profiles_boot_every_daemon_and_key_the_results(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_profiled=PROFILED_TESTS)
    profiles = pytester.path / "mine.toml"
    profiles.write_text(PROFILES_FILE)
    out = pytester.path / "refd.json"
    result = pytester.runpytest_subprocess(
        "--targets=refd",
        "--profiles=default,no-bridge,probe",
        f"--profiles-file={profiles}",
        f"--results-json={out}",
        "--schema=off",
        "-v",
    )
    # 3 daemon scenarios x 3 profiles, less the default-only one in 2; the daemon-less one once
    result.assert_outcomes(passed=8, skipped=2)
    result.stdout.fnmatch_lines(["*test_session?refd-no-bridge? PASSED*"])
    loaded = load_results(out)
    by_id = loaded.by_id()
    assert sorted(by_id) == [
        "api/profile/default-only",
        "api/profile/default-only@no-bridge",
        "api/profile/default-only@probe",
        "api/profile/no-daemon",
        "api/profile/own-daemon",
        "api/profile/own-daemon@no-bridge",
        "api/profile/own-daemon@probe",
        "api/profile/session-daemon",
        "api/profile/session-daemon@no-bridge",
        "api/profile/session-daemon@probe",
    ]
    assert by_id["api/profile/session-daemon@no-bridge"].profile == "no-bridge"
    session = {
        p: by_id[f"api/profile/session-daemon{s}"].observations
        for p, s in (("default", ""), ("no-bridge", "@no-bridge"), ("probe", "@probe"))
    }
    assert session["default"]["args"] == [] and session["default"]["daemon_json"] == "{}\n"
    assert session["no-bridge"]["args"] == ["--bridge=none"]
    assert json.loads(session["probe"]["daemon_json"]) == {"labels": ["profile=probe"]}
    assert [s["probe0"] for s in session.values()] == [
        False,
        False,
        True,
    ]  # netns-setup ran in its netns only
    own = by_id["api/profile/own-daemon@probe"].observations
    assert own["daemon_json"] == {"labels": ["mine=1"]}  # the scenario's key wins over the profile's
    assert by_id["api/profile/own-daemon@no-bridge"].observations["args"] == ["--bridge=none", "--debug"]
    skipped = by_id["api/profile/default-only@no-bridge"]
    assert (skipped.outcome, skipped.reason) == (
        "skipped",
        "Skipped: not in profile no-bridge: only meaningful without a profile",
    )
    assert set(loaded.profiles) == {"default", "no-bridge", "probe"}
    assert loaded.profiles["probe"]["netns_setup"] and loaded.profiles["no-bridge"]["args"] == [
        "--bridge=none"
    ]


def test_the_default_run_keeps_its_ids(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_profiled=PROFILED_TESTS.replace("probe0", "lo"))
    out = pytester.path / "refd.json"
    result = pytester.runpytest_subprocess(
        "--targets=refd", f"--results-json={out}", "--schema=off", "-v", "-k", "session"
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_session?refd? PASSED*"])
    assert [s.id for s in load_results(out).scenarios] == ["api/profile/session-daemon"]
    assert json.loads(out.read_text())["profiles"]["default"]["args"] == []


def test_a_profile_without_the_default_leaves_daemonless_tests_out(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_profiled=PROFILED_TESTS)
    result = pytester.runpytest_subprocess("--targets=refd", "--profiles=no-bridge", "-k", "no_daemon")
    result.assert_outcomes(deselected=4)


@pytest.mark.parametrize(
    ("mark", "message"),
    [
        ('@pytest.mark.profiles("default")', "needs a reason"),
        ('@pytest.mark.profiles("nope", reason="x")', "names unknown profile 'nope'"),
        ('@pytest.mark.profiles(exclude="ipv6", reason="x")', "a tuple of names to exclude"),
    ],
)
def test_a_bad_profiles_mark_is_a_usage_error(pytester: pytest.Pytester, mark: str, message: str) -> None:
    pytester.makepyfile(test_bad=f"import pytest\n\n\n{mark}\ndef test_x(docker_daemon):\n    pass\n")
    result = pytester.runpytest_subprocess("--targets=refd", "--collect-only")
    assert result.ret == 4
    result.stderr.fnmatch_lines([f"*{message}*"])


def test_an_unknown_profile_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess("--targets=refd", "--profiles=default,ipv7")
    assert result.ret == 4
    result.stderr.fnmatch_lines(
        ["*unknown profile 'ipv7' from command line: choose from default, no-bridge*"]
    )


def test_the_results_file_name_does_not_change(tmp_path: Path) -> None:
    """A profile is part of the scenario ids, not of the results file's name or target."""
    doc = {
        "schema": "harness.results/3",
        "target": {"name": "refd"},
        "scenarios": [{"id": "api/a@ipv6", "outcome": "passed"}],
    }
    path = tmp_path / "refd.json"
    path.write_text(json.dumps(doc))
    assert load_results(path).scenarios[0].profile == "ipv6"
