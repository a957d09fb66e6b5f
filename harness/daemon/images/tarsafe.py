"""Hostile-input-safe tar extraction: nothing is ever written outside the target directory.

dockerd 28 (Debian's 28.5.2 build) refuses ``..`` entry names and climbing hardlinks and
resolves everything else inside the layer directory; refd has no chroot either, so it checks
every entry and refuses an archive that tries to escape, with dockerd 28's texts where it has one:

* a ``..`` escape (``../../x``): ``invalid entry name "../../x"`` (dockerd 28's text)
* a hardlink climbing out: ``invalid hardlink target "../../etc/passwd"`` (dockerd 28's text)
* a hardlink to nothing: ``linkat nope hl: no such file or directory`` (dockerd 28's text)
* an absolute entry name (``/etc/passwd``): ``invalid entry name "/etc/passwd": absolute path``
  (dockerd writes it relative to the layer root; refd refuses it)
* an entry whose path goes through a symlink the same archive created (``evil -> /etc`` then
  ``evil/passwd``): ``invalid archive entry "evil/passwd": path goes through symlink "evil" -> "/etc"``
  (dockerd 28 refuses a relative escape with ``statat evil: path escapes from parent`` and
  confines an absolute one inside the layer)

Symlinks themselves may point anywhere (images are full of absolute links); they are never
followed by the extractor. Symlinks that already existed in the target (a vfs layer is a copy of
its parent) are followed *within* the target, as a chroot would. Regular files are opened with
``O_NOFOLLOW | O_EXCL`` after removing whatever was at the path, so a racing or pre-existing link
cannot redirect a write either. Device nodes are created only where dockerd creates them: as
root outside a user namespace (elsewhere they are skipped silently, like dockerd in a userns).

AUFS whiteouts (``.wh.<name>``, ``.wh..wh..opq``) are handled per ``whiteouts``:

* ``"keep"``: written as ordinary empty files (the outer ``docker save`` archive);
* ``"overlay"``: ``.wh.<name>`` becomes a 0:0 character device ``<name>`` and ``.wh..wh..opq``
  sets ``trusted.overlay.opaque=y`` on its directory (overlay2 ``diff`` dirs);
* ``"apply"``: the whiteout deletes ``<name>`` (and an opaque marker deletes everything in the
  directory this archive did not create), for vfs layers that are a copy of their parent.

``extract(fileobj, dest, whiteouts=..., on_member=...)`` reads an *uncompressed* stream
sequentially (``decompress`` first for layers) and returns the sum of the header sizes, which is
what dockerd reports as the size of an applied layer.
"""

from __future__ import annotations

import bz2
import contextlib
import errno
import gzip
import json
import lzma
import os
import stat
import tarfile
from collections.abc import Callable
from typing import IO, Literal, cast

from ..fsutil import rmtree
from ..scope import follow_in_scope
from .holes import copy_with_holes

__all__ = [
    "WHITEOUT_META_PREFIX",
    "WHITEOUT_OPAQUE",
    "WHITEOUT_PREFIX",
    "ArchiveError",
    "UnsafeArchiveError",
    "decompress",
    "extract",
    "go_clean",
    "resolve_in_scope",
    "running_in_userns",
]

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
_MAX_SYMLINK_HOPS = 40
Whiteouts = Literal["keep", "overlay", "apply"]


class ArchiveError(Exception):
    """The archive is unreadable or could not be applied."""


class UnsafeArchiveError(ArchiveError):
    """The archive tried to write outside the extraction directory."""


def go_clean(path: str) -> str:
    """Go's ``path.Clean``: collapse ``//``, ``.`` and ``..`` lexically; ``""`` -> ``"."``."""
    if path == "":
        return "."
    rooted = path.startswith("/")
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(part)
    cleaned = "/".join(out)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


def running_in_userns() -> bool:
    """True inside a user namespace (dockerd's userns.RunningInUserNS)."""
    try:
        with open("/proc/self/uid_map") as fh:
            fields = fh.read().split()
    except OSError:
        return False
    return fields[:3] != ["0", "0", "4294967295"]


def _zstd_open(fileobj: IO[bytes]) -> IO[bytes]:
    try:
        from compression import zstd  # type: ignore[import-not-found]  # Python 3.14+
    except ImportError:
        raise ArchiveError("unsupported compression format zstd (needs Python 3.14)") from None
    return zstd.ZstdFile(fileobj)  # type: ignore[no-any-return]


