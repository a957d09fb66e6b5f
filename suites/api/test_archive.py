"""docker cp and docker export (operations ContainerArchive, PutContainerArchive, ContainerExport)."""

from __future__ import annotations

import base64
import io
import json
import os
import tarfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from harness.checks import eventually, expect_error, expect_status
from harness.client import EngineClient
from harness.fixtures import Observations
from harness.profiles import Profile

CLI = Callable[..., Any]
V = "/v1.41"


@pytest.fixture
def box(engine: EngineClient, test_image: str) -> Iterator[str]:
    cid = engine.post(f"{V}/containers/create", json={"Image": test_image, "Cmd": ["sleep", "60"]}).json()[
        "Id"
    ]
    yield cid
    engine.delete(f"{V}/containers/{cid}?force=1")


@pytest.mark.scenario(
    "api/archive/head-stat",
    "HEAD archive MUST describe the path in X-Docker-Container-Path-Stat "
    "(name, size, Go file mode, linkTarget)",
    ref="operation ContainerArchiveInfo",
)
def test_head_stat(engine: EngineClient, box: str, observe: Observations) -> None:
    resp = engine.head(f"{V}/containers/{box}/archive", params={"path": "/var/www/index.html"})
    stat = json.loads(base64.b64decode(resp.headers["X-Docker-Container-Path-Stat"]))
    observe("status", resp.status_code)
    observe("stat", {k: stat[k] for k in ("name", "size", "mode", "linkTarget")})
    link = engine.head(f"{V}/containers/{box}/archive", params={"path": "/bin/sh"})
    link_stat = json.loads(base64.b64decode(link.headers["X-Docker-Container-Path-Stat"]))
    observe("symlink", {k: link_stat[k] for k in ("name", "mode", "linkTarget")})
    directory = engine.head(f"{V}/containers/{box}/archive", params={"path": "/tmp"})
    observe(
        "dir_mode", json.loads(base64.b64decode(directory.headers["X-Docker-Container-Path-Stat"]))["mode"]
    )
    assert resp.status_code == 200 and stat["name"] == "index.html"


@pytest.mark.scenario(
    "api/archive/missing-path",
    "GET archive of a missing path MUST answer 404",
    ref="operation ContainerArchive",
)
def test_missing_path(engine: EngineClient, box: str, observe: Observations) -> None:
    resp = engine.get(f"{V}/containers/{box}/archive", params={"path": "/nosuch"})
    observe("status", resp.status_code)
    expect_error(resp, 404, f"Could not find the file /nosuch in container {box}")


@pytest.mark.scenario(
    "api/archive/get-file",
    "GET archive MUST return a tar holding the file under its base name",
    ref="operation ContainerArchive",
)
def test_get_file(engine: EngineClient, box: str, observe: Observations) -> None:
    resp = engine.get(f"{V}/containers/{box}/archive", params={"path": "/var/www/index.html"})
    with tarfile.open(fileobj=io.BytesIO(resp.content)) as tar:
        names = tar.getnames()
        member = tar.extractfile("index.html")
        content = member.read() if member else b""
    observe("content_type", resp.headers.get("Content-Type"))
    observe("names", names)
    observe("content", content.decode())
    assert names == ["index.html"] and content == b"hello from harness busybox\n"


@pytest.mark.scenario(
    "api/archive/put-and-read-back",
    "PUT archive MUST extract into a directory; a file as target MUST be refused",
    ref="operation PutContainerArchive",
)
def test_put(engine: EngineClient, box: str, observe: Observations) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"copied in\n"
        info = tarfile.TarInfo("note.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    put = engine.request(
        "PUT",
        f"{V}/containers/{box}/archive",
        params={"path": "/tmp"},
        data=buf.getvalue(),
        headers={"Content-Type": "application/x-tar"},
    )
    back = engine.get(f"{V}/containers/{box}/archive", params={"path": "/tmp/note.txt"})
    with tarfile.open(fileobj=io.BytesIO(back.content)) as tar:
        member = tar.extractfile("note.txt")
        content = member.read() if member else b""
    onto_file = engine.request(
        "PUT",
        f"{V}/containers/{box}/archive",
        params={"path": "/var/www/index.html"},
        data=buf.getvalue(),
        headers={"Content-Type": "application/x-tar"},
    )
    observe("put", put.status_code)
    observe("read_back", content.decode())
    observe("onto_file", {"status": onto_file.status_code, "message": onto_file.json().get("message")})
    assert put.status_code == 200 and content == b"copied in\n"
    expect_error(onto_file, 400, "extraction point is not a directory")


