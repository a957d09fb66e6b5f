"""Hostile archives through refd's API: ``PUT /containers/{id}/archive``, ``POST /images/create?fromSrc=-``
(import) and ``POST /images/load``. Each is refused or contained, and a snapshot of a host directory the
archives aim at proves nothing was written outside the daemon's data-root.

Also: device nodes in an archive exist only as inert files (the container's device cgroup denies them),
a 1 TiB sparse file stays sparse on disk, and a decompression bomb is unpacked in bounded memory.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from harness.backends.base import DaemonHandle
from harness.client import EngineClient
from harness.testimage import load_test_image

from .conftest import scale

BOMB_MIB = scale(256, 2048)


def _tar(entries: list[tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for entry in entries:
            info, data = entry if isinstance(entry, tuple) else (entry, b"")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)
    return buf.getvalue()


def _file(name: str, data: bytes = b"pwned\n") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _link(name: str, target: str, hard: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    return info


def _device(name: str, major: int, minor: int, block: bool = True) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.BLKTYPE if block else tarfile.CHRTYPE
    info.devmajor, info.devminor = major, minor
    return info


def _sparse_tar(name: str, real_size: int, data: bytes) -> bytes:
    """An old-GNU sparse member ('S'): one 512-byte data block at the very end of ``real_size`` bytes."""
    block = data.ljust(512, b"\0")
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = 512, 0o644, 1_000_000_000
    header = bytearray(info.tobuf(format=tarfile.GNU_FORMAT))
    header[156:157] = b"S"

    def octal(n: int, width: int) -> bytes:  # GNU base-256 past what the octal digits hold
        if n < 8 ** (width - 1):
            return (b"%0*o" % (width - 1, n)) + b"\0"
        return b"\x80" + n.to_bytes(width - 1, "big")

    header[386:398] = octal(real_size - 512, 12)  # sparse[0].offset
    header[398:410] = octal(512, 12)  # sparse[0].numbytes
    header[483:495] = octal(real_size, 12)  # realsize
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header) + block + b"\0" * 1024


def _snapshot(root: str) -> dict[str, tuple[int, int, int]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            out[os.path.join(dirpath, name)] = (st.st_mode, st.st_size, st.st_nlink)
    return out


@pytest.fixture(scope="module")
def outside() -> Iterator[str]:
    """A host directory hostile archives aim at (never a real host path): must stay as it is."""
    path = tempfile.mkdtemp(prefix="harness-rel-outside-")
    with open(os.path.join(path, "secret"), "w") as fh:
        fh.write("host secret\n")
    with open(os.path.join(path, "config.json"), "w") as fh:
        json.dump({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}, fh)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def box(refd: DaemonHandle) -> Iterator[tuple[EngineClient, str]]:
    assert refd.endpoint is not None
    image = load_test_image(refd.endpoint)
    client = EngineClient(refd.endpoint, timeout=300)
    cid = client.post("/containers/create", json={"Image": image, "Cmd": ["sleep", "3600"]}).json()["Id"]
    assert client.post(f"/containers/{cid}/start").status_code == 204
    assert _exec(client, cid, ["mkdir", "-p", "/tmp/put"])[0] == 0
    yield client, cid
    client.delete(f"/containers/{cid}?force=1")
    client.close()


def _exec(client: EngineClient, cid: str, cmd: list[str]) -> tuple[int, str]:
    exec_id = client.post(
        f"/containers/{cid}/exec", json={"Cmd": cmd, "AttachStdout": True, "AttachStderr": True}
    )
    resp = client.post(f"/exec/{exec_id.json()['Id']}/start", json={"Detach": False})
    out = resp.content
    text = b""
    while len(out) >= 8:  # multiplexed frames
        size = int.from_bytes(out[4:8], "big")
        text += out[8 : 8 + size]
        out = out[8 + size :]
    code = client.get(f"/exec/{exec_id.json()['Id']}/json").json()["ExitCode"]
    return int(code), text.decode(errors="replace")


def _hostile(outside: str) -> dict[str, bytes]:
    up = "../" * 40 + outside.lstrip("/")
    return {
        "dotdot": _tar([_file(f"{up}/pwned-dotdot")]),
        "absolute": _tar([_file(f"{outside}/pwned-abs")]),
        "symlink-absolute": _tar([_link("esc", outside), _file("esc/pwned-sym")]),
        "symlink-relative": _tar([_link("esc2", up), _file("esc2/pwned-rel")]),
        "symlink-chain": _tar([_link("a", "b"), _link("b", outside), _file("a/pwned-chain")]),
        "hardlink-out": _tar([_link("hl", f"{up}/secret", hard=True), _file("hl", b"overwritten\n")]),
        "hardlink-abs": _tar([_link("hl2", f"{outside}/secret", hard=True)]),
        "dir-then-symlink": _tar([_link("d", outside), _file("d/x")]),
        "long-name": _tar([_file("a/" * 2000 + "pwned")]),
    }


@pytest.mark.parametrize(
    "case",
    [
        "dotdot",
        "absolute",
        "symlink-absolute",
        "symlink-relative",
        "symlink-chain",
        "hardlink-out",
        "hardlink-abs",
        "dir-then-symlink",
        "long-name",
    ],
)
def test_put_archive_contained(
    box: tuple[EngineClient, str], outside: str, case: str, figures: dict[str, Any]
) -> None:
    client, cid = box
    before = _snapshot(outside)
    resp = client.request("PUT", f"/containers/{cid}/archive?path=/tmp/put", data=_hostile(outside)[case])
    assert resp.status_code < 500 or "RecursionError" not in resp.text, resp.text
    assert resp.status_code in (200, 400, 403, 404, 500), resp.text
    assert _snapshot(outside) == before
    with open(os.path.join(outside, "secret")) as fh:
        assert fh.read() == "host secret\n"
    fig = figures.setdefault("archives", {"put_archive": {}, "import": {}, "load": {}})
    fig["put_archive"][case] = resp.status_code


def test_import_and_load_contained(
    box: tuple[EngineClient, str], outside: str, figures: dict[str, Any]
) -> None:
    client, _ = box
    fig = figures.setdefault("archives", {"put_archive": {}, "import": {}, "load": {}})
    before = _snapshot(outside)
    for case, data in _hostile(outside).items():
        resp = client.post(
            "/images/create?fromSrc=-&repo=hostile&tag=" + case,
            data=data,
            headers={"Content-Type": "application/x-tar"},
        )
        assert resp.status_code < 500 or "Error:" not in resp.text, resp.text
        fig["import"][case] = resp.status_code if "errorDetail" not in resp.text else "error in stream"
    up = "../" * 40 + outside.lstrip("/")
    manifests = {
        "config-dotdot": [{"Config": f"{up}/config.json", "RepoTags": ["x:1"], "Layers": []}],
        "config-absolute": [{"Config": f"{outside}/config.json", "RepoTags": ["x:2"], "Layers": []}],
        "layer-absolute": [{"Config": "c.json", "RepoTags": ["x:3"], "Layers": [f"{outside}/secret"]}],
    }
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    )
    for case, manifest in manifests.items():
        data = _tar([_file("manifest.json", json.dumps(manifest).encode()), _file("c.json", config.encode())])
        resp = client.post("/images/load?quiet=1", data=data, headers={"Content-Type": "application/x-tar"})
        assert resp.status_code < 500 or "Error:" not in resp.text, resp.text
        loaded = resp.status_code == 200 and "errorDetail" not in resp.text and "Loaded image" in resp.text
        fig["load"][case] = "loaded (!)" if loaded else "refused"
        assert not loaded, f"{case}: refd followed a manifest path out of the archive: {resp.text}"
    assert _snapshot(outside) == before


def _block_device() -> tuple[int, int]:
    for name in sorted(os.listdir("/sys/block")):
        if not name.startswith(("loop", "zram", "ram")):
            with open(f"/sys/block/{name}/dev") as fh:
                major, minor = fh.read().strip().split(":")
                return int(major), int(minor)
    pytest.skip("no block device to aim at")


def test_device_nodes_are_inert(box: tuple[EngineClient, str], figures: dict[str, Any]) -> None:
    """A block device node of the host's disk arrives in the container (as with dockerd), unreadable."""
    client, cid = box
    major, minor = _block_device()
    data = _tar([_device("disk", major, minor), _device("mem", 1, 1, block=False)])
    resp = client.request("PUT", f"/containers/{cid}/archive?path=/tmp/put", data=data)
    assert resp.status_code == 200, resp.text
    code, out = _exec(client, cid, ["head", "-c", "16", "/tmp/put/disk"])
    assert code != 0 and "Operation not permitted" in out, out
    code, out = _exec(client, cid, ["head", "-c", "16", "/tmp/put/mem"])
    assert code != 0, out
    code, out = _exec(client, cid, ["mknod", "/tmp/disk2", "b", str(major), str(minor)])
    made = code == 0
    if made:
        code, out = _exec(client, cid, ["head", "-c", "16", "/tmp/disk2"])
        assert code != 0 and "Operation not permitted" in out, out
    figures.setdefault("archives", {})["device_nodes"] = "created, reads denied by the device cgroup"


