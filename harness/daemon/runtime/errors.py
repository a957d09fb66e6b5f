"""Errors of the container runtime, with the texts runc and dockerd show.

The runtime runs in a forked child until ``execve``; what goes wrong there travels to the
parent as text and is raised as :class:`ContainerStartError`. The texts follow runc's
(``exec: "x": executable file not found in $PATH``) because dockerd shows them wrapped as
``OCI runtime create failed: runc create failed: unable to start container process: ...``;
the caller adds that wrapping, this module gives the inner text only.
"""

from __future__ import annotations

import os

__all__ = ["CgroupError", "ContainerStartError", "RuntimeFailure", "go_strerror"]


def go_strerror(errno_: int) -> str:
    """``strerror`` spelled as Go prints ``syscall.Errno`` (lower-case first letter), as in runc's texts."""
    text = os.strerror(errno_)
    return text[:1].lower() + text[1:] if text else f"errno {errno_}"


class RuntimeFailure(Exception):
    """Base of the runtime's own errors: each carries a message meant for a user."""


class ContainerStartError(RuntimeFailure):
    """The container process could not be started; ``str()`` is runc's inner message."""

    def __init__(self, message: str, errno_: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.errno = errno_


class CgroupError(RuntimeFailure):
    """A cgroup operation failed; says which file and value, like runc's cgroup errors."""

    def __init__(self, message: str, errno_: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.errno = errno_
