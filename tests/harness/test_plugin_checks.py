"""The plugin holds every scenario to at least one check: an assert that passed or a harness.checks helper.

Run the way users meet it, pytest in a subprocess on their own files (pytester); none of these scenarios
asks for a daemon, so no root is needed.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

HOOK_INI = "[pytest]\nenable_assertion_pass_hook = true\n"
OFFLINE = ("--schema", "off")  # no swagger download for scenarios that read no responses

SCENARIOS = """
import pytest

from harness.checks import eventually, expect_status


@pytest.mark.scenario("api/x/observes-only", "X MUST be 1")
def test_observes_only(observe):
    observe("x", 1)


@pytest.mark.scenario("api/x/asserts", "X MUST be 1")
def test_asserts(observe):
    assert observe("x", 1) == 1


@pytest.mark.scenario("api/x/helper", "X MUST become true")
def test_helper(observe):
    observe("x", eventually(lambda: 1, "x to be set"))


def _check(value):
    assert value == 1


@pytest.mark.scenario("api/x/local-helper", "X MUST be 1")
def test_local_helper(observe):
    _check(observe("x", 1))


@pytest.mark.scenario("api/x/assert-not-reached", "X MUST be 1")
def test_assert_not_reached(observe):
    if observe("x", 1) == 2:
        assert False, "never"


def test_not_a_scenario():
    pass
"""


def test_a_scenario_without_a_check_fails_and_says_why(pytester: pytest.Pytester) -> None:
    pytester.makeini(HOOK_INI)
    pytester.makepyfile(test_user=SCENARIOS)
    result = pytester.runpytest_subprocess(*OFFLINE, "-rf")
    result.assert_outcomes(passed=4, failed=2)
    result.stdout.fnmatch_lines(
        [
            "scenario 'api/x/observes-only' made no check of its statement: it passed without a passing*",
            "scenario 'api/x/assert-not-reached' made no check of its statement*",
        ]
    )


def test_expect_error_checks_status_and_message(pytester: pytest.Pytester) -> None:
    pytester.makeini(HOOK_INI)
    pytester.makepyfile(
        test_errors="""
import re
from types import SimpleNamespace

import pytest

from harness.checks import expect_error


class Resp:
    def __init__(self, status, body):
        self.status_code, self._body = status, body
        self.request = SimpleNamespace(method="GET", path_url="/x")
        self.text = str(body)

    def json(self):
        return self._body


@pytest.mark.scenario("api/e/exact", "a 404 MUST name the thing")
def test_exact():
    assert expect_error(Resp(404, {"message": "No such x"}), 404, "No such x") == "No such x"


@pytest.mark.scenario("api/e/pattern", "a 400 MUST start so")
def test_pattern():
    expect_error(Resp(400, {"message": "invalid filter 'a'"}), 400, re.compile("invalid filter"))


@pytest.mark.scenario("api/e/wrong-status", "a 404 MUST be a 404")
def test_wrong_status():
    expect_error(Resp(500, {"message": "boom"}), 404, "boom")


@pytest.mark.scenario("api/e/wrong-message", "a 404 MUST name the thing")
def test_wrong_message():
    expect_error(Resp(404, {"message": "No such y"}), 404, "No such x")
"""
    )
    result = pytester.runpytest_subprocess(*OFFLINE)
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*GET /x: expected status 404, got 500: {'message': 'boom'}*",
            "*error message 'No such y' != 'No such x'*",
        ]
    )


def test_counting_needs_the_assertion_pass_hook(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=SCENARIOS)
    result = pytester.runpytest_subprocess(*OFFLINE)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*add 'enable_assertion_pass_hook = true' to the pytest ini*"])


def test_bytecode_rewritten_without_the_hook_is_refused(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    pytester.makepyfile(test_user=SCENARIOS)
    first = pytester.runpytest_subprocess(*OFFLINE, "-p", "no:cacheprovider")  # writes the rewritten bytecode
    assert first.ret == pytest.ExitCode.USAGE_ERROR
    pytester.makeini(HOOK_INI)
    second = pytester.runpytest_subprocess(*OFFLINE, "-p", "no:cacheprovider")
    assert second.ret == pytest.ExitCode.USAGE_ERROR
    second.stderr.fnmatch_lines(
        ["*rewrote before enable_assertion_pass_hook was on*remove their __pycache__*"]
    )
