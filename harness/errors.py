"""Harness errors. Each says what was tried and what to check, and carries its context."""

from __future__ import annotations

__all__ = [
    "BackendStartError",
    "ConfigValueError",
    "HarnessError",
    "ImageBuildError",
    "ReadinessTimeout",
    "TargetUnavailable",
]


class HarnessError(Exception):
    """Base of every error the harness raises on purpose."""


class TargetUnavailable(HarnessError):
    """A target cannot be booted here (missing binary, package, privilege)."""

    def __init__(self, target: str, reason: str, fix: str = "") -> None:
        self.target, self.reason, self.fix = target, reason, fix
        super().__init__(f"target {target!r} is unavailable: {reason}" + (f"; {fix}" if fix else ""))


class BackendStartError(HarnessError):
    """The daemon process exited during boot."""

    def __init__(self, target: str, command: list[str], returncode: int | None, log_tail: str) -> None:
        self.target, self.command, self.returncode, self.log_tail = target, command, returncode, log_tail
        super().__init__(
            f"{target} exited with status {returncode} while booting.\n"
            f"command: {' '.join(command)}\nlast log lines:\n{log_tail or '(no output)'}"
        )


class ReadinessTimeout(HarnessError):
    """The daemon did not become ready in time."""

    def __init__(self, target: str, waited: float, tried: str, log_tail: str, hint: str = "") -> None:
        self.target, self.waited, self.tried, self.log_tail = target, waited, tried, log_tail
        super().__init__(
            f"{target} was not ready after {waited:.1f}s (tried: {tried}).\n"
            f"{hint + chr(10) if hint else ''}last log lines:\n{log_tail or '(no output)'}"
        )


class ConfigValueError(HarnessError):
    """A harness option has a bad value; the message names where it came from."""


class ImageBuildError(HarnessError):
    """The test image could not be built."""
