"""The json-file log driver's writer and splitter: the shapes dockerd writes, line splitting, rotation."""

from __future__ import annotations

import json
from pathlib import Path

from harness.daemon.logs.jsonfile import MAX_LINE, JsonFileWriter, LineSplitter, LogOptions
from harness.daemon.logs.reader import read_entries


def test_splitter_keeps_lines_whole_and_cuts_partials_at_16k() -> None:
    s = LineSplitter()
    assert s.feed(b"a\nbb\nc") == [b"a\n", b"bb\n"]
    assert s.feed(b"d\n") == [b"cd\n"]
    assert s.feed(b"") == []
    long = s.feed(b"x" * (MAX_LINE + 10))
    assert long == [b"x" * MAX_LINE]
    assert s.flush() == [b"x" * 10]
    assert s.feed(b"y" * (MAX_LINE + 5) + b"\n") == [
        b"y" * (MAX_LINE + 5) + b"\n"
    ]  # a complete line stays whole


def test_entries_are_what_json_dumps_gives(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    writer = JsonFileWriter(str(path), LogOptions())
    pieces = [b"plain\n", b'quote " back \\ tab \t ctl \x01\n', b"\xff bad utf-8, \xe2\x82\xac <html>&\n"]
    writer.write("stdout", pieces[0], ts="2026-01-02T03:04:05.5Z")
    writer.write_many("stderr", pieces[1:])
    writer.close()
    lines = path.read_bytes().splitlines(keepends=True)
    assert len(lines) == 3
    first = json.dumps(
        {"log": "plain\n", "stream": "stdout", "time": "2026-01-02T03:04:05.5Z"},
        ensure_ascii=False,
        separators=(",", ":"),
    )
    assert lines[0] == first.encode() + b"\n"
    for raw, piece in zip(lines[1:], pieces[1:], strict=True):
        entry = json.loads(raw)
        assert entry["log"] == piece.decode("utf-8", errors="replace")
        assert entry["stream"] == "stderr"
        assert entry["time"].endswith("Z") and "T" in entry["time"]
        expected = json.dumps(
            {"log": entry["log"], "stream": "stderr", "time": entry["time"]},
            ensure_ascii=False,
            separators=(",", ":"),
        )
        assert raw == expected.encode() + b"\n"
    assert [e["log"] for e in read_entries(str(path))] == [
        p.decode("utf-8", errors="replace") for p in pieces
    ]


def test_write_many_rotates_per_entry(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    writer = JsonFileWriter(str(path), LogOptions(max_size=150, max_file=3))
    writer.write_many("stdout", [b"%d\n" % i for i in range(10)])
    writer.close()
    rotated = sorted(p.name for p in tmp_path.iterdir())
    assert rotated == ["c-json.log", "c-json.log.1", "c-json.log.2"]
    assert [e["log"] for e in read_entries(str(path))][-1] == "9\n"
