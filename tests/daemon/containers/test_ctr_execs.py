"""Exec records: creation, state from the shim's exec-<id>.json, dockerd's refusals and exit codes, and
starting through a (fake) shim."""

from __future__ import annotations

import asyncio
import os
from types import SimpleNamespace
from typing import Any

import pytest

from harness.daemon.containers.execs import ExecStartError, ExecStore, exec_failure_code
from harness.daemon.errors import ApiError
from harness.daemon.shimstate import exec_path, write_record

from .conftest import Events, fake_shim, make_container


def _store(tmp: str) -> tuple[ExecStore, Any, Events]:
    c = make_container(tmp)
    c.set_running(10)
    events = Events()
    state_dir = os.path.join(tmp, "state")
    os.makedirs(state_dir)
    manager = SimpleNamespace(by_id={c.id: c}, state_dir=lambda _: state_dir, emit=events, daemon=None)
    return ExecStore(manager), c, events  # type: ignore[arg-type]


def test_create_records_what_inspect_shows(tmp_path: Any) -> None:
    execs, c, _ = _store(str(tmp_path))
    record = execs.create(c, {"Cmd": ["ls", "-l"], "User": "nobody", "AttachStdout": True})
    assert execs.get(record["ID"]) is record and c.exec_ids == [record["ID"]]
    assert record["ProcessConfig"] == {
        "tty": False,
        "entrypoint": "ls",
        "arguments": ["-l"],
        "privileged": False,
        "user": "nobody",
    }
    assert (record["OpenStdout"], record["OpenStdin"], record["Running"], record["ExitCode"]) == (
        True,
        False,
        False,
        None,
    )
    assert "user" not in execs.create(c, {"Cmd": ["true"]})["ProcessConfig"]  # omitempty
    with pytest.raises(ApiError) as err:
        execs.get("nope")
    assert (err.value.status, err.value.message) == (404, "No such exec instance: nope")


def test_refresh_reads_the_shims_record(tmp_path: Any) -> None:
    execs, c, _ = _store(str(tmp_path))
    record = execs.create(c, {"Cmd": ["sleep", "1"]})
    state_dir = execs.manager.state_dir(c)
    execs.refresh(record)  # nothing recorded yet: unchanged
    assert (record["Running"], record["Pid"]) == (False, 0)
    write_record(exec_path(state_dir, record["ID"]), {"running": True, "exit_code": None, "pid": 77})
    execs.refresh(record)
    assert (record["Running"], record["Pid"], record["ExitCode"]) == (True, 77, None)
    write_record(exec_path(state_dir, record["ID"]), {"running": False, "exit_code": 3, "pid": 77})
    execs.refresh(record)
    assert (record["Running"], record["Pid"], record["ExitCode"]) == (False, 0, 3)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        ('exec: "nope": executable file not found in $PATH', 127),
        ("open /x: no such file", 127),
        ("EACCES", 126),
    ],
)
def test_an_exec_that_never_started_gets_dockerds_code(tmp_path: Any, error: str, code: int) -> None:
    execs, c, _ = _store(str(tmp_path))
    record = execs.create(c, {"Cmd": ["nope"]})
    state = {"running": False, "exit_code": 126, "pid": 0, "error": error}
    write_record(exec_path(execs.manager.state_dir(c), record["ID"]), state)
    execs.refresh(record)
    assert record["ExitCode"] == code == exec_failure_code(error)


def test_prune_ended_keeps_running_and_never_started_execs(tmp_path: Any) -> None:
    execs, c, _ = _store(str(tmp_path))
    state_dir = execs.manager.state_dir(c)
    ended, running, created = (execs.create(c, {"Cmd": ["x"]}) for _ in range(3))
    ended["_started"] = running["_started"] = True
    write_record(exec_path(state_dir, ended["ID"]), {"running": False, "exit_code": 0, "pid": 1})
    write_record(exec_path(state_dir, running["ID"]), {"running": True, "exit_code": None, "pid": 2})
    execs.prune_ended(c)
    assert c.exec_ids == [running["ID"], created["ID"]]
    assert execs.get(ended["ID"]) is ended  # still inspectable


def test_second_start_and_stopped_container_are_refused(tmp_path: Any) -> None:
    execs, c, _ = _store(str(tmp_path))
    record = execs.create(c, {"Cmd": ["x"]})
    assert execs.started_already(record) is None
    record["_started"] = True
    write_record(exec_path(execs.manager.state_dir(c), record["ID"]), {"running": True, "pid": 2})
    assert execs.started_already(record) == f"exec command {record['ID']} is already running"
    write_record(exec_path(execs.manager.state_dir(c), record["ID"]), {"running": False, "exit_code": 0})
    assert execs.started_already(record) == f"exec command {record['ID']} has already run"
    c.set_stopped(0)
    with pytest.raises(ApiError) as err:
        execs.running_container(record)
    assert (err.value.status, err.value.message) == (409, f"container {c.id} is not running")


