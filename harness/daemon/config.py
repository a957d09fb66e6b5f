"""daemon.json loading, flattening, validation and merging with dockerd's semantics.

The pipeline mirrors moby ``daemon/config/config.go`` (getConflictFreeConfiguration,
MergeDaemonConfigurations, Validate) as of dockerd 28: BOM-aware decode, empty file
allowed, one-level flattening except ``flatOptions``, unknown-key and flag/file conflict
errors, Go-style type errors, then the file as base with flags filling the gaps.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from . import log
from .flags import FLAGS, Flag, ParsedFlags, go_format

__all__ = [
    "ConfigError",
    "DaemonConfig",
    "FLAT_OPTIONS",
    "RELOADABLE",
    "load_config",
    "read_config_file",
    "validate",
]

#: Keys whose object values are kept whole rather than flattened.
FLAT_OPTIONS = frozenset(
    {"cluster-store-opts", "log-opts", "runtimes", "default-ulimits", "features", "builder",
     "default-network-opts"})
#: Keys accepted without matching a flag.
SKIP_VALIDATE = frozenset({"features", "builder", "deprecated-key-path", "allow-nondistributable-artifacts"})
#: Keys exempt from the flag/file conflict check.
SKIP_DUPLICATES = frozenset({"runtimes"})
#: Keys a SIGHUP applies (dockerd 28 Daemon.Reload), by file key.
RELOADABLE = frozenset(
    {"debug", "labels", "max-concurrent-downloads", "max-concurrent-uploads", "max-download-attempts",
     "shutdown-timeout", "live-restore", "insecure-registries", "registry-mirrors", "features",
     "default-runtime", "runtimes", "default-shm-size", "default-cgroupns-mode", "default-ipc-mode",
     "allow-nondistributable-artifacts"})
#: Reloadable keys that fall back to their default when absent from the reloaded file.
RESET_WHEN_ABSENT = {"max-concurrent-downloads": 3, "max-concurrent-uploads": 5, "max-download-attempts": 5}

_BY_FILE_KEY: dict[str, Flag] = {f.file_key: f for f in FLAGS}
_FLAG_NAMES = {f.name for f in FLAGS}
_GO_TYPES = {"bool": "bool", "string": "string", "int": "int", "list": "[]string",
             "map": "map[string]string", "ulimit": "map[string]*units.Ulimit"}


class ConfigError(Exception):
    """A configuration error whose ``str()`` is dockerd's message (without the file prefix)."""


@dataclass
class DaemonConfig:
    """The effective configuration: values by flag name, plus where they came from."""

    values: dict[str, Any]
    config_file: str
    file_keys: frozenset[str] = frozenset()
    flags_set: frozenset[str] = frozenset()
    warnings: list[str] = field(default_factory=list)

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    @property
    def tls_enabled(self) -> bool:
        return bool(self.values["tls"]) or bool(self.values["tlsverify"])


def _go_json_error(exc: json.JSONDecodeError) -> str:
    """Translate a Python decode error into encoding/json's wording."""
    doc, pos = exc.doc, exc.pos
    if pos >= len(doc.rstrip()) or exc.msg.startswith("Unterminated string"):
        return "unexpected EOF"
    char = doc[pos]
    shown = char if char != "'" else "\\'"
    if exc.msg == "Extra data":
        return f"invalid character '{shown}' after top-level value"
    if exc.msg.startswith("Expecting property name"):
        return f"invalid character '{shown}' looking for beginning of object key string"
    if exc.msg == "Expecting ':' delimiter":
        return f"invalid character '{shown}' after object key"
    if exc.msg == "Expecting ',' delimiter":
        inside = "object key:value pair" if _innermost(doc, pos) == "{" else "array element"
        return f"invalid character '{shown}' after {inside}"
    return f"invalid character '{shown}' looking for beginning of value"


def _innermost(doc: str, pos: int) -> str:
    depth: list[str] = []
    in_str = esc = False
    for ch in doc[:pos]:
        if in_str:
            esc, in_str = (False, True) if esc else (ch == "\\", ch != '"')
        elif ch == '"':
            in_str = True
        elif ch in "{[":
            depth.append(ch)
        elif ch in "}]" and depth:
            depth.pop()
    return depth[-1] if depth else ""


def _decode(raw: bytes) -> str:
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    elif raw.startswith(b"\xff\xfe"):
        try:
            return raw[2:].decode("utf-16-le")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"failed to decode configuration JSON at offset {exc.start + 2}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"failed to decode configuration JSON at offset {exc.start}") from None


def read_config_file(path: str) -> dict[str, Any]:
    """Read and flatten a daemon.json; raises OSError or ConfigError."""
    with open(path, "rb") as fh:
        text = _decode(fh.read()).strip()
    if not text:
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(_go_json_error(exc)) from None
    except RecursionError:
        raise ConfigError("exceeded max depth") from None
    if not isinstance(data, dict):
        kind = _go_kind(data)
        raise ConfigError(f"json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}")
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and key not in FLAT_OPTIONS:
            flat.update(value)
        else:
            flat[key] = value
    return flat


def _go_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _type_error(key: str, value: Any, go_type: str) -> ConfigError:
    kind = _go_kind(value)
    if kind == "number" and go_type == "int":
        kind = f"number {go_format(value)}"
    return ConfigError(f"json: cannot unmarshal {kind} into Go struct field Config.{key} of type {go_type}")


