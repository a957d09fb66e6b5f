"""Dockerfile ``--change`` instructions applied to an image config (moby ``dockerfile.BuildFromConfig``).

``apply_changes(config, ["CMD [\\"sh\\"]", "ENV A=b"])`` returns a new container Config dict.
Only the instructions ``docker commit``/``docker import`` accept are valid (CMD, ENTRYPOINT, ENV,
EXPOSE, HEALTHCHECK, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR); anything else is
``<instruction> is not a valid change command``. Errors raise ``ChangeError`` with dockerd's text.
"""

from __future__ import annotations

import copy
import json
import posixpath
import re
import signal
from typing import Any

__all__ = ["ChangeError", "apply_changes", "empty_config", "go_container_config"]

_VALID = (
    "cmd",
    "entrypoint",
    "healthcheck",
    "env",
    "expose",
    "label",
    "onbuild",
    "stopsignal",
    "user",
    "volume",
    "workdir",
)


class ChangeError(ValueError):
    """An invalid change instruction; ``str()`` is dockerd's message."""


def empty_config() -> dict[str, Any]:
    """A zero ``container.Config`` as Go marshals it (omitempty fields left out)."""
    return {
        "Hostname": "",
        "Domainname": "",
        "User": "",
        "AttachStdin": False,
        "AttachStdout": False,
        "AttachStderr": False,
        "Tty": False,
        "OpenStdin": False,
        "StdinOnce": False,
        "Env": None,
        "Cmd": None,
        "Image": "",
        "Volumes": None,
        "WorkingDir": "",
        "Entrypoint": None,
        "OnBuild": None,
        "Labels": None,
    }


_ORDER = (
    "Hostname",
    "Domainname",
    "User",
    "AttachStdin",
    "AttachStdout",
    "AttachStderr",
    "ExposedPorts",
    "Tty",
    "OpenStdin",
    "StdinOnce",
    "Env",
    "Cmd",
    "Healthcheck",
    "ArgsEscaped",
    "Image",
    "Volumes",
    "WorkingDir",
    "Entrypoint",
    "NetworkDisabled",
    "MacAddress",
    "OnBuild",
    "Labels",
    "StopSignal",
    "StopTimeout",
    "Shell",
)


_OMITEMPTY = frozenset(
    (
        "ExposedPorts",
        "Healthcheck",
        "ArgsEscaped",
        "NetworkDisabled",
        "MacAddress",
        "StopSignal",
        "StopTimeout",
        "Shell",
    )
)


def go_container_config(doc: Any) -> dict[str, Any]:
    """A config dict as Go's container.Config marshals it after decoding: known fields only, in
    declaration order, zero values for the others, ``omitempty`` fields only when set."""
    src = doc if isinstance(doc, dict) else {}
    base = empty_config()
    out: dict[str, Any] = {}
    for key in _ORDER:
        value = src.get(key, base.get(key))
        if key in ("Cmd", "Entrypoint", "Shell") and isinstance(value, str):
            value = [value]  # strslice.StrSlice also decodes a single string
        if key in _OMITEMPTY:
            if value:
                out[key] = value
        elif key in base:
            out[key] = value
    return out


def _ordered(config: dict[str, Any]) -> dict[str, Any]:
    """Fields in container.Config's declaration order (which is the JSON order)."""
    out = {k: config[k] for k in _ORDER if k in config}
    out.update({k: v for k, v in config.items() if k not in out})
    return out


def _words(text: str) -> list[str]:
    """Shell-like word splitting with quote removal (buildkit's shell lexer, without expansion)."""
    words: list[str] = []
    cur: list[str] = []
    in_word = False
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in " \t\r\n":
            if in_word:
                words.append("".join(cur))
                cur, in_word = [], False
            i += 1
            continue
        in_word = True
        if ch == "\\" and i + 1 < len(text):
            cur.append(text[i + 1])
            i += 2
            continue
        if ch in "'\"":
            end = i + 1
            while end < len(text) and text[end] != ch:
                if ch == '"' and text[end] == "\\" and end + 1 < len(text):
                    cur.append(text[end + 1])
                    end += 2
                    continue
                cur.append(text[end])
                end += 1
            if end >= len(text):
                raise ChangeError(f"unexpected end of statement while looking for matching {ch}")
            i = end + 1
            continue
        cur.append(ch)
        i += 1
    if in_word:
        words.append("".join(cur))
    return words


