"""``docker diff``: a container's filesystem changes against its image, as dockerd computes them.

dockerd's overlay2 and vfs drivers both use the naive diff (moby ``daemon/graphdriver/fsdiff.go``):
mount the container's read-write layer and its parent, the ``-init`` layer (the image plus the
mount points and placeholder files every container gets: ``/etc/hosts``, ``/etc/hostname``,
``/etc/resolv.conf``, ``/dev/console``, ``/proc``, ``/sys``, ``/.dockerenv`` ...), and compare
the two trees with go-archive's ``ChangesDirs``. Comparing merged views means whiteouts and opaque
directories need no special case (a deleted file is simply missing), and files only bind-mounted
into the running container (``/etc/hosts`` ...) never show.

Rules kept from go-archive (``changes.go``, ``changes_unix.go``, ``changes_linux.go``):

- a path only in the new tree is Add (1), with everything below it; only in the old tree Delete (2),
  without its children;
- a path in both is Modify (0) when mode, uid, gid or rdev differ, or for non-directories the
  size or the mtime (equal, or equal seconds with one side's nanoseconds zero), or the
  ``security.capability`` xattr differs;
- a directory with changes below it is Modify too, listed before them; ``/`` never is;
- where both trees hold the same inode on the same device the subtree is skipped.

Kinds are 0 modify, 1 add, 2 delete; no change at all is ``null``. dockerd lists siblings in Go map
order (random); refd lists them by name, new and changed entries before deleted ones.
"""

from __future__ import annotations

import asyncio
import os
import stat
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..daemon import Daemon
    from .model import Container

__all__ = [
    "CHANGE_ADD",
    "CHANGE_DELETE",
    "CHANGE_MODIFY",
    "changes_dirs",
    "container_changes",
    "container_sizes",
    "fill_sizes",
]

CHANGE_MODIFY, CHANGE_ADD, CHANGE_DELETE = 0, 1, 2


class _Info:
    """One path in one of the two trees (go-archive's FileInfo)."""

    __slots__ = ("added", "capability", "children", "name", "parent", "st")

    def __init__(self, name: str, parent: _Info | None, st: os.stat_result | None, capability: bytes | None):
        self.name = name
        self.parent = parent
        self.st = st
        self.capability = capability
        self.children: dict[str, _Info] = {}
        self.added = False

    def path(self) -> str:
        if self.parent is None:
            return "/"
        parent = self.parent.path()
        return ("" if parent == "/" else parent) + "/" + self.name

    def is_dir(self) -> bool:
        return self.parent is None or (self.st is not None and stat.S_ISDIR(self.st.st_mode))

    def lookup(self, path: str) -> _Info | None:
        node: _Info | None = self
        for part in (p for p in path.split("/") if p):
            node = node.children.get(part) if node is not None else None
        return node


def _capability(path: str) -> bytes | None:
    try:
        return os.getxattr(path, "security.capability", follow_symlinks=False)
    except OSError:
        return None


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _names(directory: str) -> list[tuple[bytes, str, int]]:
    """(sort key, name, inode) of a directory's entries, in byte order as Go sorts them."""
    with os.scandir(directory) as entries:
        found = [(os.fsencode(e.name), e.name, e.inode()) for e in entries]
    return sorted(found)


class _Walker:
    """Both trees at once, pruning subtrees that are the same inode on the same device."""

    def __init__(self, old_dir: str, new_dir: str) -> None:
        self.old_dir, self.new_dir = old_dir, new_dir
        self.old_root = _Info("/", None, None, None)
        self.new_root = _Info("/", None, None, None)

    def _register(self, path: str, st: os.stat_result | None, base: str, root: _Info) -> None:
        if st is None:
            return
        parent = root.lookup(os.path.dirname(path))
        if parent is None:
            raise OSError(f"walkchunk: Unexpectedly no parent for {path}")
        name = os.path.basename(path)
        parent.children[name] = _Info(name, parent, st, _capability(base + path))

    def walk(self, path: str, old: os.stat_result | None, new: os.stat_result | None) -> None:
        if path != "/":
            self._register(path, old, self.old_dir, self.old_root)
            self._register(path, new, self.new_dir, self.new_root)
        old_is_dir = old is not None and stat.S_ISDIR(old.st_mode)
        new_is_dir = new is not None and stat.S_ISDIR(new.st_mode)
        if not old_is_dir and not new_is_dir:
            return
        same_device = old is not None and new is not None and old.st_dev == new.st_dev
        rel = path.lstrip("/")
        old_names = _names(os.path.join(self.old_dir, rel)) if old_is_dir else []
        new_names = _names(os.path.join(self.new_dir, rel)) if new_is_dir else []
        names: list[str] = []
        i = j = 0
        while i < len(old_names) and j < len(new_names):
            a, b = old_names[i], new_names[j]
            if a[0] < b[0]:
                names.append(a[1])
                i += 1
            elif a[0] > b[0]:
                names.append(b[1])
                j += 1
            else:
                if a[2] != b[2] or not same_device:
                    names.append(a[1])
                i += 1
                j += 1
        names += [n[1] for n in old_names[i:]] + [n[1] for n in new_names[j:]]
        for name in names:
            child = ("" if path == "/" else path) + "/" + name
            self.walk(
                child,
                _lstat(self.old_dir + child) if old_is_dir else None,
                _lstat(self.new_dir + child) if new_is_dir else None,
            )


