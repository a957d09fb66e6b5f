"""``docker cp`` and ``docker export`` on a container's root filesystem (moby ``daemon/archive.go``):
stat a path, tar it, extract a tar into a directory with refd's hostile-tar checks, tar the rootfs.

Paths resolve inside the rootfs the way the container sees them (symlinks never leave it). The
rootfs is mounted for the duration of the operation (a stopped container's too). Archives are written
to a temporary file under ``tmp_dir`` that the caller streams and removes.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..errors import ApiError, invalid, not_found

if TYPE_CHECKING:
    from ..daemon import Daemon
    from .model import Container

__all__ = [
    "archive_path",
    "archive_target",
    "check_writable",
    "export_rootfs",
    "extract_to_dir",
    "go_base",
    "go_file_mode",
    "mounted_rootfs",
    "stat_path",
]

_MODE_DIR, _MODE_SYMLINK, _MODE_DEVICE, _MODE_PIPE, _MODE_SOCKET = 1 << 31, 1 << 27, 1 << 26, 1 << 25, 1 << 24
_MODE_SETUID, _MODE_SETGID, _MODE_CHARDEV, _MODE_STICKY = 1 << 23, 1 << 22, 1 << 21, 1 << 20


def go_file_mode(st_mode: int) -> int:
    """Go's os.FileMode bits for a stat mode (what dockerd's PathStat.mode carries)."""
    mode = stat.S_IMODE(st_mode) & 0o777
    if stat.S_ISDIR(st_mode):
        mode |= _MODE_DIR
    elif stat.S_ISLNK(st_mode):
        mode |= _MODE_SYMLINK
    elif stat.S_ISFIFO(st_mode):
        mode |= _MODE_PIPE
    elif stat.S_ISSOCK(st_mode):
        mode |= _MODE_SOCKET
    elif stat.S_ISCHR(st_mode):
        mode |= _MODE_DEVICE | _MODE_CHARDEV
    elif stat.S_ISBLK(st_mode):
        mode |= _MODE_DEVICE
    if st_mode & stat.S_ISUID:
        mode |= _MODE_SETUID
    if st_mode & stat.S_ISGID:
        mode |= _MODE_SETGID
    if st_mode & stat.S_ISVTX:
        mode |= _MODE_STICKY
    return mode


def _clean(path: str) -> str:
    """An absolute, normalised container path (posix normpath keeps a leading '//', Go's Clean does not)."""
    return "/" + os.path.normpath("/" + path).lstrip("/")


def _rfc3339(ts: float) -> str:
    secs = int(ts)
    frac = f"{round((ts - secs) * 1e9) % 1_000_000_000:09d}".rstrip("0")
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + (f".{frac}" if frac else "") + "Z"


@contextlib.contextmanager
def mounted_rootfs(daemon: Daemon, c: Container) -> Iterator[str]:
    service = getattr(daemon, "images", None)
    if service is None:
        raise ApiError(500, "no storage driver")
    layers = service.layers
    path = layers.mount_rootfs(c.id)
    try:
        yield path
    finally:
        layers.unmount_rootfs(c.id)


def resolve(rootfs: str, path: str, follow_last: bool) -> str:
    """The host path of ``path`` inside ``rootfs``; the last element is resolved only if asked."""
    from ..runtime.users import secure_join

    clean = _clean(path)
    if clean == "/":
        return rootfs
    parent, name = os.path.split(clean)
    base = secure_join(rootfs, parent)
    full = os.path.join(base, name)
    return secure_join(rootfs, clean) if follow_last else full


def go_base(path: str) -> str:
    """Go's ``filepath.Base``: the last element, trailing slashes dropped (``"/"`` for the root, ``"."``
    for nothing)."""
    if not path:
        return "."
    stripped = path.rstrip("/")
    return stripped.rsplit("/", 1)[-1] if stripped else "/"


def _names_current_dir(path: str) -> bool:
    return go_base(path) == "."


def archive_target(path: str) -> str:
    """go-archive PreserveTrailingDotOrSeparator(Join("/", path), path): what dockerd stats and tars for a
    ``GET /archive?path=``, keeping the ``/.`` or ``/`` that says "the directory's contents"."""
    from ..images.tarsafe import go_clean

    cleaned = go_clean("/" + path)
    if not _names_current_dir(cleaned) and _names_current_dir(path):
        cleaned = (cleaned if cleaned.endswith("/") else cleaned + "/") + "."
    if not cleaned.endswith("/") and path.endswith("/"):
        cleaned += "/"
    return cleaned


def _follows_last(path: str) -> bool:
    """A trailing ``/`` or ``/.`` makes the kernel's lstat follow a final symlink."""
    return path.endswith("/") or _names_current_dir(path)


def stat_path(
    c: Container, rootfs: str, path: str, ref: str = "", asked: str = ""
) -> tuple[str, os.stat_result, dict[str, Any]]:
    """Lstat ``path`` in the container as dockerd's containerFSView.Stat does; dockerd's not-found text
    repeats how the request named the container (``ref``) and the path (``asked``, default ``path``)."""
    if not path:
        raise invalid("Path cannot be empty")
    try:
        host = resolve(rootfs, path, follow_last=_follows_last(path))
        st = os.lstat(host)
    except FileNotFoundError:
        who = ref or c.name.removeprefix("/")
        raise not_found(f"Could not find the file {asked or path} in container {who}") from None
    except OSError as exc:  # a path past NAME_MAX/PATH_MAX: dockerd's 500, naming the container's path
        raise ApiError(500, f"lstat {_clean(path)}: {(exc.strerror or str(exc)).lower()}") from None
    except ValueError:  # a NUL in the path: the kernel's EINVAL in dockerd
        raise ApiError(500, f"lstat {_clean(path)}: invalid argument") from None
    if path.endswith("/") and not stat.S_ISDIR(st.st_mode):
        raise invalid(f"lstat {path}: not a directory")
    link = ""
    if stat.S_ISLNK(st.st_mode):
        link = os.readlink(host)
        if not os.path.isabs(link):
            link = os.path.normpath(os.path.join(os.path.dirname(_clean(path)), link))
    doc = {
        "name": go_base(path),
        "size": st.st_size,
        "mode": go_file_mode(st.st_mode),
        "mtime": _rfc3339(st.st_mtime),
        "linkTarget": link,
    }
    return host, st, doc


def _walk(top: str) -> Iterator[tuple[str, str]]:
    """(host path, path relative to ``top``) of ``top``'s tree in Go's WalkDir order (lexical, depth
    first), without recursion: a tree nested 1,000 deep must not raise RecursionError."""
    stack = [(top, "")]
    while stack:
        full, rel = stack.pop()
        yield full, rel
        if os.path.isdir(full) and not os.path.islink(full):
            try:
                children = sorted(os.listdir(full), reverse=True)
            except OSError:
                continue  # go-archive logs an unreadable directory and goes on
            stack.extend((os.path.join(full, e), f"{rel}/{e}" if rel else e) for e in children)


def _tar_tree(host: str, top_name: str, out: Any) -> None:
    """go-archive TarWithOptions with RebaseNames {".": top_name}: the directory is ``<top_name>/`` and its
    entries ``<top_name>/<rel>`` (``"/"`` and ``/<rel>`` for the root: the rebase to ``/`` is empty)."""
    prefix = "" if top_name == "/" else top_name
    first_name: dict[str, str] = {}  # tarfile's own name of a file -> its name in the archive (hard links)
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for full, rel in _walk(host):
            name = f"{prefix}/{rel}" if rel else prefix
            try:
                info = tar.gettarinfo(full, arcname=name)
            except OSError:
                continue
            first_name.setdefault(info.name, name)
            info.name = name + "/" if info.isdir() and not name.endswith("/") else name
            if info.islnk():
                info.linkname = first_name.get(info.linkname, info.linkname)
            if info.isreg():
                with open(full, "rb") as fh:
                    tar.addfile(info, fh)
            else:
                tar.addfile(info)


def archive_path(host: str, name: str, tmp_dir: str, tree: bool = False) -> str:
    """A tar in a temporary file: of the file ``host`` named ``name``, or with ``tree`` of the directory
    ``host`` rebased to ``name`` (dockerd's TarResourceRebaseOpts)."""
    fd, tmp = tempfile.mkstemp(prefix="refd-cp-", dir=tmp_dir)
    try:
        with os.fdopen(fd, "wb") as out:
            if tree:
                _tar_tree(host, name, out)
            else:
                with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
                    tar.add(host, arcname=name, recursive=False)
    except BaseException:
        _remove(tmp)
        raise
    return tmp


def _go_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check_no_overwrite(stream: Any, target: str, dest: str) -> None:
    """go-archive's NoOverwriteDirNonDir: a directory may not become a non-directory, nor the reverse.

    Checked before anything is written, so a refused archive changes nothing (dockerd stops midway).
    """
    with tarfile.open(fileobj=stream, mode="r|*") as tar:
        for member in tar:
            name = member.name.lstrip("/")
            while name.startswith("./"):
                name = name[2:]
            if not name or name == ".":
                continue
            existing = os.path.join(target, name)
            if not os.path.lexists(existing):
                continue
            is_dir = os.path.isdir(existing) and not os.path.islink(existing)
            entry, where = _go_quote(member.name), _go_quote(dest)
            if is_dir and not member.isdir():
                raise ApiError(500, f"cannot overwrite directory {entry} with non-directory {where}")
            if not is_dir and member.isdir():
                raise ApiError(500, f"cannot overwrite non-directory {entry} with directory {where}")


def extract_to_dir(
    c: Container,
    rootfs: str,
    path: str,
    archive: str,
    no_overwrite: bool,
    copy_uid_gid: bool = False,
    ref: str = "",
    id_map: Callable[[int, int], tuple[int, int]] | None = None,
) -> None:
    """Unpack the tar in the file ``archive`` into the directory ``path`` of ``c``'s mounted rootfs
    (``copy_uid_gid``: owned by the container's ``User``, as moby's tarCopyOptions does; ``ref``: how the
    request named the container; ``id_map``: --userns-remap's shift of the entries' own owners, which
    ``copy_uid_gid`` replaces unshifted, as dockerd 28.5 does)."""
    from ..images.tarsafe import ArchiveError, decompress, extract
    from ..runtime.users import UserLookupError, copy_owner

    try:
        target = resolve(rootfs, path, follow_last=True)
    except ValueError:  # a NUL in the path: the kernel's EINVAL in dockerd
        raise ApiError(500, f"lstat {_clean(path)}: invalid argument") from None
    if not os.path.exists(target):
        raise not_found(f"Could not find the file {path} in container {ref or c.name.removeprefix('/')}")
    if not os.path.isdir(target):
        raise invalid("extraction point is not a directory")
    check_writable(c, path)
    owner = None
    user = str(c.config.get("User") or "")
    if copy_uid_gid and user:
        try:
            owner = copy_owner(rootfs, user)
        except UserLookupError as exc:
            raise invalid(str(exc)) from None
    try:
        if no_overwrite and os.path.getsize(archive):  # an empty body is an empty archive: 200
            with open(archive, "rb") as fh:
                _check_no_overwrite(decompress(fh), target, path)
        with open(archive, "rb") as fh:
            extract(decompress(fh), target, whiteouts="keep", owner=owner, id_map=None if owner else id_map)
    except ArchiveError as exc:
        raise invalid(str(exc)) from None


def check_writable(c: Container, path: str) -> None:
    """moby checkIfPathIsInAVolume, then the read-only rootfs: where an extraction may not write."""
    absolute = _clean(path)
    for point in c.mounts:
        dest = _clean(str(point.get("Destination") or ""))
        if absolute == dest or absolute.startswith(dest.rstrip("/") + "/"):
            if point.get("RW", True):
                return
            raise invalid("mounted volume is marked read-only")
    if c.host_config.get("ReadonlyRootfs"):
        raise invalid("container rootfs is marked read-only")


def export_rootfs(
    rootfs: str, tmp_dir: str, unmap: Callable[[int, int], tuple[int, int]] | None = None
) -> str:
    """A tar of the whole mounted ``rootfs``, in a temporary file (``unmap``: --userns-remap's host ids back
    to the container's, as moby's export passes its IDMap)."""

    def owners(info: tarfile.TarInfo) -> tarfile.TarInfo:
        if unmap is not None:
            info.uid, info.gid = unmap(info.uid, info.gid)
        return info

    fd, tmp = tempfile.mkstemp(prefix="refd-export-", dir=tmp_dir)
    try:
        with (
            os.fdopen(fd, "wb") as out,
            tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            # tarfile.add(recursive=True)'s order (sorted, depth first) without its recursion: a
            # container nesting directories 1,000 deep made export a 500 RecursionError
            stack = [os.path.join(rootfs, e) for e in sorted(os.listdir(rootfs), reverse=True)]
            while stack:
                full = stack.pop()
                tar.add(full, arcname=os.path.relpath(full, rootfs), recursive=False, filter=owners)
                if os.path.isdir(full) and not os.path.islink(full):
                    children = sorted(os.listdir(full), reverse=True)
                    stack.extend(os.path.join(full, e) for e in children)
    except BaseException:
        _remove(tmp)
        raise
    return tmp


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