def _prepared(execs: ExecStore, record: dict[str, Any]) -> dict[str, Any]:
    record["_started"] = True  # what prepare() does, without building a process spec from a daemon
    return {"op": "exec", "id": record["ID"], "process": {}, "tty": False, "stdin": False, "attach": True}


def test_attached_start_that_fails_is_dockerds_oci_error(tmp_path: Any) -> None:
    execs, c, events = _store(str(tmp_path))
    record = execs.create(c, {"Cmd": ["nope"]})
    inner = 'exec: "nope": executable file not found in $PATH'

    async def main() -> str:
        async with fake_shim(execs.manager.state_dir(c), lambda req: ({"error": inner}, b"")):
            with pytest.raises(ExecStartError) as err:
                await execs.start_attached(c, record, _prepared(execs, record))
            return str(err.value)

    message = asyncio.run(main())
    assert (
        message
        == f"OCI runtime exec failed: exec failed: unable to start container process: {inner}: unknown"
    )
    assert (record["Running"], record["ExitCode"]) == (False, 127)
    assert events.actions == []  # no exec_start for a process that never ran


def test_attached_start_streams_then_ends_with_exec_die(tmp_path: Any) -> None:
    execs, c, events = _store(str(tmp_path))
    record = execs.create(c, {"Cmd": ["echo", "hi"]})
    state_dir = execs.manager.state_dir(c)

    def shim(request: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        write_record(exec_path(state_dir, request["id"]), {"running": False, "exit_code": 0, "pid": 9})
        return {"pid": 9}, b"hi\n"

    async def main() -> tuple[list[dict[str, Any]], bytes]:
        async with fake_shim(state_dir, shim) as requests:
            reader, writer = await execs.start_attached(c, record, _prepared(execs, record))
            assert record["Running"] is True
            data = await reader.read()
            writer.close()
            execs.ended(c, record)
            return requests, data

    requests, data = asyncio.run(main())
    assert requests[0]["id"] == record["ID"] and data == b"hi\n"
    assert events.actions == ["exec_start: echo hi", "exec_die"]
    assert events.seen[1][2] == {"execID": record["ID"], "exitCode": "0"}


def test_detached_start_error_is_a_400_for_a_missing_binary(tmp_path: Any, monkeypatch: Any) -> None:
    execs, c, _ = _store(str(tmp_path))
    record = execs.create(c, {"Cmd": ["nope"]})
    monkeypatch.setattr(
        "harness.daemon.containers.spec.exec_process_spec", lambda daemon, c, request, tty: {"args": []}
    )

    async def main() -> ApiError:
        answer = {"error": 'exec: "nope": executable file not found in $PATH'}
        async with fake_shim(execs.manager.state_dir(c), lambda req: (answer, b"")) as requests:
            with pytest.raises(ApiError) as err:
                await execs.start_detached(c, record, tty=False)
            assert requests[0]["attach"] is False and requests[0]["stdin"] is False
            return err.value

    error = asyncio.run(main())
    assert error.status == 400 and record["_started"] is True


def test_a_detached_exec_ends_with_exec_die_once_its_shim_closes(tmp_path: Any, monkeypatch: Any) -> None:
    """moby's exec monitor sends exec_die for a detached exec too (TestEventsExecDie)."""
    execs, c, events = _store(str(tmp_path))
    record = execs.create(c, {"Cmd": ["echo", "hello"]})
    state_dir = execs.manager.state_dir(c)
    monkeypatch.setattr(
        "harness.daemon.containers.spec.exec_process_spec", lambda daemon, c, request, tty: {"args": []}
    )

    def shim(request: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        write_record(exec_path(state_dir, request["id"]), {"running": False, "exit_code": 0, "pid": 9})
        return {"pid": 9}, b""  # the fake shim closes the connection: the process has ended

    async def main() -> None:
        async with fake_shim(state_dir, shim):
            await execs.start_detached(c, record, tty=False)
            assert events.actions == ["exec_start: echo hello"]
            await asyncio.gather(*execs._watchers)

    asyncio.run(main())
    assert events.actions == ["exec_start: echo hello", "exec_die"]
    assert events.seen[1][2] == {"execID": record["ID"], "exitCode": "0"}


def test_resize_of_an_exec_without_a_tty_is_a_400(tmp_path: Any) -> None:
    execs, c, _ = _store(str(tmp_path))
    record = execs.create(c, {"Cmd": ["sh"]})

    async def main() -> ApiError:
        answer = {"error": "cannot resize a process without a TTY"}
        async with fake_shim(execs.manager.state_dir(c), lambda req: (answer, b"")) as requests:
            with pytest.raises(ApiError) as err:
                await execs.resize(record, 24, 80)
            assert requests == [{"op": "resize", "target": record["ID"], "height": 24, "width": 80}]
            return err.value

    error = asyncio.run(main())
    assert (error.status, error.message) == (400, "cannot resize a process without a TTY")