def _same_time(a: int, b: int) -> bool:
    """sameFsTime: equal, or the same second with one side's nanoseconds zero (tar rounds to seconds)."""
    return a == b or (a // 10**9 == b // 10**9 and (a % 10**9 == 0 or b % 10**9 == 0))


def _stat_different(old: os.stat_result, new: os.stat_result) -> bool:
    if (old.st_mode, old.st_uid, old.st_gid, old.st_rdev) != (
        new.st_mode,
        new.st_uid,
        new.st_gid,
        new.st_rdev,
    ):
        return True
    if stat.S_ISDIR(old.st_mode):
        return False  # a directory's size and mtime are no measure of change (moby#9874)
    return not _same_time(old.st_mtime_ns, new.st_mtime_ns) or old.st_size != new.st_size


def _add_changes(info: _Info, old: _Info | None, changes: list[dict[str, Any]]) -> None:
    at_entry = len(changes)
    if old is None:
        changes.append({"Path": info.path(), "Kind": CHANGE_ADD})
        info.added = True
    old_children = dict(old.children) if old is not None and info.is_dir() else {}
    for name in sorted(info.children, key=os.fsencode):
        child = info.children[name]
        old_child = old_children.pop(name, None)
        if old_child is not None:
            assert old_child.st is not None and child.st is not None
            if _stat_different(old_child.st, child.st) or old_child.capability != child.capability:
                changes.append({"Path": child.path(), "Kind": CHANGE_MODIFY})
                child.added = True
        _add_changes(child, old_child, changes)
    for name in sorted(old_children, key=os.fsencode):
        changes.append({"Path": old_children[name].path(), "Kind": CHANGE_DELETE})
    if len(changes) > at_entry and info.is_dir() and not info.added and info.parent is not None:
        changes.insert(at_entry, {"Path": info.path(), "Kind": CHANGE_MODIFY})


def changes_dirs(new_dir: str, old_dir: str) -> list[dict[str, Any]]:
    """go-archive ChangesDirs: what turns ``old_dir`` into ``new_dir``, as ``{"Path", "Kind"}`` dicts."""
    walker = _Walker(old_dir.rstrip("/") or "/", new_dir.rstrip("/") or "/")
    changes: list[dict[str, Any]] = []
    try:
        walker.walk("/", os.lstat(old_dir), os.lstat(new_dir))
        _add_changes(walker.new_root, walker.old_root, changes)
    except RecursionError:  # the walk recurses per level; a container can nest thousands deep
        raise OSError("changes: the directory tree is nested too deeply to compare") from None
    return changes


def container_changes(daemon: Daemon, c: Container) -> list[dict[str, Any]] | None:
    """The container's changes against its init layer (blocking: run it in a thread); None if none."""
    layers = daemon.images.layers
    rw = layers.rw_layer(c.id)
    if rw is None:
        raise OSError(f"RWLayer of container {c.name.removeprefix('/')} is unexpectedly nil")
    driver = layers.driver
    new_dir = driver.get(rw.mount_id)
    try:
        old_dir = driver.get(rw.init_id)
        try:
            changes = changes_dirs(new_dir, old_dir)
        finally:
            driver.put(rw.init_id)
    finally:
        driver.put(rw.mount_id)
    return changes or None


def changes_size(new_dir: str, changes: list[dict[str, Any]]) -> int:
    """go-archive ChangesSize: bytes of the added and modified non-directories, each inode once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for change in changes:
        if change["Kind"] == CHANGE_DELETE:
            continue
        st = _lstat(os.path.join(new_dir, change["Path"].lstrip("/")))
        if st is None or stat.S_ISDIR(st.st_mode):
            continue
        if st.st_nlink > 1:
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
        total += st.st_size
    return total


def container_sizes(daemon: Daemon, c: Container) -> tuple[int, int]:
    """(SizeRw, SizeRootFs) as dockerd computes them: the read-write layer's changes, plus the image."""
    storage = daemon.images
    layers = storage.layers
    rw = layers.rw_layer(c.id)
    if rw is None:
        return 0, 0
    driver = layers.driver
    new_dir = driver.get(rw.mount_id)
    try:
        old_dir = driver.get(rw.init_id)
        try:
            size_rw = changes_size(new_dir, changes_dirs(new_dir, old_dir))
        finally:
            driver.put(rw.init_id)
    finally:
        driver.put(rw.mount_id)
    image_size = 0
    try:
        image_size = int(storage.images.size(storage.resolve(c.image_id)))
    except Exception:  # the image may be gone (rmi -f): the rootfs is then the read-write layer
        image_size = 0
    return size_rw, size_rw + image_size


async def fill_sizes(daemon: Daemon, c: Container) -> None:
    """SizeRw and SizeRootFs on ``c`` (a walk of the layer trees, in a worker thread); 0 if unreadable."""
    try:
        c.size_rw, c.size_root_fs = await asyncio.to_thread(container_sizes, daemon, c)
    except OSError as exc:
        daemon.log.warning(f"failed to compute the size of container {c.id}: {exc}")
        c.size_rw, c.size_root_fs = 0, 0
