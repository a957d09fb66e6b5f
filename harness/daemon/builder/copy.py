"""COPY and ADD: sources resolved and hashed, then copied into a read-write layer as dockerd copies.

moby ``builder/dockerfile/copy.go``, ``copy_unix.go``, ``internals_linux.go`` and go-archive's
``CopyWithTar``/``CopyFileWithTar``:

* sources are paths in the context (or, with ``--from``, in another image or stage), with
  wildcards matched by Go's ``filepath.Match`` against every path of the source, or (ADD only)
  ``http(s)://`` URLs downloaded first; each gets a hash (``file:<tarsum>``, ``dir:<sha256>``, several
  sources ``multi:<sha256>``) that names it in the step's history and keys the cache;
* a directory's *contents* are copied (merged into the destination), a file lands at the
  destination, or inside it when the destination is an existing directory or ends in ``/``;
  relative destinations are relative to WORKDIR; several sources need a ``/``-terminated one;
* ADD unpacks a local tar archive (plain, gzip, bzip2, xz) into the destination, keeping the
  archive's owners; everything else is owned by root (or ``--chown``'s user and group, looked up
  in the image's ``/etc/passwd`` and ``/etc/group``), except ``--from`` copies, which keep theirs;
  modes and (whole-second) mtimes are kept; missing parent directories are created 0755.

Everything is written through ``tarsafe.extract`` into the mounted layer: symlinks in the image are
followed inside it, never out of it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import IO, Any

from ..images.tarsafe import ArchiveError, decompress, extract
from ..scope import follow_in_scope
from .context import LazySource, Source, contains_wildcards, go_match
from .stream import BuildError

__all__ = [
    "Copier",
    "CopyInfo",
    "CopyInstruction",
    "hash_string_slice",
    "normalize_dest",
    "parse_chown",
    "perform_copy",
]


@dataclass
class CopyInfo:
    source: Source
    path: str
    hash: str
    no_decompress: bool = False


@dataclass
class CopyInstruction:
    cmd_name: str
    dest: str
    infos: list[CopyInfo] = field(default_factory=list)
    chown: str = ""
    allow_decompression: bool = False
    preserve_ownership: bool = False

    def source_hash(self) -> str:
        """getSourceHashFromInfos: one source's hash, else ``multi:`` over all of them."""
        if len(self.infos) == 1:
            return self.infos[0].hash
        return hash_string_slice("multi", [i.hash for i in self.infos])


def hash_string_slice(prefix: str, items: list[str]) -> str:
    return prefix + ":" + hashlib.sha256(",".join(items).encode()).hexdigest()


def _not_exist(path: str) -> BuildError:
    return BuildError(f"stat {path}: file does not exist")


Downloader = Callable[[str], tuple[Source, str]]


