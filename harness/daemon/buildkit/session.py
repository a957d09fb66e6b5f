"""Client sessions (``POST /session``): the services a buildx or compose client serves to refd during a build.

A session is the client's hijacked connection, on which refd is the gRPC client. It is known by
the ``X-Docker-Expose-Session-Uuid`` header; a Solve names it. Through it refd

- fetches directories with fsutil's DiffCopy (``FileSync/DiffCopy``): the client sends one ``STAT``
  packet per entry (directories before their contents), an empty ``STAT`` at the end; refd asks for
  file contents by the entry's index (``REQ``), the client answers ``DATA`` packets (an empty one
  ends a file); a ``FIN`` each way closes it. The ``dir-name`` header names the directory the client
  shares (``context``, ``dockerfile``), ``exclude-patterns``/``followpaths`` filter it client side;
- asks for secrets (``Secrets/GetSecret``), registry credentials (``Auth/Credentials``), an ssh agent
  (``SSH/ForwardAgent``, one stream per agent connection);
- sends results: fsutil packets the other way for ``--output type=local`` (``FileSend/DiffCopy``, the
  client requests each file's data), raw tar bytes for ``type=tar``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat as statmod
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .grpc import NOT_FOUND, UNIMPLEMENTED, Call, GrpcError, Peer
from .messages import (
    BytesMessage,
    CheckAgentRequest,
    CredentialsRequest,
    CredentialsResponse,
    GetSecretRequest,
    GetSecretResponse,
    Packet,
    Stat,
)

if TYPE_CHECKING:
    from ..daemon import Daemon

__all__ = ["Session", "SessionError", "SessionManager", "go_mode", "serve_session", "unix_mode"]

_SESSION_WAIT = 5.0  # how long a Solve waits for the session it names to connect

# Go's os.FileMode type bits, as fsutil's Stat carries them
_GO_DIR = 1 << 31
_GO_SYMLINK = 1 << 27
_GO_DEVICE = 1 << 26
_GO_PIPE = 1 << 25
_GO_SOCKET = 1 << 24
_GO_SETUID = 1 << 23
_GO_SETGID = 1 << 22
_GO_CHARDEV = 1 << 21
_GO_STICKY = 1 << 20


class SessionError(Exception):
    """A session that is missing or failed a call; the message is what the build reports."""


def go_mode(mode: int) -> int:
    """A Unix st_mode as Go's os.FileMode."""
    out = mode & 0o777
    kind = statmod.S_IFMT(mode)
    if kind == statmod.S_IFDIR:
        out |= _GO_DIR
    elif kind == statmod.S_IFLNK:
        out |= _GO_SYMLINK
    elif kind == statmod.S_IFIFO:
        out |= _GO_PIPE
    elif kind == statmod.S_IFSOCK:
        out |= _GO_SOCKET
    elif kind == statmod.S_IFCHR:
        out |= _GO_DEVICE | _GO_CHARDEV
    elif kind == statmod.S_IFBLK:
        out |= _GO_DEVICE
    if mode & statmod.S_ISUID:
        out |= _GO_SETUID
    if mode & statmod.S_ISGID:
        out |= _GO_SETGID
    if mode & statmod.S_ISVTX:
        out |= _GO_STICKY
    return out


def unix_mode(mode: int) -> int:
    """Go's os.FileMode as a Unix st_mode."""
    out = mode & 0o777
    if mode & _GO_DIR:
        out |= statmod.S_IFDIR
    elif mode & _GO_SYMLINK:
        out |= statmod.S_IFLNK
    elif mode & _GO_PIPE:
        out |= statmod.S_IFIFO
    elif mode & _GO_SOCKET:
        out |= statmod.S_IFSOCK
    elif mode & _GO_CHARDEV:
        out |= statmod.S_IFCHR
    elif mode & _GO_DEVICE:
        out |= statmod.S_IFBLK
    else:
        out |= statmod.S_IFREG
    if mode & _GO_SETUID:
        out |= statmod.S_ISUID
    if mode & _GO_SETGID:
        out |= statmod.S_ISGID
    if mode & _GO_STICKY:
        out |= statmod.S_ISVTX
    return out


