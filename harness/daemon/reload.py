"""SIGHUP configuration reload with dockerd 28's semantics (spec 2).

The file is re-parsed against the *original* command-line flags; only reloadable keys
apply; some keep their value when absent, the download limits reset to defaults; any
error is logged and the running configuration is left untouched (transactional).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .config import (
    RELOADABLE,
    RESET_WHEN_ABSENT,
    ConfigError,
    conflict_free_labels,
    merge_file,
    read_config_file,
)
from .config import _find_problems as find_problems
from .events import make_event
from .flags import FLAGS, ParsedFlags, go_format

if TYPE_CHECKING:
    from .daemon import Daemon

__all__ = ["reload_config"]

_NAME_BY_KEY = {f.file_key: f.name for f in FLAGS}


def _load(daemon: Daemon, flags: ParsedFlags) -> tuple[dict[str, Any], dict[str, Any]]:
    path = daemon.config.config_file
    prefix = f"unable to configure the Docker daemon with file {path}: "
    try:
        file_cfg = read_config_file(path)
    except FileNotFoundError:
        if flags.was_set("config-file"):
            raise ConfigError(f"{prefix}open {path}: no such file or directory") from None
        file_cfg = {}
    except OSError as exc:
        raise ConfigError(f"{prefix}open {path}: {(exc.strerror or str(exc)).lower()}") from None
    except ConfigError as exc:
        raise ConfigError(prefix + str(exc)) from None
    try:
        find_problems(file_cfg, flags)
        merged = merge_file(file_cfg, flags)
    except ConfigError as exc:
        raise ConfigError(prefix + str(exc)) from None
    return file_cfg, merged


def reload_config(daemon: Daemon, flags: ParsedFlags) -> bool:
    """Apply a reload; returns True on success. Never raises: errors are logged."""
    log = daemon.log
    log.info("Got signal to reload configuration", **{"config-file": daemon.config.config_file})
    try:
        file_cfg, merged = _load(daemon, flags)
        from .config import validate

        try:
            validate(merged)
        except ConfigError as exc:
            raise ConfigError(f"file configuration validation failed: {exc}") from None
        labels = conflict_free_labels(list(merged.get("label") or []))
    except ConfigError as exc:
        log.error("Error reloading configuration", error=str(exc))
        return False
    values = daemon.config.values
    new = dict(values)
    for key in RELOADABLE:
        name = _NAME_BY_KEY.get(key, key)
        if key in file_cfg:
            new[name] = labels if name == "label" else merged.get(name, file_cfg[key])
        elif key in RESET_WHEN_ABSENT and not flags.was_set(name):
            new[name] = RESET_WHEN_ABSENT[key]
            log.debug(
                f"Reset {key.replace('-', ' ').title().replace('Concurrent', 'Concurrent')}: "
                f"{RESET_WHEN_ABSENT[key]}"
            )
    if "features" in file_cfg:
        new["features"] = file_cfg["features"]
    values.clear()
    values.update(new)
    if "debug" in file_cfg:
        log.level = "debug" if new["debug"] else "info"  # debug.Disable() sets info, whatever log-level says
    log.info("Reloaded configuration", config=json.dumps(daemon.public_config(), separators=(",", ":")))
    daemon.events.publish(make_event("daemon", "reload", daemon.engine_id, reload_attributes(daemon)))
    return True


def reload_attributes(daemon: Daemon) -> dict[str, str]:
    """The string attributes dockerd puts on its ``reload`` event."""
    cfg = daemon.config

    def js(value: Any) -> str:
        return json.dumps(value, separators=(",", ":"))

    return {
        "debug": "true" if cfg["debug"] else "false",
        "default-cgroupns-mode": "private" if daemon.cgroup_version == "2" else "host",
        "default-ipc-mode": "private",
        "default-runtime": "runc",
        "default-shm-size": "67108864",
        "features": go_format(cfg.get("features") or {}),
        "insecure-registries": js(list(cfg["insecure-registry"])),
        "labels": js(list(cfg["label"])),
        "live-restore": "true" if cfg["live-restore"] else "false",
        "max-concurrent-downloads": str(cfg["max-concurrent-downloads"]),
        "max-concurrent-uploads": str(cfg["max-concurrent-uploads"]),
        "max-download-attempts": str(cfg["max-download-attempts"]),
        "name": daemon.name,
        "registry-mirrors": js(list(cfg["registry-mirror"])),
        "runtimes": "runc",
        "shutdown-timeout": str(cfg["shutdown-timeout"]),
    }
