"""A client session: fsutil's DiffCopy both ways, secrets, and the session registry."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest

from harness.daemon.buildkit.grpc import NOT_FOUND, Call, GrpcError, Peer
from harness.daemon.buildkit.messages import GetSecretRequest, GetSecretResponse
from harness.daemon.buildkit.session import (
    Session,
    SessionError,
    SessionManager,
    _receive_tree,
    _send_tree,
    go_mode,
    unix_mode,
)


def _tree(root: Path) -> None:
    (root / "d" / "e").mkdir(parents=True)
    (root / "d" / "e" / "f.txt").write_bytes(b"x" * 70000)  # more than one DATA packet
    (root / "empty").write_bytes(b"")
    (root / "exec.sh").write_text("#!/bin/sh\n")
    os.chmod(root / "exec.sh", 0o751)
    os.symlink("d/e/f.txt", root / "link")
    os.utime(root / "empty", ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))


def _listing(root: Path) -> list[tuple[str, int, int, str]]:
    out = []
    for dirpath, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            p = Path(dirpath) / name
            st = os.lstat(p)
            content = os.readlink(p) if p.is_symlink() else (p.read_bytes().hex()[:16] if p.is_file() else "")
            out.append((str(p.relative_to(root)), st.st_mode, st.st_size if p.is_file() else 0, content))
    return sorted(out)


async def _session(handlers: dict[str, Any]) -> tuple[Session, Peer, list[Any]]:
    a, b = socket.socketpair()
    cli_r, cli_w = await asyncio.open_connection(sock=a)  # the CLI: serves the session's services
    refd_r, refd_w = await asyncio.open_connection(sock=b)  # refd: the gRPC client
    cli = Peer(cli_r, cli_w, client_side=False, handlers=handlers)
    refd = Peer(refd_r, refd_w, client_side=True)
    await cli.start()
    await refd.start()
    tasks = [asyncio.ensure_future(cli.serve()), asyncio.ensure_future(refd.serve())]
    return Session("s1", "ctx", "", refd), cli, tasks


async def _end(session: Session, cli: Peer, tasks: list[Any]) -> None:
    await session.peer.close()
    await cli.close()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def test_fetch_dir_receives_the_tree(tmp_path: Path) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    dest.mkdir()
    _tree(src)
    seen: dict[str, list[str]] = {}

    async def diffcopy(call: Call) -> None:
        seen["dir"] = call.metadata("dir-name")
        seen["follow"] = call.metadata("followpaths")
        await _send_tree(call, str(src))

    async def main() -> int:
        session, cli, tasks = await _session({"/moby.filesync.v1.FileSync/DiffCopy": diffcopy})
        try:
            return await session.fetch_dir("context", str(dest), follow=["a", "b"])
        finally:
            await _end(session, cli, tasks)

    received = asyncio.run(main())
    assert seen == {"dir": ["context"], "follow": ["a", "b"]}
    assert _listing(dest) == _listing(src)
    assert os.stat(dest / "empty").st_mtime_ns == 1_600_000_000_123_456_789
    assert received > 70000  # what BuildKit counts: the packets' bytes


def test_send_tree_to_the_client(tmp_path: Path) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    dest.mkdir()
    _tree(src)

    done: list[asyncio.Event] = []

    async def filesend(call: Call) -> None:  # the CLI side of --output type=local
        await _receive_tree(call, str(dest), None)
        done[0].set()

    async def main() -> None:
        done.append(asyncio.Event())
        session, cli, tasks = await _session({"/moby.filesync.v1.FileSend/DiffCopy": filesend})
        try:
            await session.send_tree(str(src))
            await done[0].wait()
        finally:
            await _end(session, cli, tasks)

    asyncio.run(main())
    assert _listing(dest) == _listing(src)


def test_secrets() -> None:
    async def get_secret(call: Call) -> None:
        req = GetSecretRequest.decode(await call.recv() or b"")
        if req.ID != "known":
            raise GrpcError(NOT_FOUND, f"secret {req.ID} not found")
        await call.send(GetSecretResponse(data=b"s3cret").encode())

    async def main() -> tuple[bytes | None, bytes | None]:
        session, cli, tasks = await _session({"/moby.buildkit.secrets.v1.Secrets/GetSecret": get_secret})
        try:
            return await session.secret("known"), await session.secret("other")
        finally:
            await _end(session, cli, tasks)

    assert asyncio.run(main()) == (b"s3cret", None)


def test_a_hostile_path_is_refused(tmp_path: Path) -> None:
    from harness.daemon.buildkit.messages import Packet, Stat

    async def evil(call: Call) -> None:
        await call.send(Packet(type=Packet.STAT, stat=Stat(path="../escape", mode=0o644, size=1)).encode())
        await call.send(b"")

    async def main() -> None:
        session, cli, tasks = await _session({"/moby.filesync.v1.FileSync/DiffCopy": evil})
        try:
            await session.fetch_dir("context", str(tmp_path / "x"))
        finally:
            await _end(session, cli, tasks)

    (tmp_path / "x").mkdir()
    with pytest.raises(SessionError, match="the client ended the transfer with files still to send"):
        asyncio.run(main())
    assert not (tmp_path / "escape").exists()
    assert (tmp_path / "x" / "escape").exists()  # '../escape' is cleaned to a name inside


def test_a_symlink_cannot_lead_a_file_out(tmp_path: Path) -> None:
    from harness.daemon.buildkit.messages import Packet, Stat

    outside = tmp_path / "outside"
    outside.mkdir()

    async def evil(call: Call) -> None:
        link = Stat(path="sneaky", mode=go_mode(stat.S_IFLNK | 0o777), linkname=str(outside))
        await call.send(Packet(type=Packet.STAT, stat=link).encode())
        await call.send(Packet(type=Packet.STAT, stat=Stat(path="sneaky/owned", mode=0o644, size=1)).encode())
        await call.send(b"")

    async def main() -> None:
        session, cli, tasks = await _session({"/moby.filesync.v1.FileSync/DiffCopy": evil})
        try:
            await session.fetch_dir("context", str(tmp_path / "x"))
        finally:
            await _end(session, cli, tasks)

    (tmp_path / "x").mkdir()
    with pytest.raises(SessionError, match="'sneaky/owned' in the transfer: it leads out of the directory"):
        asyncio.run(main())
    assert list(outside.iterdir()) == []


def test_modes_round_trip() -> None:
    for mode in (stat.S_IFREG | 0o644, stat.S_IFDIR | 0o755, stat.S_IFLNK | 0o777, stat.S_IFREG | 0o4755):
        assert unix_mode(go_mode(mode)) == mode
    assert go_mode(stat.S_IFDIR | 0o755) == (1 << 31) | 0o755  # what buildx sent for a directory


def test_a_missing_session_times_out() -> None:
    async def main() -> None:
        with pytest.raises(SessionError, match="no active session for nope: context deadline exceeded"):
            await SessionManager().get("nope", timeout=0.05)

    asyncio.run(main())


def test_ssh_agent_relay(tmp_path: Path) -> None:
    """RUN --mount=type=ssh: a connection to the step's socket becomes a ForwardAgent stream to the client."""
    from harness.daemon.buildkit.messages import BytesMessage
    from harness.daemon.buildkit.runstep import _forward_agent

    seen: list[list[str]] = []

    async def agent(call: Call) -> None:  # the client's agent: answers each message reversed
        seen.append(call.metadata("buildkit.ssh.id"))
        while (raw := await call.recv()) is not None:
            await call.send(BytesMessage(data=bytes(BytesMessage.decode(raw).data)[::-1]).encode())

    async def main() -> bytes:
        session, cli, tasks = await _session({"/moby.sshforward.v1.SSH/ForwardAgent": agent})
        path = str(tmp_path / "agent.sock")
        server = await asyncio.start_unix_server(
            lambda r, w: _forward_agent(session, "default", r, w), path=path
        )
        try:
            reader, writer = await asyncio.open_unix_connection(path)
            writer.write(b"request")
            await writer.drain()
            answer = await reader.readexactly(7)
            writer.close()
            return answer
        finally:
            server.close()
            await _end(session, cli, tasks)

    assert asyncio.run(main()) == b"tseuqer"
    assert seen == [["default"]]
