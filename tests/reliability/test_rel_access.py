"""Access: who gets in, and what the API lets a client touch on the host.

- TLS matrix: refd with ``--tlsverify`` and with ``--tls``, plus a plain TCP listener, against every client
  case (good client cert, none, one from another CA, an expired one, a server name that does not match,
  plaintext to the TLS port, TLS to the plain port). The verdicts must equal dockerd 28.5's, recorded in
  ``DOCKERD_28`` from the dockerd-28 target; the long variant boots dockerd-28 and measures them again.
- Unix socket: a real unprivileged user outside the socket's group is refused by the kernel (and let in once
  it joins the group); while refd starts, the socket never has looser permissions than 0660, even briefly.
- Host files: traversal in archive paths, container-made symlinks to host paths, hostile names for
  containers, volumes and images: nothing outside the data-root is read or written (binds are Docker's own
  way and are left out). Capabilities and privilege are those dockerd grants: default, CapAdd, CapDrop ALL,
  Privileged.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from harness.backends.base import DaemonHandle, DaemonSpec
from harness.client import EngineClient
from harness.testimage import load_test_image
from harness.tls import TLSMaterial, mint_tls_material

from .conftest import LONG, ROOT, boot

pytestmark = pytest.mark.skipif(not ROOT, reason="booting daemons and adding users needs root")

TLS_PORT, PLAIN_PORT = 2376, 2375
CASES = ["good-cert", "no-cert", "other-ca-cert", "expired-cert", "wrong-server-name", "plaintext-to-tls"]
#: dockerd 28.5's verdicts (measured on the dockerd-28 target; the long variant measures them again)
DOCKERD_28 = {
    "tlsverify": {
        "good-cert": "ok",
        "no-cert": "refused",
        "other-ca-cert": "refused",
        "expired-cert": "refused",
        "wrong-server-name": "refused",
        "plaintext-to-tls": "answered 400",
    },
    "tls": {
        "good-cert": "ok",
        "no-cert": "ok",
        "other-ca-cert": "ok",
        "expired-cert": "ok",
        "wrong-server-name": "refused",
        "plaintext-to-tls": "answered 400",
    },
    "plain": {"tls-to-plain": "refused", "plaintext": "ok"},
}


def _tls_verdict(address: str, tls: TLSMaterial, case: str) -> str:
    host, _, port = address.rpartition(":")
    if case == "plaintext-to-tls":
        return _plain_verdict(address)
    ctx = ssl.create_default_context(cafile=tls.ca)
    client_dir = {
        "good-cert": tls.client_dir,
        "wrong-server-name": tls.client_dir,
        "other-ca-cert": tls.rogue_client_dir,
        "expired-cert": tls.expired_client_dir,
    }.get(case)
    if client_dir:
        ctx.load_cert_chain(os.path.join(client_dir, "cert.pem"), os.path.join(client_dir, "key.pem"))
    name = "not-this-host.invalid" if case == "wrong-server-name" else "127.0.0.1"
    try:
        with (
            socket.create_connection((host, int(port)), timeout=10) as raw,
            ctx.wrap_socket(raw, server_hostname=name) as conn,
        ):
            conn.sendall(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := conn.recv(4096):
                data += chunk
    except (ssl.SSLError, OSError):
        return "refused"
    return "ok" if data.startswith(b"HTTP/1.1 200") else f"answered {data[9:12].decode(errors='replace')}"


def _plain_verdict(address: str) -> str:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=10) as conn:
            conn.sendall(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := conn.recv(4096):
                data += chunk
    except OSError:
        return "refused"
    if data.startswith(b"HTTP/1.1 200"):
        return "ok"
    return f"answered {data[9:12].decode(errors='replace')}" if data.startswith(b"HTTP/") else "refused"


def _tls_to_plain(address: str, tls: TLSMaterial) -> str:
    host, _, port = address.rpartition(":")
    ctx = ssl.create_default_context(cafile=tls.ca)
    try:
        with (
            socket.create_connection((host, int(port)), timeout=10) as raw,
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as conn,
        ):
            conn.sendall(b"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n")
            conn.recv(100)
    except (ssl.SSLError, OSError):
        return "refused"
    return "ok"


@pytest.fixture(scope="module")
def tls_material() -> Iterator[TLSMaterial]:
    directory = tempfile.mkdtemp(prefix="harness-rel-tls-")
    try:
        yield mint_tls_material(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _matrix(target: str, tls: TLSMaterial) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for mode in ("tlsverify", "tls"):
        args = tls.daemon_args(verify=mode == "tlsverify")
        spec = DaemonSpec(args=args, extra_hosts=[f"tcp://127.0.0.1:{TLS_PORT}"])
        backend, handle = boot(target, spec)
        try:
            address = backend.forward(handle, TLS_PORT).address
            out[mode] = {case: _tls_verdict(address, tls, case) for case in CASES}
        finally:
            backend.teardown(handle)
    spec = DaemonSpec(args=["--tls=false"], extra_hosts=[f"tcp://127.0.0.1:{PLAIN_PORT}"])
    backend, handle = boot(target, spec)
    try:
        address = backend.forward(handle, PLAIN_PORT).address
        out["plain"] = {"tls-to-plain": _tls_to_plain(address, tls), "plaintext": _plain_verdict(address)}
    finally:
        backend.teardown(handle)
    return out


def test_tls_matrix_matches_dockerd(tls_material: TLSMaterial, figures: dict[str, Any]) -> None:
    refd = _matrix("refd", tls_material)
    expected = DOCKERD_28
    if LONG:
        from harness.errors import HarnessError
        from harness.targets import resolve_target

        try:
            resolve_target("dockerd-28").check_available()
        except HarnessError:
            pass
        else:
            expected = _matrix("dockerd-28", tls_material)
    figures.setdefault("access", {})["tls"] = {"refd": refd, "dockerd-28": expected}
    assert refd == expected


# -- the unix socket -------------------------------------------------------------------------------------

USER, GROUP = "harness-rel-user", "harness-rel-sock"


@pytest.fixture(scope="module")
def outsider() -> Iterator[tuple[str, str]]:
    """A real unprivileged user and a group it is not (yet) in; both deleted afterwards."""
    subprocess.run(["groupadd", "--system", GROUP], check=True)
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER], check=True
    )
    try:
        yield USER, GROUP
    finally:
        subprocess.run(["userdel", USER], check=False)
        subprocess.run(["groupdel", GROUP], check=False)


def _connect_as(user: str, path: str) -> str:
    """Connect to ``path`` as ``user`` (a forked child that drops root); 'ok' or the errno name."""
    code = (
        "import socket,errno,sys\n"
        "s=socket.socket(socket.AF_UNIX)\n"
        "try:\n"
        f" s.connect({path!r}); s.sendall(b'GET /_ping HTTP/1.1\\r\\nHost: d\\r\\n\\r\\n');"
        " print('ok' if s.recv(12).startswith(b'HTTP/1.1 200') else 'answered')\n"
        "except OSError as e: print(errno.errorcode.get(e.errno, str(e)))\n"
    )
    out = subprocess.run(
        ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "/usr/bin/python3", "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return out.stdout.strip() or out.stderr.strip()


def test_unix_socket_refuses_outsiders(outsider: tuple[str, str], figures: dict[str, Any]) -> None:
    user, group = outsider
    sockdir = tempfile.mkdtemp(prefix="harness-rel-sock-")
    os.chmod(sockdir, 0o755)  # the directory lets anyone through: the socket's own mode must decide
    path = os.path.join(sockdir, "refd.sock")
    modes: set[int] = set()
    stop = threading.Event()

    def watch() -> None:  # every mode the socket file shows while refd creates it
        while not stop.is_set():
            try:
                st = os.lstat(path)
                modes.add(st.st_mode & 0o7777)
            except FileNotFoundError:
                pass

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    backend, handle = boot(spec=DaemonSpec(args=[f"--group={group}"], extra_hosts=[f"unix://{path}"]))
    try:
        time.sleep(0.2)
        stop.set()
        watcher.join()
        st = os.stat(path)
        assert st.st_mode & 0o777 == 0o660 and st.st_gid == grp.getgrnam(group).gr_gid
        assert all(mode & ~0o660 == 0 for mode in modes), sorted(oct(m) for m in modes)
        outside = _connect_as(user, path)
        subprocess.run(["usermod", "-a", "-G", group, user], check=True)
        inside = _connect_as(user, path)
    finally:
        stop.set()
        backend.teardown(handle)
        shutil.rmtree(sockdir, ignore_errors=True)
    figures.setdefault("access", {})["unix_socket"] = {
        "outsider": outside,
        "group_member": inside,
        "modes_seen": sorted(oct(m) for m in modes),
    }
    assert outside == "EACCES"
    assert inside == "ok"
    assert pwd.getpwnam(user).pw_uid != 0


# -- host files ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def host_dir() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="harness-rel-host-")
    with open(os.path.join(path, "secret"), "w") as fh:
        fh.write("HOST-SECRET-4c1d\n")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _tree(root: str) -> dict[str, tuple[int, int]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            out[os.path.join(dirpath, name)] = (st.st_mode, st.st_size)
    return out


def test_api_paths_stay_in_the_data_root(refd: DaemonHandle, host_dir: str, figures: dict[str, Any]) -> None:
    assert refd.endpoint is not None
    image = load_test_image(refd.endpoint)
    client = EngineClient(refd.endpoint)
    secret_path = os.path.join(host_dir, "secret")
    up = "../" * 30 + secret_path.lstrip("/")
    cmd = ["sh", "-c", f"ln -s {secret_path} /link; ln -s {host_dir} /dirlink; sleep 600"]
    cid = client.post("/containers/create", json={"Image": image, "Cmd": cmd}).json()["Id"]
    assert client.post(f"/containers/{cid}/start").status_code == 204
    time.sleep(0.5)
    before = _tree(host_dir)
    answers: dict[str, int] = {}
    reads = {
        "archive-dotdot": f"/containers/{cid}/archive?path={up}",
        "archive-abs": f"/containers/{cid}/archive?path={secret_path}",
        "archive-link": f"/containers/{cid}/archive?path=/link",
        "archive-link-follow": f"/containers/{cid}/archive?path=/link/.",
        "archive-dirlink": f"/containers/{cid}/archive?path=/dirlink/secret",
        "export": f"/containers/{cid}/export",
        "logs-traversal": "/containers/..%2F..%2F..%2Fetc/logs?stdout=1",
        "image-traversal": "/images/..%2F..%2F..%2Fetc%2Fpasswd/json",
        "volume-traversal": "/volumes/..%2F..%2F..%2Fetc",
    }
    for name, path in reads.items():
        resp = client.get(path, timeout=60)
        answers[name] = resp.status_code
        assert b"HOST-SECRET-4c1d" not in resp.content, f"{name} disclosed a host file"
    tar = _one_file_tar("pwned", b"x")
    writes = {
        "put-dotdot": f"/containers/{cid}/archive?path={'../' * 30}{host_dir.lstrip('/')}",
        "put-abs": f"/containers/{cid}/archive?path={host_dir}",
        "put-dirlink": f"/containers/{cid}/archive?path=/dirlink",
    }
    for name, path in writes.items():
        resp = client.request("PUT", path, data=tar)
        answers[name] = resp.status_code
    creates = {
        "container-name": ("/containers/create?name=..%2F..%2Fx", {"Image": image}),
        "volume-name": ("/volumes/create", {"Name": "../../x"}),
        "volume-name-abs": ("/volumes/create", {"Name": host_dir}),
        "tag-traversal": (f"/images/{image}/tag?repo=..%2F..%2Fx&tag=1", None),
    }
    for name, (path, body) in creates.items():
        resp = client.post(path, json=body) if body is not None else client.post(path)
        answers[name] = resp.status_code
        assert resp.status_code in (400, 404, 500) and resp.status_code != 201, (name, resp.text)
    exec_id = client.post(
        f"/containers/{cid}/exec",
        json={"Cmd": ["cat", "secret"], "WorkingDir": host_dir, "AttachStdout": True},
    ).json()["Id"]
    out = client.post(f"/exec/{exec_id}/start", json={}).content
    assert b"HOST-SECRET-4c1d" not in out
    assert _tree(host_dir) == before
    client.delete(f"/containers/{cid}?force=1")
    client.close()
    figures.setdefault("access", {})["host_paths"] = answers


def _one_file_tar(name: str, data: bytes) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _cap_eff(client: EngineClient, image: str, host_config: dict[str, Any]) -> str:
    body = {"Image": image, "Cmd": ["sh", "-c", "grep CapEff /proc/1/status"], "HostConfig": host_config}
    cid = client.post("/containers/create", json=body).json()["Id"]
    assert client.post(f"/containers/{cid}/start").status_code == 204
    client.post(f"/containers/{cid}/wait")
    raw = client.get(f"/containers/{cid}/logs?stdout=1").content
    client.delete(f"/containers/{cid}")
    return raw[8:].decode().split()[-1]


def test_capabilities_are_dockerds(refd: DaemonHandle, figures: dict[str, Any]) -> None:
    assert refd.endpoint is not None
    image = load_test_image(refd.endpoint)
    client = EngineClient(refd.endpoint)
    with open(f"/proc/{refd.pid}/status") as fh:  # privileged: all the daemon itself may hold
        everything = next(int(line.split()[1], 16) for line in fh if line.startswith("CapBnd:"))
    got = {
        "default": _cap_eff(client, image, {}),
        "cap-add-net-admin": _cap_eff(client, image, {"CapAdd": ["NET_ADMIN"]}),
        "cap-drop-all": _cap_eff(client, image, {"CapDrop": ["ALL"]}),
        "cap-drop-chown": _cap_eff(client, image, {"CapDrop": ["CHOWN"]}),
        "privileged": _cap_eff(client, image, {"Privileged": True}),
    }
    client.close()
    figures.setdefault("access", {})["capabilities"] = got
    assert int(got["default"], 16) == 0xA80425FB  # dockerd's default set
    assert int(got["cap-add-net-admin"], 16) == 0xA80425FB | (1 << 12)
    assert int(got["cap-drop-all"], 16) == 0
    assert int(got["cap-drop-chown"], 16) == 0xA80425FB & ~1
    assert int(got["privileged"], 16) == everything
