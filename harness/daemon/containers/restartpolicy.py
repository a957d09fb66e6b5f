"""Restart policies (moby ``restartmanager``): whether an exited container starts again, and when.

``always`` and ``unless-stopped`` restart a container that exited on its own; ``on-failure`` one that
exited non-zero, at most ``MaximumRetryCount`` times (0: no limit); ``no`` never. A container stopped
by a client (stop, rm -f, a kill with its stop signal or SIGKILL) is not restarted; one a client sent
another signal is, unless its policy is ``unless-stopped``. Each restart waits twice as long as the one
before, from 100 ms up to a minute.
"""

from __future__ import annotations

from typing import Any

from ..errors import invalid

__all__ = ["restart_delay", "restarts_at_boot", "should_restart", "validate_restart_policy"]

_FIRST_DELAY = 0.1
_MAX_DELAY = 60.0


def should_restart(
    policy: dict[str, Any] | None,
    exit_code: int,
    restart_count: int,
    manually_stopped: bool,
    canceled: bool = False,
) -> bool:
    """Whether a container that exited with ``exit_code``, restarted ``restart_count`` times, restarts.

    ``canceled``: its restart manager was told to let the next exit be the last (a stop, or a kill with
    its stop signal or SIGKILL); ``manually_stopped``: a client signalled it (only ``unless-stopped``
    minds that alone)."""
    if canceled:
        return False
    policy = policy or {}
    name = policy.get("Name", "no")
    if name == "always":
        return True
    if name == "unless-stopped":
        return not manually_stopped
    if name == "on-failure" and exit_code != 0:
        limit = int(policy.get("MaximumRetryCount") or 0)
        return not limit or restart_count < limit
    return False


def restarts_at_boot(policy: dict[str, Any] | None, exit_code: int, manually_stopped: bool) -> bool:
    """moby daemon.restore: whether a container started before starts again with the daemon, its restart
    manager new (``always`` even after a stop by hand; ``unless-stopped`` unless stopped by hand;
    ``on-failure`` after a failure)."""
    name = (policy or {}).get("Name", "no")
    if name == "always":
        return True
    if name == "unless-stopped":
        return not manually_stopped
    return name == "on-failure" and exit_code != 0


def restart_delay(restart_count: int) -> float:
    """Seconds before restart number ``restart_count`` (1 for the first)."""
    return min(_FIRST_DELAY * float(2 ** min(restart_count - 1, 10)), _MAX_DELAY)


def validate_restart_policy(policy: dict[str, Any]) -> None:
    """moby ValidateRestartPolicy (create and update): a known name (empty: none given); a retry count
    only with on-failure, never negative; dockerd's wording."""
    name, retries = policy.get("Name", ""), int(policy.get("MaximumRetryCount") or 0)
    if name in ("always", "unless-stopped", "no"):
        if retries:
            suffix = " and cannot be negative" if retries < 0 else ""
            raise invalid(
                f"invalid restart policy: maximum retry count can only be used with 'on-failure'{suffix}"
            )
    elif name == "on-failure":
        if retries < 0:
            raise invalid("invalid restart policy: maximum retry count cannot be negative")
    elif name:
        raise invalid(
            f"invalid restart policy: unknown policy '{name}'; use one of 'no', 'always', 'on-failure', "
            "or 'unless-stopped'"
        )
