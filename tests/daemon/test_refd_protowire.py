"""refd's protobuf codec: wire primitives and messages declared as field tables."""

from __future__ import annotations

import pytest

from harness.daemon.protowire import (
    DecodeError,
    Field,
    Message,
    field_bytes,
    field_varint,
    iter_fields,
    read_varint,
    varint,
)


class Stamp(Message):
    FIELDS = (Field(1, "seconds", "int64"), Field(2, "nanos", "int32"))


class Item(Message):
    FIELDS = (
        Field(1, "name", "string"),
        Field(2, "tags", "string", repeated=True),
        Field(3, "when", message=Stamp),
        Field(4, "attrs", map_value="string"),
        Field(5, "subs", map_value=Stamp),
        Field(6, "flag", "bool"),
        Field(7, "blob", "bytes"),
        Field(8, "counts", "int64", repeated=True),
    )


def test_varints() -> None:
    assert varint(0) == b"\x00" and varint(300) == b"\xac\x02"
    assert varint(-1) == b"\xff" * 9 + b"\x01"  # 64-bit two's complement
    assert read_varint(b"\xac\x02", 0) == (300, 2)
    with pytest.raises(DecodeError, match="truncated varint"):
        read_varint(b"\xac", 0)


def test_known_bytes() -> None:
    # google.protobuf.Timestamp{seconds: 1, nanos: 2}, as any protobuf library writes it
    assert Stamp(seconds=1, nanos=2).encode() == b"\x08\x01\x10\x02"
    assert Item(name="a", tags=["x", "y"]).encode() == b"\x0a\x01a\x12\x01x\x12\x01y"
    assert Item().encode() == b""  # defaults are not written


def test_round_trip() -> None:
    item = Item(
        name="ü",
        tags=["a", ""],
        when=Stamp(seconds=-5, nanos=7),
        attrs={"k": "v", "e": ""},
        subs={"s": Stamp(seconds=3)},
        flag=True,
        blob=b"\x00\xff",
        counts=[1, -2],
    )
    back = Item.decode(item.encode())
    assert back == item
    assert back.when.seconds == -5


def test_empty_message_field_is_present() -> None:
    data = Item(when=Stamp()).encode()
    assert data == b"\x1a\x00"
    assert Item.decode(data).when == Stamp()


def test_unknown_fields_skipped_and_packed_read() -> None:
    data = field_varint(99, 5) + field_bytes(98, b"zz") + b"\x4d\x01\x00\x00\x00" + field_bytes(1, b"n")
    data += field_bytes(8, varint(3) + varint(4))  # packed int64s
    decoded = Item.decode(data)
    assert decoded.name == "n" and decoded.counts == [3, 4]


def test_bad_input() -> None:
    with pytest.raises(DecodeError, match="field 1: 5 bytes announced, 1 left"):
        Item.decode(b"\x0a\x05a")
    with pytest.raises(DecodeError, match="a string field that is not length-delimited"):
        Item.decode(field_varint(1, 3))
    with pytest.raises(DecodeError, match="unexpected wire type"):
        list(iter_fields(b"\x0b"))
    with pytest.raises(TypeError, match="Item has no field 'nope'"):
        Item(nope=1)
