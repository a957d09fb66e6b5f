"""Image endpoints (moby ``api/server/router/image``): parse the request, call ``images/``, answer.

``POST /images/load``, ``GET /images/{name}/get`` and ``/images/get?names=``, ``POST /images/create``
(a pull with ``fromImage``, else an import from the body or a URL), ``POST /images/{name}/tag``,
``GET /images/json``, ``GET /images/{name}/json``, ``GET /images/{name}/history``,
``DELETE /images/{name}`` and ``POST /images/prune``. The image service (``daemon.images``) does the
work in a worker thread; a pull streams its progress as it comes (``server.worker_stream``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from ..distribution.auth import decode_auth_config
from ..distribution.progress import ProgressOutput
from ..errors import ApiError, conflict, go_kind, invalid, not_found
from ..goformat import error_line, human_size, json_line
from ..httpd import Request, Response
from ..images import delete as image_delete
from ..images import load as image_load
from ..images import save as image_save
from ..images import summaries as image_summaries
from ..images.imagestore import Image
from ..images.inspect import history_document, inspect_document
from ..images.reference import (
    Named,
    ReferenceError,
    parse_digest,
    parse_normalized_named,
    repo_tag_reference,
    with_tag,
)
from ..images.service import ImageService
from ..images.uploads import download, spool
from ..query import bool_value, parse_filters
from ..server import json_response, version_tuple, worker_stream

if TYPE_CHECKING:
    from ..daemon import Daemon
    from ..server import Router

__all__ = ["register"]

_AUTH_HEADER = "X-Registry-Auth"


def _service(daemon: Daemon) -> ImageService:
    service = getattr(daemon, "images", None)
    if service is None:
        raise ApiError(500, "the image store is not initialised")
    return service  # type: ignore[no-any-return]


def _version(req: Request) -> tuple[int, ...]:
    return version_tuple(req.api_version)


# -- load / save ----------------------------------------------------------------------------------
async def load(req: Request, daemon: Daemon) -> Response:
    service = _service(daemon)
    quiet = bool_value(req, "quiet") if "quiet" in req.query else True
    path = await spool(req.read_chunk, service.tmp_root)
    lines: list[bytes] = []

    def emit(text: str) -> None:
        lines.append(json_line({"stream": text}))

    def progress(diff_id: str, total: int) -> None:
        if quiet:
            return
        bar = f"[{'=' * 50}>] "
        detail = {"current": total, "total": total}
        sizes = f"{human_size(total):>8}/{human_size(total)}"
        short = diff_id.removeprefix("sha256:")[:12]
        lines.append(
            json_line(
                {"status": "Loading layer", "progressDetail": detail, "progress": bar + sizes, "id": short}
            )
        )

    def run() -> None:
        with open(path, "rb") as fh:
            image_load.load(service, fh, emit, progress)

    try:
        await asyncio.to_thread(run)
    except (image_load.LoadError, OSError) as exc:
        lines.append(error_line(str(exc)))
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
    return Response(200, b"".join(lines), [("Content-Type", "application/json")])


async def _file_stream(path: str) -> AsyncIterator[bytes]:
    try:
        with open(path, "rb") as fh:
            while chunk := await asyncio.to_thread(fh.read, 1 << 20):
                yield chunk
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


async def save(req: Request, daemon: Daemon) -> Response:
    service = _service(daemon)
    names = [req.match["name"]] if "name" in req.match else list(req.query.get("names", []))
    if _version(req) >= (1, 48) and len(req.query.get("platform", [])) > 1:
        raise invalid("multiple platform parameters not supported")
    path = await asyncio.to_thread(image_save.save, service, names)
    return Response(200, headers=[("Content-Type", "application/x-tar")], stream=_file_stream(path))


# -- create: pull or import -----------------------------------------------------------------------
def _platform(req: Request) -> tuple[str, str, str] | None:
    """``?platform=`` of a pull or import (API 1.32+), parsed before anything is fetched: a bad one is
    containerd's 400."""
    text = req.arg("platform")
    if not text or _version(req) < (1, 32):
        return None
    from ..builder.platforms import parse_platform

    try:
        return parse_platform(text)
    except ValueError as exc:
        raise invalid(str(exc)) from None


