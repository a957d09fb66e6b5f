"""Tree walks and removals that survive any depth a container can create; crash-safe record files.

A container process (or an archive) can nest directories thousands deep. ``shutil.rmtree`` and
``os.walk`` recurse once per level in Python 3.11 and raise RecursionError past ~1000 levels, which
left ``docker rm`` answering 500 with the layer half removed. These are iterative: ``rmtree`` walks
with directory descriptors (no path grows past PATH_MAX, never follows a symlink, checks each parent
it climbs back to), ``walk`` keeps its own stack.

``atomic_write`` replaces a record file whole (temporary file, fsync, rename), so a kill -9 leaves
the old content or the new, never half; ``read_record`` reads one back (``None`` when missing).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Iterator

__all__ = ["atomic_write", "fsync_path", "read_record", "rmtree", "walk"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def atomic_write(path: str, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` (mode set exactly, not through the umask), durably."""
    import tempfile  # here, not at boot (random, hashlib behind it)

    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-" + os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_record(path: str) -> str | None:
    """A small record file's text without surrounding white space; ``None`` when it does not exist."""
    try:
        with open(path) as fh:
            return fh.read().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None


def fsync_path(path: str) -> None:
    """fsync a record written earlier by temp file + rename; one replaced or removed since is skipped
    (a later record, or none, is what counts then)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def rmtree(path: str, ignore_errors: bool = False) -> None:
    """``shutil.rmtree`` for trees of any depth (the shallow common case still uses it)."""
    try:
        shutil.rmtree(path, ignore_errors=ignore_errors)
        return
    except RecursionError:
        pass
    try:
        _rmtree_deep(path)
    except OSError:
        if not ignore_errors:
            raise


def _rmtree_deep(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path)
        return
    fd = os.open(path, _DIR_FLAGS)
    names: list[str] = []  # from path down to the directory fd is open on
    idents: list[tuple[int, int]] = [(st.st_dev, st.st_ino)]
    try:
        while True:
            sub = None
            with os.scandir(fd) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        sub = entry.name
                        break
                    os.unlink(entry.name, dir_fd=fd)
            if sub is not None:
                child = os.open(sub, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = child
                cst = os.fstat(fd)
                names.append(sub)
                idents.append((cst.st_dev, cst.st_ino))
                continue
            if not names:
                break
            parent = os.open("..", _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = parent
            idents.pop()
            pst = os.fstat(fd)
            if (pst.st_dev, pst.st_ino) != idents[-1]:
                raise OSError(f"{path}: a directory moved while it was being removed")
            os.rmdir(names.pop(), dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(path)


def walk(top: str) -> Iterator[tuple[str, list[str], list[str]]]:
    """``os.walk(top)`` (top-down, symlinks not followed, unreadable directories skipped) without recursion.

    As with ``os.walk``, the caller may prune ``dirnames`` in place.
    """
    stack = [top]
    while stack:
        current = stack.pop()
        dirnames: list[str] = []
        filenames: list[str] = []
        try:
            with os.scandir(current) as entries:
                for entry in entries:
                    try:
                        is_dir = entry.is_dir(follow_symlinks=False)
                    except OSError:
                        is_dir = False
                    (dirnames if is_dir else filenames).append(entry.name)
        except OSError:
            continue
        yield current, dirnames, filenames
        stack.extend(os.path.join(current, d) for d in reversed(dirnames))
