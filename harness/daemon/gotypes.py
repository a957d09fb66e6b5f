"""Go's encoding/json type errors for request bodies, so a wrong type is dockerd's 400, not a crash.

dockerd decodes a body into a Go struct; a value of the wrong JSON kind stops the decode with
``json: cannot unmarshal <kind> into Go struct field <Struct>.<path> of type <type>`` (``Go value of type
<type>`` at the top), which the router answers as ``400 invalid JSON: ...``. ``check`` walks a decoded
body against a small description of the struct and raises that error for the first mismatch, in field
order as Go meets them (document order). Unknown keys are ignored, ``null`` is always allowed, and a key
matching a described field only case-insensitively is renamed to it, as in Go.

A type is a scalar name (``"string"``, ``"bool"``, ``"int"``, ``"int64"``, ``"uint16"``, ``"float64"``,
``"any"``, ``"strslice"`` for moby's StrSlice), a ``Struct``, or ``List``/``Map`` of another type. A
``Struct`` whose fields come from an embedded struct (container.CreateRequest) has ``prefix=""``: Go then
names its fields ``.Field``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError, invalid

__all__ = ["List", "Map", "Struct", "atoi", "check"]

_KINDS = {str: "string", bool: "bool", list: "array", dict: "object", int: "number", float: "number"}
_INTS = {"int", "int64", "int32", "uint16", "uint32", "uint64", "uint", "uint8"}
#: named Go types by their underlying type (moby's string modes, time.Duration)
_ALIASES = {
    "time.Duration": "int64",
    **{
        name: "string"
        for name in (
            "container.NetworkMode",
            "container.IpcMode",
            "container.PidMode",
            "container.UTSMode",
            "container.UsernsMode",
            "container.CgroupnsMode",
            "container.CgroupSpec",
            "container.Isolation",
            "container.RestartPolicyMode",
            "mount.Type",
            "mount.Consistency",
        )
    },
}


@dataclass(frozen=True, eq=False)
class Struct:
    name: str  # with its package: network.CreateRequest
    fields: dict[str, GoType] = field(default_factory=dict)
    prefix: str | None = None  # what Go prints before a field path; None: the type's short name


@dataclass(frozen=True)
class List:
    elem: GoType
    name: str = ""

    def go_name(self) -> str:
        return self.name or f"[]{_go_name(self.elem)}"


@dataclass(frozen=True)
class Map:
    elem: GoType
    name: str = ""

    def go_name(self) -> str:
        return self.name or f"map[string]{_go_name(self.elem)}"


GoType = str | Struct | List | Map


def _go_name(t: GoType) -> str:
    if isinstance(t, str):
        return "interface {}" if t == "any" else t
    if isinstance(t, Struct):
        return t.name
    return t.go_name()


def _kind(value: Any, target: GoType) -> str:
    kind = _KINDS.get(type(value), "value")
    if isinstance(target, str):
        target = _ALIASES.get(target, target)
    if kind == "number" and isinstance(target, str) and target in _INTS | {"float64", "float32"}:
        return f"number {value}"  # a fraction or an overflow into a Go number
    return kind


def _fits(value: Any, t: GoType) -> bool:
    if not isinstance(t, str):
        return isinstance(value, list if isinstance(t, List) else dict)
    t = _ALIASES.get(t, t)
    if t == "any":
        return True
    if t == "string":
        return isinstance(value, str)
    if t == "bool":
        return isinstance(value, bool)
    if isinstance(t, str) and t in _INTS:
        if isinstance(value, bool) or not isinstance(value, int):
            return False
        signed = not t.startswith("uint")
        bits = {"int8": 8, "uint8": 8, "uint16": 16, "int32": 32, "uint32": 32}.get(t, 64)
        low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        return low <= value <= high
    if isinstance(t, str) and t in ("float64", "float32"):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return True


def _pointer(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")  # a JSON pointer token, as Go 1.25 writes paths


def _walk(value: Any, t: GoType, top: str, path: str, indexed: bool = False) -> None:
    if value is None:
        return
    if t == "strslice":  # strslice.StrSlice: a list of strings or one string, else the string error
        if isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            return
        raise invalid(f"invalid JSON: json: cannot unmarshal {_kind(value, t)} into Go value of type string")
    if not _fits(value, t):
        # Go 1.25: the path has indices and JSON-pointer keys; "Go struct field" unless it ends in an index
        where = "Go value" if not path else (f"{top}.{path}" if indexed else f"Go struct field {top}.{path}")
        raise invalid(
            f"invalid JSON: json: cannot unmarshal {_kind(value, t)} into {where} of type {_go_name(t)}"
        )
    if isinstance(t, Struct):
        _fold_keys(value, t)
        for key, item in value.items():
            sub = t.fields.get(key)
            if sub is not None:
                _walk(item, sub, top, f"{path}.{key}" if path else key)
    elif isinstance(t, List):
        for i, item in enumerate(value):
            _walk(item, t.elem, top, f"{path}.{i}" if path else str(i), indexed=True)
    elif isinstance(t, Map):
        for key, item in value.items():
            _walk(item, t.elem, top, f"{path}.{_pointer(key)}" if path else _pointer(key))


def _fold_keys(value: dict[str, Any], t: Struct) -> None:
    """Go's decoder matches a key to a field case-insensitively when no field has it exactly (docker-py
    sends ``detachKeys`` for ExecConfig.DetachKeys): such keys are renamed to the field's name, in place;
    a later key for the same field wins, as Go assigns them in document order."""
    folded = {name.casefold(): name for name in t.fields}
    renamed = {key: folded.get(key.casefold(), key) for key in value if key not in t.fields}
    if all(key == name for key, name in renamed.items()):
        return
    items = list(value.items())
    value.clear()
    for key, item in items:
        value[renamed.get(key, key)] = item


def check(body: Any, t: Struct) -> dict[str, Any]:
    """``body`` if it decodes into ``t`` as Go would, else dockerd's 400; ``{}`` for an absent body."""
    if body is None:
        return {}
    _walk(body, t, t.name.rpartition(".")[2] if t.prefix is None else t.prefix, "")
    assert isinstance(body, dict)
    return body


def atoi(text: str) -> int:
    """Go's ``strconv.Atoi`` as dockerd's handlers call it on query values: its error is a plain 500."""
    import json

    digits = text[1:] if text[:1] in ("+", "-") else text
    quoted = json.dumps(text, ensure_ascii=False)
    if not digits or not (digits.isascii() and digits.isdigit()):
        raise ApiError(500, f"strconv.Atoi: parsing {quoted}: invalid syntax")
    value = int(text)
    if not -(1 << 63) <= value < 1 << 63:
        raise ApiError(500, f"strconv.Atoi: parsing {quoted}: value out of range")
    return value
