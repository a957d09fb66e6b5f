"""Remote build contexts (``remote=``), as moby ``builder/remotecontext/detect.go`` and ``remote.go``.

An ``http(s)://`` URL is downloaded (``Downloading context`` progress in the stream): a text/plain
body is the Dockerfile itself (no context), a tar (plain or compressed, or an octet-stream that
sniffs as one) is the context. Errors before the download (refused connections, HTTP error statuses,
an unacceptable Content-Type) carry dockerd's texts. Git URLs (``github.com/...``, ``git@...``,
``git://``, ``*.git``) need a git checkout, which refd does not do.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from typing import IO, Any

from .stream import BuildError

__all__ = ["RemoteBody", "is_git_url", "is_url", "open_remote"]

_MIME = re.compile(
    r"(?:application/(?:(?:x\-)?tar|octet\-stream|((?:x\-)?(?:gzip|bzip2?|xz)))|(?:text/plain))"
)
_GIT_SUFFIX = re.compile(r"\.git(?:#.+)?$")


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def is_git_url(text: str) -> bool:
    if is_url(text) and _GIT_SUFFIX.search(text):
        return True
    return text.startswith(("git://", "github.com/", "git@"))


def _sniff(data: bytes) -> str:
    """http.DetectContentType for what a context can be: archives, text, else octet-stream."""
    if data.startswith(b"\x1f\x8b\x08"):
        return "application/x-gzip"
    if len(data) >= 262 and data[257:262] == b"ustar":
        return "application/octet-stream"  # Go does not recognise tar: it stays octet-stream
    if data.startswith(b"BZh"):
        return "application/octet-stream"
    if all(b >= 0x20 or b in b"\t\n\r\f\x1b" for b in data[:512]):
        return "text/plain"
    return "application/octet-stream"


class RemoteBody:
    """The downloaded body: ``kind`` is 'dockerfile' (text/plain) or 'archive'; ``stream`` reads it."""

    def __init__(self, kind: str, stream: IO[bytes], length: int) -> None:
        self.kind = kind
        self.stream = stream
        self.length = length


def open_remote(url: str) -> RemoteBody:
    """downloadRemote: GET the URL (errors as dockerd words them) and inspect its type."""
    from .copy import _go_url_error

    try:
        resp: Any = urllib.request.urlopen(url, timeout=60)  # http(s) only: checked by the caller
    except urllib.error.HTTPError as exc:
        body = exc.read().strip().decode("utf-8", "replace")
        status = exc.code if exc.code in (400, 401, 403, 404) else 500
        failed = f"failed to GET {url} with status {exc.code} {exc.reason}: {body}"
        raise BuildError(f"error downloading remote context {url}: {failed}", status) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise BuildError(
            f"error downloading remote context {url}: {_go_url_error(url, exc).message}"
        ) from None
    ctype = resp.headers.get("Content-Type") or ""
    length = int(resp.headers.get("Content-Length") or -1)
    preamble = resp.read(min(length, 100) if 0 < length <= 100 else 100)
    if not preamble:
        raise BuildError(f"error detecting content type for remote {url}: empty response")
    detected = ctype
    if ctype in ("", "application/octet-stream"):
        detected = _sniff(preamble)
    found = _MIME.search(detected)
    if found is None:
        raise BuildError(f'error detecting content type for remote {url}: unsupported Content-Type "{ctype}"')

    class _Joined:
        def __init__(self) -> None:
            self.head = preamble

        def read(self, n: int = -1) -> bytes:
            if self.head:
                if n < 0:
                    data, self.head = self.head + resp.read(), b""
                    return bytes(data)
                data, self.head = self.head[:n], self.head[n:]
                return bytes(data)
            return bytes(resp.read(n))

    kind = "dockerfile" if found.group(0) == "text/plain" else "archive"
    return RemoteBody(kind, _Joined(), length)  # type: ignore[arg-type]
