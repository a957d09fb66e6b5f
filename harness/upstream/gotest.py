"""Run one Go test binary and turn its ``test2json`` events into per-test results.

Go's own ``test2json`` (built from the same Debian Go toolchain as the binaries) reads the binary's
``-test.v=test2json`` output and prints one JSON event per line (``run``, ``output``, ``pass``, ``fail``,
``skip``, ``pause``, ``cont``). :class:`EventFold` folds them into a :class:`GoTest` per test and subtest,
with the first line the test printed as the reason of a failure or a skip.

:func:`run_package` runs a binary to the end even when a test hangs or the binary dies: a watchdog kills the
binary's process group when one top-level test has run longer than ``test_timeout`` (that test, and its
subtests still running, are recorded as failed: timed out), and the binary is started again skipping every
test that already finished, until each listed test has a result or a round makes no progress.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

__all__ = [
    "EventFold",
    "GoTest",
    "PackageRun",
    "first_reason",
    "list_tests",
    "run_package",
    "skip_pattern",
]

_FRAMING = re.compile(r"^\s*(=== (RUN|PAUSE|CONT|NAME)|--- (PASS|FAIL|SKIP)|PASS$|FAIL$|ok\s|FAIL\s)")
#: a line Go's testing package starts with the caller's file and line (t.Log, t.Error, t.Skip, ...)
_LOCATED = re.compile(r"^\s{4}[\w.-]+\.go:\d+: ")
#: what marks a failure line among a test's log lines (gotest.tools' assert, testify, a panic)
_FAILURE = re.compile(r"assertion failed|Error Trace:|^\s*panic: |^\s*Error:")
_REASON_MAX = 500
_GO_OUTCOME = {"pass": "passed", "fail": "failed", "skip": "skipped"}
#: output lines of a binary that are no test's result (the final PASS/FAIL, coverage, exit status)
_TRAILER = re.compile(r"^(PASS|FAIL|ok\s|FAIL\s|exit status \d+|coverage: )")


@dataclass
class GoTest:
    """One test or subtest (``TestA/sub``): outcome (``passed``, ``failed``, ``skipped``; ``""`` while it
    runs), the reason (first line it printed when it failed or skipped), its elapsed seconds and output."""

    name: str
    outcome: str = ""
    reason: str = ""
    duration: float = 0.0
    output: list[str] = field(default_factory=list)
    started: float = 0.0

    @property
    def top(self) -> str:
        return self.name.split("/", 1)[0]


def first_reason(lines: Iterable[str], outcome: str = "failed") -> str:
    """The line that says why a test failed or skipped, stripped of its indentation (Go's framing left out).

    A test logs with the same ``file.go:N:`` prefix whether it reports progress (``t.Log``) or fails
    (``t.Fatal``), so: the first line that reads as a failure (an ``assertion failed`` of gotest.tools, a
    panic), else the last located line (a ``t.Fatal``/``t.Skip`` ends the test), else the first line.
    """
    own = [ln.rstrip("\n") for ln in lines]
    own = [ln for ln in own if ln.strip() and not _FRAMING.match(ln)]
    if not own:
        return ""
    chosen = own[0]
    marked = [ln for ln in own if _FAILURE.search(ln)] if outcome == "failed" else []
    located = [ln for ln in own if _LOCATED.match(ln)]
    if marked:
        chosen = marked[0]
    elif located:
        chosen = located[-1]
    return chosen.strip()[:_REASON_MAX]


class EventFold:
    """Fold ``test2json`` events into :class:`GoTest` results (in the order tests started)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.tests: dict[str, GoTest] = {}
        self.package_output: list[str] = []
        self._clock = clock

    def feed(self, event: Mapping[str, Any]) -> None:
        action = str(event.get("Action", ""))
        name = str(event.get("Test") or "")
        if not name:
            if action == "output":
                self.package_output.append(str(event.get("Output", "")))
            return
        test = self.tests.get(name)
        if test is None:
            test = self.tests[name] = GoTest(name, started=self._clock())
        if action == "output":
            test.output.append(str(event.get("Output", "")))
        elif action in _GO_OUTCOME:
            test.outcome = _GO_OUTCOME[action]
            test.duration = float(event.get("Elapsed") or 0.0)
            if test.outcome != "passed":
                test.reason = self._reason(test)

    def _reason(self, test: GoTest) -> str:
        """A failed parent whose own lines say nothing failed (build logs, say) names its failed subtests."""
        own = first_reason(test.output, test.outcome)
        if test.outcome == "failed" and not any(_FAILURE.search(line) for line in test.output):
            failed = [t for t in self.children(test.name) if t.outcome == "failed"]
            if failed:
                return self._fallback(test)
        return own or self._fallback(test)

    def _fallback(self, test: GoTest) -> str:
        if test.outcome == "skipped":
            return "skipped"
        failed = [t.name[len(test.name) + 1 :] for t in self.children(test.name) if t.outcome == "failed"]
        if failed:
            shown = ", ".join(failed[:5]) + (f" and {len(failed) - 5} more" if len(failed) > 5 else "")
            return f"subtests failed: {shown}"
        return "failed"

    def children(self, name: str) -> list[GoTest]:
        prefix = name + "/"
        return [
            t for t in self.tests.values() if t.name.startswith(prefix) and "/" not in t.name[len(prefix) :]
        ]

    def running(self) -> list[GoTest]:
        return [t for t in self.tests.values() if not t.outcome]

    def finished_tops(self) -> set[str]:
        return {t.name for t in self.tests.values() if "/" not in t.name and t.outcome}

    def expire(self, top: str, reason: str) -> None:
        """Record ``top`` and its unfinished subtests as failed with ``reason`` (the binary was killed)."""
        now = self._clock()
        for test in self.tests.values():
            if (test.name == top or test.name.startswith(top + "/")) and not test.outcome:
                test.outcome, test.reason = "failed", reason
                test.duration = round(now - test.started, 3)


def skip_pattern(names: Iterable[str]) -> str:
    """A ``-test.skip`` regexp matching exactly these top-level tests (``""`` for none)."""
    names = sorted(set(names))
    return f"^({'|'.join(re.escape(n) for n in names)})$" if names else ""


@dataclass
class PackageRun:
    """What running one test binary gave: its tests, what went wrong outside any test, how it ran."""

    tests: dict[str, GoTest] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    rounds: int = 0
    duration: float = 0.0

    def results(self) -> list[GoTest]:
        return list(self.tests.values())


def list_tests(argv: Sequence[str], env: Mapping[str, str], cwd: str, timeout: float = 120) -> list[str]:
    """The top-level tests a binary holds (``-test.list``); TestMain runs first, so it needs the daemon."""
    try:
        res = subprocess.run(
            [*argv, "-test.list", ".*"],
            env=dict(env),
            cwd=cwd,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(
            f"listing the tests took longer than {timeout:.0f}s: {_tail(exc.stdout)}"
        ) from None
    names = [ln.strip() for ln in res.stdout.splitlines() if re.fullmatch(r"Test\w*", ln.strip())]
    if res.returncode != 0:
        output = res.stdout + res.stderr
        panic = next((ln.strip() for ln in output.splitlines() if ln.startswith("panic: ")), "")
        raise RuntimeError(
            f"listing the tests exited {res.returncode}: {panic + ' ... ' if panic else ''}{_tail(output)}"
        )
    return names


def _tail(text: Any, lines: int = 8) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return " | ".join(str(text or "").strip().splitlines()[-lines:]) or "(no output)"


def run_package(
    argv: Sequence[str],
    test2json: str,
    package: str,
    *,
    tests: Sequence[str],
    skip: Mapping[str, str] | None = None,
    env: Mapping[str, str],
    cwd: str,
    test_timeout: float = 300.0,
    max_rounds: int = 20,
    log: IO[str] | None = None,
    flags: Sequence[str] = (),
) -> PackageRun:
    """Run the binary (``argv``: any wrapper, then the binary) under ``test2json`` until every test in
    ``tests`` has a result; see the module docstring for hangs and crashes. Only ``tests`` run
    (``-test.run``); the ones in ``skip`` (name -> reason) never do, whatever ``tests`` holds: each listed
    one is recorded as skipped with its reason."""
    fold = EventFold()
    run = PackageRun(tests=fold.tests)
    never = set(skip or {})
    skipped = never & set(tests)
    run_pattern = skip_pattern(tests)
    started = time.monotonic()
    while run.rounds < max_rounds:
        done = fold.finished_tops()
        todo = [t for t in tests if t not in done and t not in skipped]
        if not todo:
            break
        run.rounds += 1
        before = len(done)
        pattern = skip_pattern(never | done)
        cmd = [test2json, "-t", "-p", package, *argv, "-test.v=test2json", "-test.count=1", "-test.timeout=0"]
        cmd += [*flags, "-test.run", run_pattern, *(["-test.skip", pattern] if pattern else [])]
        code, timed_out = _one_round(cmd, env, cwd, fold, test_timeout, log)
        if timed_out:
            continue  # the killed test has its result; start again with the rest
        for test in fold.running():  # the binary died under it (a panic, a kill): start again without it
            test.outcome = "failed"
            test.reason = first_reason(test.output) or f"the test binary exited {code} while this test ran"
        if code != 0 and not fold.tests:
            run.problems.append(
                f"the test binary exited {code} before any test ran: {_tail(''.join(fold.package_output))}"
            )
            break
        if len(fold.finished_tops()) == before:
            missing = [t for t in tests if t not in fold.finished_tops() and t not in skipped]
            run.problems.append(
                f"the test binary exited {code} without finishing {', '.join(missing[:10])}"
                f"{' ...' if len(missing) > 10 else ''}: {_tail(''.join(fold.package_output))}"
            )
            break
    for name in sorted(skipped):
        fold.tests[name] = GoTest(name, "skipped", (skip or {})[name])
    run.duration = round(time.monotonic() - started, 3)
    return run


def _one_round(
    cmd: Sequence[str],
    env: Mapping[str, str],
    cwd: str,
    fold: EventFold,
    test_timeout: float,
    log: IO[str] | None,
) -> tuple[int, bool]:
    """One run of the binary: (exit code, whether the watchdog killed it for a hung test)."""
    proc = subprocess.Popen(
        list(cmd),
        env=dict(env),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    assert proc.stdout is not None
    lock = threading.Lock()
    hung: list[str] = []

    def watchdog() -> None:
        while proc.poll() is None:
            now = time.monotonic()
            with lock:
                late = [
                    t.name for t in fold.running() if "/" not in t.name and now - t.started > test_timeout
                ]
            if late:
                hung.extend(late)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                return
            time.sleep(1.0)

    dog = threading.Thread(target=watchdog, name="gotest-watchdog", daemon=True)
    dog.start()
    with proc:
        for raw in proc.stdout:
            line = raw.decode(errors="replace")
            try:
                event = json.loads(line)
            except ValueError:
                event = {"Action": "output", "Output": line}  # test2json's own complaints
            if not isinstance(event, dict):
                continue
            with lock:
                fold.feed(event)
            if log is not None and event.get("Action") in ("pass", "fail", "skip") and event.get("Test"):
                log.write(f"{event['Action']:<4} {event['Test']}\n")
                log.flush()
    code = proc.wait()
    dog.join(timeout=5)
    for name in hung:
        fold.expire(
            name, f"timed out: still running after {test_timeout:.0f}s, so the harness killed the test binary"
        )
    return code, bool(hung)
