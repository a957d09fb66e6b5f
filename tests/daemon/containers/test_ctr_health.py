"""refd's health checks: configuration (merge, validation, Go durations) and the monitor's state machine.

The probes themselves run as execs in real containers; the scenarios in suites/api/test_health.py
prove that against dockerd. Here the probe is replaced by a script of results.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from harness.daemon.containers.health import (
    HealthChecks,
    LimitedBuffer,
    check_health_filter,
    health_status,
    merge_healthcheck,
    probe_command,
    validate_healthcheck,
)
from harness.daemon.containers.model import Container
from harness.daemon.errors import ApiError
from harness.daemon.gotime import now_rfc3339
from harness.daemon.images.changes import ChangeError, apply_changes, empty_config


@pytest.mark.parametrize(
    "hc,message",
    [
        ({"Interval": 999_999}, "Interval in Healthcheck cannot be less than 1ms"),
        ({"Timeout": 1}, "Timeout in Healthcheck cannot be less than 1ms"),
        ({"StartPeriod": 10}, "StartPeriod in Healthcheck cannot be less than 1ms"),
        ({"StartInterval": 10}, "StartInterval in Healthcheck cannot be less than 1ms"),
        ({"Retries": -1}, "Retries in Healthcheck cannot be negative"),
    ],
)
def test_validation_refuses_what_dockerd_refuses(hc: dict[str, Any], message: str) -> None:
    with pytest.raises(ApiError) as err:
        validate_healthcheck({"Test": ["CMD", "true"], **hc})
    assert err.value.status == 400 and err.value.message == message


def test_validation_accepts_zero_and_one_millisecond() -> None:
    validate_healthcheck({"Test": ["CMD", "true"], "Interval": 0, "Timeout": 1_000_000, "Retries": 0})
    validate_healthcheck(None)


def test_merge_fills_the_requests_empty_fields_from_the_image() -> None:
    image = {"Healthcheck": {"Test": ["CMD", "img"], "Interval": 5_000_000_000, "Retries": 4}}
    assert merge_healthcheck({}, image) == image["Healthcheck"]
    assert merge_healthcheck({"Healthcheck": {"Timeout": 2_000_000_000, "Retries": 1}}, image) == {
        "Test": ["CMD", "img"],
        "Interval": 5_000_000_000,
        "Timeout": 2_000_000_000,
        "Retries": 1,
    }
    assert merge_healthcheck({"Healthcheck": {"Test": ["NONE"]}}, image) == {
        "Test": ["NONE"],
        "Interval": 5_000_000_000,
        "Retries": 4,
    }


def test_merge_without_image_healthcheck_keeps_the_request_as_go_marshals_it() -> None:
    assert merge_healthcheck({}, {}) is None
    assert merge_healthcheck({"Healthcheck": {}}, {}) == {}  # a pointer to an empty struct is shown
    assert merge_healthcheck(
        {"Healthcheck": {"Test": ["CMD-SHELL", "x"], "Interval": 0, "Timeout": 0, "Retries": 0}}, {}
    ) == {"Test": ["CMD-SHELL", "x"]}


def _container(hc: dict[str, Any] | None, **config: Any) -> Container:
    return Container(
        id="c" * 64,
        name="/hc",
        created=now_rfc3339(),
        path="sleep",
        args=["60"],
        config={**({"Healthcheck": hc} if hc is not None else {}), **config},
        host_config={},
        image_id="sha256:x",
        root="/nonexistent",
    )


def test_probe_command_by_type() -> None:
    assert probe_command(_container({"Test": ["CMD", "a", "b"]})) == ["a", "b"]
    assert probe_command(_container({"Test": ["CMD-SHELL", "a b"]})) == ["/bin/sh", "-c", "a b"]
    assert probe_command(_container({"Test": ["CMD-SHELL", "x"]}, Shell=["/bin/bash", "-ec"])) == [
        "/bin/bash",
        "-ec",
        "x",
    ]
    for hc in (None, {}, {"Test": ["NONE"]}, {"Test": ["WHAT", "x"]}):
        assert probe_command(_container(hc)) is None


def test_limited_buffer_cuts_at_4096_and_appends_dots() -> None:
    buf = LimitedBuffer()
    buf.write(b"a" * 4000)
    buf.write(b"b" * 200)
    assert buf.text() == "a" * 4000 + "b" * 96 + "..."
    small = LimitedBuffer()
    small.write(b"ok\n\xff")
    assert small.text() == "ok\n\ufffd"


def test_health_filter_values() -> None:
    check_health_filter(["none", "starting", "healthy", "unhealthy"])
    with pytest.raises(ApiError) as err:
        check_health_filter(["sick"])
    assert err.value.message == (
        "invalid filter 'health=sick': invalid value for health (sick): must be one of none, starting, "
        "healthy, unhealthy"
    )
    c = _container({"Test": ["CMD", "true"]})
    assert health_status(c) == "none"
    c.state["Health"] = {"Status": "", "FailingStreak": 0, "Log": []}
    assert health_status(c) == "unhealthy"


def test_ps_status_shows_health_but_not_while_paused() -> None:
    c = _container({"Test": ["CMD", "true"]})
    c.set_running(1)
    c.state["Health"] = {"Status": "starting", "FailingStreak": 0, "Log": []}
    assert c.human_status().endswith("(health: starting)")
    c.state["Health"]["Status"] = "healthy"
    assert c.human_status().endswith(" (healthy)")
    c.state.update(Status="paused", Paused=True)
    assert c.human_status().endswith(" (Paused)") and "healthy" not in c.human_status()


# -- the monitor, with a scripted probe ------------------------------------------------------------
class _Manager:
    def __init__(self) -> None:
        self.events: list[str] = []
        self.by_id: dict[str, Container] = {}
        self.execs: dict[str, Any] = {}
        quiet = SimpleNamespace(debug=lambda *a, **k: None, warning=lambda *a: None)
        self.daemon = SimpleNamespace(log=quiet)

    def emit(self, c: Container, action: str, **extra: str) -> None:
        self.events.append(action)
        self.health.on_event(c, action)

    health: HealthChecks


def _monitored(hc: dict[str, Any], results: list[int]) -> tuple[_Manager, HealthChecks, Container]:
    manager = _Manager()
    checks = HealthChecks(manager)  # type: ignore[arg-type]
    manager.health = checks
    c = _container(hc)
    script = iter(results)

    async def probe(_: Container) -> dict[str, Any]:
        code = next(script, 0)
        return {"End": now_rfc3339(), "ExitCode": code, "Output": f"exit {code}\n"}

    checks._probe = probe  # type: ignore[method-assign,assignment]
    c.set_running(1)
    return manager, checks, c


async def _until(predicate: Any, timeout: float = 5) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


def test_status_moves_starting_healthy_unhealthy_with_events() -> None:
    async def scenario() -> None:
        hc = {"Test": ["CMD", "x"], "Interval": 10_000_000, "Retries": 2}
        manager, checks, c = _monitored(hc, [0, 1, 1, 1, 1, 1, 1, 1])
        manager.emit(c, "start")
        assert c.state["Health"] == {"Status": "starting", "FailingStreak": 0, "Log": []}
        await _until(lambda: c.state["Health"]["FailingStreak"] >= 6)
        health = c.state["Health"]
        assert health["Status"] == "unhealthy" and len(health["Log"]) == 5
        assert [a for a in manager.events if a.startswith("health_status")] == [
            "health_status: healthy",
            "health_status: unhealthy",
        ]
        manager.emit(c, "die")
        assert health["Status"] == "unhealthy" and c.id not in checks.monitors

    asyncio.run(scenario())


def test_failures_in_the_start_period_do_not_count() -> None:
    async def scenario() -> None:
        hc = {
            "Test": ["CMD", "x"],
            "Interval": 60_000_000_000,
            "StartPeriod": 60_000_000_000,
            "StartInterval": 10_000_000,
            "Retries": 1,
        }
        manager, checks, c = _monitored(hc, [1, 1, 1, 0, 1])
        manager.emit(c, "start")
        await _until(lambda: len(c.state["Health"]["Log"]) >= 3)
        assert c.state["Health"]["Status"] == "starting" and c.state["Health"]["FailingStreak"] == 0
        await _until(lambda: c.state["Health"]["Status"] == "healthy")
        checks.stop(c)

    asyncio.run(scenario())


def test_pause_marks_unhealthy_unpause_resumes_start_resets() -> None:
    async def scenario() -> None:
        manager, checks, c = _monitored({"Test": ["CMD", "x"], "Interval": 10_000_000}, [0] * 100)
        c.save = lambda: None  # type: ignore[method-assign]
        manager.emit(c, "start")
        await _until(lambda: c.state["Health"]["Status"] == "healthy")
        c.state.update(Status="paused", Paused=True)
        manager.emit(c, "pause")
        assert c.state["Health"]["Status"] == "unhealthy" and c.id not in checks.monitors
        c.state.update(Status="running", Paused=False)
        manager.emit(c, "unpause")
        assert c.state["Health"]["Status"] == "unhealthy"  # until the next probe, as dockerd
        await _until(lambda: c.state["Health"]["Status"] == "healthy")
        manager.emit(c, "die")
        manager.emit(c, "start")
        assert c.state["Health"]["Status"] == "starting" and c.state["Health"]["Log"]
        manager.emit(c, "destroy")
        assert not checks.monitors

    asyncio.run(scenario())


def test_a_monitor_stopped_while_its_probe_ends_probes_no_more() -> None:
    """A stop that lands as the probe's output ends: Python 3.11's wait_for returns the ready result and
    drops the cancel, so the monitor must notice it was stopped by itself, or it probes (and emits exec
    events) for a container that is gone."""

    async def scenario() -> None:
        manager, checks, c = _monitored({"Test": ["CMD", "x"], "Interval": 10_000_000}, [])
        outputs: list[asyncio.Future[None]] = []

        async def probe(_: Container) -> dict[str, Any]:
            outputs.append(asyncio.get_running_loop().create_future())
            await asyncio.wait_for(asyncio.shield(outputs[-1]), 30)  # as _probe waits for the exec's output
            return {"End": now_rfc3339(), "ExitCode": 0, "Output": ""}

        checks._probe = probe  # type: ignore[method-assign,assignment]
        manager.emit(c, "start")
        monitor = checks.monitors[c.id]
        await _until(lambda: bool(outputs))
        outputs[-1].set_result(None)  # the container dies: the probe's output ends in the same step
        manager.emit(c, "die")
        manager.emit(c, "destroy")
        await _until(monitor.done)
        assert len(outputs) == 1 and manager.events[-2:] == ["die", "destroy"]

    asyncio.run(scenario())


def test_no_probe_no_health_state() -> None:
    async def scenario() -> None:
        manager, checks, c = _monitored({"Test": ["NONE"]}, [])
        manager.emit(c, "start")
        assert "Health" not in c.state and not checks.monitors

    asyncio.run(scenario())


# -- HEALTHCHECK in docker import/commit --change ---------------------------------------------------
def test_change_healthcheck_flags() -> None:
    out = apply_changes(
        empty_config(),
        [
            "HEALTHCHECK --interval=5s --timeout=1m --start-period=2s --start-interval=100ms --retries=4 "
            "CMD echo x"
        ],
    )
    assert out["Healthcheck"] == {
        "Test": ["CMD-SHELL", "echo x"],
        "Interval": 5_000_000_000,
        "Timeout": 60_000_000_000,
        "StartPeriod": 2_000_000_000,
        "StartInterval": 100_000_000,
        "Retries": 4,
    }
    assert apply_changes(empty_config(), ['HEALTHCHECK CMD ["true", "1"]'])["Healthcheck"] == {
        "Test": ["CMD", "true", "1"]
    }
    assert apply_changes(empty_config(), ["HEALTHCHECK NONE"])["Healthcheck"] == {"Test": ["NONE"]}


@pytest.mark.parametrize(
    "change,message",
    [
        ("HEALTHCHECK --interval=1us CMD x", 'Interval "interval" cannot be less than 1ms'),
        ("HEALTHCHECK --interval=abc CMD x", 'time: invalid duration "abc"'),
        ("HEALTHCHECK --retries=-1 CMD x", "--retries cannot be negative (-1)"),
        ("HEALTHCHECK --bogus=1 CMD x", "unknown flag: --bogus"),
        ("HEALTHCHECK --interval CMD x", "missing a value on flag: --interval"),
        ("HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments"),
        ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
        ("HEALTHCHECK RUN x", 'Unknown type "RUN" in HEALTHCHECK (try CMD)'),
    ],
)
def test_change_healthcheck_errors(change: str, message: str) -> None:
    with pytest.raises(ChangeError) as err:
        apply_changes(empty_config(), [change])
    assert str(err.value) == message
