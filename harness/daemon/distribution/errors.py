"""Registry errors with the texts and API statuses dockerd gives them.

``ErrcodeError`` is docker/distribution's ``errcode.Error`` (``"manifest unknown: manifest unknown"``);
``NotFound`` is moby's ``notFoundError`` wrapping one; ``TransportError`` is Go's ``*url.Error``
(``Get "http://h/v2/": dial tcp h: connect: connection refused``). ``status`` is what dockerd's
``httpstatus.FromError`` answers for the error.
"""

from __future__ import annotations

__all__ = [
    "DistributionError",
    "DoNotRetry",
    "ErrcodeError",
    "NoBasicAuthCredentials",
    "NotFound",
    "TransportError",
    "UnexpectedStatus",
    "errcode_status",
]

#: errcode descriptors: code -> HTTP status (docker/distribution registry/api/errcode and api/v2)
_STATUS = {
    "UNKNOWN": 500,
    "UNSUPPORTED": 405,
    "UNAUTHORIZED": 401,
    "DENIED": 403,
    "UNAVAILABLE": 503,
    "TOOMANYREQUESTS": 429,
    "DIGEST_INVALID": 400,
    "SIZE_INVALID": 400,
    "NAME_INVALID": 400,
    "TAG_INVALID": 400,
    "NAME_UNKNOWN": 404,
    "MANIFEST_UNKNOWN": 404,
    "MANIFEST_INVALID": 400,
    "MANIFEST_UNVERIFIED": 400,
    "MANIFEST_BLOB_UNKNOWN": 400,
    "BLOB_UNKNOWN": 404,
    "BLOB_UPLOAD_UNKNOWN": 404,
    "BLOB_UPLOAD_INVALID": 404,
    "PAGINATION_NUMBER_INVALID": 400,
}
#: default messages of the descriptors (used when a challenge gives no description)
MESSAGES = {
    "UNAUTHORIZED": "authentication required",
    "DENIED": "requested access to the resource is denied",
    "UNKNOWN": "unknown error",
    "TOOMANYREQUESTS": "too many requests",
}


def errcode_status(code: str) -> int:
    return _STATUS.get(code, 500)


class DistributionError(Exception):
    """Any error of a pull, push or login; ``str()`` is dockerd's text, ``status`` its API status."""

    status = 500

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status

    def __str__(self) -> str:
        return self.message


class ErrcodeError(DistributionError):
    """One ``errcode.Error`` from a registry's JSON error body (or made from a bare status)."""

    def __init__(self, code: str, message: str = "", detail: object = None) -> None:
        self.code = code.upper()
        text = self.code.lower().replace("_", " ")
        super().__init__(f"{text}: {message}", errcode_status(self.code))
        self.detail = detail
        self.reason = message


class NotFound(DistributionError):
    """moby's notFoundError: manifest/repository not found, pull access denied (404)."""

    status = 404

    def __init__(self, message: str, cause: ErrcodeError) -> None:
        super().__init__(message)
        self.cause = cause


class TransportError(DistributionError):
    """Go's ``*url.Error``: ``Op "URL": cause``."""

    def __init__(self, method: str, url: str, cause: str, inner: Exception | None = None) -> None:
        # httpstatus.FromError unwraps a *url.Error: a registry errcode inside keeps its status
        status = inner.status if isinstance(inner, DistributionError) else None
        super().__init__(f'{method[:1].upper()}{method[1:].lower()} "{url}": {cause}', status)
        self.cause = cause
        self.inner = inner


class NoBasicAuthCredentials(DistributionError):
    def __init__(self) -> None:
        super().__init__("no basic auth credentials")


class UnexpectedStatus(DistributionError):
    """client.UnexpectedHTTPStatusError."""

    def __init__(self, status_line: str) -> None:
        super().__init__(f"received unexpected HTTP status: {status_line}")


class DoNotRetry(DistributionError):
    """xfer.DoNotRetry: the wrapped error ends the download or upload at once."""

    def __init__(self, err: DistributionError) -> None:
        super().__init__(err.message, err.status)
        self.err = err