def decompress(fileobj: IO[bytes]) -> IO[bytes]:
    """dockerd's DecompressStream: gzip, bzip2, xz (and zstd where Python has it) or plain."""
    peek = _peek(fileobj, 6)
    if peek.startswith(b"\x1f\x8b\x08"):
        return cast(IO[bytes], gzip.GzipFile(fileobj=fileobj, mode="rb"))
    if peek.startswith(b"BZh"):
        return cast(IO[bytes], bz2.BZ2File(fileobj, "rb"))
    if peek.startswith(b"\xfd7zXZ\x00"):
        return cast(IO[bytes], lzma.LZMAFile(fileobj, "rb"))
    if peek.startswith(b"\x28\xb5\x2f\xfd"):
        return _zstd_open(fileobj)
    return fileobj


def _peek(fileobj: IO[bytes], n: int) -> bytes:
    peek = getattr(fileobj, "peek", None)
    if callable(peek):
        data: bytes = peek(n)[:n]
        return data
    pos = fileobj.tell()
    data = fileobj.read(n)
    fileobj.seek(pos)
    return data


class _Extractor:
    def __init__(
        self,
        dest: str,
        whiteouts: Whiteouts,
        allow_devices: bool,
        owner: tuple[int, int] | None = None,
        id_map: Callable[[int, int], tuple[int, int]] | None = None,
    ) -> None:
        self.dest = os.path.abspath(dest)
        self.whiteouts = whiteouts
        self.allow_devices = allow_devices
        self.owner = owner
        self.id_map = id_map
        self.created_links: set[tuple[int, int]] = set()
        self.unpacked: set[str] = set()
        self.dirs: list[tuple[str, tarfile.TarInfo]] = []

    # -- path resolution -----------------------------------------------------------------------
    def _resolve_dir(self, name: str, rel: str, create: bool) -> str:
        """The real directory ``rel`` (relative, cleaned) inside dest, creating missing parts.

        Symlinks created by this archive are refused; older ones are followed within dest.
        """
        parts = [p for p in rel.split("/") if p not in ("", ".")]
        resolved: list[str] = []
        hops = 0
        while parts:
            comp = parts.pop(0)
            if comp == "..":
                if resolved:
                    resolved.pop()
                continue
            candidate = os.path.join(self.dest, *resolved, comp)
            try:
                st = os.lstat(candidate)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(candidate, 0o755)
                resolved.append(comp)
                continue
            if stat.S_ISLNK(st.st_mode):
                target = os.readlink(candidate)
                if (st.st_dev, st.st_ino) in self.created_links:
                    link = "/".join([*resolved, comp])
                    raise UnsafeArchiveError(
                        f"invalid archive entry {_q(name)}: path goes through symlink "
                        f"{_q(link)} -> {_q(target)}"
                    )
                hops += 1
                if hops > _MAX_SYMLINK_HOPS:
                    raise ArchiveError(f"invalid archive entry {_q(name)}: too many levels of symbolic links")
                if target.startswith("/"):
                    resolved = []
                parts[:0] = [p for p in target.split("/") if p not in ("", ".")]
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise ArchiveError(
                    f"invalid archive entry {_q(name)}: {_q('/'.join([*resolved, comp]))} is not a directory"
                )
            resolved.append(comp)
        return os.path.join(self.dest, *resolved)

    def _checked_name(self, raw: str) -> str:
        name = go_clean(raw)
        if name.startswith("/"):
            raise UnsafeArchiveError(f"invalid entry name {_q(raw)}: absolute path")
        if name == ".." or name.startswith("../"):
            raise UnsafeArchiveError(f"invalid entry name {_q(raw)}")
        return name

    # -- entries -------------------------------------------------------------------------------
    def entry(self, tar: tarfile.TarFile, info: tarfile.TarInfo) -> None:
        name = self._checked_name(info.name)
        if name == ".":
            return
        parent_rel, _, base = name.rpartition("/")
        if name.startswith(WHITEOUT_META_PREFIX) and name != WHITEOUT_OPAQUE:
            return  # AUFS metadata (.wh..wh.plnk, .wh..wh.aufs): never extracted
        parent = self._resolve_dir(name, parent_rel, create=True)
        path = os.path.join(parent, base)
        if self.whiteouts != "keep" and base.startswith(WHITEOUT_PREFIX):
            self._whiteout(name, parent, base, info)
            return
        existing = _lstat(path)
        if existing is not None:
            if stat.S_ISDIR(existing.st_mode) and info.isdir():
                pass  # merge: only the metadata is applied
            else:
                _remove(path, existing)
        self._create(tar, info, name, path)
        self.unpacked.add(os.path.relpath(path, self.dest))

    def _ids(self, info: tarfile.TarInfo) -> tuple[int, int]:
        """An entry's owner on disk: its own ids, shifted into the remapped range under --userns-remap."""
        if self.id_map is None:
            return info.uid, info.gid
        try:
            return self.id_map(info.uid, info.gid)
        except ValueError:
            raise ArchiveError(
                f"{_q(info.name)}: container ID {info.uid}:{info.gid} cannot be mapped to a host ID"
            ) from None

    def _whiteout(self, name: str, parent: str, base: str, info: tarfile.TarInfo) -> None:
        if base != WHITEOUT_OPAQUE and base[len(WHITEOUT_PREFIX) :] in ("", ".", ".."):
            raise ArchiveError(f"invalid archive entry {_q(name)}: a whiteout must name a file")
        if self.whiteouts == "overlay":
            if base == WHITEOUT_OPAQUE:
                os.setxattr(parent, "trusted.overlay.opaque", b"y", follow_symlinks=False)
                return
            target = os.path.join(parent, base[len(WHITEOUT_PREFIX) :])
            existing = _lstat(target)
            if existing is not None:
                _remove(target, existing)
            os.mknod(target, stat.S_IFCHR | 0o000, os.makedev(0, 0))
            os.chown(target, *self._ids(info), follow_symlinks=False)
            return
        if base == WHITEOUT_OPAQUE:
            self._remove_not_unpacked(parent)
            return
        target = os.path.join(parent, base[len(WHITEOUT_PREFIX) :])
        existing = _lstat(target)
        if existing is not None:
            _remove(target, existing)

    def _remove_not_unpacked(self, top: str) -> None:
        for entry in list(os.scandir(top)):
            rel = os.path.relpath(entry.path, self.dest)
            if rel in self.unpacked:
                if entry.is_dir(follow_symlinks=False):
                    self._remove_not_unpacked(entry.path)
                continue
            st = _lstat(entry.path)
            if st is not None:
                _remove(entry.path, st)

    def _create(self, tar: tarfile.TarFile, info: tarfile.TarInfo, name: str, path: str) -> None:
        mode = info.mode & 0o7777
        if info.isdir():
            if _lstat(path) is None:
                os.mkdir(path, 0o700)
            self.dirs.append((path, info))
        elif info.isreg():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as out:
                src = tar.extractfile(info)
                if src is not None and info.sparse is not None:
                    _copy_sparse(src, out, info)
                elif src is not None:
                    copy_with_holes(src, out)
        elif info.issym():
            os.symlink(info.linkname, path)
            st = os.lstat(path)
            self.created_links.add((st.st_dev, st.st_ino))
        elif info.islnk():
            self._hardlink(info, path)
        elif info.ischr() or info.isblk():
            if not self.allow_devices:
                return
            kind = stat.S_IFCHR if info.ischr() else stat.S_IFBLK
            os.mknod(path, kind | 0o600, os.makedev(info.devmajor, info.devminor))
        elif info.isfifo():
            os.mkfifo(path, 0o600)
        else:
            raise ArchiveError(
                f"unhandled tar header type {_q(info.type.decode('latin-1'))} for {_q(info.name)}"
            )
        uid, gid = self.owner if self.owner is not None else self._ids(info)
        os.chown(path, uid, gid, follow_symlinks=False)
        is_link = stat.S_ISLNK(os.lstat(path).st_mode)  # a symlink, or a hardlink to one: never follow it
        for key, value in _xattrs(info).items():
            try:
                os.setxattr(path, key, value, follow_symlinks=False)
            except OSError as exc:
                if exc.errno not in (95, 1):  # ENOTSUP, EPERM: ignored as dockerd does
                    raise
        if not is_link:
            os.chmod(path, mode)
        if not info.isdir() and not info.islnk():
            mtime_ns = int(info.mtime * 1_000_000_000)
            os.utime(path, ns=(mtime_ns, mtime_ns), follow_symlinks=False)

    def _hardlink(self, info: tarfile.TarInfo, path: str) -> None:
        raw = info.linkname
        target = go_clean(raw).lstrip("/")  # absolute targets name a file of this layer, as in a chroot
        if target == ".." or target.startswith("../"):
            raise UnsafeArchiveError(f"invalid hardlink target {_q(raw)}")
        missing = f"linkat {target} {go_clean(info.name)}: no such file or directory"
        parent_rel, _, base = target.rpartition("/")
        try:
            parent = self._resolve_dir(info.name, parent_rel, create=False)
        except (FileNotFoundError, NotADirectoryError):
            raise ArchiveError(missing) from None
        source = os.path.join(parent, base)
        st = _lstat(source)
        if st is None:
            raise ArchiveError(missing)
        if stat.S_ISDIR(st.st_mode):
            raise ArchiveError(f"linkat {target} {go_clean(info.name)}: operation not permitted")
        os.link(source, path, follow_symlinks=False)

    def finish(self) -> None:
        for path, info in reversed(self.dirs):
            mtime_ns = int(info.mtime * 1_000_000_000)
            with contextlib.suppress(FileNotFoundError):
                os.utime(path, ns=(mtime_ns, mtime_ns), follow_symlinks=False)


