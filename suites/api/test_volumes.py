"""Volumes: the local driver's API and volumes in containers (operations Volume*, HostConfig.Binds/Mounts)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

import pytest

from harness.checks import expect_error
from harness.client import EngineClient
from harness.fixtures import Observations

CLI = Callable[..., Any]
V = "/v1.41"


@pytest.mark.scenario(
    "api/volumes/create-inspect-remove",
    "A created volume MUST inspect with Driver local, scope local and a Mountpoint; removal MUST "
    "make it 404 'get <name>: no such volume'",
    ref="operations VolumeCreate, VolumeInspect",
)
def test_create_inspect_remove(engine: EngineClient, observe: Observations) -> None:
    created = engine.post(f"{V}/volumes/create", json={"Name": "vol-a", "Labels": {"team": "qa"}})
    inspected = engine.get(f"{V}/volumes/vol-a").json()
    again = engine.post(f"{V}/volumes/create", json={"Name": "vol-a"})
    removed = engine.delete(f"{V}/volumes/vol-a")
    gone = engine.get(f"{V}/volumes/vol-a")
    observe("create_status", created.status_code)
    observe("inspect", {k: inspected.get(k) for k in ("Driver", "Labels", "Name", "Options", "Scope")})
    observe("mountpoint_suffix", inspected["Mountpoint"].endswith("/volumes/vol-a/_data"))
    observe("create_again", again.status_code)
    observe("removed", removed.status_code)
    observe("gone", {"status": gone.status_code, "body": gone.json()})
    assert created.status_code == 201 and gone.status_code == 404
    assert gone.json() == {"message": "get vol-a: no such volume"}


@pytest.mark.scenario(
    "api/volumes/invalid-name",
    "A volume name with invalid characters MUST get 400 with the local driver's message",
    ref="moby volume/local/local.go",
)
def test_invalid_name(engine: EngineClient, observe: Observations) -> None:
    resp = engine.post(f"{V}/volumes/create", json={"Name": "bad name"})
    observe("status", resp.status_code)
    observe("message", resp.json().get("message"))
    expect_error(
        resp,
        400,
        'create bad name: "bad name" includes invalid characters for a local volume name, only '
        '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, '
        "use absolute path",
    )


@pytest.mark.scenario(
    "api/volumes/list-filters",
    "GET /volumes MUST list volumes with Warnings and honour the name and label filters",
    ref="operation VolumeList",
)
def test_list_filters(engine: EngineClient, observe: Observations) -> None:
    import json

    engine.post(f"{V}/volumes/create", json={"Name": "vol-list", "Labels": {"pick": "me"}})
    try:
        everything = engine.get(f"{V}/volumes").json()
        by_label = engine.get(f"{V}/volumes", params={"filters": json.dumps({"label": ["pick=me"]})}).json()
        by_name = engine.get(f"{V}/volumes", params={"filters": json.dumps({"name": ["nomatch"]})}).json()
        observe("keys", sorted(everything))
        observe("listed", any(v["Name"] == "vol-list" for v in everything["Volumes"]))
        observe("by_label", [v["Name"] for v in by_label["Volumes"] or []])
        observe("by_name", [v["Name"] for v in by_name["Volumes"] or []])
        assert [v["Name"] for v in by_label["Volumes"]] == ["vol-list"]
    finally:
        engine.delete(f"{V}/volumes/vol-list")


@pytest.mark.scenario(
    "api/volumes/keeps-data",
    "A named volume MUST keep its data across containers",
    ref="docker CLI run -v name:/path",
)
def test_keeps_data(docker_cli: CLI, test_image: str, observe: Observations) -> None:
    try:
        first = docker_cli(
            "run", "--rm", "-v", "vol-keep:/data", test_image, "sh", "-c", "echo kept > /data/f"
        )
        second = docker_cli("run", "--rm", "-v", "vol-keep:/data", test_image, "cat", "/data/f")
        observe("exit_codes", [first.returncode, second.returncode])
        observe("read_back", second.stdout)
        assert second.stdout == "kept\n"
    finally:
        docker_cli("volume", "rm", "-f", "vol-keep")


@pytest.mark.scenario(
    "api/volumes/in-use",
    "Removing a volume a container uses MUST get 409 naming the container",
    ref="moby volume/service/errors.go",
)
def test_in_use(engine: EngineClient, test_image: str, observe: Observations) -> None:
    cid = engine.post(
        f"{V}/containers/create",
        json={"Image": test_image, "Cmd": ["true"], "HostConfig": {"Binds": ["vol-busy:/data"]}},
    ).json()["Id"]
    try:
        resp = engine.delete(f"{V}/volumes/vol-busy")
        observe("status", resp.status_code)
        observe("message", resp.json()["message"].replace(cid, "<id>"))
        mounts = engine.get(f"{V}/containers/{cid}/json").json()["Mounts"]
        observe(
            "mounts",
            [{k: m.get(k) for k in ("Type", "Name", "Destination", "Driver", "Mode", "RW")} for m in mounts],
        )
        expect_error(resp, 409, re.compile(r"remove vol-busy: volume is in use - \[[0-9a-f]+\]$"))
    finally:
        engine.delete(f"{V}/containers/{cid}?force=1")
        engine.delete(f"{V}/volumes/vol-busy")


@pytest.mark.scenario(
    "api/volumes/copy-up",
    "A new volume mounted over image content MUST start with that content",
    ref="moby daemon/volumes_unix.go copy-up",
)
def test_copy_up(docker_cli: CLI, test_image: str, observe: Observations) -> None:
    try:
        result = docker_cli(
            "run", "--rm", "-v", "vol-copy:/var/www", test_image, "cat", "/var/www/index.html"
        )
        observe("content", result.stdout)
        assert result.stdout == "hello from harness busybox\n"
    finally:
        docker_cli("volume", "rm", "-f", "vol-copy")


@pytest.mark.scenario(
    "api/volumes/anonymous-rm-v",
    "An anonymous volume (-v /path) MUST be listed in Mounts and removed with `docker rm -v`",
    ref="docker CLI run -v /path, rm -v",
)
def test_anonymous(docker_cli: CLI, engine: EngineClient, test_image: str, observe: Observations) -> None:
    cid = docker_cli("create", "-v", "/scratch", test_image, "true").stdout.strip()
    mounts = engine.get(f"{V}/containers/{cid}/json").json()["Mounts"]
    name = mounts[0]["Name"] if mounts else ""
    observe(
        "mount", {k: mounts[0].get(k) for k in ("Type", "Destination", "Driver", "RW")} if mounts else None
    )
    observe("name_is_64_hex", len(name) == 64)
    docker_cli("rm", "-v", cid)
    gone = engine.get(f"{V}/volumes/{name}")
    observe("after_rm_v", gone.status_code)
    assert len(name) == 64
    expect_error(gone, 404, f"get {name}: no such volume")


@pytest.mark.scenario(
    "api/volumes/copy-up-at-create",
    "A new volume over image content MUST get that content when the container is created (before it ever "
    "starts), and only then: a volume emptied by the container stays empty when it starts again",
    ref="moby daemon/create_unix.go populateVolumes",
)
def test_copy_up_at_create(docker_cli: CLI, test_image: str, observe: Observations) -> None:
    tag = f"{os.getpid()}-{os.urandom(3).hex()}"
    created, emptied = f"vol-at-create-{tag}", f"vol-emptied-{tag}"
    names = [f"copyup-a-{tag}", f"copyup-b-{tag}"]
    try:
        docker_cli("create", "--name", names[0], "-v", f"{created}:/var/www", test_image, "true")
        before_start = docker_cli("run", "--rm", "-v", f"{created}:/data", test_image, "ls", "/data")
        first = docker_cli(
            "run",
            "--name",
            names[1],
            "-v",
            f"{emptied}:/var/www",
            test_image,
            "sh",
            "-c",
            "ls /var/www; rm -f /var/www/*",
        )
        again = docker_cli("start", "-a", names[1])
        seen = {"before_start": before_start.stdout, "first_run": first.stdout, "after_restart": again.stdout}
        observe("volume_content", seen)
        assert seen == {"before_start": "index.html\n", "first_run": "index.html\n", "after_restart": ""}, (
            first.stderr,
            again.stderr,
        )
    finally:
        docker_cli("rm", "-f", *names)
        docker_cli("volume", "rm", "-f", created, emptied)
