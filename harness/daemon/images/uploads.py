"""Uploads and downloads spooled to ``<data-root>/tmp`` before the image side reads them.

A request body (``docker load``, ``docker import -``, a build context) may be larger than memory, so
it is written to ``refd-upload-*`` first; ``docker import URL`` downloads the same way. The image
service removes what a crash leaves there (``service.TMP_PREFIXES``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Awaitable, Callable

from ..errors import ApiError

__all__ = ["UPLOAD_PREFIX", "download", "spool"]

UPLOAD_PREFIX = "refd-upload-"
_CHUNK = 1 << 20


async def spool(read_chunk: Callable[[int], Awaitable[bytes]], directory: str) -> str:
    """Everything ``read_chunk`` gives (until b"") in a new temporary file; its path."""
    import tempfile  # here, not at boot

    fd, path = tempfile.mkstemp(prefix=UPLOAD_PREFIX, dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := await read_chunk(_CHUNK):
                out.write(chunk)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    return path


def download(url: str, directory: str) -> str:
    """``url`` (http or https) in a new temporary file; ApiError 500 with Go's texts when it fails."""
    import tempfile
    import urllib.error  # only for docker import URL: not paid at boot
    import urllib.request

    fd, path = tempfile.mkstemp(prefix=UPLOAD_PREFIX, dir=directory)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
            while chunk := resp.read(_CHUNK):
                out.write(chunk)
    except urllib.error.HTTPError as exc:
        exc.close()  # the error response holds the connection
        os.unlink(path)
        raise ApiError(500, f"failed to GET {url} with status {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        os.unlink(path)
        raise ApiError(500, f'Get "{url}": {getattr(exc, "reason", exc)}') from None
    return path
