"""SIGHUP reload: what applies, what is ignored, what fails and the reload event (spec 2)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from harness.backends.base import DaemonHandle
from harness.client import EngineClient
from harness.fixtures import DaemonFactory, Observations
from harness.wait import wait_until
from suites._daemon import info as _info


def _rewrite(daemon: DaemonHandle, config: dict[str, Any] | str) -> None:
    with open(daemon.config_path, "w") as fh:
        fh.write(config if isinstance(config, str) else json.dumps(config))


def _reload(daemon: DaemonHandle, config: dict[str, Any] | str) -> str:
    """Rewrite daemon.json, SIGHUP, and return the log written by the reload."""
    _rewrite(daemon, config)
    start = len(daemon.logs())
    daemon.reload()
    assert wait_until(
        lambda: "Reloaded configuration" in daemon.logs()[start:] or "level=error" in daemon.logs()[start:],
        10,
    ), daemon.log_tail()
    return daemon.logs()[start:]


@pytest.mark.scenario(
    "config/reload/labels-and-debug",
    "SIGHUP MUST apply labels and debug from daemon.json, visible in /info",
    ref="spec 2.2",
)
def test_reload_labels_debug(daemon_factory: DaemonFactory, observe: Observations) -> None:
    daemon = daemon_factory(config={"labels": ["a=1"]})
    before = _info(daemon)
    log = _reload(daemon, {"labels": ["b=2", "c=3"], "debug": True})
    # dockerd logs "Reloaded configuration" before its reload callback turns debug on: poll briefly
    infos = [_info(daemon)]

    def debug_on() -> bool:
        if not infos[-1]["Debug"]:
            infos.append(_info(daemon))
        return bool(infos[-1]["Debug"])

    wait_until(debug_on, 5, interval=0.1)
    after = infos[-1]

    observe("before", {"Labels": sorted(before["Labels"]), "Debug": before["Debug"]})
    observe("after", {"Labels": sorted(after["Labels"]), "Debug": after["Debug"]})
    observe("logged_success", "Reloaded configuration" in log)
    assert sorted(after["Labels"]) == ["b=2", "c=3"] and after["Debug"] is True


@pytest.mark.scenario(
    "config/reload/absent-keys-kept",
    "Keys absent from the reloaded file (labels, debug) MUST keep their current values",
    ref="spec 2.2",
)
def test_reload_absent_kept(daemon_factory: DaemonFactory, observe: Observations) -> None:
    daemon = daemon_factory(config={"labels": ["b=2"], "debug": True})
    _reload(daemon, {})
    info = _info(daemon)
    observe("Labels", info["Labels"])
    observe("Debug", info["Debug"])
    assert info["Labels"] == ["b=2"] and info["Debug"] is True


@pytest.mark.parametrize(
    "bad,expected",
    [
        ('{"debug": true,', "unexpected end of JSON input"),
        ({"foo": 1}, "the following directives don't match any configuration option: foo"),
        ({"max-concurrent-downloads": -1}, "invalid max concurrent downloads: -1"),
        ({"labels": ["x=1", "x=2"]}, "conflict labels for x=2 and x=1"),
    ],
)
@pytest.mark.scenario(
    "config/reload/invalid-file-kept-running",
    "An invalid file on SIGHUP MUST be logged at error level and the daemon MUST keep running with "
    "its previous configuration",
    ref="spec 2.1 step 7",
)
def test_reload_invalid(
    daemon_factory: DaemonFactory, observe: Observations, bad: Any, expected: str
) -> None:
    daemon = daemon_factory(config={"labels": ["keep=1"]})
    log = _reload(daemon, bad)
    error_lines = [ln for ln in log.splitlines() if "level=error" in ln]
    info = _info(daemon)
    key = expected.split(":")[0][:40]
    observe(
        key,
        {
            "error_logged": bool(error_lines) and expected in error_lines[0],
            "alive": daemon.returncode is None,
            "labels": info["Labels"],
        },
    )
    assert error_lines and expected in error_lines[0]
    assert daemon.returncode is None and info["Labels"] == ["keep=1"]


@pytest.mark.scenario(
    "config/reload/flag-conflict",
    "A reloaded key that was also given as a flag MUST be refused as a conflict",
    ref="spec 2.1",
)
def test_reload_flag_conflict(daemon_factory: DaemonFactory, observe: Observations) -> None:
    daemon = daemon_factory(args=["--shutdown-timeout=7"])
    log = _reload(daemon, {"shutdown-timeout": 9})
    conflict = (
        "the following directives are specified both as a flag and in the configuration file: "
        "shutdown-timeout: (from flag: 7, from file: 9)"
    )
    observe("conflict_logged", conflict in log)
    assert conflict in log


@pytest.mark.scenario(
    "config/reload/non-reloadable-ignored",
    "Non-reloadable keys (storage-driver, log-level) MUST be ignored silently on reload",
    ref="spec 2.2",
)
def test_reload_ignores(daemon_factory: DaemonFactory, observe: Observations) -> None:
    daemon = daemon_factory()
    driver = _info(daemon)["Driver"]
    log = _reload(daemon, {"storage-driver": "vfs", "log-level": "warn"})
    observe("errors", [ln for ln in log.splitlines() if "level=error" in ln])
    observe("driver_unchanged", _info(daemon)["Driver"] == driver)
    assert "Reloaded configuration" in log and _info(daemon)["Driver"] == driver


@pytest.mark.scenario(
    "config/reload/event",
    "A successful reload MUST emit a daemon 'reload' event whose string attributes carry the new values",
    ref="spec 2.1 step 6; moby daemon/reload.go",
)
def test_reload_event(daemon_factory: DaemonFactory, observe: Observations) -> None:
    daemon = daemon_factory(config={"labels": ["a=1"]})
    assert daemon.endpoint is not None
    since = time.time() - 1
    _reload(
        daemon,
        {
            "labels": ["b=2"],
            "debug": True,
            "insecure-registries": ["myreg:5000"],
            "max-concurrent-downloads": 7,
        },
    )
    info = _info(daemon)
    client = EngineClient(daemon.endpoint)
    try:
        resp = client.get(f"/events?since={since:.0f}&until={time.time() + 1:.0f}")
    finally:
        client.close()
    events = [json.loads(line) for line in resp.text.splitlines() if line.strip()]
    reloads = [e for e in events if e.get("Type") == "daemon" and e.get("Action") == "reload"]
    assert reloads, resp.text
    attrs = reloads[0]["Actor"]["Attributes"]
    wanted = (
        "debug",
        "labels",
        "insecure-registries",
        "max-concurrent-downloads",
        "max-concurrent-uploads",
        "max-download-attempts",
        "live-restore",
        "shutdown-timeout",
        "default-runtime",
    )
    observe("attributes", {k: attrs.get(k) for k in wanted})
    observe("actor_is_daemon_id", reloads[0]["Actor"]["ID"] == info["ID"])
    observe("all_strings", all(isinstance(v, str) for v in attrs.values()))
    observe("scope", reloads[0].get("scope"))
    assert attrs["labels"] == '["b=2"]' and attrs["max-concurrent-downloads"] == "7"


@pytest.mark.scenario(
    "config/reload/downloads-reset",
    "max-concurrent-downloads MUST return to its default (3) when absent from the reloaded file",
    ref="spec 2.2",
)
def test_reload_reset_downloads(daemon_factory: DaemonFactory, observe: Observations) -> None:
    daemon = daemon_factory(config={"max-concurrent-downloads": 7})
    assert daemon.endpoint is not None
    since = time.time() - 1
    _reload(daemon, {"debug": False})
    client = EngineClient(daemon.endpoint)
    try:
        text = client.get(f"/events?since={since:.0f}&until={time.time() + 1:.0f}").text
    finally:
        client.close()
    reload_events = [json.loads(ln) for ln in text.splitlines() if '"reload"' in ln]
    value = reload_events[-1]["Actor"]["Attributes"]["max-concurrent-downloads"] if reload_events else None
    observe("max-concurrent-downloads", value)
    assert value == "3"
