"""``POST /commit``: a container's read-write layer as a new image (``docker commit``).

moby ``api/server/router/container`` postCommit and ``daemon/commit.go``: the body is an optional
container Config (else the container's), ``changes`` are Dockerfile instructions applied to it as
the builder applies them (``BuildFromConfig``), the result is merged with the container's config;
the layer is the container's changes against its ``-init`` layer, the parent the container's
image. A running container is paused while its layer is read (``pause=0`` to skip). Events: image
``create``, container ``commit`` (``comment``, ``imageID``, ``imageRef``), ``tag`` for ``repo``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
from typing import TYPE_CHECKING, Any

from ..builder.dispatch import build_from_config
from ..builder.stream import BuildError
from ..errors import ApiError, conflict, invalid
from ..httpd import Request, Response
from ..images.commit import commit_layer, container_diff, spooled_diff
from ..images.reference import ReferenceError, repo_tag_reference
from ..server import json_response

if TYPE_CHECKING:
    from ..containers.model import Container
    from ..daemon import Daemon
    from ..images.imagestore import Image
    from ..server import Router

__all__ = ["merge_configs", "register"]


def _bool_default(req: Request, name: str, default: bool) -> bool:
    if name not in req.query:
        return default
    return req.arg(name).strip().lower() not in ("", "0", "no", "false", "none")


def merge_configs(user: dict[str, Any], image: dict[str, Any]) -> dict[str, Any]:
    """daemon/commit.go merge(): fill the new config from the container's where it is incomplete."""
    out = copy.deepcopy(user)
    if not out.get("User"):
        out["User"] = image.get("User") or ""
    if not out.get("ExposedPorts"):
        if image.get("ExposedPorts") is not None:
            out["ExposedPorts"] = image.get("ExposedPorts")
    else:
        for port in image.get("ExposedPorts") or {}:
            out["ExposedPorts"].setdefault(port, {})
    if not out.get("Env"):
        out["Env"] = image.get("Env")
    else:
        keys = {e.partition("=")[0] for e in out["Env"]}
        out["Env"] = [*out["Env"], *(e for e in image.get("Env") or [] if e.partition("=")[0] not in keys)]
    labels = dict(out.get("Labels") or {})
    for key, value in (image.get("Labels") or {}).items():
        labels.setdefault(key, value)
    out["Labels"] = labels
    if not out.get("Entrypoint"):
        if not out.get("Cmd"):
            out["Cmd"] = image.get("Cmd")
        if out.get("Entrypoint") is None:
            out["Entrypoint"] = image.get("Entrypoint")
    image_hc = image.get("Healthcheck")
    if isinstance(image_hc, dict):
        user_hc = out.get("Healthcheck")
        if not isinstance(user_hc, dict):
            out["Healthcheck"] = image_hc
        else:
            for key in ("Test", "Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"):
                if not user_hc.get(key) and image_hc.get(key):
                    user_hc[key] = image_hc[key]
    if not out.get("WorkingDir"):
        out["WorkingDir"] = image.get("WorkingDir") or ""
    if not out.get("Volumes"):
        out["Volumes"] = image.get("Volumes")
    else:
        out["Volumes"].update(image.get("Volumes") or {})
    if not out.get("StopSignal") and image.get("StopSignal"):
        out["StopSignal"] = image["StopSignal"]
    return out


async def _body_config(req: Request) -> dict[str, Any] | None:
    ctype = req.header("content-type")
    raw = await req.body()
    if (ctype or raw) and ctype.split(";")[0].strip().lower() != "application/json":
        raise invalid(f"unsupported Content-Type header ({ctype}): must be 'application/json'")
    if not raw.strip():
        return None
    from ..gojson import DECODER_EOF, go_json_syntax_error

    text = raw.decode("utf-8", "replace")
    try:
        value, end = json.JSONDecoder().raw_decode(text.strip())
    except json.JSONDecodeError:
        raise invalid(
            f"invalid JSON: {go_json_syntax_error(raw.strip(), DECODER_EOF) or DECODER_EOF}"
        ) from None
    if text.strip()[end:].strip():
        raise invalid("unexpected content after JSON")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid(
            "invalid JSON: json: cannot unmarshal array into Go value of type container.CreateRequest"
        )
    config = {k: v for k, v in value.items() if k not in ("HostConfig", "NetworkingConfig")}
    return config or None


async def commit(req: Request, daemon: Daemon) -> Response:
    config = await _body_config(req)
    try:
        ref = repo_tag_reference(req.arg("repo"), req.arg("tag"))
    except ReferenceError as exc:
        raise invalid(str(exc)) from None
    manager = daemon.containers
    c: Container = manager.get(req.arg("container"))
    if c.status == "dead":
        raise conflict(f"You cannot commit container {c.id} which is Dead")
    if c.status == "removing":
        raise conflict(f"You cannot commit container {c.id} which is being removed")
    paused_here = False
    if _bool_default(req, "pause", True) and c.status == "running":
        with contextlib.suppress(ApiError, OSError):
            await manager.pause(c)
            paused_here = True
    try:
        base = copy.deepcopy(config) if config is not None else copy.deepcopy(c.config)
        try:
            new_config = await build_from_config(daemon, base, list(req.query.get("changes", [])), "linux")
        except BuildError as exc:
            raise ApiError(exc.status, exc.message) from None
        new_config = merge_configs(new_config, c.config)
        image = await asyncio.to_thread(
            _commit_image, daemon, c, new_config, req.arg("author"), req.arg("comment")
        )
        image_ref = ""
        if ref is not None:
            await asyncio.to_thread(daemon.images.tag, image, ref)
            image_ref = ref.familiar_string()
        manager.emit(c, "commit", comment=req.arg("comment"), imageID=image.id, imageRef=image_ref)
    finally:
        if paused_here:
            with contextlib.suppress(ApiError, OSError):
                await manager.unpause(c)
    return json_response({"Id": image.id}, 201)


def _commit_image(daemon: Daemon, c: Container, config: dict[str, Any], author: str, comment: str) -> Image:
    store = daemon.images
    parent = store.images.get(c.image_id) if c.image_id else None
    if c.image_id and parent is None:
        raise ApiError(500, f"failed to get digest {c.image_id}: image not found")
    with spooled_diff(store, lambda out: container_diff(store.layers, c.id, out)) as (path, digest):
        image = commit_layer(
            store,
            parent,
            path,
            digest,
            os_name="linux",
            config=config,
            container_config=c.config,
            container_id=c.id,
            author=author,
            comment=comment,
        )
    store.image_event("create", image.id, image.id)
    return image


def register(router: Router) -> None:
    router.add("POST", "/commit", commit)
