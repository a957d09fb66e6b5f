"""Disk usage and sizes: ``GET /system/df`` (``docker system df``), container sizes (``?size=1``), and
local volumes with mount options (tmpfs, bind) as the local driver mounts them."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from harness.checks import eventually, expect_error
from harness.client import EngineClient
from harness.fixtures import Observations

CLI = Callable[..., Any]


@pytest.fixture
def cleanup(engine: EngineClient) -> Iterator[Callable[..., None]]:
    containers: list[str] = []
    volumes: list[str] = []

    def register(*, container: str = "", volume: str = "") -> None:
        if container:
            containers.append(container)
        if volume:
            volumes.append(volume)

    yield register
    for name in containers:
        engine.delete(f"/containers/{name}?force=1&v=1")
    for name in volumes:
        engine.delete(f"/volumes/{name}?force=1")


def _run(engine: EngineClient, image: str, name: str, cmd: list[str], **body: Any) -> int:
    created = engine.post(f"/containers/create?name={name}", json={"Image": image, "Cmd": cmd, **body})
    assert created.status_code == 201, created.text
    return engine.post(f"/containers/{name}/start").status_code


def _error(resp: Any) -> dict[str, Any]:
    return {"status": resp.status_code, "message": resp.json().get("message") if resp.content else ""}


def _empty_build_cache(engine: EngineClient, observe: Observations) -> None:
    """The shared daemon keeps the build cache of earlier build scenarios (the isolation guard restores
    containers, images, networks and volumes, not the cache): scenarios stating what an empty cache shows
    empty it first."""
    pruned = engine.post("/build/prune?all=1")
    assert observe("build_prune_status", pruned.status_code) == 200, pruned.text


@pytest.mark.scenario(
    "api/system/df",
    "GET /system/df MUST report LayersSize, Images (with their container count and shared size), Containers "
    "(with SizeRootFs), Volumes (with UsageData size and reference count) and an empty BuildCache",
    ref="operation SystemDataUsage; moby daemon/disk_usage.go",
)
def test_system_df(engine: EngineClient, test_image: str, cleanup: Any, observe: Observations) -> None:
    _empty_build_cache(engine, observe)
    cleanup(container="df-ctr", volume="df-vol")
    _run(
        engine,
        test_image,
        "df-ctr",
        ["sh", "-c", "printf 12345 > /data/f; sleep 300"],
        HostConfig={"Binds": ["df-vol:/data"]},
    )
    image_id = engine.get(f"/images/{test_image}/json").json()["Id"]

    def usage() -> tuple[dict[str, Any], dict[str, Any]] | None:
        doc = engine.get("/system/df").json()
        vol = next((v for v in doc["Volumes"] or [] if v["Name"] == "df-vol"), None)
        return (doc, vol) if vol and vol["UsageData"]["Size"] == 5 else None

    doc, vol = eventually(usage, "df-vol's 5 bytes in /system/df's UsageData", timeout=10)
    image = next(i for i in doc["Images"] if i["Id"] == image_id)
    ctr = next(c for c in doc["Containers"] if c["Names"] == ["/df-ctr"])
    assert observe("keys", sorted(doc)) == ["BuildCache", "Containers", "Images", "LayersSize", "Volumes"]
    assert {"Containers", "SharedSize", "Size"} <= set(observe("image_keys", sorted(image)))
    counts = observe("image_counts", {"Containers": image["Containers"] >= 1, "Size": image["Size"] > 0})
    assert counts == {"Containers": True, "Size": True}
    assert "SizeRootFs" in observe("container_keys", sorted(ctr))
    rootfs = ctr["SizeRootFs"] == image["Size"] + ctr.get("SizeRw", 0)
    assert observe("container_rootfs_is_image_size", rootfs), (ctr, image["Size"])
    volume = observe("volume", {k: v for k, v in (vol or {}).items() if k not in ("CreatedAt", "Mountpoint")})
    assert volume["UsageData"] == {"RefCount": 1, "Size": 5}
    assert observe("layers_size_positive", doc["LayersSize"] > 0)
    assert observe("build_cache", doc["BuildCache"]) == []


@pytest.mark.scenario(
    "api/system/df-type",
    "GET /system/df?type=volume MUST leave the other kinds null; an unknown type MUST be refused with 400 "
    "'unknown object type'",
    ref="operation SystemDataUsage",
)
def test_system_df_type(engine: EngineClient, observe: Observations) -> None:
    only = engine.get("/system/df", params={"type": "volume"}).json()
    nulls = observe("nulls", {k: only[k] for k in ("LayersSize", "Images", "Containers", "BuildCache")})
    assert nulls == {"LayersSize": 0, "Images": None, "Containers": None, "BuildCache": None}
    assert observe("volumes_is_list", isinstance(only["Volumes"], list))
    bogus = engine.get("/system/df", params={"type": "bogus"})
    observe("bogus", _error(bogus))
    expect_error(bogus, 400, "unknown object type: bogus")


@pytest.mark.scenario(
    "api/containers/size",
    "Inspect and list with size=1 MUST give SizeRw (the bytes the container wrote) and SizeRootFs (the image "
    "plus those); without size=1 neither field is present",
    ref="operations ContainerInspect, ContainerList (size)",
)
def test_container_size(engine: EngineClient, test_image: str, cleanup: Any, observe: Observations) -> None:
    cleanup(container="size-ctr")
    _run(engine, test_image, "size-ctr", ["sh", "-c", "head -c 3000 /dev/zero > /written; sleep 300"])
    image_size = engine.get(f"/images/{test_image}/json").json()["Size"]

    def sized() -> dict[str, Any] | None:
        doc: dict[str, Any] = engine.get("/containers/size-ctr/json", params={"size": "1"}).json()
        return doc if doc.get("SizeRw") == 3000 else None

    doc = eventually(sized, "SizeRw 3000 (the bytes the container wrote) in inspect?size=1", timeout=10)
    listed = engine.get("/containers/json", params={"size": "1", "filters": '{"name":["size-ctr"]}'}).json()
    plain = engine.get("/containers/size-ctr/json").json()
    inspected = observe(
        "inspect", {"SizeRw": doc.get("SizeRw"), "rootfs_minus_image": doc.get("SizeRootFs", 0) - image_size}
    )
    assert inspected == {"SizeRw": 3000, "rootfs_minus_image": 3000}
    in_list = observe(
        "list",
        {
            "SizeRw": listed[0].get("SizeRw"),
            "rootfs_minus_image": listed[0].get("SizeRootFs", 0) - image_size,
        },
    )
    assert in_list == {"SizeRw": 3000, "rootfs_minus_image": 3000}
    assert observe("without_size", sorted(k for k in plain if k.startswith("Size"))) == []


@pytest.mark.scenario(
    "api/cli/system-df",
    "`docker system df` MUST print the TYPE/TOTAL/ACTIVE/SIZE/RECLAIMABLE table with Images, Containers, "
    "Local Volumes and Build Cache rows",
    ref="docker CLI system df",
)
def test_cli_system_df(docker_cli: CLI, engine: EngineClient, observe: Observations) -> None:
    _empty_build_cache(engine, observe)
    out = docker_cli("system", "df")
    lines = out.stdout.splitlines()
    assert observe("exit", out.returncode) == 0, out.stderr
    assert observe("header", lines[0].split() if lines else []) == [
        "TYPE",
        "TOTAL",
        "ACTIVE",
        "SIZE",
        "RECLAIMABLE",
    ]
    rows = observe("rows", [re.split(r"\s{2,}", ln)[0] for ln in lines[1:]])
    assert rows == ["Images", "Containers", "Local Volumes", "Build Cache"]
    assert observe("build_cache_row", re.split(r"\s{2,}", lines[-1])[1:] if lines else []) == [
        "0",
        "0",
        "0B",
        "0B",
    ]


# -- volumes with mount options ------------------------------------------------------------------------


@pytest.mark.scenario(
    "api/volumes/tmpfs-options",
    "A local volume with type=tmpfs, device=tmpfs and o=size=..,uid=.. MUST be a tmpfs of that size owned "
    "by that uid inside the container, and its content MUST go when its last user stops (it is unmounted)",
    ref="docker volume create --opt; moby volume/local/local_unix.go",
)
def test_tmpfs_volume(engine: EngineClient, test_image: str, cleanup: Any, observe: Observations) -> None:
    cleanup(volume="vol-tmpfs", container="vol-tmpfs-a")
    cleanup(container="vol-tmpfs-b")
    created = engine.post(
        "/volumes/create",
        json={
            "Name": "vol-tmpfs",
            "DriverOpts": {"type": "tmpfs", "device": "tmpfs", "o": "size=10m,uid=1000"},
        },
    )
    _run(
        engine,
        test_image,
        "vol-tmpfs-a",
        [
            "sh",
            "-c",
            "df -k /data | tail -1 | awk '{print $1, $2}'; stat -c '%u %a' /data; echo kept > /data/f",
        ],
        HostConfig={"Binds": ["vol-tmpfs:/data"]},
    )
    engine.post("/containers/vol-tmpfs-a/wait")
    first = engine.get("/containers/vol-tmpfs-a/logs?stdout=1&stderr=1").content
    _run(engine, test_image, "vol-tmpfs-b", ["ls", "-A", "/data"], HostConfig={"Binds": ["vol-tmpfs:/data"]})
    engine.post("/containers/vol-tmpfs-b/wait")
    second = engine.get("/containers/vol-tmpfs-b/logs?stdout=1&stderr=1").content
    assert observe("create", created.status_code) == 201
    options = observe("options", engine.get("/volumes/vol-tmpfs").json()["Options"])
    assert options == {"device": "tmpfs", "o": "size=10m,uid=1000", "type": "tmpfs"}
    inside = observe("inside", re.sub(rb"[\x00-\x08]", b"", first).decode(errors="replace").split())
    assert inside[:3] == ["tmpfs", "10240", "1000"], inside  # a 10 MiB tmpfs owned by uid 1000
    assert (
        observe("after_last_user", re.sub(rb"[\x00-\x08]", b"", second).decode(errors="replace").split())
        == []
    )


@pytest.mark.scenario(
    "api/volumes/bind-options",
    "A local volume with type=none, o=bind and device=<host dir> MUST show that directory's files in the "
    "container; a missing device directory MUST fail the start with 'error while mounting volume'",
    ref="docker volume create --opt type=none --opt o=bind",
)
def test_bind_volume(
    engine: EngineClient, test_image: str, cleanup: Any, observe: Observations, tmp_path: Any
) -> None:
    source = tmp_path / "bind-src"
    source.mkdir()
    (source / "hello.txt").write_text("from-the-host\n")
    os.chmod(tmp_path, 0o755)
    cleanup(volume="vol-bind", container="vol-bind-ctr")
    cleanup(volume="vol-bind-missing", container="vol-bind-missing-ctr")
    engine.post(
        "/volumes/create",
        json={"Name": "vol-bind", "DriverOpts": {"type": "none", "o": "bind", "device": str(source)}},
    )
    _run(
        engine,
        test_image,
        "vol-bind-ctr",
        ["cat", "/data/hello.txt"],
        HostConfig={"Binds": ["vol-bind:/data"]},
    )
    engine.post("/containers/vol-bind-ctr/wait")
    logs = engine.get("/containers/vol-bind-ctr/logs?stdout=1").content
    engine.post(
        "/volumes/create",
        json={
            "Name": "vol-bind-missing",
            "DriverOpts": {"type": "none", "o": "bind", "device": str(tmp_path / "nope")},
        },
    )
    created = engine.post(
        "/containers/create?name=vol-bind-missing-ctr",
        json={"Image": test_image, "Cmd": ["true"], "HostConfig": {"Binds": ["vol-bind-missing:/data"]}},
    )
    started = engine.post("/containers/vol-bind-missing-ctr/start")
    assert observe("content", b"from-the-host" in logs), logs
    assert observe("missing_create", created.status_code) == 201
    observe("missing_start", _error(started))
    expect_error(
        started, 500, re.compile(r"error while mounting volume '[^']*/volumes/vol-bind-missing/_data': ")
    )


@pytest.mark.parametrize(
    ("case", "opts"),
    [
        ("type-without-device", {"type": "tmpfs"}),
        ("o-without-device", {"o": "size=1m"}),
        ("size-quota", {"size": "10m"}),
        ("unknown-option", {"colour": "blue"}),
    ],
)
@pytest.mark.scenario(
    "api/volumes/options-refused",
    "Local volume options MUST be checked at create with dockerd's messages: unknown options, a type or o "
    "without a device, and a size quota where the filesystem has none",
    ref="moby volume/local/local_unix.go validateOpts",
)
def test_options_refused(
    engine: EngineClient, observe: Observations, case: str, opts: dict[str, str]
) -> None:
    resp = engine.post("/volumes/create", json={"Name": f"vol-opts-{case}", "DriverOpts": opts})
    observe("error", _error(resp))
    if resp.status_code == 201:
        engine.delete(f"/volumes/vol-opts-{case}")
    expect_error(resp, 400, re.compile(rf"create vol-opts-{case}: "))
    if case == "unknown-option":
        expect_error(resp, 400, 'create vol-opts-unknown-option: invalid option: "colour"')


@pytest.mark.scenario(
    "api/containers/mounts-shapes",
    "Inspect's Mounts MUST describe --mount type=tmpfs, type=bind (readonly), type=volume (nocopy) and "
    "-v host:ctr:ro as dockerd does (Type, Source, Destination, Mode, RW, Propagation)",
    ref="operation ContainerInspect Mounts; docker run --mount",
)
def test_mounts_shapes(
    docker_cli: CLI, test_image: str, cleanup: Any, observe: Observations, tmp_path: Any
) -> None:
    host_dir = tmp_path / "mnt-src"
    host_dir.mkdir()
    os.chmod(tmp_path, 0o755)
    cleanup(container="mounts-ctr", volume="mounts-vol")
    run = docker_cli(
        "run",
        "-d",
        "--name",
        "mounts-ctr",
        "--mount",
        "type=tmpfs,destination=/t,tmpfs-size=1048576",
        "--mount",
        f"type=bind,source={host_dir},destination=/b,readonly",
        "--mount",
        "type=volume,source=mounts-vol,destination=/v,volume-nocopy",
        "-v",
        f"{host_dir}:/legacy:ro",
        test_image,
        "sleep",
        "300",
    )
    mounts = docker_cli("inspect", "-f", "{{json .Mounts}}", "mounts-ctr").stdout
    inside = docker_cli("exec", "mounts-ctr", "sh", "-c", "grep -E ' /(t|b|v|legacy) ' /proc/mounts")
    import json

    def shape(m: dict[str, Any]) -> dict[str, Any]:
        return {k: (v if k != "Source" or not v else os.path.basename(v)) for k, v in m.items()}

    assert observe("run", run.returncode) == 0, run.stderr
    shapes = observe(
        "mounts", sorted((shape(m) for m in json.loads(mounts or "[]")), key=lambda m: m["Destination"])
    )
    assert [(m["Destination"], m["Type"], m["RW"], m["Mode"]) for m in shapes] == [
        ("/b", "bind", False, ""),
        ("/legacy", "bind", False, "ro"),
        ("/t", "tmpfs", True, ""),
        ("/v", "volume", True, "z"),
    ]
    assert [m["Propagation"] for m in shapes] == ["rprivate", "rprivate", "", ""]
    kernel = observe(
        "kernel_options",
        sorted(
            (ln.split()[1], "ro" if ",ro" in f",{ln.split()[3]}" or ln.split()[3].startswith("ro") else "rw")
            for ln in inside.stdout.splitlines()
        ),
    )
    assert kernel == [("/b", "ro"), ("/legacy", "ro"), ("/t", "rw"), ("/v", "rw")], inside.stdout
