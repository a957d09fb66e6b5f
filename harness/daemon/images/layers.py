"""Layer storage drivers (overlay2, vfs) and tar-split: unpack layers, mount root filesystems, re-create tars.

On-disk shapes follow dockerd's graphdrivers:

overlay2 (``<data-root>/overlay2``)::

    <cache-id>/diff/        the layer's own files; AUFS whiteouts become 0:0 char devices and
                            ``.wh..wh..opq`` becomes the ``trusted.overlay.opaque=y`` xattr
    <cache-id>/link         the short name of ``l/<LINK>`` -> ``../<cache-id>/diff``
    <cache-id>/lower        ``l/<PARENT>:l/<GRANDPARENT>...`` (layers with a parent only)
    <cache-id>/work/        overlay's workdir (layers with a parent only)
    <cache-id>/merged/      the mount point while mounted
    l/<LINK>                short symlinks that keep the mount data under a page

vfs (``<data-root>/vfs/dir/<cache-id>``): every layer is a full copy of its parent with the
layer's tar applied on top (whiteouts delete).

``Driver.apply(cache_id, stream)`` unpacks an uncompressed layer tar with ``tarsafe.extract`` and
returns the layer size dockerd reports (overlay2: the disk size of ``diff`` with hardlinks
counted once and symlinks by their target length; vfs: the sum of the tar header sizes).
``TarSplit`` records the tar's headers and padding while it is unpacked (tar-split's JSON
format, gzipped, as dockerd keeps it in ``layerdb``) so ``assemble`` can re-create the
byte-identical layer tar, and so its digest (the diff ID), for ``docker save``.

``Driver.get(id)`` mounts (overlay2) or returns (vfs) a layer's root filesystem; ``put(id)``
undoes it. Mounts are reference-counted.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import io
import json
import os
import secrets
import shutil
import stat
import tarfile
import threading
from collections.abc import Callable, Iterator
from typing import IO, Any

from ..fsutil import atomic_write, rmtree, walk
from . import overlaycheck
from .overlaycheck import backing_mount
from .tarsafe import ArchiveError, Whiteouts, extract, go_clean

__all__ = [
    "DRIVERS",
    "Driver",
    "Overlay2Driver",
    "TarSplit",
    "VfsDriver",
    "assemble",
    "backing_filesystem",
    "copy_tree",
    "dir_size",
    "overlay_supported",
]

_LINK_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


# -- tar-split ------------------------------------------------------------------------------------
class TarSplit(io.RawIOBase):
    """Wraps a decompressed layer stream: hashes every byte and records everything but file contents.

    Call ``member(info)`` for each member *before* its contents are read (``extract``'s
    ``on_member``), then ``finish()``. ``digest`` is the diff ID; ``lines`` the tar-split entries.
    """

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__()
        self.raw = raw
        self.hash = hashlib.sha256()
        self.pos = 0
        self.buf = bytearray()
        self.buf_start = 0
        self.lines: list[dict[str, Any]] = []

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self.raw.read(len(b))
        if not data:
            return 0
        n = len(data)
        b[:n] = data
        self._record(data)
        return n

    def _record(self, data: bytes) -> None:
        self.hash.update(data)
        start = self.pos
        self.pos += len(data)
        if self.pos <= self.buf_start:
            return  # entirely inside a file's contents
        self.buf += data[max(0, self.buf_start - start) :]

    def _segment(self, payload: bytes) -> None:
        if payload:
            self.lines.append(
                {"type": 2, "payload": base64.b64encode(payload).decode(), "position": len(self.lines)}
            )

    def member(self, info: tarfile.TarInfo) -> None:
        header_end = info.offset_data
        self._segment(bytes(self.buf[: header_end - self.buf_start]))
        data_len = info.size if info.isreg() else 0
        entry: dict[str, Any] = {"type": 1, "size": data_len, "position": len(self.lines)}
        raw_name = os.fsencode(info.name)
        try:
            entry["name"] = raw_name.decode("utf-8")
        except UnicodeDecodeError:
            entry["name_raw"] = base64.b64encode(raw_name).decode()
        self.lines.append(entry)
        data_end = header_end + data_len
        if self.pos > data_end:
            del self.buf[: data_end - self.buf_start]
        else:
            self.buf.clear()
        self.buf_start = data_end

    def finish(self) -> None:
        while self.read(1 << 16):
            pass
        self._segment(bytes(self.buf))
        self.buf.clear()
        self.buf_start = self.pos

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()

    def dump(self) -> bytes:
        """The gzipped JSON lines dockerd keeps as ``tar-split.json.gz``."""
        text = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in self.lines)
        return gzip.compress(text.encode(), mtime=0)


def assemble(tar_split_gz: bytes, root: str) -> Iterator[bytes]:
    """Re-create a layer tar from its tar-split record and the files under ``root``."""
    for raw_line in gzip.decompress(tar_split_gz).splitlines():
        if not raw_line.strip():
            continue
        line = json.loads(raw_line)
        if line["type"] == 2:
            yield base64.b64decode(line["payload"])
            continue
        size = int(line.get("size") or 0)
        if size <= 0:
            continue
        name = line["name"] if "name" in line else os.fsdecode(base64.b64decode(line["name_raw"]))
        rel = go_clean(name).lstrip("/")
        fd = os.open(os.path.join(root, rel), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as fh:
            left = size
            while left:
                chunk = fh.read(min(left, 1 << 20))
                if not chunk:
                    raise ArchiveError(f"layer content changed: {rel} is shorter than {size} bytes")
                left -= len(chunk)
                yield chunk


# -- helpers ----------------------------------------------------------------------------------------
def dir_size(root: str) -> int:
    """moby ``directory.Size``: bytes of non-directories, each inode once, symlinks by target length."""
    total = 0
    seen: set[int] = set()
    for dirpath, dirnames, filenames in walk(root):
        for name in dirnames + filenames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:  # gone, or a path past PATH_MAX deep in the tree
                continue
            if stat.S_ISDIR(st.st_mode) or st.st_size == 0 or st.st_ino in seen:
                continue
            seen.add(st.st_ino)
            total += st.st_size
    return total


def copy_tree(src: str, dst: str) -> None:
    """vfs's dirCopy into the existing ``dst``: hardlinks, devices, fifos, owners, modes, xattrs, times."""
    inodes: dict[tuple[int, int], str] = {}
    dirs: list[tuple[str, os.stat_result]] = []

    def meta(sp: str, dp: str, st: os.stat_result) -> None:
        os.chown(dp, st.st_uid, st.st_gid, follow_symlinks=False)
        with contextlib.suppress(OSError):
            for key in os.listxattr(sp, follow_symlinks=False):
                os.setxattr(dp, key, os.getxattr(sp, key, follow_symlinks=False), follow_symlinks=False)
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(dp, stat.S_IMODE(st.st_mode))
        if not stat.S_ISDIR(st.st_mode):
            os.utime(dp, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)

    def walk(s: str, d: str) -> None:
        for entry in os.scandir(s):
            sp, dp = entry.path, os.path.join(d, entry.name)
            st = entry.stat(follow_symlinks=False)
            mode = st.st_mode
            if stat.S_ISDIR(mode):
                os.mkdir(dp, 0o700)
                walk(sp, dp)
                meta(sp, dp, st)
                dirs.append((dp, st))
                continue
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in inodes:
                os.link(inodes[key], dp, follow_symlinks=False)
                continue
            if stat.S_ISREG(mode):
                with open(sp, "rb") as fin, open(dp, "xb") as fout:
                    shutil.copyfileobj(fin, fout, 1 << 20)
            elif stat.S_ISLNK(mode):
                os.symlink(os.readlink(sp), dp)
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                os.mknod(dp, mode, st.st_rdev)
            elif stat.S_ISFIFO(mode):
                os.mkfifo(dp, 0o600)
            else:
                continue  # sockets are not copied
            meta(sp, dp, st)
            if st.st_nlink > 1:
                inodes[key] = dp

    root_st = os.lstat(src)
    walk(src, dst)
    meta(src, dst, root_st)
    for path, st in [*dirs, (dst, root_st)]:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def backing_filesystem(path: str) -> str:
    """dockerd's name for the filesystem holding ``path`` (``extfs``, ``xfs``, ``tmpfs``...)."""
    names = {
        "ext2": "extfs",
        "ext3": "extfs",
        "ext4": "extfs",
        "xfs": "xfs",
        "tmpfs": "tmpfs",
        "btrfs": "btrfs",
        "overlay": "overlayfs",
        "zfs": "zfs",
        "nfs": "nfs",
        "nfs4": "nfs",
        "f2fs": "f2fs",
        "squashfs": "squashfs",
        "ramfs": "ramfs",
        "fuse.sshfs": "fuse",
    }
    fstype = backing_mount(path)[1]
    return names.get(fstype, fstype)


