"""Daemon profiles: named sets of dockerd flags and daemon.json keys every target boots with.

The built-in profiles live in ``harness/profiles.toml``; users add their own in a file of the same format
(``--profiles-file``, ``HARNESS_PROFILES_FILE``), and a profile may read its keys from a daemon.json file
(their production one). ``Profile.apply`` merges a profile into the flags and daemon.json a scenario asked
for, the scenario's own settings winning, so every daemon the harness boots runs in the selected profile.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from .errors import ConfigValueError

__all__ = [
    "BUILTIN_PATH",
    "DEFAULT",
    "HARNESS_KEYS",
    "Profile",
    "ProfileError",
    "load_profiles",
    "profile_of_id",
    "scenario_id",
    "select_profiles",
    "split_id",
]

BUILTIN_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "profiles.toml")
DEFAULT = "default"
#: daemon.json keys that say where a daemon keeps state or listens: each daemon gets private ones
HARNESS_KEYS = frozenset(
    {
        "data-root",
        "exec-root",
        "pidfile",
        "hosts",
        "tls",
        "tlsverify",
        "tlscacert",
        "tlscert",
        "tlskey",
        "cgroup-parent",
        "containerd",
        "config-file",
    }
)
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
_FIELDS = {"description", "args", "daemon-json", "daemon-json-file", "netns-setup"}
#: what separates a scenario id from its profile in results (``api/containers/run@no-bridge``)
SEPARATOR = "@"


class ProfileError(ConfigValueError):
    """A profiles file or a profile selection is wrong; the message names the file or the option."""


@dataclass(frozen=True)
class Profile:
    """One daemon profile: flags, daemon.json keys and network namespace set-up lines."""

    name: str
    description: str = ""
    args: tuple[str, ...] = ()
    config: Mapping[str, Any] = field(default_factory=dict)
    netns_setup: tuple[str, ...] = ()
    source: str = ""
    dropped: tuple[str, ...] = ()  # harness-owned keys and flags the profile set, left out

    @property
    def is_default(self) -> bool:
        return not (self.args or self.config or self.netns_setup)

    def to_dict(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "args": list(self.args),
            "daemon_json": dict(self.config),
            "netns_setup": list(self.netns_setup),
            "source": self.source,
            "dropped": list(self.dropped),
        }

    def setting(self, key: str, default: Any = None) -> Any:
        """What the profile sets ``key`` (a daemon.json key) to, as a daemon.json key or as a flag; booleans
        given as flags (``--ipv6``, ``--iptables=false``) come back as booleans. ``default`` when unset."""
        if key in self.config:
            return self.config[key]
        for arg in reversed(self.args):
            if _key_of_arg(arg) == key:
                _, eq, value = arg.partition("=")
                if not eq:
                    return True
                return {"true": True, "false": False}.get(value.lower(), value)
        return default

    def apply(
        self, args: Sequence[str], config: dict[str, Any] | str | None, config_file: bool = True
    ) -> tuple[list[str], dict[str, Any] | str | None]:
        """The flags and daemon.json for a daemon a scenario asked to boot with ``args`` and ``config``.

        The profile's flags come first, then the scenario's; the profile's keys join the scenario's
        daemon.json. A flag or key the scenario sets itself (as a flag or in its daemon.json) is not taken
        from the profile. When the scenario writes its daemon.json verbatim (a string) or boots without one,
        the profile's keys are given as flags instead.
        """
        mine = _keys_of_args(args) | (set(config) if isinstance(config, dict) else set())
        extra = [a for a in self.args if _key_of_arg(a) not in mine]
        keys = {k: v for k, v in self.config.items() if k not in mine}
        if not keys:
            return [*extra, *args], config
        if isinstance(config, dict) or (config is None and config_file):
            return [*extra, *args], {**keys, **(config or {})}
        return [*extra, *_as_flags(self.name, keys), *args], config


def _flag_table() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """refd's dockerd flag table by long name, by short letter and by daemon.json key (data, no refd code)."""
    from .daemon.flags import FLAGS

    return (
        {f.name: f for f in FLAGS},
        {f.short: f for f in FLAGS if f.short},
        {f.file_key: f for f in FLAGS},
    )


def _key_of_arg(arg: str) -> str:
    """The daemon.json key a dockerd flag sets (``--bridge=none`` -> ``bridge``, ``-H x`` -> ``hosts``)."""
    by_name, by_short, _ = _flag_table()
    if arg.startswith("--"):
        flag = by_name.get(arg[2:].partition("=")[0])
    elif arg.startswith("-") and len(arg) > 1:
        flag = by_short.get(arg[1])
    else:
        return ""
    return str(flag.file_key) if flag is not None else ""


def _keys_of_args(args: Iterable[str]) -> set[str]:
    return {k for k in map(_key_of_arg, args) if k}


def _as_flags(profile: str, keys: Mapping[str, Any]) -> list[str]:
    """daemon.json keys as dockerd flags (for a daemon whose daemon.json the scenario writes itself)."""
    _, _, by_key = _flag_table()
    out: list[str] = []
    for key, value in keys.items():
        flag = by_key.get(key)
        if flag is None or flag.kind in ("ulimit", "runtimes"):
            raise ProfileError(
                f"profile {profile!r}: daemon.json key {key!r} has no flag form, and this daemon's "
                "daemon.json is the scenario's own text: mark the scenario @pytest.mark.profiles(...) "
                "to keep it out of this profile"
            )
        if isinstance(value, bool):
            out.append(f"--{flag.name}={'true' if value else 'false'}")
        elif flag.kind == "pool":
            out += [f"--{flag.name}=base={p['base']},size={p['size']}" for p in value]
        elif flag.kind == "mapmap":
            out += [f"--{flag.name}={r}={k}={v}" for r, inner in value.items() for k, v in inner.items()]
        elif flag.kind == "set":
            out += [f"--{flag.name}={k}={'true' if v else 'false'}" for k, v in value.items()]
        elif isinstance(value, list):
            out += [f"--{flag.name}={v}" for v in value]
        elif isinstance(value, dict):
            out += [f"--{flag.name}={k}={v}" for k, v in value.items()]
        else:
            out.append(f"--{flag.name}={value}")
    return out