def _copy_sparse(src: IO[bytes], out: IO[bytes], info: tarfile.TarInfo) -> None:
    """Only the data regions of a GNU/PAX sparse member, holes left as holes (Go's tar reader seeks
    over them the same way when it writes to a file): a 1 TiB sparse entry costs its data, not 1 TiB."""
    raw = getattr(src, "raw", src)  # the member's own reader: seeking it only moves its position
    regions = cast("list[tuple[int, int]]", info.sparse or [])  # typeshed says list[int]
    for offset, length in sorted(regions):
        raw.seek(offset)
        out.seek(offset)
        while length > 0:
            chunk = raw.read(min(length, 1 << 20))
            if not chunk:
                raise ArchiveError(f"invalid tar archive: unexpected EOF in {_q(info.name)}")
            out.write(chunk)
            length -= len(chunk)
    out.truncate(info.size)


def _q(text: str) -> str:
    """Go's %q for the texts that appear in archive errors."""
    return json.dumps(text, ensure_ascii=False)


def _xattrs(info: tarfile.TarInfo) -> dict[str, bytes]:
    out = {}
    for key, value in (info.pax_headers or {}).items():
        if key.startswith("SCHILY.xattr."):
            out[key[len("SCHILY.xattr.") :]] = value.encode("utf-8", "surrogateescape")
    return out


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _remove(path: str, st: os.stat_result) -> None:
    """Remove without following symlinks (rmtree is fd-based and never leaves the tree)."""
    if stat.S_ISDIR(st.st_mode):
        rmtree(path)
    else:
        os.unlink(path)