def test_huge_sparse_file_stays_sparse(refd: DaemonHandle, box: tuple[EngineClient, str]) -> None:
    """1 TiB declared, 512 bytes stored: written with holes (as dockerd's Go tar reader does), quickly."""
    client, cid = box
    start = time.monotonic()
    resp = client.request(
        "PUT",
        f"/containers/{cid}/archive?path=/tmp/put",
        data=_sparse_tar("sparse", 1 << 40, b"tail"),
        timeout=60,
    )
    elapsed = time.monotonic() - start
    assert resp.status_code == 200, resp.text
    assert elapsed < 20
    code, out = _exec(
        client, cid, ["sh", "-c", "ls -ls /tmp/put/sparse; tail -c 512 /tmp/put/sparse | head -c 4"]
    )
    assert code == 0, out
    blocks, _, _, _, _, size = out.split()[:6]
    assert int(size) == 1 << 40
    assert int(blocks) < 1024  # KiB actually allocated
    assert out.endswith("tail")


def _vm_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmRSS:"))


def test_decompression_bomb_in_bounded_memory(
    refd: DaemonHandle, box: tuple[EngineClient, str], figures: dict[str, Any]
) -> None:
    """A gzip'd import of BOMB_MIB MiB of zeros (under a MiB on the wire): streamed, not held in memory."""
    client, _ = box
    size = BOMB_MIB << 20

    class Zeros(io.RawIOBase):
        def __init__(self) -> None:
            self.left = size

        def readable(self) -> bool:
            return True

        def readinto(self, b: Any) -> int:
            n = min(len(b), self.left)
            b[:n] = bytes(n)
            self.left -= n
            return n

    raw = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9) as gz,
        tarfile.open(fileobj=gz, mode="w|") as tar,
    ):
        info = tarfile.TarInfo("zeros")
        info.size = size
        tar.addfile(info, io.BufferedReader(Zeros(), 1 << 20))
    bomb = raw.getvalue()
    peak = [_vm_rss(refd.pid)]
    base = peak[0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            peak[0] = max(peak[0], _vm_rss(refd.pid))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        resp = client.post(
            "/images/create?fromSrc=-&repo=bomb&tag=1",
            data=bomb,
            headers={"Content-Type": "application/x-tar"},
            timeout=600,
        )
    finally:
        done.set()
        thread.join()
    assert resp.status_code == 200 and "errorDetail" not in resp.text, resp.text
    growth = peak[0] - base
    figures.setdefault("archives", {})["bomb"] = {
        "compressed_kib": len(bomb) >> 10,
        "expanded_mib": BOMB_MIB,
        "rss_growth_mib": round(growth / (1 << 20), 1),
    }
    assert growth < 96 << 20
    client.delete("/images/bomb:1")


def test_deep_trees_do_not_block_removal(refd: DaemonHandle, box: tuple[EngineClient, str]) -> None:
    """A container nests 1500 directories (past Python's recursion limit) in its layer and in a volume:
    inspect with sizes, df, rm and volume rm still work."""
    client, _ = box
    image = load_test_image(refd.endpoint) if refd.endpoint else ""
    assert client.post("/volumes/create", json={"Name": "deepvol"}).status_code == 201
    script = "cd /vol && i=0; while [ $i -lt 1500 ]; do mkdir a && cd a || exit 1; i=$((i+1)); done; "
    script += "cd / && i=0; while [ $i -lt 1500 ]; do mkdir b && cd b || exit 1; i=$((i+1)); done"
    body = {"Image": image, "Cmd": ["sh", "-c", script], "HostConfig": {"Binds": ["deepvol:/vol"]}}
    cid = client.post("/containers/create", json=body).json()["Id"]
    assert client.post(f"/containers/{cid}/start").status_code == 204
    assert client.post(f"/containers/{cid}/wait", timeout=120).json()["StatusCode"] == 0
    assert client.get(f"/containers/{cid}/json?size=1").status_code == 200
    assert client.get("/system/df").status_code == 200
    assert client.get(f"/containers/{cid}/export", timeout=120).status_code == 200
    resp = client.delete(f"/containers/{cid}")
    assert resp.status_code == 204, resp.text
    resp = client.delete("/volumes/deepvol")
    assert resp.status_code == 204, resp.text


def test_archive_edge_paths_answer_as_dockerd(box: tuple[EngineClient, str]) -> None:
    """A NUL in the path and an empty body, with dockerd 28.5's answers (measured on dockerd-28)."""
    client, cid = box
    got = client.get(f"/containers/{cid}/archive?path=%00")
    assert (got.status_code, got.json()["message"]) == (500, "lstat /\u0000: invalid argument")
    put = client.request("PUT", f"/containers/{cid}/archive?path=/tmp%00", data=b"x")
    assert (put.status_code, put.json()["message"]) == (500, "lstat /tmp\u0000: invalid argument")
    empty = client.request("PUT", f"/containers/{cid}/archive?path=/tmp&noOverwriteDirNonDir=1", data=b"")
    assert empty.status_code == 200, empty.text


def test_volume_name_past_name_max(box: tuple[EngineClient, str]) -> None:
    """dockerd 28.5's 500 for a 300-character volume name (measured on dockerd-28), not '<path>: ...'."""
    client, _ = box
    name = "a" * 300
    resp = client.post("/volumes/create", json={"Name": name})
    assert resp.status_code == 500
    message = resp.json()["message"]
    assert message.startswith(f"create {name}: error while creating volume root path '"), message
    assert message.endswith(": file name too long"), message
