"""Backends: *where* a daemon boots (local process; container and VM backends to come)."""

from __future__ import annotations

__all__ = ["get_backend"]


def get_backend(name: str):  # type: ignore[no-untyped-def]
    """Return the backend instance for ``name`` or raise ConfigValueError."""
    from ..errors import ConfigValueError

    if name == "local":
        from .local import LocalBackend

        return LocalBackend()
    raise ConfigValueError(f"unknown backend {name!r}: choose 'local'")
