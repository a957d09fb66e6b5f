"""Which of a moby integration package's tests start a dockerd of their own, found by reading its Go source.

moby's ``testutil/daemon`` starts ``dockerd`` from ``$PATH`` against the containerd of the machine's own
Docker (``/var/run/docker/containerd/containerd.sock``): on a shared host such a test drives the host's
dockerd, not the target under test, and some of them flush iptables or delete ``docker0``. The harness skips
them, with a recorded reason, by passing their names to the test binary's ``-test.skip``.

A top-level test is one of them when its body calls ``daemon.New``, ``daemon.NewDaemon`` or
``swarm.NewSwarm``, or calls (by name) a function of the same package that does, transitively. The source
is gofmt'd, so a top-level function ends at the first line that is exactly ``}``; a method is matched by its
name like a function (over-matching only skips more).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

__all__ = ["DAEMON_STARTERS", "OWN_DAEMON_REASON", "package_functions", "tests_starting_daemons"]

#: calls that start a dockerd of the test's own (moby's testutil/daemon and integration/internal/swarm)
DAEMON_STARTERS = ("daemon.New(", "daemon.NewDaemon(", "swarm.NewSwarm(")
OWN_DAEMON_REASON = (
    "starts a dockerd of its own (moby testutil/daemon runs the host's dockerd against the host's "
    "containerd, not the target under test); skipped by the harness"
)
_FUNC = re.compile(r"^func (?:\([^)]*\) )?(\w+)(?:\[[^\]]*\])?\(", re.M)
_TEST = re.compile(r"^Test[A-Z0-9_]\w*$|^Test$")
#: file name suffixes of other platforms: never compiled into a Linux test binary
_OTHER_OS = re.compile(
    r"_(windows|darwin|freebsd|openbsd|netbsd|solaris|illumos|aix|plan9|js|wasip1)(_test)?\.go$"
)


def package_functions(sources: Iterable[str]) -> dict[str, str]:
    """Every top-level function (and method) of the given Go sources: name -> body (bodies of the same name,
    e.g. methods of two types, are joined)."""
    bodies: dict[str, str] = {}
    for text in sources:
        matches = list(_FUNC.finditer(text))
        for m in matches:
            end = text.find("\n}\n", m.end())
            body = text[m.end() : len(text) if end < 0 else end]
            bodies[m.group(1)] = bodies.get(m.group(1), "") + body
    return bodies


def _starters(bodies: Mapping[str, str]) -> set[str]:
    starting = {name for name, body in bodies.items() if any(s in body for s in DAEMON_STARTERS)}
    calls = {name: set(re.findall(r"\b(\w+)\(", body)) for name, body in bodies.items()}
    changed = True
    while changed:
        changed = False
        for name, called in calls.items():
            if name not in starting and called & starting:
                starting.add(name)
                changed = True
    return starting


def _read_package(directory: str) -> list[str]:
    texts = []
    for entry in sorted(os.listdir(directory)):
        if not entry.endswith(".go") or _OTHER_OS.search(entry):
            continue
        with open(os.path.join(directory, entry), encoding="utf-8", errors="replace") as fh:
            texts.append(fh.read())
    return texts


def tests_starting_daemons(directory: str) -> list[str]:
    """The top-level tests of the Go package in ``directory`` that start a dockerd of their own, sorted."""
    bodies = package_functions(_read_package(directory))
    return sorted(name for name in _starters(bodies) if _TEST.match(name))