@pytest.mark.scenario(
    "api/cli/cp-roundtrip", "`docker cp` MUST copy a file into and out of a container", ref="docker CLI cp"
)
def test_cli_cp(docker_cli: CLI, box: str, tmp_path: Any, observe: Observations) -> None:
    source = os.path.join(str(tmp_path), "in.txt")
    with open(source, "w") as fh:
        fh.write("via docker cp\n")
    into = docker_cli("cp", source, f"{box}:/tmp/in.txt")
    out_path = os.path.join(str(tmp_path), "out.txt")
    out = docker_cli("cp", f"{box}:/tmp/in.txt", out_path)
    with open(out_path) as fh:
        content = fh.read()
    observe("exit_codes", [into.returncode, out.returncode])
    observe("content", content)
    assert content == "via docker cp\n"


@pytest.mark.scenario(
    "api/cli/export",
    "`docker export` MUST produce a tar of the container's filesystem",
    ref="docker CLI export; operation ContainerExport",
)
def test_cli_export(docker_cli: CLI, box: str, tmp_path: Any, observe: Observations) -> None:
    target = os.path.join(str(tmp_path), "fs.tar")
    result = docker_cli("export", "-o", target, box)
    with tarfile.open(target) as tar:
        names = set(tar.getnames())
    observe("exit", result.returncode)
    observe("has", {n: n in names for n in ("bin/busybox", "etc/passwd", "var/www/index.html")})
    assert result.returncode == 0 and "bin/busybox" in names


def _tar_of(entries: dict[str, bytes | None]) -> bytes:
    """A tar with files (bytes) and directories (None)."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.scenario(
    "api/archive/no-overwrite-dir-non-dir",
    "PUT archive with noOverwriteDirNonDir=1 MUST refuse to replace a directory by a file or a file by a "
    "directory (dockerd's 500 'cannot overwrite ...'); without it the entry MUST replace what was there",
    ref="operation PutContainerArchive noOverwriteDirNonDir; moby go-archive Unpack",
)
def test_no_overwrite_dir_non_dir(engine: EngineClient, test_image: str, observe: Observations) -> None:
    cid = engine.post(
        f"{V}/containers/create",
        json={"Image": test_image, "Cmd": ["sh", "-c", "mkdir -p /tmp/adir; echo f > /tmp/afile; sleep 300"]},
    ).json()["Id"]
    try:
        engine.post(f"{V}/containers/{cid}/start")
        eventually(
            lambda: (
                engine.head(f"{V}/containers/{cid}/archive", params={"path": "/tmp/afile"}).status_code == 200
            ),
            "the container's /tmp/afile",
            timeout=10,
        )
        headers = {"Content-Type": "application/x-tar"}
        results = {}
        for case, tar in (("dir-by-file", {"adir": b"x\n"}), ("file-by-dir", {"afile": None})):
            resp = engine.request(
                "PUT",
                f"{V}/containers/{cid}/archive",
                params={"path": "/tmp", "noOverwriteDirNonDir": "1"},
                data=_tar_of(tar),
                headers=headers,
            )
            results[case] = {
                "status": resp.status_code,
                "message": resp.json().get("message") if resp.content else "",
            }
        replaced = engine.request(
            "PUT",
            f"{V}/containers/{cid}/archive",
            params={"path": "/tmp"},
            data=_tar_of({"adir": b"x\n"}),
            headers=headers,
        )
        stat = engine.head(f"{V}/containers/{cid}/archive", params={"path": "/tmp/adir"})
        import base64
        import json

        info = json.loads(base64.b64decode(stat.headers.get("X-Docker-Container-Path-Stat", "") or "e30="))
        observe("refused", results)
        assert results == {
            "dir-by-file": {
                "status": 500,
                "message": 'cannot overwrite directory "adir" with non-directory "/tmp"',
            },
            "file-by-dir": {
                "status": 500,
                "message": 'cannot overwrite non-directory "afile" with directory "/tmp"',
            },
        }
        assert observe("replaced", replaced.status_code) == 200
        assert observe("adir_is_now_a_file", stat.status_code == 200 and info.get("mode") == 0o644), info

    finally:
        engine.delete(f"{V}/containers/{cid}?force=1")


def _put(engine: EngineClient, cid: str, path: str, entries: dict[str, bytes | None]) -> Any:
    return engine.request(
        "PUT",
        f"{V}/containers/{cid}/archive",
        params={"path": path},
        data=_tar_of(entries),
        headers={"Content-Type": "application/x-tar"},
    )


def _get_file(engine: EngineClient, cid: str, path: str) -> tuple[int, str]:
    """GET archive of one file: the status and the file's text ("" when it is not there)."""
    resp = engine.get(f"{V}/containers/{cid}/archive", params={"path": path})
    if resp.status_code != 200:
        return resp.status_code, ""
    with tarfile.open(fileobj=io.BytesIO(resp.content)) as tar:
        member = tar.extractfile(os.path.basename(path))
        return resp.status_code, member.read().decode() if member else ""


