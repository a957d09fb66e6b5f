"""Reading and following a container's log, both drivers: what is on disk, then what is written next.

The follower is driven step by step: its ``stopped`` callback runs once per quiet poll, so a test
writes the next records there (the follower has read everything before) and says when the
container has stopped; no timing is involved.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pytest

from harness.daemon.logs import reader as reader_module
from harness.daemon.logs.jsonfile import JsonFileWriter, LogOptions
from harness.daemon.logs.local import LocalOptions, LocalWriter, encode_entry
from harness.daemon.logs.reader import LogReader, entry_time, log_files, read_entries, replay


@pytest.fixture(autouse=True)
def _no_poll_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader_module, "POLL_INTERVAL", 0)


def _line(log: str, stream: str = "stdout", ts: str = "2026-01-01T00:00:00Z") -> bytes:
    return json.dumps({"log": log, "stream": stream, "time": ts}).encode() + b"\n"


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as fh:
        fh.write(data)


class Script:
    """``stopped`` for a follower: each quiet poll runs the next step; once they are done, stopped."""

    def __init__(self, *steps: Callable[[], None]) -> None:
        self.steps = list(steps)
        self.quiet_polls = 0

    def __call__(self) -> bool:
        self.quiet_polls += 1
        if self.steps:
            self.steps.pop(0)()
            return False
        return True


def _follow(reader: LogReader) -> tuple[list[str], list[str]]:
    """(backlog logs, followed logs) of a whole reading."""

    async def main() -> tuple[list[str], list[str]]:
        reader.open()
        try:
            backlog = [e["log"] for e in reader.backlog()]
            followed = [e["log"] async for e in reader.follow()]
        finally:
            reader.close()
        return backlog, followed

    return asyncio.run(asyncio.wait_for(main(), 10))


# -- on disk ---------------------------------------------------------------------------------------
def test_rotated_files_oldest_first_gzip_included(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    (tmp_path / "c-json.log.2").write_bytes(_line("oldest\n"))
    with gzip.open(tmp_path / "c-json.log.1.gz", "wb") as gz:
        gz.write(_line("older\n"))
    path.write_bytes(_line("current\n") + b'{"log": "torn')
    (tmp_path / "c-json.log.x").write_bytes(_line("not a rotation\n"))
    assert log_files(str(path)) == [
        str(tmp_path / n) for n in ("c-json.log.2", "c-json.log.1.gz", "c-json.log")
    ]
    assert [e["log"] for e in read_entries(str(path))] == ["oldest\n", "older\n", "current\n"]


def test_since_until_and_tail(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    path.write_bytes(b"".join(_line(f"{s}\n", ts=f"2026-01-01T00:00:0{s}.5Z") for s in range(6)))
    t0 = entry_time({"time": "2026-01-01T00:00:00Z"})
    assert entry_time({"time": "2026-01-01T00:00:02.5Z"}) == t0 + 2.5
    assert [e["log"] for e in read_entries(str(path), since=t0 + 2)] == ["2\n", "3\n", "4\n", "5\n"]
    assert [e["log"] for e in read_entries(str(path), until=t0 + 2)] == ["0\n", "1\n"]
    assert [e["log"] for e in read_entries(str(path), tail=2)] == ["4\n", "5\n"]
    assert list(read_entries(str(path), tail=0)) == []


def test_a_follow_starts_after_the_last_whole_record_even_with_tail_0(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    path.write_bytes(_line("a\n") + _line("b\n") + b'{"log": "par')
    mark: dict[str, int] = {}
    assert [e["log"] for e in read_entries(str(path), tail=1, mark=mark)] == ["b\n"]
    assert mark == {"position": len(_line("a\n") + _line("b\n")), "inode": path.stat().st_ino}
    mark.clear()
    assert list(read_entries(str(path), tail=0, mark=mark)) == []
    assert mark["position"] == len(_line("a\n") + _line("b\n"))


def test_replay_picks_the_streams(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    path.write_bytes(_line("out\n") + _line("err\n", "stderr"))
    assert list(replay(str(path), stdout=True, stderr=False)) == [("stdout", b"out\n")]
    assert list(replay(str(path), stdout=True, stderr=True)) == [("stdout", b"out\n"), ("stderr", b"err\n")]


# -- following, json-file --------------------------------------------------------------------------
def test_follow_sends_new_lines_once_and_waits_for_a_partial_one(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    path.write_bytes(_line("old\n"))
    half = _line("new\n")
    script = Script(
        lambda: _append(path, _line("next\n") + half[:10]),
        lambda: _append(path, half[10:]),
    )
    backlog, followed = _follow(LogReader(str(path), follow=True, stopped=script))
    assert (backlog, followed) == (["old\n"], ["next\n", "new\n"])
    assert script.quiet_polls == 5  # two steps, then three quiet polls of a stopped container


def test_follow_with_tail_0_sends_only_what_comes_next(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    path.write_bytes(_line("old\n"))
    script = Script(lambda: _append(path, _line("new\n")))
    assert _follow(LogReader(str(path), tail=0, follow=True, stopped=script)) == ([], ["new\n"])


def test_follow_goes_on_in_the_new_file_after_a_rotation(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    writer = JsonFileWriter(str(path), LogOptions(max_size=100, max_file=2))
    writer.write("stdout", b"first\n")
    assert writer.size < 100

    def rotate() -> None:
        writer.write("stdout", b"last in old file\n")  # still under max-size before this write
        writer.write("stdout", b"first in new file\n")  # over it now: the old file becomes .1
        assert os.path.exists(f"{path}.1")

    script = Script(rotate)
    backlog, followed = _follow(LogReader(str(path), follow=True, stopped=script))
    writer.close()
    assert backlog == ["first\n"]
    assert followed == ["last in old file\n", "first in new file\n"]


def test_follow_keeps_the_file_it_holds_after_the_container_is_removed(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    path.write_bytes(_line("before\n"))

    def write_then_remove() -> None:
        _append(path, _line("written before the removal\n"))
        os.unlink(path)

    script = Script(write_then_remove)
    assert _follow(LogReader(str(path), follow=True, stopped=script)) == (
        ["before\n"],
        ["written before the removal\n"],
    )


def test_follow_ends_at_until(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    path.write_bytes(_line("old\n", ts="2026-01-01T00:00:00Z"))
    until = entry_time({"time": "2026-01-01T00:00:05Z"})
    script = Script(
        lambda: _append(
            path, _line("in time\n", ts="2026-01-01T00:00:04Z") + _line("late\n", ts="2026-01-01T00:00:06Z")
        )
    )
    reader = LogReader(str(path), until=until, follow=True, stopped=script)
    backlog, followed = _follow_with_clock(reader, now=until - 1)  # a follow of a moment before until
    assert (backlog, followed) == (["old\n"], ["in time\n"])


def _follow_with_clock(reader: LogReader, now: float) -> tuple[list[str], list[str]]:
    original = reader_module.time.time
    reader_module.time.time = lambda: now  # type: ignore[assignment]
    try:
        return _follow(reader)
    finally:
        reader_module.time.time = original  # type: ignore[assignment]


# -- following, local driver -----------------------------------------------------------------------
class _CountingFile:
    """A file object that counts the bytes read through it."""

    total = 0

    def __init__(self, fh: IO[bytes]) -> None:
        self.fh = fh

    def read(self, *args: Any) -> bytes:
        data = self.fh.read(*args)
        _CountingFile.total += len(data)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fh, name)


def test_local_follow_reads_from_its_offset_not_the_whole_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "local-logs" / "container.log"
    writer = LocalWriter(str(path), LocalOptions(max_size=0))
    for i in range(200):
        writer.write("stdout", b"backlog line %d\n" % i)
    size_before = path.stat().st_size
    original_open = reader_module._open_current

    def counting_open(p: str) -> Any:
        fh = original_open(p)
        return None if fh is None else _CountingFile(fh)

    monkeypatch.setattr(reader_module, "_open_current", counting_open)
    record = encode_entry("stderr", 1_700_000_000_000_000_000, b"split across two writes")

    def first_half() -> None:
        writer.write("stdout", b"next\n")
        with open(path, "ab") as fh:
            fh.write(record[:7])

    def second_half() -> None:
        with open(path, "ab") as fh:
            fh.write(record[7:])

    script = Script(first_half, second_half, lambda: writer.write("stdout", b"partial"))
    backlog, followed = _follow(LogReader(str(path), follow=True, stopped=script))
    writer.close()
    assert len(backlog) == 200 and backlog[-1] == "backlog line 199\n"
    assert followed == ["next\n", "split across two writes\n", "partial"]
    # the backlog is read by path; the follower read each new byte about once, never the backlog again
    assert _CountingFile.total < path.stat().st_size - size_before + len(record) * 2


def test_local_follow_after_rotation(tmp_path: Path) -> None:
    path = tmp_path / "local-logs" / "container.log"
    writer = LocalWriter(str(path), LocalOptions(max_size=40, max_file=2, compress=False))
    writer.write("stdout", b"one\n")
    assert writer.size < 40

    def rotate() -> None:
        writer.write("stdout", b"two\n")  # still under max-size before this write
        writer.write("stdout", b"three\n")  # over it now: the old file becomes .1
        assert os.path.exists(f"{path}.1")

    script = Script(rotate)
    backlog, followed = _follow(LogReader(str(path), follow=True, stopped=script))
    writer.close()
    assert (backlog, followed) == (["one\n"], ["two\n", "three\n"])