async def create(req: Request, daemon: Daemon) -> Response:
    service = _service(daemon)
    from_image, tag = req.arg("fromImage"), req.arg("tag")
    platform = _platform(req)
    if from_image:
        try:
            ref = parse_normalized_named(from_image.removesuffix(":"))
            if tag:  # the "tag" may be a digest
                try:
                    ref = replace(ref.trim(), digest=parse_digest(tag))
                except ReferenceError:
                    ref = with_tag(ref, tag)
        except ReferenceError as exc:
            raise invalid(str(exc)) from None
        if ref.familiar_name() == "scratch":
            raise ApiError(403, "'scratch' is a reserved name")
        return await _pull(req, daemon, ref, platform)
    return await _import(req, service, platform)


async def _pull(req: Request, daemon: Daemon, ref: Named, platform: tuple[str, str, str] | None) -> Response:
    from ..distribution.pull import PullOptions, log_pull_event, pull_image

    creds = decode_auth_config(req.header(_AUTH_HEADER))
    pulled: list[Named] = []

    def work(write: Callable[[bytes], None], cancelled: threading.Event) -> None:
        out = ProgressOutput(write)
        opts = PullOptions.from_config(
            daemon.config, daemon.images, out, creds, platform, daemon.log, cancelled
        )
        pulled.append(pull_image(opts, ref))

    def done() -> None:
        if pulled:
            log_pull_event(daemon.images, ref, pulled[0])

    return await worker_stream(work, done)


async def _import(req: Request, service: ImageService, platform: tuple[str, str, str] | None) -> Response:
    src = req.arg("fromSrc")
    try:
        ref = repo_tag_reference(req.arg("repo"), req.arg("tag"))
    except ReferenceError as exc:
        raise invalid(str(exc)) from None
    message = req.arg("message") or f"Imported from {src}"
    if platform is not None and platform[0] != "linux":
        raise invalid("operating system is not supported")
    head = b""
    if src == "-":
        path = await spool(req.read_chunk, service.tmp_root)
    else:
        url = src if "://" in src else "http://" + src
        path = await asyncio.to_thread(download, url, service.tmp_root)
        head = json_line({"status": f"Downloading from {url}"})
    changes = list(req.query.get("changes", []))
    arch, variant = (platform[1], platform[2]) if platform else ("", "")

    def run() -> Image:
        with open(path, "rb") as fh:
            return service.import_image(fh, ref, changes, message, arch, variant)

    try:
        image = await asyncio.to_thread(run)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
    return Response(200, head + json_line({"status": image.id}), [("Content-Type", "application/json")])


# -- tag ------------------------------------------------------------------------------------------
async def tag(req: Request, daemon: Daemon) -> Response:
    service = _service(daemon)
    try:
        ref = repo_tag_reference(req.arg("repo"), req.arg("tag"))
    except ReferenceError as exc:
        raise invalid(str(exc)) from None
    if ref is None:
        return Response(200, b"")  # dockerd 28 returns errdefs.InvalidParameter(nil), i.e. no error at all
    if ref.familiar_name() == "sha256":
        raise invalid("refusing to create an ambiguous tag using digest algorithm as name")
    try:
        image = service.resolve(req.match["name"])
    except ApiError as exc:
        raise not_found(exc.message) from None
    await asyncio.to_thread(service.tag, image, ref)
    return Response(201, b"")