def _stat(engine: EngineClient, cid: str, path: str) -> dict[str, Any]:
    resp = engine.head(f"{V}/containers/{cid}/archive", params={"path": path})
    header = resp.headers.get("X-Docker-Container-Path-Stat")
    doc = json.loads(base64.b64decode(header)) if header else {}
    return {"status": resp.status_code, "name": doc.get("name"), "dir": bool(doc.get("mode", 0) & (1 << 31))}


@pytest.mark.scenario(
    "api/archive/volume-and-bind-paths",
    "HEAD, GET and PUT archive MUST resolve a path inside a volume or a bind mount through the container's "
    "mounts (the volume's and the host directory's content, not the rootfs under the mount point), on a "
    "created, a running and a stopped container",
    ref="operations ContainerArchiveInfo, ContainerArchive, PutContainerArchive; moby daemon/archive_unix.go",
)
def test_archive_volume_and_bind(
    engine: EngineClient,
    docker_cli: CLI,
    test_image: str,
    containers: list[str],
    tmp_path: Any,
    observe: Observations,
) -> None:
    bind = os.path.join(str(tmp_path), "bind")
    os.makedirs(bind)
    with open(os.path.join(bind, "host.txt"), "w") as fh:
        fh.write("from the host\n")
    volume = f"archive-vol-{os.getpid()}-{os.urandom(3).hex()}"
    resp = engine.post(
        f"{V}/containers/create",
        json={
            "Image": test_image,
            "Cmd": ["sleep", "300"],
            "HostConfig": {"Binds": [f"{volume}:/vol1", f"{bind}:/bind1"]},
        },
    )
    cid = resp.json()["Id"]
    containers.append(cid)
    try:
        created = {
            "stat_volume": _stat(engine, cid, "/vol1"),
            "stat_bind_file": _stat(engine, cid, "/bind1/host.txt"),
            "get_bind_file": _get_file(engine, cid, "/bind1/host.txt"),
            "put_volume": _put(engine, cid, "/vol1", {"created.txt": b"put while created\n"}).status_code,
            "put_bind": _put(engine, cid, "/bind1", {"created.txt": b"put into the bind\n"}).status_code,
        }
        with open(os.path.join(bind, "created.txt")) as fh:
            created["bind_on_host"] = fh.read()
        observe("created", created)
        assert created["stat_volume"] == {"status": 200, "name": "vol1", "dir": True}
        assert created["get_bind_file"] == (200, "from the host\n")
        assert created["put_volume"] == 200 and created["put_bind"] == 200
        assert created["bind_on_host"] == "put into the bind\n"

        expect_status(engine.post(f"{V}/containers/{cid}/start"), 204)
        seen = docker_cli("exec", cid, "cat", "/vol1/created.txt", "/bind1/created.txt")
        put_running = _put(engine, cid, "/vol1/", {"running.txt": b"put while running\n"}).status_code
        in_container = docker_cli("exec", cid, "cat", "/vol1/running.txt")
        running = {
            "exec_sees_created": seen.stdout,
            "put_volume": put_running,
            "exec_sees_running": in_container.stdout,
            "get_volume_file": _get_file(engine, cid, "/vol1/created.txt"),
        }
        observe("running", running)
        assert running["exec_sees_created"] == "put while created\nput into the bind\n", seen.stderr
        assert running["put_volume"] == 200 and running["exec_sees_running"] == "put while running\n"
        assert running["get_volume_file"] == (200, "put while created\n")

        expect_status(engine.post(f"{V}/containers/{cid}/kill"), 204)
        eventually(
            lambda: not engine.get(f"{V}/containers/{cid}/json").json()["State"]["Running"],
            "the container exits",
        )
        stopped = {
            "get_volume_file": _get_file(engine, cid, "/vol1/running.txt"),
            "put_bind": _put(engine, cid, "/bind1", {"stopped.txt": b"put while stopped\n"}).status_code,
            "get_missing": _get_file(engine, cid, "/vol1/nosuch")[0],
        }
        with open(os.path.join(bind, "stopped.txt")) as fh:
            stopped["bind_on_host"] = fh.read()
        observe("stopped", stopped)
        assert stopped["get_volume_file"] == (200, "put while running\n")
        assert stopped["put_bind"] == 200 and stopped["bind_on_host"] == "put while stopped\n"
        assert stopped["get_missing"] == 404
    finally:
        engine.delete(f"{V}/containers/{cid}?force=1")
        engine.delete(f"{V}/volumes/{volume}")


