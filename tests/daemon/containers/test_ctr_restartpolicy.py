"""Restart policies: which exits restart a container, and the backoff between restarts."""

from __future__ import annotations

from typing import Any

import pytest

from harness.daemon.containers.restartpolicy import restart_delay, should_restart


@pytest.mark.parametrize(
    ("policy", "code", "count", "manual", "canceled", "restart"),
    [
        (None, 1, 0, False, False, False),
        ({"Name": "no"}, 1, 0, False, False, False),
        ({"Name": "always"}, 0, 5, False, False, True),
        ({"Name": "always"}, 0, 0, True, True, False),  # stopped by a client
        ({"Name": "always"}, 0, 0, True, False, True),  # a client's signal that is not the stop signal
        ({"Name": "unless-stopped"}, 0, 0, False, False, True),
        ({"Name": "unless-stopped"}, 0, 0, True, False, False),
        ({"Name": "on-failure"}, 0, 0, False, False, False),
        ({"Name": "on-failure"}, 2, 100, False, False, True),  # no MaximumRetryCount: no limit
        ({"Name": "on-failure"}, 2, 0, False, True, False),
        ({"Name": "on-failure", "MaximumRetryCount": 3}, 2, 2, False, False, True),
        ({"Name": "on-failure", "MaximumRetryCount": 3}, 2, 3, False, False, False),
    ],
)
def test_which_exits_restart(
    policy: dict[str, Any] | None, code: int, count: int, manual: bool, canceled: bool, restart: bool
) -> None:
    assert should_restart(policy, code, count, manual, canceled) is restart


def test_backoff_doubles_from_100ms_up_to_a_minute() -> None:
    assert [restart_delay(n) for n in (1, 2, 3, 4)] == [0.1, 0.2, 0.4, 0.8]
    assert restart_delay(10) == pytest.approx(51.2)
    assert restart_delay(11) == 60.0 and restart_delay(50) == 60.0