def _mount(source: str, target: str, fstype: str, data: str) -> None:
    from ..runtime.syscalls import mount

    mount(source, target, fstype, 0, data)


def _umount(target: str) -> None:
    from ..runtime.syscalls import MNT_DETACH, umount2

    umount2(target, MNT_DETACH)


def overlay_supported(home_parent: str) -> str:
    """'' when an overlay mount works under ``home_parent``, else why not (a success is remembered)."""
    return overlaycheck.overlay_supported(home_parent, backing_filesystem(home_parent))


# -- drivers ----------------------------------------------------------------------------------------
class Driver:
    """What the image store needs from a storage driver."""

    name = ""
    whiteouts: Whiteouts = "keep"

    def __init__(self, home: str) -> None:
        self.home = home
        self._mounts: dict[str, int] = {}
        self._lock = threading.Lock()
        #: ``--userns-remap``: container ids to host ids (layers are unpacked shifted, as dockerd's are)
        self.id_map: Callable[[int, int], tuple[int, int]] | None = None
        self.id_unmap: Callable[[int, int], tuple[int, int]] | None = None  # and back, for diffs
        #: and the host uid/gid of container root, which owns each layer's root and may traverse the store
        self.remapped_root: tuple[int, int] | None = None

    def own(self, path: str, traverse_only: bool = False) -> None:
        """Give ``path`` to the remapped root (``traverse_only``: its group only, for 0710 directories)."""
        if self.remapped_root is not None:
            uid, gid = self.remapped_root
            os.chown(path, 0 if traverse_only else uid, gid)

    def status(self) -> list[list[str]] | None:
        return None

    def create(self, cache_id: str, parent: str | None) -> None:
        raise NotImplementedError

    def root(self, cache_id: str) -> str:
        """Where a layer's files are (overlay2: ``diff``; vfs: the layer dir)."""
        raise NotImplementedError

    def exists(self, cache_id: str) -> bool:
        raise NotImplementedError

    def remove(self, cache_id: str) -> None:
        raise NotImplementedError

    def ids(self) -> list[str]:
        raise NotImplementedError

    def prune_links(self) -> None:
        """Drop what points at removed layers (overlay2's ``l/`` short links); nothing for others."""

    def metadata(self, cache_id: str) -> dict[str, str] | None:
        return None

    def apply(self, cache_id: str, stream: IO[bytes], on_member: Callable[[tarfile.TarInfo], None]) -> int:
        size = extract(
            stream, self.root(cache_id), whiteouts=self.whiteouts, on_member=on_member, id_map=self.id_map
        )
        return self._applied_size(cache_id, size)

    def _applied_size(self, cache_id: str, header_size: int) -> int:
        return header_size

    def get(self, cache_id: str) -> str:
        raise NotImplementedError

    def put(self, cache_id: str) -> None:
        raise NotImplementedError


