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
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..errors import ApiError, invalid, not_found

if TYPE_CHECKING:
    from ..daemon import Daemon
    from .model import Container

__all__ = [
    "archive_path",
    "check_writable",
    "export_rootfs",
    "extract_to_dir",
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
    if daemon.images is None:
        raise ApiError(500, "no storage driver")
    layers = daemon.images.layers
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


def stat_path(c: Container, rootfs: str, path: str) -> tuple[str, os.stat_result, dict[str, Any]]:
    if not path:
        raise invalid("Path cannot be empty")
    try:
        host = resolve(rootfs, path, follow_last=False)
        st = os.lstat(host)
    except FileNotFoundError:
        raise not_found(f"Could not find the file {path} in container {c.name.removeprefix('/')}") from None
    except OSError as exc:  # a path past NAME_MAX/PATH_MAX: dockerd's 500, naming the container's path
        raise ApiError(500, f"lstat {_clean(path)}: {(exc.strerror or str(exc)).lower()}") from None
    except ValueError:  # a NUL in the path: the kernel's EINVAL in dockerd
        raise ApiError(500, f"lstat {_clean(path)}: invalid argument") from None
    if path.endswith("/") and not stat.S_ISDIR(
        os.stat(host).st_mode if stat.S_ISLNK(st.st_mode) else st.st_mode
    ):
        raise invalid(f"lstat {path}: not a directory")
    link = ""
    if stat.S_ISLNK(st.st_mode):
        link = os.readlink(host)
        if not os.path.isabs(link):
            link = os.path.normpath(os.path.join(os.path.dirname(_clean(path)), link))
    name = os.path.basename(_clean(path)) or "/"
    doc = {
        "name": name,
        "size": st.st_size,
        "mode": go_file_mode(st.st_mode),
        "mtime": _rfc3339(st.st_mtime),
        "linkTarget": link,
    }
    return host, st, doc


def _tar_to_file(source: str, arcname: str, out: Any) -> None:
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(source, arcname=arcname, recursive=True)


def archive_path(host: str, name: str, tmp_dir: str) -> str:
    """A tar of ``host`` (a file or a tree) named ``name`` in the archive, in a temporary file."""
    fd, tmp = tempfile.mkstemp(prefix="refd-cp-", dir=tmp_dir)
    try:
        with os.fdopen(fd, "wb") as out:
            _tar_to_file(host, name, out)
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


def extract_to_dir(c: Container, rootfs: str, path: str, archive: str, no_overwrite: bool) -> None:
    """Unpack the tar in the file ``archive`` into the directory ``path`` of ``c``'s mounted rootfs."""
    from ..images.tarsafe import ArchiveError, decompress, extract

    try:
        target = resolve(rootfs, path, follow_last=True)
    except ValueError:  # a NUL in the path: the kernel's EINVAL in dockerd
        raise ApiError(500, f"lstat {_clean(path)}: invalid argument") from None
    if not os.path.exists(target):
        raise not_found(f"Could not find the file {path} in container {c.name.removeprefix('/')}")
    if not os.path.isdir(target):
        raise invalid("extraction point is not a directory")
    check_writable(c, path)
    try:
        if no_overwrite and os.path.getsize(archive):  # an empty body is an empty archive: 200
            with open(archive, "rb") as fh:
                _check_no_overwrite(decompress(fh), target, path)
        with open(archive, "rb") as fh:
            extract(decompress(fh), target, whiteouts="keep")
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


def export_rootfs(rootfs: str, tmp_dir: str) -> str:
    """A tar of the whole mounted ``rootfs``, in a temporary file."""
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
                tar.add(full, arcname=os.path.relpath(full, rootfs), recursive=False)
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
