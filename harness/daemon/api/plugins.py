"""Managed-plugin endpoints with no plugin installed: an empty list and dockerd 28's errors.

refd installs no managed plugins (``docker plugin install`` needs a plugin registry and a plugin rootfs), so
the list is empty and every named plugin is not found, in dockerd's order of checks: the query is parsed
before the plugin is looked up (``enable`` without a ``timeout`` is Go's strconv error, ``create`` without a
``name`` a reference error, a body of ``set``, ``pull`` or ``upgrade`` is read as JSON first). Pulling,
upgrading and reading privileges of a remote plugin are not implemented (501).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..errors import ApiError, not_found, not_implemented
from ..httpd import Request, Response
from ..query import parse_filters
from ..server import json_response, read_json

if TYPE_CHECKING:
    from ..daemon import Daemon
    from ..server import Router

__all__ = ["register"]

_FILTERS = {"enabled", "capability"}  # moby plugin/backend_linux.go acceptedPluginFilterTags
_NO_PLUGINS = "managed plugins are not implemented by refd (no plugin registry or plugin rootfs)"


def _missing(req: Request) -> ApiError:
    return not_found(f'plugin "{req.match["name"]}" not found')


async def list_plugins(req: Request, daemon: Daemon) -> Response:
    parse_filters(req.arg("filters"), _FILTERS)
    return json_response([])


async def missing(req: Request, daemon: Daemon) -> Response:
    raise _missing(req)


async def enable(req: Request, daemon: Daemon) -> Response:
    timeout = req.arg("timeout")
    if not re.fullmatch(r"[+-]?[0-9]+", timeout):
        raise ApiError(500, f'strconv.Atoi: parsing "{timeout}": invalid syntax')
    raise _missing(req)


async def create(req: Request, daemon: Daemon) -> Response:
    name = req.arg("name")
    if not name:
        raise ApiError(500, "failed to parse reference : invalid reference format")
    raise not_implemented(_NO_PLUGINS)


async def remote(req: Request, daemon: Daemon) -> Response:
    """``privileges`` and ``pull``: an empty ``remote`` is an invalid reference; any other is not served.
    ``pull`` reads its body (the privileges granted) as JSON before it parses ``remote``."""
    if req.method == "POST":
        await read_json(req)
    if not req.arg("remote"):
        raise ApiError(500, "invalid reference format")
    raise not_implemented(_NO_PLUGINS)


async def set_config(req: Request, daemon: Daemon) -> Response:
    """``set``: the body (a list of KEY=VALUE) is read as JSON before the plugin is looked up."""
    await read_json(req)
    raise _missing(req)


async def upgrade(req: Request, daemon: Daemon) -> Response:
    """``upgrade``: the body (privileges) as JSON, then ``remote`` as a reference, then the plugin."""
    await read_json(req)
    if not req.arg("remote"):
        raise ApiError(500, "invalid reference format")
    raise _missing(req)


def register(router: Router) -> None:
    router.add("GET", "/plugins", list_plugins)
    router.add("GET", "/plugins/privileges", remote)
    router.add("POST", "/plugins/pull", remote)
    router.add("POST", "/plugins/create", create)
    router.add("GET", "/plugins/{name:.*}/json", missing)
    router.add("DELETE", "/plugins/{name:.*}", missing)
    router.add("POST", "/plugins/{name:.*}/enable", enable)
    router.add("POST", "/plugins/{name:.*}/disable", missing)
    router.add("POST", "/plugins/{name:.*}/push", missing)
    router.add("POST", "/plugins/{name:.*}/set", set_config)
    router.add("POST", "/plugins/{name:.*}/upgrade", upgrade)
