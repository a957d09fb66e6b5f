"""daemon.json loading, flattening, validation and merging with dockerd's semantics.

The pipeline mirrors moby ``daemon/config/config.go`` (getConflictFreeConfiguration,
MergeDaemonConfigurations, Validate) as of dockerd 28: BOM-aware decode, empty file
allowed, one-level flattening except ``flatOptions``, unknown-key and flag/file conflict
errors, Go-style type errors, then the file as base with flags filling the gaps.

Syntax errors come from a port of Go's ``encoding/json`` scanner (:mod:`.gojson`), so the text is
Go's; input that ends early reads ``unexpected end of JSON input`` as dockerd 28's ``json.Unmarshal``
says (20.10's decoder said ``unexpected EOF``, which API bodies still get).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .flags import FLAGS, Flag, ParsedFlags, go_format, validate_label
from .gojson import go_json_syntax_error
from .hosts import HostError, validate_host_flag
from .netip import NetipError, parse_prefix

__all__ = [
    "FLAT_OPTIONS",
    "LOG_LEVELS",
    "RELOADABLE",
    "ConfigError",
    "DaemonConfig",
    "FileConfig",
    "conflict_free_labels",
    "load_config",
    "read_config_file",
    "validate",
    "verify_daemon_settings",
]

#: Keys whose object values are kept whole rather than flattened.
FLAT_OPTIONS = frozenset(
    {
        "cluster-store-opts",
        "log-opts",
        "runtimes",
        "default-ulimits",
        "features",
        "builder",
        "default-network-opts",
    }
)
#: Keys accepted without matching a flag.
SKIP_VALIDATE = frozenset({"features", "builder", "deprecated-key-path", "allow-nondistributable-artifacts"})
#: Keys exempt from the flag/file conflict check.
SKIP_DUPLICATES = frozenset({"runtimes"})
#: Keys a SIGHUP applies (dockerd 28 Daemon.Reload), by file key.
RELOADABLE = frozenset(
    {
        "debug",
        "labels",
        "max-concurrent-downloads",
        "max-concurrent-uploads",
        "max-download-attempts",
        "shutdown-timeout",
        "live-restore",
        "insecure-registries",
        "registry-mirrors",
        "features",
        "default-runtime",
        "runtimes",
        "default-shm-size",
        "default-cgroupns-mode",
        "default-ipc-mode",
        "allow-nondistributable-artifacts",
    }
)
#: Reloadable keys that fall back to their default when absent from the reloaded file.
RESET_WHEN_ABSENT = {"max-concurrent-downloads": 3, "max-concurrent-uploads": 5, "max-download-attempts": 5}
#: dockerd 28 ``config.Validate`` accepts exactly these (case-insensitive); ``warning`` is refused.
LOG_LEVELS = ("panic", "fatal", "error", "warn", "info", "debug", "trace")

_BY_FILE_KEY: dict[str, Flag] = {f.file_key: f for f in FLAGS}
_FLAG_NAMES = {f.name for f in FLAGS}
_GO_TYPES = {
    "bool": "bool",
    "string": "string",
    "int": "int",
    "list": "[]string",
    "map": "map[string]string",
    "ulimit": "map[string]*units.Ulimit",
    "runtimes": "map[string]system.Runtime",
    "set": "map[string]bool",
    "mapmap": "map[string]map[string]string",
    "ipslice": "[]netip.Addr",
    "iplist": "[]netip.Addr",
    "pool": "[]*ipamutils.NetworkToSplit",
}


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


#: unicode.IsSpace, which bytes.TrimSpace uses (Python's str.strip() also strips \x1c-\x1f).
_GO_SPACE = (
    " \t\n\v\f\r\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
_BLOCK = 4096  # x/text transform.Chain buffer: dockerd reports bytes consumed, in blocks of this size


def _decode(raw: bytes) -> str:
    """dockerd 28: BOMOverride(UTF-8, UTF-16LE/BE) then a strict UTF-8 check when there is no BOM."""
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8", errors="replace")  # x/text's UTF-8 decoder replaces bad bytes
    if raw.startswith(b"\xff\xfe"):
        return raw[2:].decode("utf-16-le", errors="replace")
    if raw.startswith(b"\xfe\xff"):
        return raw[2:].decode("utf-16-be", errors="replace")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        consumed = min(len(raw), (exc.start // _BLOCK + 1) * _BLOCK)
        raise ConfigError(
            f"failed to decode configuration JSON at offset {consumed}: encoding: invalid UTF-8"
        ) from None


class _Number(float):
    """A JSON number with a fraction or exponent, remembering its text for Go's error messages."""

    text: str

    def __new__(cls, text: str) -> _Number:
        number = super().__new__(cls, text)
        number.text = text
        return number


