"""API errors with dockerd's status classes (errdefs) and message texts."""

from __future__ import annotations

from typing import Any

__all__ = [
    "ApiError",
    "conflict",
    "expect_object",
    "go_kind",
    "invalid",
    "not_found",
    "not_implemented",
    "system",
]


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


_GO_KINDS = {str: "string", bool: "bool", list: "array", dict: "object", int: "number", float: "number"}


def go_kind(value: Any) -> str:
    """The JSON kind Go's decoder names in ``cannot unmarshal <kind> into ...`` for a decoded value."""
    return _GO_KINDS.get(type(value), "value")


def expect_object(body: Any, go_type: str) -> dict[str, Any]:
    """A decoded request body that must be a JSON object (a Go struct): ``{}`` for none or ``null``,
    else dockerd's 400 ``invalid JSON: json: cannot unmarshal <kind> into Go value of type <go_type>``."""
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise invalid(f"invalid JSON: json: cannot unmarshal {go_kind(body)} into Go value of type {go_type}")
    return body