@pytest.mark.scenario(
    "api/archive/read-only-targets",
    "PUT archive into a read-only volume MUST answer 400 'mounted volume is marked read-only', into the "
    "rootfs of a --read-only container 400 'container rootfs is marked read-only' (a writable volume of it "
    "MUST take the archive), and a refused archive MUST change nothing",
    ref="operation PutContainerArchive; moby daemon/archive_unix.go checkIfPathIsInAVolume",
)
def test_archive_read_only_targets(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    suffix = f"{os.getpid()}-{os.urandom(3).hex()}"
    ro, rw = f"archive-ro-{suffix}", f"archive-rw-{suffix}"
    cid = engine.post(
        f"{V}/containers/create",
        json={
            "Image": test_image,
            "Cmd": ["sleep", "300"],
            "HostConfig": {"Binds": [f"{ro}:/ro:ro", f"{rw}:/rw"], "ReadonlyRootfs": True},
        },
    ).json()["Id"]
    containers.append(cid)
    try:
        answers = {}
        for path in ("/ro", "/tmp", "/rw", "/ro/../rw", "/rw/../tmp"):
            put = _put(engine, cid, path, {"x.txt": b"x\n"})
            message = put.json().get("message") if put.content else ""
            answers[path] = {"status": put.status_code, "message": message}
        observe("put", answers)
        assert answers["/ro"] == {"status": 400, "message": "mounted volume is marked read-only"}
        assert answers["/tmp"] == {"status": 400, "message": "container rootfs is marked read-only"}
        assert answers["/rw/../tmp"] == answers["/tmp"]
        assert answers["/rw"]["status"] == 200 and answers["/ro/../rw"]["status"] == 200
        after = {p: _get_file(engine, cid, f"{p}/x.txt")[0] for p in ("/ro", "/tmp", "/rw")}
        assert observe("after", after) == {"/ro": 404, "/tmp": 404, "/rw": 200}
    finally:
        engine.delete(f"{V}/containers/{cid}?force=1")
        engine.delete(f"{V}/volumes/{ro}")
        engine.delete(f"{V}/volumes/{rw}")


@pytest.mark.scenario(
    "api/archive/network-files",
    "GET archive of /etc/hostname and /etc/hosts of a started container MUST return the files the daemon "
    "wrote for it (its hostname; localhost and its own address), not the image's",
    ref="operation ContainerArchive; moby daemon/volumes_unix.go setupMounts (NetworkMounts)",
)
def test_archive_network_files(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations
) -> None:
    cid = engine.post(
        f"{V}/containers/create",
        json={"Image": test_image, "Cmd": ["sleep", "300"], "Hostname": "cp-host"},
    ).json()["Id"]
    containers.append(cid)
    try:
        expect_status(engine.post(f"{V}/containers/{cid}/start"), 204)
        status, hostname = _get_file(engine, cid, "/etc/hostname")
        hosts_status, hosts = _get_file(engine, cid, "/etc/hosts")
        lines = hosts.splitlines()
        names = sorted({line.split()[1] for line in lines if line.split()[:1] == ["127.0.0.1"]})
        observe("hostname", (status, hostname))
        observe("hosts_localhost", (hosts_status, names))
        assert (status, hostname) == (200, "cp-host\n")
        assert hosts_status == 200 and names == ["localhost"]
        assert any(line.endswith("\tcp-host") for line in lines), hosts
    finally:
        engine.delete(f"{V}/containers/{cid}?force=1")


@pytest.mark.scenario(
    "api/cli/cp-volume",
    "`docker cp` MUST copy into and out of a volume mounted in a container",
    ref="docker CLI cp; operations PutContainerArchive, ContainerArchive",
)
def test_cli_cp_volume(
    docker_cli: CLI, test_image: str, containers: list[str], tmp_path: Any, observe: Observations
) -> None:
    volume = f"cp-vol-{os.getpid()}-{os.urandom(3).hex()}"
    run = docker_cli("run", "-d", "-v", f"{volume}:/data", test_image, "sleep", "300")
    assert run.returncode == 0, run.stderr
    cid = run.stdout.strip()
    containers.append(cid)
    try:
        source = os.path.join(str(tmp_path), "in.txt")
        with open(source, "w") as fh:
            fh.write("into the volume\n")
        into = docker_cli("cp", source, f"{cid}:/data/in.txt")
        inside = docker_cli("exec", cid, "cat", "/data/in.txt")
        out_path = os.path.join(str(tmp_path), "out.txt")
        out = docker_cli("cp", f"{cid}:/data/in.txt", out_path)
        content = ""
        if os.path.exists(out_path):
            with open(out_path) as fh:
                content = fh.read()
        observe("cp", {"in": into.returncode, "out": out.returncode, "stderr": into.stderr + out.stderr})
        observe("inside", inside.stdout)
        assert into.returncode == 0 and inside.stdout == "into the volume\n"
        assert out.returncode == 0 and content == "into the volume\n"
    finally:
        docker_cli("rm", "-f", cid)
        docker_cli("volume", "rm", volume)


def _raw_tar_names(data: bytes) -> list[str]:
    """Entry names exactly as the tar headers carry them (Python's tarfile drops a directory's trailing
    '/', which is what tells dockerd's '/' from '' and './' from '.'); PAX 'path' records win."""
    names, offset, pax_path = [], 0, None
    while offset + 512 <= len(data):
        block = data[offset : offset + 512]
        if block == b"\0" * 512:
            break
        name = block[0:100].split(b"\0", 1)[0].decode()
        prefix = block[345:500].split(b"\0", 1)[0].decode() if block[257:262] == b"ustar" else ""
        size = int(block[124:136].split(b"\0", 1)[0].strip() or b"0", 8)
        kind = block[156:157]
        body = data[offset + 512 : offset + 512 + size]
        offset += 512 + (size + 511) // 512 * 512
        if kind == b"x":
            for record in body.decode().splitlines():
                key_value = record.split(" ", 1)[1] if " " in record else ""
                if key_value.startswith("path="):
                    pax_path = key_value[len("path=") :]
            continue
        names.append(pax_path if pax_path is not None else (f"{prefix}/{name}" if prefix else name))
        pax_path = None
    return names


@pytest.mark.scenario(
    "api/archive/directory-entry-names",
    "GET archive of a directory MUST name its entries after the directory's base name ('www/', 'www/x'), "
    "'./' and './x' for a path ending in '/.' or naming the current directory, '/' and '/x' for the root; a "
    "missing path's 404 MUST name the container as the request did",
    ref="moby daemon/archive_unix.go containerArchivePath; go-archive TarResourceRebaseOpts",
)
def test_directory_entry_names(engine: EngineClient, box: str, observe: Observations) -> None:
    seen: dict[str, Any] = {}
    for path in ("/var/www", "/var/www/", "/var/www/.", ".", "/"):
        resp = engine.get(f"{V}/containers/{box}/archive", params={"path": path})
        names = _raw_tar_names(resp.content)
        seen[path] = names[:2] if path != "/" else [names[0], "/var/www/index.html" in names]
    missing = engine.get(f"{V}/containers/{box}/archive", params={"path": "/nosuch"})
    seen["missing"] = (missing.status_code, missing.json()["message"].replace(box, "<full id>"))
    observe("entries", seen)
    assert seen["/var/www"] == ["www/", "www/index.html"] and seen["/var/www/"] == ["www/", "www/index.html"]
    assert seen["/var/www/."] == ["./", "./index.html"]
    assert seen["."][0] == "./" and seen["/"] == ["/", True]
    assert seen["missing"] == (404, "Could not find the file /nosuch in container <full id>")


@pytest.mark.scenario(
    "api/archive/copy-uid-gid",
    "PUT archive with copyUIDGID=1 MUST give what it writes the container's User (user and group, names "
    "looked up in the container); a user the container does not know MUST be refused with 400",
    ref="moby daemon/archive_tarcopyoptions_unix.go getUIDGID (docker cp --archive)",
)
def test_copy_uid_gid(
    engine: EngineClient, test_image: str, containers: list[str], observe: Observations, profile: Profile
) -> None:
    def put(cid: str, name: str, copy: bool) -> Any:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo(name)
            info.uid, info.gid = 4242, 4343
            tar.addfile(info, io.BytesIO(b""))
        params = {"path": "/tmp", "copyUIDGID": "1" if copy else "0"}
        return engine.request("PUT", f"{V}/containers/{cid}/archive", params=params, data=buf.getvalue())

    def owner(cid: str, name: str) -> tuple[int, int]:
        resp = engine.get(f"{V}/containers/{cid}/archive", params={"path": f"/tmp/{name}"})
        with tarfile.open(fileobj=io.BytesIO(resp.content)) as tar:
            member = tar.getmember(name)
            return member.uid, member.gid

    seen: dict[str, Any] = {}
    for user in ("nobody", "1234:5678", "7777:", ":nogroup", "nosuch"):
        resp = engine.post(
            f"{V}/containers/create", json={"Image": test_image, "User": user, "Cmd": ["true"]}
        )
        cid = resp.json()["Id"]
        containers.append(cid)
        answer = put(cid, "with-a", True)
        seen[user] = (
            owner(cid, "with-a")
            if answer.status_code == 200
            else (answer.status_code, answer.json()["message"])
        )
    expect_status(put(containers[0], "without-a", False), 200)
    seen["without copyUIDGID"] = owner(containers[0], "without-a")
    observe("owners", seen)
    assert seen["nobody"] == (65534, 65534) and seen["1234:5678"] == (1234, 5678)
    assert seen["7777:"] == (7777, 0) and seen[":nogroup"] == (0, 65534)
    assert seen["nosuch"] == (
        400,
        'failed to look up user "nosuch" in container: no matching entries in passwd file',
    )
    # under --userns-remap dockerd 28.5 shifts what it unpacks into the remapped range (4242 is host uid
    # 104242, which the container sees as 4242) and reports the host's ids when it archives it back
    shift = 100000 if str(profile.setting("userns-remap", "")) == "default" else 0
    assert seen["without copyUIDGID"] == (4242 + shift, 4343 + shift)