class Copier:
    """Turns an instruction's source paths into CopyInfos (``copier`` in moby)."""

    def __init__(self, source: Source | None, download: Downloader | None, from_image: bool = False) -> None:
        self.source = source
        self.download = download
        self.from_image = from_image
        self.tmp_sources: list[Source] = []

    def instruction(self, cmd_name: str, sources: list[str], dest: str) -> CopyInstruction:
        inst = CopyInstruction(cmd_name=cmd_name, dest=dest)
        infos: list[CopyInfo] = []
        try:
            for orig in sources:
                infos += self._info_for(orig, dest)
            if not infos:
                raise BuildError("no source files were specified")
        except BuildError as exc:
            raise BuildError(f"{cmd_name} failed: {exc.message}") from None
        if len(infos) > 1 and not dest.endswith("/"):
            raise BuildError(
                f"When using {cmd_name} with more than one source file, the destination must be a "
                "directory and end with a /"
            )
        inst.infos = infos
        return inst

    def cleanup(self) -> None:
        for source in self.tmp_sources:
            source.close()
        self.tmp_sources = []

    def _info_for(self, orig: str, dest: str) -> list[CopyInfo]:
        if not orig.startswith(("http://", "https://")):
            return self._calc(orig, True)
        if self.download is None:
            raise BuildError("source can't be a URL for COPY")
        remote, name = self.download(orig)
        self.tmp_sources.append(remote)
        if not name:
            if dest.endswith("/"):
                raise BuildError(f"cannot determine filename for source {orig}")
            name = "__unnamed__"
        return [CopyInfo(remote, name, remote.hash(name), no_decompress=True)]

    def _calc(self, orig: str, wildcards: bool) -> list[CopyInfo]:
        source = self.source
        if source is None:
            raise BuildError("missing build context")
        orig = orig.removeprefix("/").removeprefix("./")
        if wildcards and contains_wildcards(orig):
            return self._wildcards(source, orig)
        full = source.full_path(orig)
        try:
            st = os.stat(full)
        except FileNotFoundError:
            if not self.from_image:
                raise BuildError(
                    f"file not found in build context or excluded by .dockerignore: stat {orig}: "
                    "file does not exist"
                ) from None
            raise _not_exist(orig) from None
        except NotADirectoryError:
            raise BuildError(f"stat {orig}: not a directory") from None
        if not stat.S_ISDIR(st.st_mode):
            return [CopyInfo(source, orig, "file:" + source.hash(orig))]
        subfiles: list[str] = []
        for path in _walk(full):
            rel = os.path.relpath(path, source.root)
            if rel == ".":
                continue
            subfiles.append(source.hash(rel))
        return [CopyInfo(source, orig, hash_string_slice("dir", sorted(subfiles)))]

    def _wildcards(self, source: Source, pattern: str) -> list[CopyInfo]:
        out: list[CopyInfo] = []
        for path in _walk(source.root):
            rel = os.path.relpath(path, source.root)
            if rel == ".":
                continue
            try:
                hit = go_match(pattern, rel)
            except ValueError:
                hit = False
            if hit:
                out += self._calc(rel, False)
        return out


def _walk(top: str) -> list[str]:
    """filepath.WalkDir order: the root, then each directory's entries sorted, depth first."""
    out = [top]
    try:
        st = os.lstat(top)
    except OSError:
        return out
    if not stat.S_ISDIR(st.st_mode):
        return out
    try:
        names = sorted(os.listdir(top), key=os.fsencode)
    except OSError:
        return out
    for name in names:
        out += _walk(os.path.join(top, name))
    return out


# -- destination and ownership ------------------------------------------------------------------------
def normalize_dest(workdir: str, requested: str) -> str:
    if requested.startswith("/"):
        return requested
    from ..images.tarsafe import go_clean

    dest = go_clean("/" + "/".join(p for p in (workdir, requested) if p))
    if requested.endswith("/"):
        dest += "/"
    return dest


def _lookup(spec: str, path: str, what: str) -> int:
    if re.fullmatch(r"[+-]?[0-9]+", spec):
        return int(spec)
    with open(path, "rb") as fh:
        for raw in fh.read().decode("utf-8", "replace").splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            fields = line.split(":")
            if fields[0] == spec and len(fields) > 2:
                try:
                    return int(fields[2])
                except ValueError:
                    continue
    raise BuildError(f"no such {what}: {spec}")


