"""A container's working directory, made at create time as dockerd's SetupWorkingDirectory makes it.

``docker create -w /new`` (or an image's WORKDIR missing from its files) gets the directory in the
container's read-write layer, owned by root, mode 0755 (only what is missing is created), so the
process can start there and ``docker diff`` / ``docker commit`` see it. A path that exists but is
not a directory is dockerd's ``Cannot mkdir: /x is not a directory``.
"""

from __future__ import annotations

import os
import posixpath
import stat
from typing import Any

from ..errors import ApiError
from ..scope import follow_in_scope

__all__ = ["setup_working_directory"]


def setup_working_directory(storage: Any, container_id: str, workdir: str) -> bool:
    """Create the missing parts of ``workdir`` in the container's root; True if anything was created."""
    if not workdir:
        return False
    workdir = posixpath.normpath(workdir)
    root = storage.mount_rootfs(container_id)
    try:
        path = follow_in_scope(root, workdir)
        missing: list[str] = []
        cur = path
        while cur != root and not os.path.lexists(cur):
            missing.append(cur)
            cur = os.path.dirname(cur)
        try:
            for directory in reversed(missing):
                os.mkdir(directory, 0o755)
                os.chown(directory, 0, 0)
                os.chmod(directory, 0o755)
        except (FileExistsError, NotADirectoryError):
            pass
        try:
            is_dir = stat.S_ISDIR(os.stat(path).st_mode)
        except OSError:
            is_dir = False
        if not is_dir:
            raise ApiError(500, f"Cannot mkdir: {workdir} is not a directory")
        return bool(missing)
    finally:
        storage.unmount_rootfs(container_id)