class FileConfig(dict[str, Any]):
    """A daemon.json flattened as dockerd's ``configValuesSet`` (what the key checks see),
    with the document as written in ``raw`` (what the typed decode sees)."""

    def __init__(self, flat: dict[str, Any] | None = None, raw: dict[str, Any] | None = None) -> None:
        super().__init__(flat or {})
        self.raw: dict[str, Any] = raw if raw is not None else dict(self)


def read_config_file(path: str) -> dict[str, Any]:
    """Read and flatten a daemon.json; raises OSError or ConfigError."""
    with open(path, "rb") as fh:
        text = _decode(fh.read()).strip(_GO_SPACE)  # bytes.TrimSpace
    if not text:
        return FileConfig()
    problem = go_json_syntax_error(text.encode("utf-8", errors="surrogatepass"))
    if problem:
        raise ConfigError(f"invalid JSON: {problem}")  # dockerd 28.5 (Debian) and 29 wrap decode errors
    try:
        data = json.loads(text, parse_float=_Number)
    except (json.JSONDecodeError, RecursionError) as exc:  # Go accepts what Python's parser cannot nest
        raise ConfigError(f"exceeded max depth ({type(exc).__name__})") from None
    if data is None:  # Go: null into a map leaves it empty, no error
        return FileConfig()
    if not isinstance(data, dict):
        kind = _go_kind(data)
        raise ConfigError(
            f"invalid JSON: json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}"
        )
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and key not in FLAT_OPTIONS:
            flat.update(value)
        else:
            flat[key] = value
    return FileConfig(flat, data)


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
    if kind == "number" and go_type == "int":  # Go quotes the literal it could not ParseInt
        kind = f"number {value.text if isinstance(value, _Number) else value}"
    return ConfigError(
        f"invalid JSON: json: cannot unmarshal {kind} into Go struct field Config.{key} of type {go_type}"
    )


def _check_type(key: str, value: Any, flag: Flag) -> Any:
    """Coerce a decoded JSON value to the flag's type or raise Go's unmarshal error."""
    if value is None:
        return None
    kind = flag.kind
    if kind == "bool" and not isinstance(value, bool):
        raise _type_error(key, value, "bool")
    if kind == "string" and not isinstance(value, str):
        raise _type_error(key, value, "string")
    if kind == "int":  # Go: strconv.ParseInt(literal, 10, 64), so 1.0 and 1e2 are refused too
        if isinstance(value, bool) or not isinstance(value, int) or not -(1 << 63) <= value < 1 << 63:
            raise _type_error(key, value, "int")
        return value
    if kind in ("list", "ipslice", "iplist"):
        if not isinstance(value, list):
            raise _type_error(key, value, _GO_TYPES.get(kind, "[]string"))
        for item in value:
            if not isinstance(item, str):
                raise _type_error(key, item, "string")
            if kind != "list":  # []netip.Addr in dockerd 28: each decodes as an address
                _check_ip(item)
    if kind == "ip":
        if not isinstance(value, str):
            raise _type_error(key, value, "net.IP")
        _check_ip(value)
    if kind == "pool":
        if not isinstance(value, list):
            raise _type_error(key, value, _GO_TYPES["pool"])
        return [_check_pool(index, item) for index, item in enumerate(value)]
    # opts.MemBytes takes a JSON string or number
    if kind == "membytes" and (isinstance(value, bool) or not isinstance(value, str | int | float)):
        raise ConfigError(f"invalid size: '{_file_string(value)}'")
    if kind in ("map", "ulimit", "runtimes", "set", "mapmap"):
        if not isinstance(value, dict):
            raise _type_error(key, value, _GO_TYPES[kind])
        if kind == "map":
            for item in value.values():
                if not isinstance(item, str):
                    raise _type_error(key, item, "string")
        if kind == "set":
            for item in value.values():
                if not isinstance(item, bool):
                    raise _type_error(key, item, "bool")
        if kind == "mapmap":
            for inner in value.values():
                if not isinstance(inner, dict):
                    raise _type_error(key, inner, "map[string]string")
                for item in inner.values():
                    if not isinstance(item, str):
                        raise _type_error(key, item, "string")
    return value


