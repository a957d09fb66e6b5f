"""Managed-plugin endpoints with no plugin installed: an empty list and dockerd 28's errors.

refd installs no managed plugins (``docker plugin install`` needs a plugin registry and a plugin rootfs), so
the list is empty and every named plugin is not found, in dockerd's order of checks: the query is parsed
before the plugin is looked up (``enable`` without a ``timeout`` is Go's strconv error, ``create`` without a
``name`` a reference error, a body of ``set``, ``pull`` or ``upgrade`` is read as JSON first, then references
are parsed: distribution's errors, which dockerd answers with 500s). Pulling, upgrading and reading
privileges of a remote plugin are not implemented (501).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..errors import ApiError, not_found, not_implemented
from ..httpd import Request, Response
from ..images.reference import Named, ReferenceError, parse_normalized_named, tag_name_only
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


def _reference(text: str, prefix: str = "") -> Named:
    """distribution's ParseNormalizedNamed; its errors are plain ones in dockerd, so 500s."""
    try:
        return parse_normalized_named(text)
    except ReferenceError as exc:
        raise ApiError(500, f"{prefix}{exc}") from None


def _local_name(name: str) -> str:
    """moby's getName for a given name: a reference without a digest; a bare name gets ``:latest``."""
    local = _reference(name)
    if local.is_canonical:
        raise ApiError(500, "cannot use digest in plugin tag")
    return tag_name_only(local).familiar_string() if local.is_name_only else name


async def create(req: Request, daemon: Daemon) -> Response:
    """``create``: the name must be a reference without a digest (CreateFromContext) before anything else."""
    name = req.arg("name")
    if _reference(name, f"failed to parse reference {name}: ").is_canonical:
        raise ApiError(500, "canonical references are not permitted")
    raise not_implemented(_NO_PLUGINS)


async def remote(req: Request, daemon: Daemon) -> Response:
    """``privileges`` and ``pull``: ``remote`` must be a reference (parseRemoteRef), and ``pull``'s ``name``
    one without a digest (getName); any other is not served. ``pull`` reads its body (the privileges
    granted) as JSON before it parses ``remote``."""
    if req.method == "POST":
        await read_json(req)
    _reference(req.arg("remote"))
    if req.method == "POST" and req.arg("name"):
        _local_name(req.arg("name"))
    raise not_implemented(_NO_PLUGINS)


async def set_config(req: Request, daemon: Daemon) -> Response:
    """``set``: the body (a list of KEY=VALUE) is read as JSON before the plugin is looked up."""
    await read_json(req)
    raise _missing(req)


async def upgrade(req: Request, daemon: Daemon) -> Response:
    """``upgrade`` as moby's upgradePlugin: the body (privileges) as JSON, ``remote`` as a reference
    (parseRemoteRef), the plugin's name as one (getName), then the plugin, which is not there."""
    await read_json(req)
    _reference(req.arg("remote"))
    raise not_found(f'plugin "{_local_name(req.match["name"])}" not found')


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
