"""Backends: *where* a daemon boots (a local process, a container on a Docker API engine, or a qemu VM)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import Backend

__all__ = ["get_backend"]


def get_backend(name: str) -> Backend:
    """Return the backend instance for ``name`` or raise ConfigValueError."""
    from ..errors import ConfigValueError

    if name == "local":
        from .local import LocalBackend

        return LocalBackend()
    if name == "container":
        from .container import ContainerBackend

        return ContainerBackend()
    if name == "vm":
        from .vm import VMBackend

        return VMBackend()
    raise ConfigValueError(f"unknown backend {name!r}: choose 'local', 'container' or 'vm'")
