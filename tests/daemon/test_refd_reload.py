"""SIGHUP reload against the original flags (spec 2)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from harness.daemon.config import load_config
from harness.daemon.events import EventBus
from harness.daemon.flags import parse_args
from harness.daemon.log import Logger
from harness.daemon.reload import reload_config


def _daemon(tmp_path: Path, doc: object, *args: str) -> tuple[Any, Any, io.StringIO]:
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps(doc))
    flags = parse_args(["--config-file", str(path), *args])
    config = load_config(flags)
    stream = io.StringIO()
    log = Logger(stream, level="debug" if config["debug"] else config["log-level"])
    daemon = SimpleNamespace(
        config=config,
        log=log,
        events=EventBus(),
        engine_id="ID",
        name="host",
        cgroup_version="2",
        public_config=lambda: {"debug": config["debug"]},
    )
    return daemon, flags, stream


def _reload(tmp_path: Path, daemon: Any, flags: Any, doc: object) -> bool:
    (tmp_path / "daemon.json").write_text(json.dumps(doc))
    return bool(reload_config(daemon, flags))


def test_label_conflict_is_logged_bare_and_nothing_applied(tmp_path: Path) -> None:
    daemon, flags, stream = _daemon(tmp_path, {"labels": ["a=1"]})
    assert not _reload(tmp_path, daemon, flags, {"labels": ["x=1", "x=2"]})
    assert 'error="conflict labels for x=2 and x=1"' in stream.getvalue()
    assert daemon.config["label"] == ["a=1"]


def test_reload_validation_error_is_wrapped(tmp_path: Path) -> None:
    daemon, flags, stream = _daemon(tmp_path, {})
    assert not _reload(tmp_path, daemon, flags, {"max-concurrent-downloads": -1})
    expected = 'error="file configuration validation failed: invalid max concurrent downloads: -1"'
    assert expected in stream.getvalue()


def test_debug_true_enables_debug_logging(tmp_path: Path) -> None:
    daemon, flags, _ = _daemon(tmp_path, {}, "--log-level=warn")
    assert daemon.log.level == "warning"
    assert _reload(tmp_path, daemon, flags, {"debug": True})
    assert daemon.log.level == "debug" and daemon.config["debug"] is True


def test_debug_false_after_true_sets_info(tmp_path: Path) -> None:
    daemon, flags, _ = _daemon(tmp_path, {}, "--log-level=warn")
    assert _reload(tmp_path, daemon, flags, {"debug": True})
    assert _reload(tmp_path, daemon, flags, {"debug": False})
    assert daemon.log.level == "info"
