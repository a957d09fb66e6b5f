"""Engine API handlers, one module per resource; ``register`` wires them into a Router."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..server import Router

__all__ = ["register"]


def register(router: Router) -> None:
    from . import (
        archive,
        attach_ws,
        build,
        commit,
        container_changes,
        container_stats,
        container_update,
        containers,
        distribution,
        events,
        exec,
        images,
        networks,
        system,
        system_df,
        volumes,
    )

    system.register(router)
    system_df.register(router)
    events.register(router)
    containers.register(router)
    attach_ws.register(router)
    container_stats.register(router)
    container_changes.register(router)
    container_update.register(router)
    archive.register(router)
    volumes.register(router)
    exec.register(router)
    images.register(router)
    build.register(router)
    commit.register(router)
    distribution.register(router)
    networks.register(router)
