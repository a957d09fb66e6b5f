"""Layer diffs as tar streams, written the way go-archive writes them for ``layer.TarStream``.

* ``overlay_diff(upper, out)``: overlay2's native diff, the ``diff`` (upper) directory as it is:
  a 0:0 character device is a whiteout and becomes ``.wh.<name>``, a directory marked
  ``trusted.overlay.opaque=y`` gets a ``.wh..wh..opq`` entry after it;
* ``changes_diff(new, old, out)``: the naive diff (vfs): go-archive ``ExportChanges`` of
  ``ChangesDirs(new, old)``, deleted paths as ``.wh.<name>`` entries.

Entries come in lexical order, hardlinks within the layer as links to the first name, the
``security.capability`` xattr as a PAX record, mtimes in whole seconds. The stream ends with two
zero blocks and no record padding, as Go's ``tar.Writer`` ends it: a diff with no entries is exactly
1024 zero bytes, whose digest is ``EMPTY_LAYER`` (dockerd's ``DigestSHA256EmptyTar``), the mark
of an empty layer (a history entry with ``empty_layer`` and no new diff ID).
"""

from __future__ import annotations

import os
import stat
import tarfile
import time
from collections.abc import Callable
from typing import IO

from .holes import file_chunks

__all__ = ["EMPTY_LAYER", "TarWriter", "changes_diff", "overlay_diff"]

EMPTY_LAYER = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
_BLOCK = 512


class TarWriter:
    """A minimal Go-style tar writer: headers, contents padded to 512 bytes, two zero blocks at close."""

    def __init__(self, out: IO[bytes], unmap: Callable[[int, int], tuple[int, int]] | None = None) -> None:
        self.out = out
        self.inodes: dict[tuple[int, int], str] = {}
        self.unmap = unmap  # --userns-remap: host ids back to the container's, as go-archive's IDMap

    def add(self, info: tarfile.TarInfo, data: IO[bytes] | None = None) -> None:
        if self.unmap is not None:
            info.uid, info.gid = self.unmap(info.uid, info.gid)
        self.out.write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
        if data is not None and info.size:
            self._contents(info, data)
            pad = -info.size % _BLOCK
            if pad:
                self.out.write(b"\0" * pad)

    def _contents(self, info: tarfile.TarInfo, data: IO[bytes]) -> None:
        try:
            fd = data.fileno() if data.tell() == 0 else -1
        except (OSError, ValueError):  # not a file (io.UnsupportedOperation is an OSError)
            fd = -1
        if fd >= 0:  # a file's holes are zeros that need no reading
            try:
                for chunk in file_chunks(fd, info.size):
                    self.out.write(chunk)
            except OSError as exc:
                raise OSError(f"{info.name}: file changed size while it was archived ({exc})") from None
            return
        left = info.size
        while left:
            chunk = data.read(min(left, 1 << 20))
            if not chunk:
                raise OSError(f"{info.name}: file changed size while it was archived")
            self.out.write(chunk)
            left -= len(chunk)

    def add_path(self, full: str, name: str, st: os.stat_result | None = None) -> None:
        """addTarFile: one filesystem object (never recursive); sockets are skipped."""
        st = st or os.lstat(full)
        mode = st.st_mode
        if stat.S_ISSOCK(mode):
            return
        info = tarfile.TarInfo(name + "/" if stat.S_ISDIR(mode) else name)
        info.mode = stat.S_IMODE(mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.mtime = int(st.st_mtime)
        info.uname = info.gname = ""
        key = (st.st_dev, st.st_ino)
        if not stat.S_ISDIR(mode) and st.st_nlink > 1 and key in self.inodes:
            info.type = tarfile.LNKTYPE
            info.linkname = self.inodes[key]
            self.add(info)
            return
        if stat.S_ISREG(mode):
            info.type = tarfile.REGTYPE
            info.size = st.st_size
        elif stat.S_ISDIR(mode):
            info.type = tarfile.DIRTYPE
        elif stat.S_ISLNK(mode):
            info.type = tarfile.SYMTYPE
            info.linkname = os.readlink(full)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif stat.S_ISFIFO(mode):
            info.type = tarfile.FIFOTYPE
        try:
            cap = os.getxattr(full, "security.capability", follow_symlinks=False)
        except OSError:
            cap = None
        if cap:
            info.pax_headers = {"SCHILY.xattr.security.capability": cap.decode("utf-8", "surrogateescape")}
        if not stat.S_ISDIR(mode) and st.st_nlink > 1:
            self.inodes[key] = name
        if info.type == tarfile.REGTYPE:
            with open(full, "rb") as fh:
                self.add(info, fh)
        else:
            self.add(info)

    def whiteout(self, name: str, uid: int = 0, gid: int = 0) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.uid, info.gid = tarfile.REGTYPE, 0o600, uid, gid
        info.mtime = int(time.time())
        info.uname = info.gname = ""
        self.add(info)

    def close(self) -> None:
        self.out.write(b"\0" * (2 * _BLOCK))


def _sorted_entries(path: str) -> list[os.DirEntry[str]]:
    with os.scandir(path) as it:
        return sorted(it, key=lambda e: os.fsencode(e.name))


def overlay_diff(
    upper: str, out: IO[bytes], unmap: Callable[[int, int], tuple[int, int]] | None = None
) -> None:
    """overlay2's native diff of ``upper`` (whiteout devices and opaque markers converted)."""
    writer = TarWriter(out, unmap)

    def walk(directory: str, prefix: str) -> None:
        for entry in _sorted_entries(directory):
            rel = prefix + entry.name
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                parent, _, base = rel.rpartition("/")
                writer.whiteout((parent + "/" if parent else "") + ".wh." + base, st.st_uid, st.st_gid)
                continue
            writer.add_path(entry.path, rel, st)
            if stat.S_ISDIR(st.st_mode):
                try:
                    opaque = os.getxattr(entry.path, "trusted.overlay.opaque", follow_symlinks=False)
                except OSError:
                    opaque = b""
                if opaque == b"y":
                    writer.whiteout(rel + "/.wh..wh..opq", st.st_uid, st.st_gid)
                walk(entry.path, rel + "/")

    walk(upper, "")
    writer.close()


def changes_diff(
    new_root: str, old_root: str, out: IO[bytes], unmap: Callable[[int, int], tuple[int, int]] | None = None
) -> None:
    """ExportChanges(ChangesDirs(new, old)): the naive diff, for drivers that keep full copies."""
    from ..containers.changes import CHANGE_DELETE, changes_dirs

    writer = TarWriter(out, unmap)
    for change in sorted(changes_dirs(new_root, old_root), key=lambda c: os.fsencode(c["Path"])):
        rel = change["Path"].lstrip("/")
        if change["Kind"] == CHANGE_DELETE:
            parent, _, base = rel.rpartition("/")
            writer.whiteout((parent + "/" if parent else "") + ".wh." + base)
            continue
        full = os.path.join(new_root, rel)
        try:
            writer.add_path(full, rel)
        except FileNotFoundError:
            continue
    writer.close()
