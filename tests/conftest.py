"""A guard over the whole test session: the host's own network namespace must end as it began, and no
refd process the session started may outlive it.

Every daemon a test boots belongs in a network namespace of its own. One that slips into the host's
namespace and is killed leaves ``docker0`` and its iptables rules behind (seen: three runs left three copies
of the MASQUERADE rule). The guard snapshots the host's links and iptables rules at session start, compares
at the end and fails the session naming what was added, so the leak is found by the test run that made it,
not by the next engineer.

Processes: the session puts a mark of its own in the environment (``HARNESS_LEAK_MARK``, which the local
backend hands to the daemons it boots, and refd to its zygote, shims and shim hosts); a refd, zygote, shim or
shim host carrying it after the session (given a few seconds to finish) is a leak (seen: a shim host with no
container left lived on for 1 h 40 min after its refd stopped). The guard names each and kills it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import uuid

import pytest

_SNAPSHOT = pytest.StashKey[tuple[frozenset[str], frozenset[str]]]()
#: the environment variable carrying this session's mark into every daemon process it starts
LEAK_MARK = "HARNESS_LEAK_MARK"
_PROCESS_GRACE = 10.0  # seconds a finished session's refd processes get to end on their own


def _marked_processes(mark: str) -> dict[int, str]:
    """refd's processes (``-m harness.daemon...``) whose environment carries ``mark``: pid -> command line."""
    found: dict[int, str] = {}
    wanted = f"{LEAK_MARK}={mark}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")
            if not any(arg.startswith(b"harness.daemon") for arg in argv):
                continue
            with open(f"/proc/{entry}/environ", "rb") as fh:
                if wanted not in fh.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue  # a zombie is its parent's to reap, not a running leak
        except OSError:
            continue
        found[int(entry)] = b" ".join(argv).decode(errors="replace").strip()
    return found


def _leaked_processes(mark: str) -> list[str]:
    """What still runs with ``mark`` after the grace period, each killed once named."""
    from harness.wait import wait_until

    if wait_until(lambda: not _marked_processes(mark), timeout=_PROCESS_GRACE, interval=0.2):
        return []
    lines = []
    for pid, argv in sorted(_marked_processes(mark).items()):
        lines.append(f"  process {pid}: {argv}")
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return lines


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
    os.environ.setdefault(LEAK_MARK, uuid.uuid4().hex)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _SNAPSHOT not in session.stash or os.environ.get("HARNESS_SKIP_HOST_LEAK_GUARD") == "1":
        return
    links_before, rules_before = session.stash[_SNAPSHOT]
    added_links = sorted(name for name in _links() - links_before if _is_docker_like(name))
    added_rules = sorted(rule for rule in _iptables_rules() - rules_before if _is_docker_like(rule))
    lines = []
    if added_links or added_rules:
        lines = ["host network namespace leak: this test session added to the host's own namespace"]
        lines += [f"  link {name}" for name in added_links]
        lines += [f"  iptables {rule}" for rule in added_rules]
        lines.append(
            "  a daemon was started outside a private network namespace: run it through LocalBackend or "
            "`unshare --net`; remove the leftovers with `ip link del <link>` and `iptables -D ...` "
            "(HARNESS_SKIP_HOST_LEAK_GUARD=1 silences this check)"
        )
    processes = _leaked_processes(os.environ[LEAK_MARK]) if os.environ.get(LEAK_MARK) else []
    if processes:
        lines.append(
            f"refd process leak: still running {_PROCESS_GRACE:g} s after this test session (now killed)"
        )
        lines += processes
        lines.append(
            "  a refd, zygote, shim or shim host outlived the daemon that started it: a teardown that does "
            "not kill its namespace, or a shim host that never ends (HARNESS_SKIP_HOST_LEAK_GUARD=1 "
            "silences this check)"
        )
    if not lines:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("\n".join(lines), red=True, bold=True)
    if session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
