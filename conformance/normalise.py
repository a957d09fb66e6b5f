"""The shared normaliser applied to observations before targets are compared.

Two daemons never agree on container ids, clocks, temp paths or ephemeral ports, and those differences say
nothing about conformance. Each rule here is a named, documented object so the parity report can list exactly
what was hidden; anything not covered by a rule is compared verbatim.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["RULES", "Rule", "normalise", "rule_table"]

#: A rule function gets a value and the dict key it sits under (``None`` for list items, top-level values
#: and dict keys themselves) and returns the replacement (or the value unchanged).
RuleFunction = Callable[[Any, "str | None"], Any]


@dataclass(frozen=True)
class Rule:
    """One normalisation: a stable ``name``, a one-line ``description`` for the report, and the function."""

    name: str
    description: str
    function: RuleFunction

    def __call__(self, value: Any, key: str | None = None) -> Any:
        return self.function(value, key)


def _regex_rule(
    name: str, description: str, pattern: str, repl: str | Callable[[re.Match[str]], str]
) -> Rule:
    compiled = re.compile(pattern)

    def apply(value: Any, key: str | None) -> Any:
        if isinstance(value, str):
            return compiled.sub(repl, value)
        return value

    return Rule(name, description, apply)


_HEX_BEFORE = r"(?<![0-9A-Za-z])"
_HEX_AFTER = r"(?![0-9A-Za-z])"

_UUID = _regex_rule(
    "uuid",
    "UUIDs (8-4-4-4-12 hex) become <uuid>.",
    _HEX_BEFORE + r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}" + _HEX_AFTER,
    "<uuid>",
)

_ID = _regex_rule(
    "id",
    "64-hex object ids (containers, images, layers, networks; also after 'sha256:') become <id>.",
    _HEX_BEFORE + r"[0-9a-f]{64}" + _HEX_AFTER,
    "<id>",
)

_SHORT_ID = _regex_rule(
    "short-id",
    "12-hex short ids (container hostnames, truncated ids) become <short-id>.",
    _HEX_BEFORE + r"[0-9a-f]{12}" + _HEX_AFTER,
    "<short-id>",
)

_GO_ZERO_TIME = "0001-01-01T00:00:00Z"
_RFC3339 = re.compile(
    r"(?<![0-9])\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:?\d{2})(?![0-9])"
)
_RFC1123 = re.compile(
    r"\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
    r"\d{2}:\d{2}:\d{2} (?:GMT|UTC|[+-]\d{4})"
)


def _timestamp_strings(value: Any, key: str | None) -> Any:
    if not isinstance(value, str):
        return value
    value = _RFC3339.sub(lambda m: m.group(0) if m.group(0) == _GO_ZERO_TIME else "<time>", value)
    return _RFC1123.sub("<time>", value)


_TIMESTAMP = Rule(
    "timestamp",
    "RFC 3339 and RFC 1123 timestamps inside strings become <time>; Go's zero time 0001-01-01T00:00:00Z "
    "is kept (never-set vs set is a real difference).",
    _timestamp_strings,
)

#: Keys (compared case-insensitively) whose numeric values are Unix epoch seconds or nanoseconds.
EPOCH_KEYS = frozenset(
    {
        "time",
        "timenano",
        "created",
        "createdat",
        "timestamp",
        "started",
        "startedat",
        "finished",
        "finishedat",
    }
)


def _epoch_numbers(value: Any, key: str | None) -> Any:
    if key is None or key.lower() not in EPOCH_KEYS:
        return value
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value > 0:
        return "<time>"
    if isinstance(value, str) and value.isascii() and value.isdigit() and int(value) > 0:
        return "<time>"
    return value


_EPOCH = Rule(
    "epoch",
    "Positive Unix epoch seconds/nanoseconds (numbers or digit strings) under keys named "
    + ", ".join(sorted(EPOCH_KEYS))
    + " (any case) become <time>; 0 is kept.",
    _epoch_numbers,
)

_SEG = r"[^\s\"'`:,;()\[\]{}<>|=/]"
_TMP_PATH = re.compile(
    # A pytest basetemp anywhere (.../pytest-of-USER/pytest-N/...) or anything under /tmp. Segments never
    # contain '/', so matching stays linear; ':' ends a path (bind specs, "open PATH: error").
    r"(?<![\w.\-~])(?:(?:/" + _SEG + r"+)*?/pytest-of-" + _SEG + r"+/pytest-\d+|/tmp(?![\w.\-~]))"
    r"(?:/" + _SEG + r"*)*"
)


def _tmp_basename(match: re.Match[str]) -> str:
    parts = [p for p in match.group(0).split("/") if p]
    base = parts[-1] if parts else ""
    if base == "tmp" or re.fullmatch(r"pytest-\d+", base):
        return "<tmp>"
    return f"<tmp>/{base}"


_TMP = _regex_rule(
    "tmp-path",
    "Paths under /tmp and pytest temporary directories (…/pytest-of-USER/pytest-N/…) become <tmp>/BASENAME.",
    _TMP_PATH.pattern,
    _tmp_basename,
)

_PORT = _regex_rule(
    "port",
    "TCP ports after 127.0.0.1, [::1], localhost, 0.0.0.0 and [::] become <port> (the host is kept).",
    r"(?<![\w.])(127\.0\.0\.1|0\.0\.0\.0|\[::1\]|\[::\]|localhost):\d{1,5}(?!\d)",
    r"\1:<port>",
)

_SERVER = _regex_rule(
    "server-header",
    "Server header values 'Docker/ANY (linux)' become 'Docker/<version> (linux)'.",
    r"\bDocker/[^\s()]+ \(linux\)",
    "Docker/<version> (linux)",
)

#: The rules in the order they are applied (UUIDs before hex ids, so a UUID's 12-hex tail stays inside it).
RULES: tuple[Rule, ...] = (_UUID, _ID, _SHORT_ID, _TIMESTAMP, _EPOCH, _TMP, _PORT, _SERVER)


def _apply(value: Any, key: str | None, rules: Sequence[Rule]) -> Any:
    for rule in rules:
        value = rule(value, key)
    return value


def normalise(obj: Any, rules: Sequence[Rule] = RULES) -> Any:
    """Return a normalised copy of ``obj`` (dicts, lists, tuples, strings, numbers; the input is untouched).

    Dict keys are normalised too (a map keyed by container id compares equal across targets); should two keys
    collapse into one, the later ones get a ``#2``, ``#3``... suffix so nothing is lost.
    """
    return _walk(obj, None, rules)


def _walk(obj: Any, key: str | None, rules: Sequence[Rule]) -> Any:
    if isinstance(obj, dict):
        out: dict[Any, Any] = {}
        for k, v in obj.items():
            new_key = _apply(k, None, rules) if isinstance(k, str) else k
            if new_key in out:
                n = 2
                while f"{new_key}#{n}" in out:
                    n += 1
                new_key = f"{new_key}#{n}"
            out[new_key] = _walk(v, k if isinstance(k, str) else None, rules)
        return out
    if isinstance(obj, list | tuple):
        return [_walk(item, None, rules) for item in obj]
    return _apply(obj, key, rules)


def rule_table(rules: Sequence[Rule] = RULES) -> list[dict[str, str]]:
    """The rules as ``{"name", "description"}`` dicts, for the parity document and reports."""
    return [{"name": r.name, "description": r.description} for r in rules]
