"""Engine API handlers, one module per resource; ``register`` wires them into a Router."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..daemon import Daemon
    from ..httpd import Request, Response
    from ..server import Handler, Router

__all__ = ["LAZY_ROUTES", "register"]

#: Modules costly to import whose routes are declared here: each is imported on the first request
#: to one of its routes, not at boot (the builder's import was ~26 ms, a fifth of refd's boot).
#: tests/daemon/test_refd_server.py checks these against the module's own ``register``.
LAZY_ROUTES: dict[str, list[tuple[str, str, str]]] = {
    "build": [("POST", "/build", "build"), ("POST", "/build/prune", "prune")],
    "commit": [("POST", "/commit", "commit")],  # it applies --change through the builder
}


def _lazy(module: str, name: str) -> Handler:
    async def handler(req: Request, daemon: Daemon) -> Response:
        func = getattr(importlib.import_module(f"{__name__}.{module}"), name)
        return await func(req, daemon)  # type: ignore[no-any-return]

    return handler


def register(router: Router) -> None:
    """``/_ping``, ``/version`` and ``/info`` at once; the other routes on the first request those do not
    answer (importing their modules was 12 % of the instructions refd's boot ran before its first /_ping)."""
    from . import system

    system.register(router)
    router.defer(_register_the_rest)


def _register_the_rest(router: Router) -> None:
    from . import (
        archive,
        attach_ws,
        container_changes,
        container_stats,
        container_update,
        containers,
        distribution,
        events,
        exec,
        grpc,
        images,
        networks,
        plugins,
        session,
        swarm,
        system_df,
        volumes,
    )

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
    for module, routes in LAZY_ROUTES.items():
        for method, pattern, name in routes:
            router.add(method, pattern, _lazy(module, name))
    distribution.register(router)
    networks.register(router)
    swarm.register(router)
    plugins.register(router)
    session.register(router)
    grpc.register(router)