def _json_array(rest: str) -> list[str] | None:
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest)
    except json.JSONDecodeError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def _name_values(command: str, rest: str) -> list[tuple[str, str]]:
    words = _words(rest)
    if not words:
        raise ChangeError(f"{command} requires at least one argument")
    if "=" not in words[0]:
        # legacy "ENV key value words..." form
        if len(words) < 2:
            raise ChangeError(f"{command} must have two arguments")
        parts = rest.strip().split(None, 1)
        return [(parts[0], " ".join(_words(parts[1])))]
    pairs = []
    for word in words:
        key, sep, value = word.partition("=")
        if not sep:
            raise ChangeError(f'Syntax error - can\'t find = in "{word}". Must be of the form: name=value')
        if not key:
            raise ChangeError(f"{command} names can not be blank")
        pairs.append((key, value))
    return pairs


def _cmdline(rest: str, config: dict[str, Any]) -> list[str]:
    exec_form = _json_array(rest)
    if exec_form is not None:
        return exec_form
    if not rest:
        return []
    shell = config.get("Shell") or ["/bin/sh", "-c"]
    return [*shell, rest]


def _ports(words: list[str]) -> list[str]:
    out = []
    for word in words:
        port, _, proto = word.partition("/")
        proto = (proto or "tcp").lower()
        if ":" in port:
            port = port.rsplit(":", 1)[1]
        lo, sep, hi = port.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise ChangeError(f"invalid containerPort: {port}")
        first, last = int(lo), int(hi) if sep else int(lo)
        if last < first:
            raise ChangeError(f"invalid range specified for container: {port}")
        out += [f"{p}/{proto}" for p in range(first, last + 1)]
    return out


def _valid_signal(text: str) -> None:
    if text.isdigit():
        if int(text) == 0:
            raise ChangeError(f"Invalid signal: {text}")
        return
    name = text.upper().removeprefix("SIG")
    if not hasattr(signal, "SIG" + name) and not re.fullmatch(r"RTMIN(\+\d+)?|RTMAX(-\d+)?", name):
        raise ChangeError(f"Invalid signal: {text}")


def _apply(config: dict[str, Any], command: str, rest: str, state: dict[str, bool]) -> None:
    name = command.upper()
    if command == "env":
        env = list(config.get("Env") or [])
        for key, value in _name_values(name, rest):
            entry = f"{key}={value}"
            for i, existing in enumerate(env):
                if existing.split("=", 1)[0] == key:
                    env[i] = entry
                    break
            else:
                env.append(entry)
        config["Env"] = env
    elif command == "label":
        labels = dict(config.get("Labels") or {})
        for key, value in _name_values(name, rest):
            labels[key] = value
        config["Labels"] = labels
    elif command == "cmd":
        config["Cmd"] = _cmdline(rest, config)
        if rest:
            state["cmd_set"] = True
    elif command == "entrypoint":
        config["Entrypoint"] = _cmdline(rest, config)
        if not state.get("cmd_set"):
            config["Cmd"] = None
    elif command == "expose":
        words = _words(rest)
        if not words:
            raise ChangeError("EXPOSE requires at least one argument")
        ports = dict(config.get("ExposedPorts") or {})
        for port in _ports(words):
            ports[port] = {}
        config["ExposedPorts"] = ports
    elif command == "user":
        words = _words(rest)
        if len(words) != 1:
            raise ChangeError("USER requires exactly one argument")
        config["User"] = words[0]
    elif command == "workdir":
        words = _words(rest)
        if len(words) != 1:
            raise ChangeError("WORKDIR requires exactly one argument")
        path = words[0]
        if not path.startswith("/"):
            path = posixpath.join("/", config.get("WorkingDir") or "", path)
        config["WorkingDir"] = posixpath.normpath(path).replace("//", "/")
    elif command == "volume":
        volumes = _json_array(rest)
        if volumes is None:
            volumes = _words(rest)
        if not volumes:
            raise ChangeError("VOLUME requires at least one argument")
        current = dict(config.get("Volumes") or {})
        for v in volumes:
            if not v.strip():
                raise ChangeError("VOLUME specified can not be an empty string")
            current[v] = {}
        config["Volumes"] = current
    elif command == "stopsignal":
        words = _words(rest)
        if len(words) != 1:
            raise ChangeError("STOPSIGNAL requires exactly one argument")
        _valid_signal(words[0])
        config["StopSignal"] = words[0]
    elif command == "onbuild":
        if not rest:
            raise ChangeError("ONBUILD requires at least one argument")
        trigger = rest.split(None, 1)[0].upper()
        if trigger in ("ONBUILD", "FROM", "MAINTAINER"):
            raise ChangeError(f"{trigger} isn't allowed as an ONBUILD trigger")
        config["OnBuild"] = [*(config.get("OnBuild") or []), rest]
    elif command == "healthcheck":
        config["Healthcheck"] = _healthcheck(rest)