def _check_pool(index: int, item: Any) -> dict[str, Any] | None:
    """One ``ipamutils.NetworkToSplit`` as dockerd 28.5 decodes it: ``base`` through ``netip.ParsePrefix``,
    ``size`` an int, field names matched case-insensitively, unknown fields and nulls left alone (a null
    base or size stays zero, refused at boot as not canonical; a null pool is kept for the same check)."""
    if item is None:
        return None
    if not isinstance(item, dict):
        raise ConfigError(
            f"invalid JSON: json: cannot unmarshal {_go_kind(item)} into .{index} of type "
            "ipamutils.NetworkToSplit"
        )
    pool: dict[str, Any] = {"base": "", "size": 0}
    for name, field_value in item.items():
        name = name.lower()
        if field_value is None or name not in pool:
            continue
        where = f"Go struct field .{index}.{name}"
        if name == "base":
            if not isinstance(field_value, str):
                raise ConfigError(
                    f"invalid JSON: json: cannot unmarshal {_go_kind(field_value)} into {where} of type "
                    "netip.Prefix: JSON value must be string type"
                )
            if field_value:  # Prefix.UnmarshalText leaves an empty text the zero Prefix
                try:
                    parse_prefix(field_value)
                except NetipError as exc:
                    raise ConfigError(f"invalid JSON: {exc}") from None
            pool["base"] = field_value
        else:
            if (
                isinstance(field_value, bool)
                or not isinstance(field_value, int)
                or not -(1 << 63) <= field_value < 1 << 63
            ):
                kind = _go_kind(field_value)
                if kind == "number":
                    kind = f"number {field_value.text if isinstance(field_value, _Number) else field_value}"
                raise ConfigError(f"invalid JSON: json: cannot unmarshal {kind} into {where} of type int")
            pool["size"] = field_value
    return pool


def _check_ip(text: str) -> None:
    import ipaddress

    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise ConfigError(f"invalid JSON: invalid IP address: {text}") from None


def _is_zero(value: Any) -> bool:
    return value is None or value == "" or value == 0 or value == [] or value == {}


def _flag_string(flag: Flag, value: Any) -> str:
    """pflag ``Value.String()``: ListOpts ``[a b]``, MapOpts ``map[k:v]``, UlimitOpt ``[n=s:h]``."""
    if flag.kind == "ulimit":
        return "[" + " ".join(f"{k}={v if ':' in v else f'{v}:{v}'}" for k, v in sorted(value.items())) + "]"
    if flag.kind == "ipslice":  # pflag ipSliceValue.String
        return "[" + ",".join(value) + "]"
    if flag.kind == "pool":  # opts.PoolsOpt.String
        return ", ".join(
            "<nil>" if p is None else f"{p['base'] or 'invalid Prefix'} {p['size']}" for p in value
        )
    return go_format(value)


def _file_string(value: Any) -> str:
    """Go ``%v`` of a value decoded into ``interface{}``: every JSON number is a float64."""

    def as_go(item: Any) -> Any:
        if isinstance(item, int) and not isinstance(item, bool):
            return float(item)
        if isinstance(item, list):
            return [as_go(v) for v in item]
        if isinstance(item, dict):
            return {k: as_go(v) for k, v in item.items()}
        return item

    return go_format(as_go(value))


def _find_problems(file_cfg: dict[str, Any], flags: ParsedFlags) -> None:
    """moby findConfigurationConflicts: unknown keys, then flags also set in the file."""
    unknown = [
        k for k in file_cfg if k not in _BY_FILE_KEY and k not in _FLAG_NAMES and k not in SKIP_VALIDATE
    ]
    if unknown:
        raise ConfigError(
            "the following directives don't match any configuration option: " + ", ".join(unknown)
        )
    conflicts = []
    for flag in sorted(FLAGS, key=lambda f: f.name):  # pflag Visit walks flags in lexical order
        if not flags.was_set(flag.name):
            continue
        for name in (flag.file_key, flag.short) if not flag.key else (flag.key,):
            if name and name in file_cfg and name not in SKIP_DUPLICATES:
                conflicts.append(
                    f"{name}: (from flag: {_flag_string(flag, flags[flag.name])}, "
                    f"from file: {_file_string(file_cfg[name])})"
                )
                break
    if conflicts:
        raise ConfigError(
            "the following directives are specified both as a flag and in the configuration "
            "file: " + ", ".join(conflicts)
        )


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
    """dockerd 28 ``config.Validate``, in its order, for the options refd has.

    Label *conflicts* are not checked here: dockerd does that afterwards, unwrapped
    (:func:`conflict_free_labels`).
    """
    if values.get("api-cors-header"):
        raise ConfigError(
            'DEPRECATED: The "api-cors-header" config parameter and the dockerd "--api-cors-header" option '
            "have been removed; use a reverse proxy if you need CORS headers"
        )
    level = values.get("log-level") or ""
    if level and level.lower() not in LOG_LEVELS:
        raise ConfigError(f"invalid logging level: {level}")
    log_format = values.get("log-format") or ""
    if log_format and log_format not in ("text", "json"):
        raise ConfigError(f"invalid log format: {log_format}")
    try:
        for label in values.get("label") or []:
            validate_label(label)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    for key, what in (
        ("mtu", "default MTU"),
        ("max-concurrent-downloads", "max concurrent downloads"),
        ("max-concurrent-uploads", "max concurrent uploads"),
        ("max-download-attempts", "max download attempts"),
    ):
        if (values.get(key) or 0) < 0:
            raise ConfigError(f"invalid {what}: {values[key]}")
    try:
        for host in values.get("host") or []:
            validate_host_flag(host)
    except HostError as exc:
        raise ConfigError(str(exc)) from None
    if values.get("registry-mirror"):
        from .distribution.errors import DistributionError
        from .distribution.service import validate_mirror

        try:
            for mirror in values["registry-mirror"]:
                validate_mirror(str(mirror))
        except (DistributionError, ValueError) as exc:
            raise ConfigError(str(getattr(exc, "message", "") or exc)) from None


