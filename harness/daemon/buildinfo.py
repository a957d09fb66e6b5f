"""refd's build: the git commit of the tree it runs from, as dockerd names the commit it was built from.

Read from the files under ``.git`` (no ``git`` process, nothing at boot: only ``--version`` and ``/version``
ask). A tree that is not a git checkout (an installed wheel, a tarball) reports ``refd-<REFD_VERSION>``.
"""

from __future__ import annotations

import contextlib
import os
from functools import cache

from . import REFD_VERSION

__all__ = ["git_commit"]

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        return fh.read().strip()


def _git_dir(root: str) -> str:
    """``root/.git``, or the directory a worktree's ``.git`` file points at."""
    dot_git = os.path.join(root, ".git")
    if os.path.isdir(dot_git):
        return dot_git
    text = _read(dot_git)
    if not text.startswith("gitdir:"):
        raise OSError(f"{dot_git}: not a gitdir file")
    return os.path.join(root, text.removeprefix("gitdir:").strip())


def _resolve(git_dir: str, ref: str) -> str:
    """A ref's commit: loose under the git dir or its common dir, else in packed-refs."""
    common = git_dir
    with contextlib.suppress(OSError):
        common = os.path.join(git_dir, _read(os.path.join(git_dir, "commondir")))
    for base in (git_dir, common):
        try:
            return _read(os.path.join(base, ref))
        except OSError:
            continue
    for line in _read(os.path.join(common, "packed-refs")).splitlines():
        sha, _, name = line.partition(" ")
        if name == ref:
            return sha
    raise OSError(f"{ref}: not found")


@cache
def git_commit(root: str = _ROOT) -> str:
    """The commit (40 hex digits) ``root`` is checked out at, else ``refd-<version>``."""
    try:
        git_dir = _git_dir(root)
        head = _read(os.path.join(git_dir, "HEAD"))
        sha = _resolve(git_dir, head.removeprefix("ref:").strip()) if head.startswith("ref:") else head
    except (OSError, UnicodeDecodeError):
        return f"refd-{REFD_VERSION}"
    if len(sha) == 40 and all(c in "0123456789abcdef" for c in sha):
        return sha
    return f"refd-{REFD_VERSION}"