@dataclass
class Session:
    """One connected client session."""

    id: str
    name: str
    shared_key: str
    peer: Peer

    # -- directories --------------------------------------------------------------------------------
    async def fetch_dir(
        self,
        dir_name: str,
        dest: str,
        excludes: list[str] | None = None,
        follow: list[str] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Receive the client's ``dir_name`` into ``dest`` (which exists); returns the bytes received."""
        metadata = [("dir-name", dir_name)]
        metadata += [("exclude-patterns", p) for p in excludes or []]
        metadata += [("followpaths", p) for p in follow or []]
        call = await self.peer.open("/moby.filesync.v1.FileSync/DiffCopy", metadata)
        try:
            return await _receive_tree(call, dest, progress)
        except GrpcError as exc:
            raise SessionError(_filesync_error(dir_name, exc)) from None
        finally:
            await self.peer.cancel(call)

    # -- secrets, credentials ---------------------------------------------------------------------------
    async def secret(self, secret_id: str) -> bytes | None:
        """The secret's bytes, or None when the client has no such secret."""
        try:
            raw = await self.peer.unary(
                "/moby.buildkit.secrets.v1.Secrets/GetSecret", GetSecretRequest(ID=secret_id).encode()
            )
        except GrpcError as exc:
            if exc.code in (NOT_FOUND, UNIMPLEMENTED):
                return None
            raise SessionError(f"secret {secret_id}: {exc.message}") from None
        return bytes(GetSecretResponse.decode(raw).data)

    async def credentials(self, host: str) -> tuple[str, str]:
        """The client's registry credentials for ``host`` (empty when it has none)."""
        try:
            raw = await self.peer.unary(
                "/moby.filesync.v1.Auth/Credentials", CredentialsRequest(Host=host).encode()
            )
        except GrpcError:
            return "", ""
        resp = CredentialsResponse.decode(raw)
        return str(resp.Username), str(resp.Secret)

    async def ssh_stream(self, ssh_id: str) -> Call:
        """One ForwardAgent stream (one agent connection) to the client's agent ``ssh_id``."""
        return await self.peer.open("/moby.sshforward.v1.SSH/ForwardAgent", [("buildkit.ssh.id", ssh_id)])

    async def check_agent(self, ssh_id: str) -> None:
        """The client forwards an agent named ``ssh_id``: else the build fails as BuildKit's does."""
        try:
            await self.peer.unary("/moby.sshforward.v1.SSH/CheckAgent", CheckAgentRequest(ID=ssh_id).encode())
        except GrpcError as exc:
            raise SessionError(
                f"unset ssh forward key {ssh_id}" if exc.code == NOT_FOUND else exc.message
            ) from None

    # -- exporters ------------------------------------------------------------------------------------
    async def send_tree(self, root: str, exporter_id: str = "0") -> int:
        """``--output type=local``: the tree under ``root`` to the client; returns the bytes sent."""
        call = await self.peer.open(
            "/moby.filesync.v1.FileSend/DiffCopy", [("buildkit-attachable-exporter-id", exporter_id)]
        )
        try:
            return await _send_tree(call, root)
        except GrpcError as exc:
            raise SessionError(f"failed to send the result: {exc.message}") from None
        finally:
            await self.peer.cancel(call)

    async def send_bytes(self, chunks: AsyncIterator[bytes], exporter_id: str = "0") -> int:
        """``--output type=tar`` (and other single-file exporters): raw bytes to the client."""
        call = await self.peer.open(
            "/moby.filesync.v1.FileSend/DiffCopy", [("buildkit-attachable-exporter-id", exporter_id)]
        )
        sent = 0
        try:
            async for chunk in chunks:
                await call.send(BytesMessage(data=chunk).encode())
                sent += len(chunk)
            await call.finish()
            while await call.recv() is not None:
                pass
        except GrpcError as exc:
            raise SessionError(f"failed to send the result: {exc.message}") from None
        finally:
            await self.peer.cancel(call)
        return sent


def _filesync_error(dir_name: str, exc: GrpcError) -> str:
    if exc.code == NOT_FOUND or "no access allowed to dir" in exc.message:
        return f"failed to solve: no access allowed to dir {dir_name!r}: {exc.message}"
    return exc.message


async def _receive_tree(call: Call, dest: str, progress: Callable[[int], None] | None) -> int:
    """fsutil's receiver: stats first, then the data of each regular file requested by index.

    Returns what BuildKit counts as transferred: the bytes of the packets the client sent."""
    entries: list[Stat] = []
    received = 0
    while True:
        raw = await call.recv()
        if raw is not None:
            received += len(raw)
        if raw is None:
            raise GrpcError(13, "the client ended the transfer before its file list")
        packet = Packet.decode(raw)
        if packet.type == Packet.ERR:
            raise GrpcError(13, bytes(packet.data).decode(errors="replace"))
        if packet.type != Packet.STAT:
            continue
        if packet.stat is None:
            break
        entries.append(packet.stat)
    tree = _TreeWriter(dest)
    files: dict[int, Any] = {}
    try:
        for index, entry in enumerate(entries):
            if tree.create(entry) and int(entry.size) > 0:
                files[index] = tree.open_file(str(entry.path))
                await call.send(Packet(type=Packet.REQ, ID=index).encode())
        pending = set(files)
        while pending:
            raw = await call.recv()
            if raw is None:
                raise GrpcError(13, "the client ended the transfer with files still to send")
            received += len(raw)
            packet = Packet.decode(raw)
            if packet.type == Packet.ERR:
                raise GrpcError(13, bytes(packet.data).decode(errors="replace"))
            if packet.type != Packet.DATA:
                continue
            target = files.get(int(packet.ID))
            if target is None:
                continue
            data = bytes(packet.data)
            if progress is not None:
                progress(received)
            if data:
                target.write(data)
            else:
                pending.discard(int(packet.ID))
        await call.send(Packet(type=Packet.FIN).encode())
        while True:
            raw = await call.recv()
            if raw is None:
                break
            received += len(raw)
            if Packet.decode(raw).type == Packet.FIN:
                break
    finally:
        for fh in files.values():
            fh.close()
    tree.finish(entries)
    return received


def _safe_join(root: str, rel: str) -> str:
    """``rel`` under ``root``: ``..`` and absolute paths are cleaned to names inside it."""
    norm = os.path.normpath("/" + rel).lstrip("/")
    if not norm or norm == ".":
        raise GrpcError(3, f"invalid path {rel!r} in the transfer")
    return os.path.join(root, norm)


class _TreeWriter:
    """Writes a received tree under ``dest`` and nowhere else: a path whose directory resolves out of it
    (through a symlink the transfer made) is refused, files are opened without following symlinks."""

    def __init__(self, dest: str) -> None:
        self.dest = dest
        self.real = os.path.realpath(dest)

    def path(self, rel: str) -> str:
        path = _safe_join(self.dest, rel)
        parent = os.path.realpath(os.path.dirname(path))
        if parent != self.real and not parent.startswith(self.real + os.sep):
            raise GrpcError(3, f"invalid path {rel!r} in the transfer: it leads out of the directory")
        return path

    def create(self, entry: Stat) -> bool:
        """Make the entry (directories, symlinks, hard links now); True for a regular file to fill."""
        path = self.path(str(entry.path))
        kind = statmod.S_IFMT(unix_mode(int(entry.mode)))
        if kind == statmod.S_IFDIR:
            if not os.path.isdir(path) or os.path.islink(path):
                os.makedirs(path, exist_ok=True)
        elif kind == statmod.S_IFLNK:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            os.symlink(str(entry.linkname), path)
        elif kind == statmod.S_IFREG:
            if entry.linkname:  # a hard link to an earlier entry
                os.link(self.path(str(entry.linkname)), path, follow_symlinks=False)
                return False
            self.open_file(str(entry.path)).close()
            return True
        return False  # devices, fifos, sockets: not part of a build context

    def open_file(self, rel: str) -> Any:
        fd = os.open(self.path(rel), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        return os.fdopen(fd, "wb")

    def finish(self, entries: list[Stat]) -> None:
        """Modes, owners and times, deepest first (a directory's time after its contents)."""
        for entry in reversed(entries):
            path = self.path(str(entry.path))
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            if statmod.S_ISLNK(st.st_mode):
                continue
            os.chmod(path, statmod.S_IMODE(unix_mode(int(entry.mode))))
            with contextlib.suppress(OSError):
                os.chown(path, int(entry.uid), int(entry.gid), follow_symlinks=False)
            mtime = int(entry.modTime)
            os.utime(path, ns=(mtime, mtime), follow_symlinks=False)


def _walk(root: str) -> list[tuple[str, os.stat_result]]:
    out: list[tuple[str, os.stat_result]] = []

    def visit(rel: str) -> None:
        full = os.path.join(root, rel) if rel else root
        for name in sorted(os.listdir(full)):
            path = f"{rel}/{name}" if rel else name
            st = os.lstat(os.path.join(root, path))
            out.append((path, st))
            if statmod.S_ISDIR(st.st_mode):
                visit(path)

    visit("")
    return out


async def _send_tree(call: Call, root: str) -> int:
    """fsutil's sender: every entry's stat, then file data as the receiver asks for it."""
    entries = await asyncio.to_thread(_walk, root)
    for path, st in entries:
        s = Stat(path=path, mode=go_mode(st.st_mode), uid=st.st_uid, gid=st.st_gid, modTime=st.st_mtime_ns)
        if statmod.S_ISREG(st.st_mode):
            s.size = st.st_size
        elif statmod.S_ISLNK(st.st_mode):
            s.linkname = os.readlink(os.path.join(root, path))
        await call.send(Packet(type=Packet.STAT, stat=s).encode())
    await call.send(b"")  # the empty STAT packet: the list is complete
    sent = 0
    while True:
        raw = await call.recv()
        if raw is None:
            break
        packet = Packet.decode(raw)
        if packet.type == Packet.FIN:
            await call.send(Packet(type=Packet.FIN).encode())
            break
        if packet.type == Packet.ERR:
            raise GrpcError(13, bytes(packet.data).decode(errors="replace"))
        if packet.type != Packet.REQ:
            continue
        index = int(packet.ID)
        path = os.path.join(root, entries[index][0])
        with open(path, "rb") as fh:
            while chunk := fh.read(32 * 1024):
                await call.send(Packet(type=Packet.DATA, ID=index, data=chunk).encode())
                sent += len(chunk)
        await call.send(Packet(type=Packet.DATA, ID=index).encode())
    await call.finish()
    return sent


@dataclass
class SessionManager:
    """The connected sessions by id; a Solve waits briefly for the one it names."""

    sessions: dict[str, Session] = field(default_factory=dict)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def add(self, session: Session) -> None:
        async with self.changed:
            self.sessions[session.id] = session
            self.changed.notify_all()

    async def remove(self, session: Session) -> None:
        async with self.changed:
            if self.sessions.get(session.id) is session:
                del self.sessions[session.id]
            self.changed.notify_all()

    async def get(self, session_id: str, timeout: float = _SESSION_WAIT) -> Session:
        """The session, waiting for it to connect (moby's session manager waits the same way)."""
        if not session_id:
            raise SessionError("no session id in the request")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with self.changed:
            while session_id not in self.sessions:
                left = deadline - loop.time()
                if left <= 0:
                    raise SessionError(f"no active session for {session_id}: context deadline exceeded")
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), left)
            return self.sessions[session_id]


async def serve_session(
    daemon: Daemon, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, headers: dict[str, str]
) -> None:
    """Run one client session until the client closes it."""
    from .control import controller

    manager = controller(daemon).sessions
    session_id = headers.get("x-docker-expose-session-uuid", "")
    peer = Peer(reader, writer, client_side=True)
    await peer.start()
    session = Session(
        session_id,
        headers.get("x-docker-expose-session-name", ""),
        headers.get("x-docker-expose-session-sharedkey", ""),
        peer,
    )
    await manager.add(session)
    try:
        await peer.serve()
    finally:
        await manager.remove(session)
