"""AF_UNIX paths longer than the kernel's 108 bytes, reached through ``/proc/self/fd``.

Container state lives under ``<exec-root>/containers/<64-hex id>/``, which easily exceeds
the limit for a socket path; binding or connecting through an ``O_PATH`` descriptor of the
directory keeps the address short without moving the socket.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

__all__ = ["short_unix_path"]

_LIMIT = 100


@contextlib.contextmanager
def short_unix_path(path: str) -> Iterator[str]:
    """Yield an address for ``path`` that fits in sockaddr_un; valid inside the ``with`` block."""
    if len(os.fsencode(path)) < _LIMIT:
        yield path
        return
    dirfd = os.open(os.path.dirname(path) or ".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{dirfd}/{os.path.basename(path)}"
    finally:
        os.close(dirfd)