_HEALTHCHECK_FLAGS = ("interval", "timeout", "start-period", "start-interval", "retries")


def _healthcheck(rest: str) -> dict[str, Any]:
    """buildkit's parseHealthcheck: ``[--interval=D --timeout=D --start-period=D --start-interval=D
    --retries=N] CMD command`` or ``NONE``; durations as Go's, at least 1ms unless 0."""
    from ..gotime import go_duration, parse_go_duration

    flag_words = re.match(r"((?:--\S*\s*)*)(.*)", rest, re.S)
    assert flag_words is not None
    flags, body = flag_words.group(1).split(), flag_words.group(2).strip()
    words = body.split(None, 1)
    if not words:
        raise ChangeError("HEALTHCHECK requires at least one argument")
    kind = words[0].upper()
    if kind == "NONE":
        if len(words) > 1:
            raise ChangeError("HEALTHCHECK NONE takes no arguments")
        return {"Test": ["NONE"]}
    values: dict[str, str] = {}
    for flag in flags:
        if flag == "--":
            break
        name, has_value, value = flag.partition("=")
        if name[2:] not in _HEALTHCHECK_FLAGS:
            raise ChangeError(f"unknown flag: {name}")
        if not has_value:
            raise ChangeError(f"missing a value on flag: {name}")
        values[name[2:]] = value
    if kind != "CMD":
        raise ChangeError('Unknown type "' + kind + '" in HEALTHCHECK (try CMD)')
    if len(words) < 2:
        raise ChangeError("Missing command after HEALTHCHECK CMD")
    exec_form = _json_array(words[1])
    hc: dict[str, Any] = {"Test": ["CMD", *exec_form] if exec_form is not None else ["CMD-SHELL", words[1]]}
    for flag, key in (
        ("interval", "Interval"),
        ("timeout", "Timeout"),
        ("start-period", "StartPeriod"),
        ("start-interval", "StartInterval"),
    ):
        text = values.get(flag, "")
        if not text:
            continue
        try:
            ns = parse_go_duration(text)
        except ValueError as exc:
            raise ChangeError(str(exc)) from None
        if ns and ns < 1_000_000:
            raise ChangeError(f'Interval "{flag}" cannot be less than {go_duration(1_000_000)}')
        if ns:
            hc[key] = ns
    if values.get("retries"):
        text = values["retries"]
        if not re.fullmatch(r"[+-]?\d+", text):
            raise ChangeError(f'strconv.ParseInt: parsing "{text}": invalid syntax')
        if int(text) < 0:
            raise ChangeError(f"--retries cannot be negative ({int(text)})")
        if int(text):
            hc["Retries"] = int(text)
    return hc


def apply_changes(config: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    """The config after the change instructions, or ChangeError."""
    lines = [line for change in changes for line in change.split("\n")]
    parsed = []
    for line in lines:
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        command, _, rest = text.partition(" ")
        if command.lower() not in _VALID:
            # dockerd 28 names the instruction as written (20.10 lower-cased it)
            raise ChangeError(f"{command} is not a valid change command")
        parsed.append((command.lower(), rest.strip()))
    out = copy.deepcopy(config)
    state: dict[str, bool] = {}
    for command, rest in parsed:
        _apply(out, command, rest, state)
    return _ordered(out)