class Overlay2Driver(Driver):
    name = "overlay2"
    whiteouts: Whiteouts = "overlay"

    def __init__(self, home: str) -> None:
        super().__init__(home)
        os.makedirs(home, mode=0o710, exist_ok=True)
        os.makedirs(os.path.join(home, "l"), mode=0o700, exist_ok=True)
        self.index_off = os.path.exists("/sys/module/overlay/parameters/index")
        self.backing_fs = backing_filesystem(home)

    def status(self) -> list[list[str]]:
        return [
            ["Backing Filesystem", self.backing_fs],
            ["Supports d_type", "true"],
            ["Using metacopy", "false"],
            ["Native Overlay Diff", "true"],
            ["userxattr", "false"],
        ]

    def _dir(self, cache_id: str) -> str:
        return os.path.join(self.home, cache_id)

    def root(self, cache_id: str) -> str:
        return os.path.join(self._dir(cache_id), "diff")

    def exists(self, cache_id: str) -> bool:
        return os.path.isdir(self._dir(cache_id))

    def ids(self) -> list[str]:
        return [n for n in os.listdir(self.home) if n != "l" and os.path.isdir(os.path.join(self.home, n))]

    def prune_links(self) -> None:
        links = os.path.join(self.home, "l")
        for link in os.listdir(links):
            if not os.path.exists(os.path.join(links, link)):
                os.unlink(os.path.join(links, link))

    def create(self, cache_id: str, parent: str | None) -> None:
        d = self._dir(cache_id)
        os.mkdir(d, 0o710)
        self.own(d, traverse_only=True)
        os.mkdir(os.path.join(d, "diff"), 0o755)
        self.own(os.path.join(d, "diff"))
        link = "".join(secrets.choice(_LINK_CHARS) for _ in range(26))
        os.symlink(os.path.join("..", cache_id, "diff"), os.path.join(self.home, "l", link))
        atomic_write(os.path.join(d, "link"), link.encode(), 0o644)
        if parent is None:
            return
        os.mkdir(os.path.join(d, "work"), 0o700)
        self.own(os.path.join(d, "work"))
        with open(os.path.join(self._dir(parent), "link")) as fh:
            lowers = ["l/" + fh.read().strip()]
        with contextlib.suppress(FileNotFoundError), open(os.path.join(self._dir(parent), "lower")) as fh:
            lowers += [p for p in fh.read().strip().split(":") if p]
        atomic_write(os.path.join(d, "lower"), ":".join(lowers).encode(), 0o644)

    def lower_dirs(self, cache_id: str) -> list[str]:
        """Absolute ``diff`` dirs below this layer, nearest first (overlay's lowerdir order)."""
        try:
            with open(os.path.join(self._dir(cache_id), "lower")) as fh:
                lowers = [p for p in fh.read().strip().split(":") if p]
        except FileNotFoundError:
            return []
        return [os.path.realpath(os.path.join(self.home, p)) for p in lowers]

    def metadata(self, cache_id: str) -> dict[str, str]:
        d = self._dir(cache_id)
        data = {
            "MergedDir": os.path.join(d, "merged"),
            "UpperDir": os.path.join(d, "diff"),
            "WorkDir": os.path.join(d, "work"),
        }
        lowers = self.lower_dirs(cache_id)
        if lowers:
            data["LowerDir"] = ":".join(lowers)
        return data

    def _applied_size(self, cache_id: str, header_size: int) -> int:
        return dir_size(self.root(cache_id))

    def remove(self, cache_id: str) -> None:
        d = self._dir(cache_id)
        with contextlib.suppress(FileNotFoundError), open(os.path.join(d, "link")) as fh:
            link = fh.read().strip()
            if link and "/" not in link:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.home, "l", link))
        merged = os.path.join(d, "merged")
        if os.path.ismount(merged):
            with contextlib.suppress(OSError):
                _umount(merged)
        rmtree(d, ignore_errors=True)

    def get(self, cache_id: str) -> str:
        d = self._dir(cache_id)
        if not os.path.exists(os.path.join(d, "lower")):
            return os.path.join(d, "diff")
        merged = os.path.join(d, "merged")
        with self._lock:
            count = self._mounts.get(cache_id, 0)
            if count and os.path.ismount(merged):
                self._mounts[cache_id] = count + 1
                return merged
            with open(os.path.join(d, "lower")) as fh:
                lowers = [os.path.join(self.home, p) for p in fh.read().strip().split(":") if p]
            data = (
                ("index=off," if self.index_off else "")
                + "lowerdir="
                + ":".join(lowers)
                + f",upperdir={d}/diff,workdir={d}/work"
            )
            os.makedirs(merged, mode=0o700, exist_ok=True)
            self.own(merged)
            try:
                _mount("overlay", merged, "overlay", data)
            except OSError as exc:
                raise OSError(exc.errno, f"error creating overlay mount to {merged}: {exc}") from None
            self._mounts[cache_id] = 1
            return merged

    def put(self, cache_id: str) -> None:
        d = self._dir(cache_id)
        if not os.path.exists(os.path.join(d, "lower")):
            return
        merged = os.path.join(d, "merged")
        with self._lock:
            count = self._mounts.get(cache_id, 1) - 1
            if count > 0:
                self._mounts[cache_id] = count
                return
            self._mounts.pop(cache_id, None)
            if os.path.ismount(merged):
                with contextlib.suppress(OSError):
                    _umount(merged)
            with contextlib.suppress(OSError):
                os.rmdir(merged)


class VfsDriver(Driver):
    name = "vfs"
    whiteouts: Whiteouts = "apply"

    def __init__(self, home: str) -> None:
        super().__init__(home)
        os.makedirs(os.path.join(home, "dir"), mode=0o710, exist_ok=True)
        os.chmod(home, 0o710)

    def root(self, cache_id: str) -> str:
        return os.path.join(self.home, "dir", cache_id)

    def exists(self, cache_id: str) -> bool:
        return os.path.isdir(self.root(cache_id))

    def ids(self) -> list[str]:
        return os.listdir(os.path.join(self.home, "dir"))

    def create(self, cache_id: str, parent: str | None) -> None:
        d = self.root(cache_id)
        if parent is None:
            os.mkdir(d, 0o755)
            self.own(d)
            return
        os.mkdir(d, 0o755)
        copy_tree(self.root(parent), d)
        self.own(d)

    def remove(self, cache_id: str) -> None:
        rmtree(self.root(cache_id), ignore_errors=True)

    def get(self, cache_id: str) -> str:
        return self.root(cache_id)

    def put(self, cache_id: str) -> None:
        return None


DRIVERS: dict[str, type[Driver]] = {"overlay2": Overlay2Driver, "vfs": VfsDriver}