# -- loading


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ProfileError(f"{where}: expected a list of non-empty strings")
    return tuple(value)


def _read_json(path: str, where: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise ProfileError(f"{where}: daemon-json-file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{where}: cannot read daemon-json-file {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ProfileError(f"{where}: daemon-json-file {path} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProfileError(f"{where}: daemon-json-file {path} holds a {type(data).__name__}, not an object")
    return data


def _profile(name: str, table: Any, source: str) -> Profile:
    where = f"{source}: [profile.{name}]"
    if not _NAME.fullmatch(name):
        raise ProfileError(f"{where}: a profile name is lower-case letters, digits, '.', '_' and '-'")
    if not isinstance(table, dict):
        raise ProfileError(f"{where}: expected a table")
    unknown = sorted(set(table) - _FIELDS)
    if unknown:
        raise ProfileError(
            f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(_FIELDS))})"
        )
    description = table.get("description", "")
    if not isinstance(description, str):
        raise ProfileError(f"{where}: description must be a string")
    config: dict[str, Any] = {}
    if "daemon-json-file" in table:
        path = table["daemon-json-file"]
        if not isinstance(path, str) or not path:
            raise ProfileError(f"{where}: daemon-json-file must be a path")
        config.update(_read_json(os.path.join(os.path.dirname(os.path.abspath(source)), path), where))
    inline = table.get("daemon-json", {})
    if not isinstance(inline, dict):
        raise ProfileError(f"{where}: daemon-json must be a table of daemon.json keys")
    config.update(inline)
    args = _strings(table.get("args", []), f"{where} args")
    by_name, _, _ = _flag_table()
    for arg in args:
        if not arg.startswith("--") or arg[2:].partition("=")[0] not in by_name:
            raise ProfileError(
                f"{where}: {arg!r} is not a dockerd flag in long form (--name=value, or --name for a bool)"
            )
    dropped = sorted(
        {k for k in config if k in HARNESS_KEYS} | {a for a in args if _key_of_arg(a) in HARNESS_KEYS}
    )
    return Profile(
        name=name,
        description=description,
        args=tuple(a for a in args if _key_of_arg(a) not in HARNESS_KEYS),
        config={k: v for k, v in config.items() if k not in HARNESS_KEYS},
        netns_setup=_strings(table.get("netns-setup", []), f"{where} netns-setup"),
        source=source,
        dropped=tuple(dropped),
    )


def _load_file(path: str) -> dict[str, Profile]:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ProfileError(f"profiles file {path} does not exist") from None
    except OSError as exc:
        raise ProfileError(f"cannot read profiles file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"profiles file {path} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"profile"})
    if unknown:
        raise ProfileError(
            f"{path}: unknown top-level key(s) {', '.join(unknown)}; profiles are [profile.NAME]"
        )
    tables = data.get("profile", {})
    if not isinstance(tables, dict):
        raise ProfileError(f"{path}: 'profile' must hold [profile.NAME] tables")
    return {name: _profile(name, table, path) for name, table in tables.items()}


@cache
def _cached(paths: tuple[str, ...]) -> dict[str, Profile]:
    found: dict[str, Profile] = {}
    for path in paths:
        for name, profile in _load_file(path).items():
            if name in found:
                raise ProfileError(
                    f"{path}: profile {name!r} is already defined in {found[name].source}; pick another name"
                )
            found[name] = profile
    if DEFAULT not in found or not found[DEFAULT].is_default:
        raise ProfileError(f"{BUILTIN_PATH}: the {DEFAULT!r} profile must exist and set nothing")
    return found


def load_profiles(extra: Iterable[str] = ()) -> dict[str, Profile]:
    """The built-in profiles plus those of the ``extra`` files, by name (file order)."""
    return _cached((BUILTIN_PATH, *(os.path.abspath(p) for p in extra)))


def select_profiles(raw: str | None, source: str, extra: Iterable[str] = ()) -> tuple[Profile, ...]:
    """The profiles a ``--profiles`` value names (comma-separated; ``all``: every one; none: default)."""
    known = load_profiles(extra)
    if raw is None or not str(raw).strip():
        return (known[DEFAULT],)
    names: list[str] = []
    for part in (p.strip() for p in str(raw).split(",")):
        if not part:
            continue
        if part == "all":
            names += list(known)
        elif part not in known:
            raise ProfileError(
                f"unknown profile {part!r} from {source}: choose from {', '.join(known)} or all"
            )
        else:
            names.append(part)
    if not names:
        raise ProfileError(f"no profiles in {raw!r} from {source}: choose from {', '.join(known)} or all")
    return tuple(known[n] for n in dict.fromkeys(names))


def matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


# -- scenario ids


def scenario_id(base: str, profile: str) -> str:
    """A scenario's id in a profile: the bare id in the default profile, ``<id>@<profile>`` in others."""
    return base if profile == DEFAULT else f"{base}{SEPARATOR}{profile}"


def split_id(sid: str) -> tuple[str, str]:
    """``(base id, profile)`` of a scenario id from a results file."""
    base, sep, profile = sid.rpartition(SEPARATOR)
    return (base, profile) if sep and base else (sid, DEFAULT)


def profile_of_id(sid: str) -> str:
    return split_id(sid)[1]