# -- list / inspect / history ---------------------------------------------------------------------
async def list_images(req: Request, daemon: Daemon) -> Response:
    service = _service(daemon)
    version = _version(req)
    filters = parse_filters(req.arg("filters"), image_summaries.LIST_FILTERS)
    if version < (1, 41) and req.arg("filter"):
        filters.setdefault("reference", []).append(req.arg("filter"))
    opts = image_summaries.ListOptions(
        filters, bool_value(req, "all"), version >= (1, 42) and bool_value(req, "shared-size")
    )
    listed = await asyncio.to_thread(image_summaries.summaries, service, opts)
    return json_response(image_summaries.for_api_version(listed, version))


async def inspect(req: Request, daemon: Daemon) -> Response:
    service = _service(daemon)
    platform = (
        _json_platform(req.arg("platform")) if _version(req) >= (1, 49) and req.arg("platform") else None
    )
    if platform is not None and bool_value(req, "manifests"):
        raise invalid("conflicting options: manifests and platform options cannot both be set")
    image = service.resolve(req.match["name"])
    if platform is not None:
        from ..builder.platforms import format_platform, image_platform, platform_matches

        if not platform_matches(image, platform):  # the graphdriver store keeps one platform per image
            raise not_found(
                f"image with reference {req.match['name']} was found but its platform "
                f"({format_platform(image_platform(image))}) does not match the specified platform "
                f"({format_platform(platform)})"
            )
    return json_response(await asyncio.to_thread(inspect_document, service, image, _version(req)))


def _json_platform(text: str) -> tuple[str, str, str]:
    """moby httputils.DecodePlatform: an OCI platform as JSON, with both OS and architecture."""
    from ..gojson import go_json_syntax_error

    error = go_json_syntax_error(text.encode())
    if error is not None:
        raise invalid(f"failed to parse platform: {error}")
    doc = json.loads(text)
    if not isinstance(doc, dict) and doc is not None:
        raise invalid(
            f"failed to parse platform: json: cannot unmarshal {go_kind(doc)} "
            "into Go value of type v1.Platform"
        )
    doc = doc or {}
    os_name, arch, variant = (str(doc.get(k) or "") for k in ("os", "architecture", "variant"))
    optional = variant or doc.get("os.version") or doc.get("os.features")
    if not os_name and not arch and optional:
        raise invalid("optional platform fields provided, but OS and Architecture are missing")
    if not os_name or not arch:
        raise invalid("both OS and Architecture must be provided")
    return os_name, arch, variant


async def history(req: Request, daemon: Daemon) -> Response:
    service = _service(daemon)
    image = service.resolve(req.match["name"])
    return json_response(await asyncio.to_thread(history_document, service, image))


# -- delete / prune -----------------------------------------------------------------------------------
async def delete(req: Request, daemon: Daemon) -> Response:
    service = _service(daemon)
    name = req.match["name"]
    if not name.strip():
        raise invalid("image name cannot be blank")
    force, prune_parents = bool_value(req, "force"), not bool_value(req, "noprune")
    return json_response(await asyncio.to_thread(image_delete.delete, service, name, force, prune_parents))


async def prune(req: Request, daemon: Daemon) -> Response:
    service = _service(daemon)
    if service.prune_running:  # checked and set on the event loop: a second prune is a 409
        raise conflict("a prune operation is already running")
    filters = parse_filters(req.arg("filters"), image_delete.PRUNE_FILTERS)
    service.prune_running = True
    try:
        records, reclaimed = await asyncio.to_thread(image_delete.prune_images, service, filters)
    finally:
        service.prune_running = False
    return json_response({"ImagesDeleted": records or None, "SpaceReclaimed": reclaimed})


def register(router: Router) -> None:
    router.add("GET", "/images/json", list_images)
    router.add("GET", "/images/get", save)
    router.add("GET", "/images/{name:.*}/get", save)
    router.add("GET", "/images/{name:.*}/history", history)
    router.add("GET", "/images/{name:.*}/json", inspect)
    router.add("POST", "/images/load", load)
    router.add("POST", "/images/create", create)
    router.add("POST", "/images/prune", prune)
    router.add("POST", "/images/{name:.*}/tag", tag)
    router.add("DELETE", "/images/{name:.*}", delete)