def _check_type(key: str, value: Any, flag: Flag) -> Any:
    """Coerce a decoded JSON value to the flag's type or raise Go's unmarshal error."""
    if value is None:
        return None
    kind = flag.kind
    if kind == "bool" and not isinstance(value, bool):
        raise _type_error(key, value, "bool")
    if kind == "string" and not isinstance(value, str):
        raise _type_error(key, value, "string")
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _type_error(key, value, "int")
        if isinstance(value, float) and not value.is_integer():
            raise _type_error(key, value, "int")
        return int(value)
    if kind == "list":
        if not isinstance(value, list):
            raise _type_error(key, value, "[]string")
        for item in value:
            if not isinstance(item, str):
                raise _type_error(key, item, "string")
    if kind in ("map", "ulimit"):
        if not isinstance(value, dict):
            raise _type_error(key, value, _GO_TYPES[kind])
        if kind == "map":
            for item in value.values():
                if not isinstance(item, str):
                    raise _type_error(key, item, "string")
    return value


def _is_zero(value: Any) -> bool:
    return value is None or value == "" or value == 0 or value == [] or value == {}


def _find_problems(file_cfg: dict[str, Any], flags: ParsedFlags) -> None:
    unknown = [k for k in file_cfg
               if k not in _BY_FILE_KEY and k not in _FLAG_NAMES and k not in SKIP_VALIDATE]
    if unknown:
        raise ConfigError("the following directives don't match any configuration option: " + ", ".join(unknown))
    conflicts = []
    for flag in FLAGS:
        if not flags.was_set(flag.name):
            continue
        for name in (flag.file_key, flag.short) if not flag.key else (flag.key,):
            if name and name in file_cfg and name not in SKIP_DUPLICATES:
                conflicts.append(f"{name}: (from flag: {go_format(flags[flag.name])}, "
                                 f"from file: {go_format(file_cfg[name])})")
                break
    if conflicts:
        raise ConfigError("the following directives are specified both as a flag and in the configuration file: "
                          + ", ".join(conflicts))
    if "graph" in file_cfg and "data-root" in file_cfg:
        raise ConfigError('cannot specify both "graph" and "data-root" config file options')


def conflict_free_labels(labels: list[str]) -> list[str]:
    """Collapse duplicate labels; differing values for one key are an error (GetConflictFreeLabels)."""
    seen: dict[str, str] = {}
    out: list[str] = []
    for label in labels:
        key, sep, value = label.partition("=")
        if not sep:
            raise ConfigError(f"bad attribute format: {label}")
        if key in seen:
            if seen[key] != value:
                raise ConfigError(f"conflict labels for {key}={value} and {key}={seen[key]}")
            continue
        seen[key] = value
        out.append(label)
    return out


def validate(values: dict[str, Any]) -> None:
    """dockerd 28 ``config.Validate``: the checks refd's options need."""
    level = values.get("log-level") or "info"
    try:
        log.parse_level(level)
    except ValueError:
        raise ConfigError(f"invalid logging level: {level}") from None
    if values.get("log-format") not in ("text", "json", "", None):
        raise ConfigError(f"invalid log format: {values['log-format']}")
    for key, label in (("max-concurrent-downloads", "max concurrent downloads"),
                       ("max-concurrent-uploads", "max concurrent uploads")):
        if values.get(key, 0) < 0:
            raise ConfigError(f"invalid {label}: {values[key]}")
    if values.get("max-download-attempts", 1) < 1:
        raise ConfigError(f"invalid max download attempts: {values['max-download-attempts']}")
    if values.get("mtu", 0) < 0:
        raise ConfigError(f"invalid default MTU: {values['mtu']}")
    values["label"] = conflict_free_labels(list(values.get("label") or []))


def merge_file(file_cfg: dict[str, Any], flags: ParsedFlags) -> dict[str, Any]:
    """Apply the file over the flag values: file wins where set, flags fill the rest."""
    merged = dict(flags.values)
    for key, raw in file_cfg.items():
        if key == "graph":
            key = "data-root"
        flag = _BY_FILE_KEY.get(key) or next((f for f in FLAGS if f.name == key), None)
        if flag is None:
            continue  # skip-validate keys such as "features" are kept below
        value = _check_type(key, raw, flag)
        if flag.kind == "bool":
            merged[flag.name] = bool(value)
        elif not _is_zero(value):
            merged[flag.name] = value
    merged["features"] = file_cfg.get("features", {})
    return merged


def load_config(flags: ParsedFlags) -> DaemonConfig:
    """Resolve flags + daemon.json into a DaemonConfig, or raise ConfigError with dockerd's text."""
    path = flags["config-file"]
    explicit = flags.was_set("config-file")
    warnings: list[str] = []
    file_cfg: dict[str, Any] = {}
    prefix = f"unable to configure the Docker daemon with file {path}: "
    try:
        file_cfg = read_config_file(path)
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"{prefix}open {path}: no such file or directory") from None
    except IsADirectoryError:
        raise ConfigError(f"{prefix}read {path}: is a directory") from None
    except PermissionError:
        raise ConfigError(f"{prefix}open {path}: permission denied") from None
    except ConfigError as exc:
        raise ConfigError(prefix + str(exc)) from None
    try:
        _find_problems(file_cfg, flags)
        if "graph" in file_cfg:
            warnings.append('The "graph" config file option is deprecated. Please use "data-root" instead.')
        values = merge_file(file_cfg, flags)
    except ConfigError as exc:
        raise ConfigError(prefix + str(exc)) from None
    try:
        validate(values)
    except ConfigError as exc:
        if file_cfg or os.path.exists(path):
            raise ConfigError(f"{prefix}merged configuration validation from file and command line flags "
                              f"failed: {exc}") from None
        raise
    return DaemonConfig(values=values, config_file=path, file_keys=frozenset(file_cfg),
                        flags_set=frozenset(flags.changed), warnings=warnings)
