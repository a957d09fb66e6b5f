"""Errors carry their context and say what was tried and what to check."""

from __future__ import annotations

import pytest

from harness import errors
from harness.errors import BackendStartError, HarnessError, ReadinessTimeout, TargetUnavailable


def test_every_error_is_a_harness_error() -> None:
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), HarnessError), name


def test_target_unavailable() -> None:
    err = TargetUnavailable("dockerd", "binary missing", "apt-get install docker.io")
    assert (err.target, err.reason, err.fix) == ("dockerd", "binary missing", "apt-get install docker.io")
    assert str(err) == "target 'dockerd' is unavailable: binary missing; apt-get install docker.io"
    assert str(TargetUnavailable("x", "why")) == "target 'x' is unavailable: why"


def test_backend_start_error_shows_command_and_log() -> None:
    err = BackendStartError("refd", ["refd", "--nope"], 1, "unknown flag: --nope")
    assert err.returncode == 1 and err.command == ["refd", "--nope"]
    assert str(err) == (
        "refd exited with status 1 while booting.\ncommand: refd --nope\n"
        "last log lines:\nunknown flag: --nope"
    )
    assert str(BackendStartError("refd", [], None, "")).endswith("(no output)")


def test_readiness_timeout_says_what_was_tried() -> None:
    err = ReadinessTimeout(
        "dockerd", 60.04, "GET /_ping on unix:///x.sock", "starting up", hint="check containerd"
    )
    assert str(err) == (
        "dockerd was not ready after 60.0s (tried: GET /_ping on unix:///x.sock).\n"
        "check containerd\nlast log lines:\nstarting up"
    )
    assert "\n\n" not in str(ReadinessTimeout("x", 1, "t", "log"))


def test_errors_can_be_caught_as_one() -> None:
    with pytest.raises(HarnessError):
        raise ReadinessTimeout("x", 1, "t", "")
