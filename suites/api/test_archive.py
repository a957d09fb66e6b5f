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

from harness.checks import eventually
from harness.client import EngineClient
from harness.fixtures import Observations

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
    assert resp.status_code == 404


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
    assert put.status_code == 200 and content == b"copied in\n" and onto_file.status_code == 400


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
