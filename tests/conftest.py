"""A guard over the whole test session: the host's own network namespace must end as it began.

Every daemon a test boots belongs in a network namespace of its own. One that slips into the host's
namespace and is killed leaves ``docker0`` and its iptables rules behind (seen: three runs left three copies
of the MASQUERADE rule). The guard snapshots the host's links and iptables rules at session start, compares
at the end and fails the session naming what was added, so the leak is found by the test run that made it,
not by the next engineer.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

_SNAPSHOT = pytest.StashKey[tuple[frozenset[str], frozenset[str]]]()


def _links() -> frozenset[str]:
    """Names of the links in this (the host's) network namespace."""
    try:
        return frozenset(name for name in os.listdir("/sys/class/net"))
    except OSError:
        return frozenset()


def _iptables_rules() -> frozenset[str]:
    """Every rule line of ``iptables-save``, prefixed with its table; empty without root or iptables."""
    tool = shutil.which("iptables-save")
    if os.geteuid() != 0 or tool is None:
        return frozenset()
    try:
        out = subprocess.run([tool], capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    rules: set[str] = set()
    table = ""
    for line in out.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith("-A "):
            rules.add(f"{table} {line}")
        elif line.startswith(":"):  # a chain and its policy, without the packet counters that change
            rules.add(f"{table} {line.split(' [', 1)[0]}")
    return frozenset(rules)


def _is_docker_like(entry: str) -> bool:
    lowered = entry.lower()
    return any(mark in lowered for mark in ("docker", "br-", "veth", "172.17.", "refd", "harness"))


def pytest_sessionstart(session: pytest.Session) -> None:
    session.stash[_SNAPSHOT] = (_links(), _iptables_rules())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _SNAPSHOT not in session.stash or os.environ.get("HARNESS_SKIP_HOST_LEAK_GUARD") == "1":
        return
    links_before, rules_before = session.stash[_SNAPSHOT]
    added_links = sorted(name for name in _links() - links_before if _is_docker_like(name))
    added_rules = sorted(rule for rule in _iptables_rules() - rules_before if _is_docker_like(rule))
    if not added_links and not added_rules:
        return
    lines = ["host network namespace leak: this test session added to the host's own namespace"]
    lines += [f"  link {name}" for name in added_links]
    lines += [f"  iptables {rule}" for rule in added_rules]
    lines.append(
        "  a daemon was started outside a private network namespace: run it through LocalBackend or "
        "`unshare --net`; remove the leftovers with `ip link del <link>` and `iptables -D ...` "
        "(HARNESS_SKIP_HOST_LEAK_GUARD=1 silences this check)"
    )
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("\n".join(lines), red=True, bold=True)
    if session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