def verify_daemon_settings(values: dict[str, Any]) -> str:
    """moby verifyDaemonSettings (daemon_unix.go): settings that cannot go together stop the start-up
    (after the configuration loaded, so ``--validate`` accepts them). Returns the problem, or ``""``."""
    if values.get("containerd-namespace") == values.get("containerd-plugins-namespace"):
        return "containers namespace and plugins namespace cannot be the same"
    if values.get("bridge") and values.get("bip"):
        return "You specified -b & --bip, mutually exclusive options. Please specify only one"
    if values.get("bridge") and values.get("bip6"):
        return "You specified -b & --bip6, mutually exclusive options. Please specify only one"
    if not values.get("icc", True):
        if not values.get("iptables", True):
            return (
                "You specified --iptables=false with --icc=false. ICC=false uses iptables to function. "
                "Please set --icc or --iptables to true"
            )
        if values.get("ipv6") and not values.get("ip6tables", True):
            return (
                "You specified --ip6tables=false with --icc=false. ICC=false uses ip6tables to function. "
                "Please set --icc or --ip6tables to true"
            )
    return ""


def _lookup(key: str) -> Flag | None:
    return _BY_FILE_KEY.get(key) or next((f for f in FLAGS if f.name == key), None)


def merge_file(file_cfg: dict[str, Any], flags: ParsedFlags) -> dict[str, Any]:
    """Apply the file over the flag values: file wins where set, flags fill the rest (mergo).

    Types are checked on the document as written (``json.Unmarshal`` into Config), so
    ``{"tls": {...}}`` is a type error and values inside an unknown wrapper object are not
    applied, except booleans: dockerd re-sets bool flags from the flattened view, which is
    also why a ``false`` in the file wins over a true default. ``null`` and zero values
    leave the flag's value in place.
    """
    raw_doc: dict[str, Any] = getattr(file_cfg, "raw", file_cfg)
    merged = dict(flags.values)
    for key, raw in raw_doc.items():
        flag = _lookup(key)
        if flag is None:
            continue  # skip-validate keys such as "features" are kept below
        value = _check_type(key, raw, flag)
        if value is None:
            continue
        if flag.kind == "bool" or not _is_zero(value):
            merged[flag.name] = value
    for key, value in file_cfg.items():
        flag = _lookup(key)
        if key not in raw_doc and flag is not None and flag.kind == "bool" and isinstance(value, bool):
            merged[flag.name] = value
    merged["features"] = merged["feature"]  # the --feature flags, or the file's "features" over them
    return merged


def load_config(flags: ParsedFlags) -> DaemonConfig:
    """Resolve flags + daemon.json into a DaemonConfig, or raise ConfigError with dockerd's text."""
    path = flags["config-file"]
    explicit = flags.was_set("config-file")
    warnings: list[str] = []
    file_cfg: dict[str, Any] = FileConfig()
    prefix = f"unable to configure the Docker daemon with file {path}: "
    file_found = True
    try:
        file_cfg = read_config_file(path)
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"{prefix}open {path}: no such file or directory") from None
        file_found = False
    except IsADirectoryError:
        raise ConfigError(f"{prefix}read {path}: is a directory") from None
    except OSError as exc:
        raise ConfigError(f"{prefix}open {path}: {(exc.strerror or str(exc)).lower()}") from None
    except ConfigError as exc:
        raise ConfigError(prefix + str(exc)) from None
    try:
        _find_problems(file_cfg, flags)
        values = merge_file(file_cfg, flags)
    except ConfigError as exc:
        raise ConfigError(prefix + str(exc)) from None
    try:
        validate(values)
    except ConfigError as exc:
        # MergeDaemonConfigurations validates (wrapped); without a file only the bare check runs
        if file_found:
            raise ConfigError(
                f"{prefix}merged configuration validation from file and command line flags failed: {exc}"
            ) from None
        raise
    values["label"] = conflict_free_labels(list(values.get("label") or []))
    return DaemonConfig(
        values=values,
        config_file=path,
        file_keys=frozenset(file_cfg),
        flags_set=frozenset(flags.changed),
        warnings=warnings,
    )
