"""Protocol Buffers on the wire, and messages declared as field tables: refd's one protobuf codec.

refd speaks protobuf in two places: the ``local`` log driver's ``LogEntry`` records and BuildKit's gRPC
services (``buildkit/messages.py``). Both need only the proto3 wire format (varints, length-delimited
fields, fixed 32/64-bit fields skipped when unknown), so refd keeps this small codec instead of
loading a protobuf runtime; what the wire contract is (field numbers, names, kinds) is written down
as a table per message, in our own words.

A message class lists its fields::

    class Timestamp(Message):
        FIELDS = (Field(1, "seconds", "int64"), Field(2, "nanos", "int32"))

Kinds: ``string``, ``bytes``, ``bool``, ``int32``, ``int64``, ``uint32``, ``uint64``, ``enum``, a
Message subclass (``message=``), and maps (``map_value=`` a kind or a Message subclass; keys are
strings). ``repeated=True`` makes a list (never packed: BuildKit's messages repeat strings and
messages only; packed varints are still read). Unknown fields are skipped when decoding; default
values are not written, as proto3 does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

__all__ = [
    "DecodeError",
    "Field",
    "Message",
    "field_bytes",
    "field_varint",
    "iter_fields",
    "read_varint",
    "varint",
]

_U64 = (1 << 64) - 1
_SCALARS = ("string", "bytes", "bool", "int32", "int64", "uint32", "uint64", "enum")


class DecodeError(ValueError):
    """Bytes that are not the message they should be (truncated, a wrong wire type)."""


def varint(value: int) -> bytes:
    """A base-128 varint; negative numbers as their 64-bit two's complement (10 bytes), as proto3 does."""
    value &= _U64
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def read_varint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it."""
    shift = value = 0
    try:
        while True:
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value, pos
            shift += 7
            if shift > 63:
                raise DecodeError("varint longer than 10 bytes")
    except IndexError:
        raise DecodeError("truncated varint") from None


def field_bytes(number: int, data: bytes) -> bytes:
    """A length-delimited field (strings, bytes, embedded messages)."""
    return varint(number << 3 | 2) + varint(len(data)) + data


def field_varint(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def iter_fields(data: bytes | memoryview) -> Iterator[tuple[int, int, Any]]:
    """``(number, wire type, value)`` per field: an int for varints and fixed fields, bytes for the rest."""
    pos, end = 0, len(data)
    while pos < end:
        key, pos = read_varint(data, pos)
        number, kind = key >> 3, key & 7
        value: Any
        if kind == 0:
            value, pos = read_varint(data, pos)
        elif kind == 2:
            size, pos = read_varint(data, pos)
            if pos + size > end:
                raise DecodeError(f"field {number}: {size} bytes announced, {end - pos} left")
            value = bytes(data[pos : pos + size])
            pos += size
        elif kind == 1:
            if pos + 8 > end:
                raise DecodeError(f"field {number}: truncated fixed64")
            value = int.from_bytes(data[pos : pos + 8], "little")
            pos += 8
        elif kind == 5:
            if pos + 4 > end:
                raise DecodeError(f"field {number}: truncated fixed32")
            value = int.from_bytes(data[pos : pos + 4], "little")
            pos += 4
        else:
            raise DecodeError(f"field {number}: unexpected wire type {kind}")
        yield number, kind, value


@dataclass(frozen=True)
class Field:
    """One field of a message: its number (the wire contract), its Python name, its kind."""

    number: int
    name: str
    kind: str = ""  # a scalar kind; "" when ``message`` or ``map_value`` says what it is
    repeated: bool = False
    message: type[Message] | None = None
    map_value: str | type[Message] | None = None

    def default(self) -> Any:
        if self.map_value is not None:
            return {}
        if self.repeated:
            return []
        if self.message is not None:
            return None
        return {"string": "", "bytes": b"", "bool": False}.get(self.kind, 0)


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1 if bits == 32 else _U64
    return value - (1 << bits) if value >> (bits - 1) else value


def _encode_scalar(number: int, kind: str, value: Any) -> bytes:
    if kind == "string":
        return field_bytes(number, str(value).encode())
    if kind == "bytes":
        return field_bytes(number, bytes(value))
    if kind == "bool":
        return field_varint(number, 1 if value else 0)
    if kind in ("int32", "int64", "uint32", "uint64", "enum"):
        return field_varint(number, int(value))
    raise TypeError(f"unknown protobuf kind {kind!r}")


def _decode_scalar(kind: str, wire: int, value: Any) -> Any:
    if kind == "string":
        if wire != 2:
            raise DecodeError("a string field that is not length-delimited")
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise DecodeError("a string field that is not UTF-8") from None
    if kind == "bytes":
        if wire != 2:
            raise DecodeError("a bytes field that is not length-delimited")
        return value
    if wire == 2:
        raise DecodeError(f"a {kind} field that is length-delimited")
    if kind == "bool":
        return bool(value)
    if kind in ("int32", "enum"):
        return _signed(value, 32)
    if kind == "int64":
        return _signed(value, 64)
    if kind == "uint32":
        return value & 0xFFFFFFFF
    return value


class Message:
    """A protobuf message declared by ``FIELDS``; attributes are the field names."""

    FIELDS: ClassVar[tuple[Field, ...]] = ()
    _by_number: ClassVar[dict[int, Field]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._by_number = {}

    @classmethod
    def _fields(cls) -> dict[int, Field]:
        if not cls._by_number and cls.FIELDS:
            cls._by_number = {f.number: f for f in cls.FIELDS}
        return cls._by_number

    def __init__(self, **values: Any) -> None:
        names = {f.name for f in self.FIELDS}
        for key in values:
            if key not in names:
                raise TypeError(f"{type(self).__name__} has no field {key!r}")
        for f in self.FIELDS:
            setattr(self, f.name, values[f.name] if f.name in values else f.default())

    if TYPE_CHECKING:  # fields are attributes made from FIELDS: typed as Any for the checker

        def __getattr__(self, name: str) -> Any: ...

        def __setattr__(self, name: str, value: Any) -> None: ...

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, f.name) == getattr(other, f.name) for f in self.FIELDS)

    def __repr__(self) -> str:
        set_fields = [
            f"{f.name}={getattr(self, f.name)!r}" for f in self.FIELDS if getattr(self, f.name) != f.default()
        ]
        return f"{type(self).__name__}({', '.join(set_fields)})"

    # -- encoding -------------------------------------------------------------------------------------
    def encode(self) -> bytes:
        out = bytearray()
        for f in self.FIELDS:
            value = getattr(self, f.name)
            if f.map_value is not None:
                for key in value:
                    entry = _encode_scalar(1, "string", key) + _encode_value(2, f.map_value, value[key])
                    out += field_bytes(f.number, entry)
            elif f.repeated:
                for item in value:
                    out += _encode_one(f, item)
            elif value is not None and value != f.default():
                out += _encode_one(f, value)  # a set message is written even when empty
        return bytes(out)

    # -- decoding -------------------------------------------------------------------------------------
    @classmethod
    def decode(cls, data: bytes | memoryview) -> Any:
        msg = cls()
        fields = cls._fields()
        for number, wire, value in iter_fields(data):
            f = fields.get(number)
            if f is None:
                continue
            if f.map_value is not None:
                key, item = _decode_map_entry(f.map_value, value)
                getattr(msg, f.name)[key] = item
            elif f.message is not None:
                if wire != 2:
                    raise DecodeError(f"{cls.__name__}.{f.name}: not an embedded message")
                item = f.message.decode(value)
                if f.repeated:
                    getattr(msg, f.name).append(item)
                else:
                    setattr(msg, f.name, item)
            elif f.repeated and wire == 2 and f.kind not in ("string", "bytes"):
                items = getattr(msg, f.name)
                pos = 0
                while pos < len(value):  # packed scalars
                    raw, pos = read_varint(value, pos)
                    items.append(_decode_scalar(f.kind, 0, raw))
            elif f.repeated:
                getattr(msg, f.name).append(_decode_scalar(f.kind, wire, value))
            else:
                setattr(msg, f.name, _decode_scalar(f.kind, wire, value))
        return msg


def _encode_one(f: Field, value: Any) -> bytes:
    if f.message is not None:
        return field_bytes(f.number, value.encode())
    return _encode_scalar(f.number, f.kind, value)


def _encode_value(number: int, kind: str | type[Message], value: Any) -> bytes:
    if isinstance(kind, str):
        return _encode_scalar(number, kind, value)
    return field_bytes(number, value.encode())


def _decode_map_entry(kind: str | type[Message], data: Any) -> tuple[str, Any]:
    if not isinstance(data, bytes):
        raise DecodeError("a map entry that is not length-delimited")
    key: str = ""
    item: Any = kind.decode(b"") if not isinstance(kind, str) else Field(2, "v", kind).default()
    for number, wire, value in iter_fields(data):
        if number == 1:
            key = _decode_scalar("string", wire, value)
        elif number == 2:
            item = _decode_scalar(kind, wire, value) if isinstance(kind, str) else kind.decode(value)
    return key, item
