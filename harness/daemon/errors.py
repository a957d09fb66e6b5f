"""API errors with dockerd's status classes (errdefs) and message texts."""

from __future__ import annotations

__all__ = ["ApiError", "conflict", "invalid", "not_found", "not_implemented", "system"]


class ApiError(Exception):
    """An error answered as ``{"message": ...}`` with an HTTP status (errdefs mapping)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def not_found(message: str) -> ApiError:
    return ApiError(404, message)


def invalid(message: str) -> ApiError:
    return ApiError(400, message)


def conflict(message: str) -> ApiError:
    return ApiError(409, message)


def system(message: str) -> ApiError:
    return ApiError(500, message)


def not_implemented(message: str) -> ApiError:
    return ApiError(501, message)