def parse_chown(chown: str, root: str) -> tuple[int, int]:
    """parseChownFlag: ``user[:group]`` by name or number in the layer's /etc/passwd and /etc/group."""
    parts = chown.split(":")
    if len(parts) > 2:
        raise BuildError("invalid chown string format: " + chown)
    user, group = (parts[0], parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    passwd = follow_in_scope(root, "etc/passwd")
    groups = follow_in_scope(root, "etc/group")
    try:
        uid = _lookup(user, passwd, "user")
    except BuildError as exc:
        raise BuildError(f"can't find uid for user {user}: {exc.message}") from None
    except OSError as exc:
        raise BuildError(f"can't find uid for user {user}: open {passwd}: {_strerror(exc)}") from None
    try:
        gid = _lookup(group, groups, "group")
    except BuildError as exc:
        raise BuildError(f"can't find gid for group {group}: {exc.message}") from None
    except OSError as exc:
        raise BuildError(f"can't find gid for group {group}: open {groups}: {_strerror(exc)}") from None
    return uid, gid


def _strerror(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()


# -- copying ------------------------------------------------------------------------------------------
def _tar_info(full: str, name: str, st: os.stat_result) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    mode = st.st_mode
    info.mode = stat.S_IMODE(mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.mtime = int(st.st_mtime)
    if stat.S_ISREG(mode):
        info.type, info.size = tarfile.REGTYPE, st.st_size
    elif stat.S_ISDIR(mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(mode):
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink(full)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif stat.S_ISFIFO(mode):
        info.type = tarfile.FIFOTYPE
    else:
        raise ValueError("socket")
    try:
        cap = os.getxattr(full, "security.capability", follow_symlinks=False)
        info.pax_headers = {"SCHILY.xattr.security.capability": cap.decode("utf-8", "surrogateescape")}
    except OSError:
        pass
    return info


def _tar_tree(src: str, out: IO[bytes]) -> None:
    """TarWithOptions(src): the directory's contents (not the directory itself), hardlinks kept."""
    inodes: dict[tuple[int, int], str] = {}
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for path in _walk(src)[1:]:
            rel = os.path.relpath(path, src)
            st = os.lstat(path)
            try:
                info = _tar_info(path, rel, st)
            except ValueError:
                continue
            key = (st.st_dev, st.st_ino)
            if info.type == tarfile.REGTYPE and st.st_nlink > 1:
                if key in inodes:
                    info.type, info.linkname, info.size = tarfile.LNKTYPE, inodes[key], 0
                    tar.addfile(info)
                    continue
                inodes[key] = rel
            if info.type == tarfile.REGTYPE:
                with open(path, "rb") as fh:
                    tar.addfile(info, fh)
            else:
                tar.addfile(info)


def _extract_file(
    data: IO[bytes], dest_dir: str, id_map: Callable[[int, int], tuple[int, int]] | None = None
) -> None:
    try:
        extract(data, dest_dir, whiteouts="keep", id_map=id_map)
    except ArchiveError as exc:
        raise BuildError(str(exc)) from None


def _mkdir_all(path: str, uid: int, gid: int, chown: bool) -> None:
    """MkdirAll(path, 0755), chowning only what it creates when ``chown``."""
    missing: list[str] = []
    cur = path
    while not os.path.lexists(cur):
        missing.append(cur)
        parent = os.path.dirname(cur)
        if parent == cur:
            break
        cur = parent
    for directory in reversed(missing):
        os.mkdir(directory, 0o755)
        if chown:
            os.lchown(directory, uid, gid)


def _is_dir(path: str) -> bool:
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except OSError:
        return False


def is_archive(path: str) -> bool:
    """archive.IsArchivePath: a (possibly compressed) tar whose first header reads."""
    try:
        with open(path, "rb") as raw:
            stream = decompress(raw)
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                return tar.next() is not None
    except Exception:
        return False


def _fix_permissions(src: str, dest: str, uid: int, gid: int, skip_root: bool) -> None:
    for path in _walk(src):
        if skip_root and path == src:
            continue
        rel = os.path.relpath(path, src)
        target = dest if rel == "." else os.path.join(dest, rel)
        try:
            os.lchown(target, uid, gid)
        except FileNotFoundError:
            continue


def perform_copy(
    root: str,
    dest_path: str,
    info: CopyInfo,
    identity: tuple[int, int] | None,
    decompress_archives: bool,
    id_map: Callable[[int, int], tuple[int, int]] | None = None,
) -> None:
    """performCopyForInfo into the mounted layer ``root`` (blocking); ``id_map`` (--userns-remap) shifts the
    owners written into the host's ranges, as moby's archiver's IDMapping."""
    src = follow_in_scope(info.source.root, info.path)
    dest = follow_in_scope(root, dest_path)
    try:
        st = os.stat(src)
    except OSError as exc:
        raise BuildError(f"source path not found: stat {src}: {_strerror(exc)}") from None
    uid, gid = identity if identity is not None else (0, 0)
    root_uid, root_gid = (0, 0)
    if id_map is not None:
        uid, gid = id_map(uid, gid)
        root_uid, root_gid = id_map(0, 0)
    if stat.S_ISDIR(st.st_mode):
        existed = _is_dir(dest)
        _mkdir_all(dest, root_uid, root_gid, True)
        with tempfile.TemporaryFile() as spool:
            _tar_tree(src, spool)
            spool.seek(0)
            # a stage's files (COPY --from, ownership kept) are the host's already: shifted once only
            _extract_file(spool, dest, id_map if identity is not None else None)
        if identity is not None:
            _fix_permissions(src, dest, uid, gid, skip_root=existed)
        return
    if decompress_archives and not info.no_decompress and is_archive(src):
        with open(src, "rb") as fh:
            try:
                extract(decompress(fh), dest, whiteouts="keep", id_map=id_map)
            except ArchiveError as exc:
                raise BuildError(str(exc)) from None
        return
    if _is_dir(dest) or dest_path.endswith("/"):
        dest = os.path.join(dest, os.path.basename(info.path.rstrip("/")))
    parent = os.path.dirname(dest)
    _mkdir_all(parent, uid, gid, identity is not None)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        file_info = _tar_info(src, os.path.basename(dest), st)
        if file_info.type == tarfile.REGTYPE:
            with open(src, "rb") as fh:
                tar.addfile(file_info, fh)
        else:
            tar.addfile(file_info)
    buf.seek(0)
    _extract_file(buf, parent, id_map if identity is not None else None)
    if identity is not None:
        os.lchown(dest, uid, gid)


def _copy_with_progress(src: Any, out: IO[bytes], size: int, raw: Callable[[bytes], None]) -> None:
    """progress.NewProgressReader(body, ..., "Downloading"): an update every 1% (at most 512 kB) and
    at the end (with a known length, Go's reader sees the last bytes and EOF together: one update)."""
    from ..distribution.progress import ProgressOutput

    progress = ProgressOutput(raw)
    every = min(512 * 1024, int(0.01 * size)) if size > 0 else 512 * 1024
    current = last = 0
    while True:
        chunk = src.read(1 << 16)
        if chunk:
            out.write(chunk)
            current += len(chunk)
        done = not chunk or current == size
        if current - last > every or done:
            if done or current != last:
                progress.update("", "Downloading", current, max(size, 0))
            last = current
        if done:
            return


# -- URLs (ADD) ------------------------------------------------------------------------------------------
def _go_url_error(url: str, exc: BaseException) -> BuildError:
    """Go's *url.Error texts for the failures an offline daemon meets."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, ConnectionRefusedError):
        text = f"dial tcp {address}: connect: connection refused"
    elif isinstance(reason, OSError) and getattr(reason, "errno", None) == 101:
        text = f"dial tcp {address}: connect: network is unreachable"
    elif isinstance(reason, TimeoutError):
        text = f"dial tcp {address}: i/o timeout"
    elif isinstance(reason, OSError) and reason.__class__.__name__ == "gaierror":
        text = f"dial tcp: lookup {host}: no such host"
    else:
        text = str(reason)
    return BuildError(f'Get "{url}": {text}')


def download(
    url: str, tmp_root: str, stdout: Callable[[str], None], raw: Callable[[bytes], None]
) -> tuple[Source, str]:
    """downloadSource: the URL's body in a temporary directory (mode 0600), named after the URL's path or
    Content-Disposition; mtime from Last-Modified (else the zero time); ``Downloading`` progress lines
    on the raw output, then an empty line on stdout."""
    try:
        resp = urllib.request.urlopen(url, timeout=60)
    except urllib.error.HTTPError as exc:
        body = exc.read().strip().decode("utf-8", "replace")
        raise BuildError(f"failed to GET {url} with status {exc.code} {exc.reason}: {body}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise _go_url_error(url, exc) from None
    path = urllib.parse.urlsplit(url).path
    name = ""
    if path and not path.endswith("/"):
        name = os.path.basename(path)
    if not name:
        disposition = resp.headers.get("Content-Disposition") or ""
        for part in disposition.split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "filename":
                value = value.strip('"')
                if value and not value.endswith("/"):
                    name = os.path.basename(value)
    directory = tempfile.mkdtemp(prefix="docker-remote", dir=tmp_root)
    target = os.path.join(directory, name or "__unnamed__")
    try:
        fd = os.open(target, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with resp, os.fdopen(fd, "wb") as out:
            _copy_with_progress(resp, out, int(resp.headers.get("Content-Length") or -1), raw)
        stdout("\n")
        mtime = 0  # Go's zero time, which system.Chtimes turns into the epoch
        last = resp.headers.get("Last-Modified")
        if last:
            with contextlib.suppress(TypeError, ValueError):
                mtime = int(parsedate_to_datetime(last).timestamp())
        os.utime(target, (mtime, mtime))
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise

    class _Remote(LazySource):
        def close(self) -> None:
            shutil.rmtree(self.root, ignore_errors=True)

    return _Remote(directory), name
