"""The container store: lookups with dockerd's errors, names, records on disk, and what survives refd."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from harness.daemon.containers.model import Container
from harness.daemon.containers.store import ContainerStore
from harness.daemon.errors import ApiError
from harness.daemon.shimstate import EXIT, PID, SOCKET, STATE, write_record

from .conftest import make_container


def _store(tmp_path: Path) -> ContainerStore:
    return ContainerStore(str(tmp_path / "data"), str(tmp_path / "exec"))


def _add(store: ContainerStore, cid: str, name: str) -> Container:
    c = make_container("", cid, name)
    c.root = os.path.join(store.root, c.id)
    store.add(c)
    return c


def _error(call: object) -> tuple[int, str]:
    with pytest.raises(ApiError) as err:
        call()  # type: ignore[operator]
    return err.value.status, err.value.message


def test_lookups_by_id_name_and_prefix(tmp_path: Path) -> None:
    store = _store(tmp_path)
    web = _add(store, "ab", "web")
    db = _add(store, "ac", "db")
    assert store.get(web.id) is web and store.get("web") is web and store.get("/db") is db
    assert store.get("ab") is web and store.by_name("db") is db and store.by_name("nope") is None
    assert _error(lambda: store.get("a")) == (400, "multiple IDs found with provided prefix: a")
    assert _error(lambda: store.get("zz")) == (404, "No such container: zz")
    assert _error(lambda: store.get("")) == (404, "No such container: ")


def test_names_are_checked_and_unique(tmp_path: Path) -> None:
    store = _store(tmp_path)
    web = _add(store, "ab", "web")
    assert store.new_name("/api") == "api"
    assert store.new_name("") not in ("", "web")
    assert _error(lambda: store.new_name("web")) == (
        409,
        f'Conflict. The container name "/web" is already in use by container "{web.id}". You have to '
        "remove (or rename) that container to be able to reuse that name.",
    )
    assert _error(lambda: store.new_name("bad name"))[0] == 400


def test_rename_updates_the_view_and_the_record(tmp_path: Path) -> None:
    store = _store(tmp_path)
    web = _add(store, "ab", "web")
    db = _add(store, "cd", "db")
    assert store.rename(web, "front") == "web"
    assert store.by_name("front") is web and store.by_name("web") is None
    assert Container.load(web.root).name == "/front"
    assert _error(lambda: store.rename(web, "front")) == (
        400,
        "Renaming a container with the same name as its current name",
    )
    assert _error(lambda: store.rename(web, "")) == (400, "Neither old nor new names may be empty")
    status, message = _error(lambda: store.rename(web, "db"))
    assert (
        status == 409 and message.startswith("Error when allocating new name: Conflict.") and db.id in message
    )


def test_links_follow_a_renamed_parent_or_linked_container(tmp_path: Path) -> None:
    store = _store(tmp_path)
    db = _add(store, "ab", "db1")
    app = _add(store, "ac", "app1")
    app.host_config["Links"] = ["/db1:/app1/mysql"]
    store.rename(app, "app2")
    assert app.host_config["Links"] == ["/db1:/app2/mysql"]
    assert store.get("app2/mysql") is db and store.by_link_name("/app1/mysql") is None
    store.rename(db, "db2")
    assert app.host_config["Links"] == ["/db2:/app2/mysql"]
    assert store.get("/app2/mysql") is db
    assert Container.load(app.root).host_config["Links"] == ["/db2:/app2/mysql"]  # saved


def test_records_round_trip_and_deletion_removes_them(tmp_path: Path) -> None:
    store = _store(tmp_path)
    web = _add(store, "ab", "web")
    web.set_running(1)
    web.save()
    stopped = _add(store, "cd", "db")
    os.makedirs(store.state_dir(stopped))
    os.makedirs(os.path.join(store.root, "broken"))
    errors: list[str] = []
    again = _store(tmp_path)
    was_running = again.load(lambda cid, exc: errors.append(cid))
    assert [c.id for c in was_running] == [web.id]
    assert set(again.by_id) == {web.id, stopped.id} and again.names == {"web": web.id, "db": stopped.id}
    assert errors == ["broken"]
    assert again.counts() == {"total": 2, "running": 1, "paused": 0, "stopped": 1}
    again.delete(again.get("db"))
    assert not os.path.exists(stopped.root) and not os.path.exists(store.state_dir(stopped))
    assert again.by_name("db") is None


def test_a_live_restored_container_whose_shim_runs_survives(tmp_path: Path) -> None:
    store = _store(tmp_path)
    c = _add(store, "ab", "web")
    c.set_running(1)
    state_dir = store.state_dir(c)
    os.makedirs(state_dir)
    (Path(state_dir) / PID).write_text(str(os.getpid()))  # a live "shim"
    (Path(state_dir) / SOCKET).touch()
    assert store.survived(c, live_restore=True) is True
    assert c.running


def test_without_live_restore_the_process_is_killed_and_its_exit_recorded(tmp_path: Path) -> None:
    store = _store(tmp_path)
    c = _add(store, "ab", "web")
    c.set_running(1)
    state_dir = store.state_dir(c)
    os.makedirs(state_dir)
    process = subprocess.Popen(["sleep", "60"])
    try:
        (Path(state_dir) / PID).write_text(str(os.getpid()))
        (Path(state_dir) / SOCKET).touch()
        write_record(os.path.join(state_dir, STATE), {"pid": process.pid})
        write_record(os.path.join(state_dir, EXIT), {"exit_code": 3, "finished_at": "2026-01-01T00:00:00Z"})
        assert store.survived(c, live_restore=False) is False
        assert process.wait(timeout=10) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert (c.status, c.state["ExitCode"], c.state["FinishedAt"]) == ("exited", 3, "2026-01-01T00:00:00Z")


def test_a_container_whose_shim_died_unrecorded_exits_137(tmp_path: Path) -> None:
    store = _store(tmp_path)
    c = _add(store, "ab", "web")
    c.set_running(1)
    assert store.survived(c, live_restore=True) is False  # no shim: live-restore cannot keep it
    assert (c.status, c.state["ExitCode"]) == ("exited", 137)
    assert store.exit_of(c)["exit_code"] == 137


def test_image_and_volume_users(tmp_path: Path) -> None:
    store = _store(tmp_path)
    web = _add(store, "ab", "web")
    web.mounts = [{"Type": "volume", "Name": "data"}]
    assert store.uses_image(web.image_id) == [web.id] and store.uses_image("sha256:other") == []
    assert store.volume_users("data") == [web.id] and store.volume_users("other") == []