def extract(
    fileobj: IO[bytes],
    dest: str,
    *,
    whiteouts: Whiteouts = "keep",
    allow_devices: bool | None = None,
    on_member: Callable[[tarfile.TarInfo], None] | None = None,
    owner: tuple[int, int] | None = None,
    id_map: Callable[[int, int], tuple[int, int]] | None = None,
) -> int:
    """Extract an uncompressed tar stream into ``dest`` (created if missing); returns the header size sum.

    ``on_member`` sees each member before its contents are read (layers record tar-split data).
    ``owner`` (uid, gid) replaces every entry's own (go-archive's ChownOpts: ``docker cp -a``); ``id_map``
    shifts each entry's own ids (go-archive's IDMap: layers under ``--userns-remap``).
    Raises UnsafeArchiveError for escapes and ArchiveError for unreadable archives.
    """
    if allow_devices is None:
        allow_devices = os.geteuid() == 0 and not running_in_userns()
    os.makedirs(dest, exist_ok=True)
    extractor = _Extractor(dest, whiteouts, allow_devices, owner, id_map)
    size = 0
    try:
        with tarfile.open(fileobj=fileobj, mode="r|", errorlevel=2) as tar:
            for info in tar:
                size += info.size
                if on_member is not None:
                    on_member(info)
                try:
                    extractor.entry(tar, info)
                except OSError as exc:
                    if exc.errno not in (errno.ENAMETOOLONG, errno.ELOOP, errno.ENOSPC, errno.EDQUOT):
                        raise
                    # as Go words it, without the data-root's path
                    raise ArchiveError(f"{_q(info.name)}: {os.strerror(exc.errno).lower()}") from None
    except tarfile.ReadError as exc:
        text = str(exc)
        if text == "empty file":
            return 0  # an empty stream is an empty layer, as Go's reader sees io.EOF at once
        raise ArchiveError(f"invalid tar archive: {text}") from None
    except tarfile.TarError as exc:
        raise ArchiveError(f"invalid tar archive: {exc}") from None
    extractor.finish()
    return size


def resolve_in_scope(root: str, rel: str) -> str:
    """``rel`` under ``root`` with every symlink followed *within* root (chroot semantics)."""
    try:
        return follow_in_scope(root, rel, _MAX_SYMLINK_HOPS)
    except OSError:
        raise ArchiveError(f"too many levels of symbolic links resolving {_q(rel)}") from None
