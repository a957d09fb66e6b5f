"""Mounts of a container: what create refuses, the daemon root's propagation, recursive read-only binds,
volume subpaths and image mounts (HostConfig.Binds, HostConfig.Mounts, HostConfig.VolumesFrom, Tmpfs)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from harness.checks import expect_status
from harness.client import EngineClient
from harness.fixtures import Observations

CLI = Callable[..., Any]
V = "/v1.41"
V_SUBPATH = "/v1.45"  # VolumeOptions.Subpath arrived in API 1.45
V_IMAGE = "/v1.48"  # mount type "image" arrived in API 1.48


def _create(engine: EngineClient, containers: list[str], version: str, body: dict[str, Any]) -> Any:
    resp = engine.post(f"{version}/containers/create", json=body)
    if resp.status_code == 201:
        containers.append(resp.json()["Id"])
    return resp


def _answer(resp: Any) -> tuple[int, str]:
    body = resp.json() if resp.content else {}
    return resp.status_code, str(body.get("message") or "") if isinstance(body, dict) else ""


def _run(engine: EngineClient, docker_cli: CLI, cid: str) -> tuple[int, str]:
    """Start ``cid``, wait for it to exit; (exit code, its output)."""
    expect_status(engine.post(f"{V}/containers/{cid}/start"), 204)
    code = engine.post(f"{V}/containers/{cid}/wait", timeout=60).json()["StatusCode"]
    return code, docker_cli("logs", cid).stdout


@pytest.mark.scenario(
    "api/mounts/create-refusals",
    "Create MUST refuse with 400 and dockerd's words two mounts at one destination (also a bind over a "
    "--tmpfs), a relative or '/' tmpfs or mount target, a missing bind source, a read-only anonymous "
    "volume, an unknown mount type and --volumes-from a container that does not exist; a bad -v mode with "
    "500 (moby's parser error reaches the API unwrapped)",
    ref="moby volume/mounts/linux_parser.go, daemon/volumes.go registerMountPoints, daemon/container.go",
)
def test_create_refusals(
    engine: EngineClient, test_image: str, containers: list[str], tmp_path: Any, observe: Observations
) -> None:
    missing = os.path.join(str(tmp_path), "no-such-dir")
    cases: dict[str, dict[str, Any]] = {
        "duplicate": {"Binds": ["/tmp:/x", "/var:/x"]},
        "bind-over-tmpfs": {"Binds": ["/tmp:/t"], "Tmpfs": {"/t": ""}},
        "tmpfs-relative": {"Tmpfs": {"foo": ""}},
        "tmpfs-root": {"Tmpfs": {"//": ""}},
        "mount-target-relative": {"Mounts": [{"Type": "volume", "Target": "rel"}]},
        "bind-source-missing": {"Mounts": [{"Type": "bind", "Source": missing, "Target": "/m"}]},
        "anonymous-read-only": {"Mounts": [{"Type": "volume", "Target": "/m", "ReadOnly": True}]},
        "unknown-type": {"Mounts": [{"Type": "nosuch", "Target": "/m"}]},
        "bad-mode": {"Binds": ["/tmp:/m:rw,ro"]},
        "volumes-from-missing": {"VolumesFrom": ["nosuchcontainer"]},
    }
    seen = {}
    for name, host_config in cases.items():
        resp = _create(engine, containers, V, {"Image": test_image, "HostConfig": host_config})
        seen[name] = _answer(resp)
    observe("answers", seen)
    assert all(status == 400 for name, (status, _) in seen.items() if name != "bad-mode"), seen
    assert seen["duplicate"][1] == "Duplicate mount point: /x"
    assert seen["bind-over-tmpfs"][1] == "Duplicate mount point: /t"
    assert seen["tmpfs-relative"][1] == "invalid mount path: 'foo' mount path must be absolute"
    assert seen["tmpfs-root"][1] == "invalid specification: destination can't be '/'"
    assert seen["bind-source-missing"][1] == (
        f'invalid mount config for type "bind": bind source path does not exist: {missing}'
    )
    assert seen["anonymous-read-only"][1] == (
        'invalid mount config for type "volume": must not set ReadOnly mode when using anonymous volumes'
    )
    assert seen["unknown-type"][1] == 'invalid mount config for type "nosuch": mount type unknown'
    assert seen["bad-mode"] == (500, "invalid mode: rw,ro")
    assert seen["volumes-from-missing"][1] == "No such container: nosuchcontainer"


@pytest.mark.scenario(
    "api/mounts/daemon-root-propagation",
    "A bind of the daemon's root directory (or of a path in it) MUST show propagation 'rslave' when it names "
    "none, keep 'rslave' or 'rshared', and be refused with 400 for any other propagation",
    ref="moby daemon/volumes_linux.go validateBindDaemonRoot",
)
def test_daemon_root_propagation(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    root = engine.get(f"{V}/info").json()["DockerRootDir"]
    sub = f"{root}/containers"
    cases: dict[str, dict[str, Any]] = {
        "bind-root": {"Binds": [f"{root}:/foo"]},
        "bind-sub-rshared": {"Binds": [f"{sub}:/foo:rshared"]},
        "bind-root-private": {"Binds": [f"{root}:/foo:private"]},
        "mount-sub": {"Mounts": [{"Type": "bind", "Source": sub, "Target": "/foo"}]},
        "mount-root-rslave": {
            "Mounts": [
                {"Type": "bind", "Source": root, "Target": "/foo", "BindOptions": {"Propagation": "rslave"}}
            ]
        },
        "mount-sub-shared": {
            "Mounts": [
                {"Type": "bind", "Source": sub, "Target": "/foo", "BindOptions": {"Propagation": "shared"}}
            ]
        },
    }
    seen: dict[str, Any] = {}
    for name, host_config in cases.items():
        resp = _create(
            engine, containers, V, {"Image": test_image, "Cmd": ["true"], "HostConfig": host_config}
        )
        if resp.status_code == 201:
            mounts = engine.get(f"{V}/containers/{resp.json()['Id']}/json").json()["Mounts"]
            seen[name] = [m["Propagation"] for m in mounts]
        else:
            status, message = _answer(resp)
            seen[name] = (status, message.replace(root, "<root>"))
    observe("propagation", seen)
    assert seen["bind-root"] == ["rslave"] and seen["mount-sub"] == ["rslave"]
    assert seen["bind-sub-rshared"] == ["rshared"] and seen["mount-root-rslave"] == ["rslave"]
    for name, propagation, source in (
        ("bind-root-private", "private", "<root>"),
        ("mount-sub-shared", "shared", "<root>/containers"),
    ):
        assert seen[name] == (
            400,
            'invalid mount config: must use either propagation mode "rslave" or "rshared" when mount source '
            f'is within the daemon root, daemon root: "<root>", bind mount source: "{source}", '
            f'propagation: "{propagation}"',
        )


@pytest.mark.scenario(
    "api/mounts/read-only-binds-recursive",
    "A read-only bind MUST make its submounts read-only too for API 1.44 and later (-v ...:ro and --mount "
    "readonly), and leave them as they are for older clients",
    ref="moby daemon/oci_linux.go withMounts (rro); api/server/router/container postContainersCreate",
)
def test_read_only_binds_recursive(
    docker_cli: CLI, test_image: str, containers: list[str], observe: Observations
) -> None:
    seen: dict[str, list[str]] = {}
    for version in ("1.44", "1.43"):
        for how in (["-v", "/dev:/dev:ro"], ["--mount", "type=bind,src=/dev,dst=/dev,readonly"]):
            result = docker_cli(
                "run",
                "--rm",
                *how,
                test_image,
                "sh",
                "-c",
                "grep ' /dev/shm ' /proc/self/mountinfo",
                env={"DOCKER_API_VERSION": version},
            )
            fields = result.stdout.split()
            seen[f"{version} {how[0]}"] = [
                result.returncode,
                fields[5].split(",")[0] if len(fields) > 5 else "",
            ]
    observe("dev_shm", seen)
    assert seen == {
        "1.44 -v": [0, "ro"],
        "1.44 --mount": [0, "ro"],
        "1.43 -v": [0, "rw"],
        "1.43 --mount": [0, "rw"],
    }


@pytest.fixture
def filled_volume(docker_cli: CLI, test_image: str) -> Any:
    """A volume holding file.txt, sub/hello.txt and the symlinks link (-> sub) and out (-> /)."""
    name = f"subpath-{os.getpid()}-{os.urandom(3).hex()}"
    script = (
        "echo foo > /v/file.txt && mkdir /v/sub && echo world > /v/sub/hello.txt && ln -s sub /v/link "
        "&& ln -s / /v/out"
    )
    result = docker_cli("run", "--rm", "-v", f"{name}:/v", test_image, "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    yield name
    docker_cli("volume", "rm", "-f", name)


@pytest.mark.scenario(
    "api/mounts/volume-subpath",
    "VolumeOptions.Subpath MUST mount that directory or file of the volume; a subpath that leaves the volume "
    "lexically MUST be refused at create (400), one that does not exist or leaves it through a symlink at "
    "start (404 'cannot access path', 400 'path concatenation escapes the base directory'); docker cp MUST "
    "see the subpath at the mount point",
    ref="moby volume/mounts/linux_parser.go, volume/mounts/mounts.go Setup, internal/safepath, "
    "daemon/containerfs_linux.go",
)
def test_volume_subpath(
    engine: EngineClient,
    docker_cli: CLI,
    test_image: str,
    containers: list[str],
    filled_volume: str,
    observe: Observations,
) -> None:
    def body(subpath: str, cmd: list[str]) -> dict[str, Any]:
        mount = {
            "Type": "volume",
            "Source": filled_volume,
            "Target": "/m",
            "VolumeOptions": {"Subpath": subpath},
        }
        return {"Image": test_image, "Cmd": cmd, "HostConfig": {"Mounts": [mount]}}

    seen: dict[str, Any] = {}
    for subpath, cmd in (("sub", ["ls", "/m"]), ("file.txt", ["cat", "/m"]), ("link", ["ls", "/m"])):
        resp = _create(engine, containers, V_SUBPATH, body(subpath, cmd))
        seen[subpath] = (
            _run(engine, docker_cli, resp.json()["Id"]) if resp.status_code == 201 else _answer(resp)
        )
        if subpath == "sub" and resp.status_code == 201:
            cp = engine.get(f"{V}/containers/{resp.json()['Id']}/archive", params={"path": "/m/hello.txt"})
            seen["cp-from-sub"] = cp.status_code
    seen["../escape"] = _answer(_create(engine, containers, V_SUBPATH, body("../escape", ["true"])))
    for subpath in ("nosuch", "out"):
        resp = _create(engine, containers, V_SUBPATH, body(subpath, ["true"]))
        status, message = _answer(engine.post(f"{V}/containers/{resp.json()['Id']}/start"))
        seen[subpath] = (status, message.split(" /")[0].split(",")[0])
    seen["old-api"] = _answer(_create(engine, containers, "/v1.44", body("sub", ["true"])))
    observe("subpaths", seen)
    assert seen["sub"] == (0, "hello.txt\n") and seen["file.txt"] == (0, "foo\n")
    assert seen["cp-from-sub"] == 200  # the stopped container's view has the subpath at /m
    assert seen["link"] == (0, "hello.txt\n")  # a symlink is followed while it stays inside
    assert seen["../escape"] == (
        400,
        'invalid mount config for type "volume": subpath must be a relative path within the volume',
    )
    assert seen["nosuch"] == (404, "cannot access path")
    assert seen["out"] == (400, "path concatenation escapes the base directory")
    assert seen["old-api"] == (400, "VolumeOptions.Subpath needs API v1.45 or newer")


@pytest.mark.scenario(
    "api/mounts/image-mount",
    "A mount of type 'image' MUST show an image's content read-only at its target (its ImageOptions.Subpath "
    "when given), appear in Mounts as Type 'image', RW false, named as asked, warn that it is experimental, "
    "and be refused before API 1.48",
    ref="moby daemon/volumes.go registerMountPoints (TypeImage); api/server/router/container",
)
def test_image_mount(
    engine: EngineClient, docker_cli: CLI, test_image: str, containers: list[str], observe: Observations
) -> None:
    def body(options: dict[str, Any] | None, cmd: list[str]) -> dict[str, Any]:
        mount = {"Type": "image", "Source": test_image, "Target": "/image", "ImageOptions": options}
        return {"Image": test_image, "Cmd": cmd, "HostConfig": {"Mounts": [mount]}}

    whole = _create(
        engine,
        containers,
        V_IMAGE,
        body(None, ["sh", "-c", "cat /image/var/www/index.html; touch /image/x 2>&1"]),
    )
    assert whole.status_code == 201, whole.text
    cid = whole.json()["Id"]
    mounts = engine.get(f"{V}/containers/{cid}/json").json()["Mounts"]
    sub = _create(engine, containers, V_IMAGE, body({"Subpath": "var/www"}, ["ls", "/image"]))
    seen = {
        "warnings": whole.json()["Warnings"],
        "mounts": [
            {k: m.get(k) for k in ("Type", "Name", "Destination", "RW", "Propagation")} for m in mounts
        ],
        "run": _run(engine, docker_cli, cid),
        "subpath": _run(engine, docker_cli, sub.json()["Id"]),
        "old-api": _answer(_create(engine, containers, "/v1.47", body(None, ["true"]))),
    }
    code, output = seen["run"]
    seen["run"] = (code, output.splitlines()[0] if output else "", "Read-only file system" in output)
    observe("image_mount", seen)
    assert seen["warnings"] == ["Image mount is an experimental feature"]
    assert seen["mounts"] == [
        {"Type": "image", "Name": test_image, "Destination": "/image", "RW": False, "Propagation": "rprivate"}
    ]
    assert seen["run"] == (1, "hello from harness busybox", True)
    assert seen["subpath"] == (0, "index.html\n")
    assert seen["old-api"] == (400, 'Mount type "Image" needs API v1.48 or newer')
