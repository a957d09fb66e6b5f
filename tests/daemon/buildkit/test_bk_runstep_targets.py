"""RUN --mount targets relative to the step's working directory, made absolute as BuildKit's frontend does."""

from __future__ import annotations

import pytest

from harness.daemon.buildkit.runstep import _absolute_target


@pytest.mark.parametrize(
    ("mount", "workdir", "expected"),
    [
        ({"type": "cache", "target": "cache"}, "/w", {"type": "cache", "target": "/w/cache"}),
        ({"type": "bind", "dst": "../up"}, "/w/x", {"type": "bind", "dst": "/w/up"}),
        ({"type": "tmpfs", "destination": "t"}, "/", {"type": "tmpfs", "destination": "/t"}),
        ({"type": "bind", "target": "/abs"}, "/w", {"type": "bind", "target": "/abs"}),
        ({"type": "secret", "id": "s"}, "/w", {"type": "secret", "id": "s"}),
    ],
)
def test_relative_targets_are_taken_from_the_working_directory(
    mount: dict[str, str], workdir: str, expected: dict[str, str]
) -> None:
    before = dict(mount)
    assert _absolute_target(mount, workdir) == expected
    assert mount == before  # the parsed mount is left as it was
