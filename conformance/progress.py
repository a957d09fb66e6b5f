"""A small pytest plugin the runner loads (``-p conformance.progress``) to follow a target's run.

When ``CONFORMANCE_PROGRESS_FILE`` names a file, it appends one JSON object per line to it:

- ``{"event": "collected", "count": N}`` once the session knows its tests (after ``-k`` and sharding);
- ``{"event": "start", "id": ID}`` when a test starts;
- ``{"event": "done", "id": ID, "outcome": "passed|failed|skipped|error", "reason": "..."}`` when it ends
  (``reason``: the first line of the failure or skip message).

``ID`` is the scenario id when the test is a scenario, else its node id. The runner tails the file to draw
progress (``conformance.ui``); without the variable the plugin does nothing. It never changes a test's
outcome, and the harness plugin's results file stays the only record of what happened.
"""

from __future__ import annotations

import json
import os
from typing import IO, Any

import pytest

__all__ = ["ENV"]

ENV = "CONFORMANCE_PROGRESS_FILE"


class _Progress:
    def __init__(self, path: str) -> None:
        self._fh: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed at unconfigure)
        os.set_inheritable(self._fh.fileno(), False)  # daemons the tests spawn must not hold it
        self._ids: dict[str, str] = {}
        self._outcomes: dict[str, tuple[str, str]] = {}

    def emit(self, **event: Any) -> None:
        try:
            self._fh.write(json.dumps(event, ensure_ascii=False) + "\n")
            self._fh.flush()
        except (OSError, ValueError):  # a full disk or a closed file must not fail the tests
            pass

    def close(self) -> None:
        self._fh.close()

    def _id(self, nodeid: str) -> str:
        return self._ids.get(nodeid, nodeid)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        for item in session.items:
            mark = item.get_closest_marker("scenario")
            if mark is not None and mark.args and isinstance(mark.args[0], str):
                self._ids[item.nodeid] = mark.args[0]
        self.emit(event="collected", count=len(session.items))

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        self.emit(event="start", id=self._id(nodeid))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        current = self._outcomes.get(report.nodeid)
        reason = _reason(report)
        if report.when == "setup":
            if report.failed:
                self._outcomes[report.nodeid] = ("error", reason)
            elif report.skipped:
                self._outcomes[report.nodeid] = ("skipped", reason)
        elif report.when == "call":
            outcome = "skipped" if report.skipped else ("failed" if report.failed else "passed")
            self._outcomes[report.nodeid] = (outcome, reason)
        elif report.failed and (current is None or current[0] in ("passed", "skipped")):
            self._outcomes[report.nodeid] = ("error", reason)  # teardown failed

    def pytest_runtest_logfinish(self, nodeid: str, location: Any) -> None:
        outcome, reason = self._outcomes.pop(nodeid, ("passed", ""))
        self.emit(event="done", id=self._id(nodeid), outcome=outcome, reason=reason)


def _reason(report: pytest.TestReport) -> str:
    if report.passed:
        return ""
    if report.skipped and isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        text = str(report.longrepr[2]).removeprefix("Skipped: ")
    else:
        crash = getattr(report.longrepr, "reprcrash", None)
        text = str(getattr(crash, "message", "") or report.longreprtext or "")
    line = (text.strip().splitlines() or [""])[0]
    return line[:300]


_KEY = pytest.StashKey[_Progress]()


def pytest_configure(config: pytest.Config) -> None:
    path = os.environ.get(ENV)
    if not path:
        return
    try:
        progress = _Progress(path)
    except OSError:
        return
    config.stash[_KEY] = progress
    config.pluginmanager.register(progress, "conformance-progress")


def pytest_unconfigure(config: pytest.Config) -> None:
    progress = config.stash.get(_KEY, None)
    if progress is not None:
        progress.close()
