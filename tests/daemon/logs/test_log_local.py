"""The local log driver's file format, rotation and option checks (moby daemon/logger/local)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from harness.daemon.logs.jsonfile import LogOptionError
from harness.daemon.logs.local import LocalOptions, LocalWriter, decode_entry, parse_local_options
from harness.daemon.logs.reader import read_entries


def test_records_are_size_framed_protobuf(tmp_path: Path) -> None:
    path = tmp_path / "local-logs" / "container.log"
    writer = LocalWriter(str(path), LocalOptions())
    writer.write("stdout", b"line1\n")
    writer.write("stderr", b"partial")
    writer.close()
    data = path.read_bytes()
    (size,) = struct.unpack(">I", data[:4])
    assert data[4 + size : 8 + size] == data[:4]  # the size is repeated after the record
    fields = decode_entry(data[4 : 4 + size])
    assert (fields[1], fields[3]) == (b"stdout", b"line1") and 4 not in fields  # newline dropped
    entries = list(read_entries(str(path)))
    assert [(e["stream"], e["log"]) for e in entries] == [("stdout", "line1\n"), ("stderr", "partial")]
    assert entries[0]["time"].endswith("Z")


def test_rotation_compresses_and_reads_back_in_order(tmp_path: Path) -> None:
    path = tmp_path / "local-logs" / "container.log"
    writer = LocalWriter(str(path), LocalOptions(max_size=100, max_file=3, compress=True))
    for i in range(20):
        writer.write("stdout", f"message {i:02d}\n".encode())
    writer.close()
    names = sorted(os.listdir(path.parent))
    assert names == ["container.log", "container.log.1.gz", "container.log.2.gz"]
    lines = [e["log"] for e in read_entries(str(path))]
    assert lines == sorted(lines) and lines[-1] == "message 19\n"


def test_torn_last_record_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "local-logs" / "container.log"
    writer = LocalWriter(str(path), LocalOptions())
    writer.write("stdout", b"kept\n")
    writer.close()
    with open(path, "ab") as fh:
        fh.write(b"\x00\x00\x00\x40garbage")  # a crash mid-record
    assert [e["log"] for e in read_entries(str(path))] == ["kept\n"]


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        ({"bogus": "1"}, "unknown log opt 'bogus' for log driver local"),
        ({"max-file": "0"}, "compression cannot be enabled when max file count is 1"),
        ({"max-file": "x"}, 'strconv.Atoi: parsing "x": invalid syntax'),
        ({"compress": "maybe"}, 'strconv.ParseBool: parsing "maybe": invalid syntax'),
    ],
)
def test_option_errors(opts: dict[str, str], message: str) -> None:
    with pytest.raises(LogOptionError) as info:
        parse_local_options(opts)
    assert str(info.value) == message


def test_defaults_and_uncompressed_single_file() -> None:
    assert parse_local_options({}) == LocalOptions(20 * 1024 * 1024, 5, True)
    assert parse_local_options({"max-file": "1", "compress": "false"}) == LocalOptions(
        20 * 1024 * 1024, 1, False
    )
