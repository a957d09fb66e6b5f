"""Image endpoints with dockerd 28's shapes and messages (moby ``api/server/router/image``).

``POST /images/load``, ``GET /images/{name}/get`` and ``/images/get?names=``, ``POST /images/create``
(import from the body, ``fromSrc=-``), ``POST /images/{name}/tag``, ``GET /images/json``,
``GET /images/{name}/json``, ``GET /images/{name}/history``, ``DELETE /images/{name}`` and
``POST /images/prune``; a pull (``fromImage``) is handed to ``api/distribution.py``. The store
(``daemon.images``) does the work in a worker thread; this module shapes requests and responses per
API version.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..errors import ApiError, conflict, invalid, not_found
from ..goformat import format_go_time, go_arch, go_json, parse_go_time
from ..httpd import Request, Response
from ..images import delete as image_delete
from ..images import load as image_load
from ..images import save as image_save
from ..images.changes import go_container_config
from ..images.imagestore import Image
from ..images.layerstore import chain_ids
from ..images.reference import (
    ReferenceError,
    familiar_match,
    parse_digest,
    parse_normalized_named,
    repo_tag_reference,
    with_tag,
)
from ..images.service import ImageService
from ..query import parse_filters, parse_timestamp
from ..server import json_response, version_tuple

if TYPE_CHECKING:
    from ..daemon import Daemon
    from ..server import Router

__all__ = ["human_size", "register"]

_LIST_FILTERS = {"dangling", "label", "before", "since", "reference", "until"}
_PRUNE_FILTERS = {"dangling", "label", "label!", "until"}
_LEGACY_CONFIG_CURRENT = {
    "Cmd": None,
    "Entrypoint": None,
    "Env": None,
    "Labels": None,
    "OnBuild": None,
    "User": "",
    "Volumes": None,
    "WorkingDir": "",
}
_LEGACY_CONFIG_149 = {
    "AttachStderr": False,
    "AttachStdin": False,
    "AttachStdout": False,
    "Cmd": None,
    "Domainname": "",
    "Entrypoint": None,
    "Env": None,
    "Hostname": "",
    "Image": "",
    "Labels": None,
    "OnBuild": None,
    "OpenStdin": False,
    "StdinOnce": False,
    "Tty": False,
    "User": "",
    "Volumes": None,
    "WorkingDir": "",
}
_DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


# -- helpers ------------------------------------------------------------------------------------
def _store(daemon: Daemon) -> ImageService:
    store = getattr(daemon, "images", None)
    if store is None:
        raise ApiError(500, "the image store is not initialised")
    return store  # type: ignore[no-any-return]


def _bool(req: Request, name: str) -> bool:
    """httputils.BoolValue."""
    return req.arg(name).strip().lower() not in ("", "0", "no", "false", "none")


def _bool_or_default(req: Request, name: str, default: bool) -> bool:
    return _bool(req, name) if name in req.query else default


def _version_below(req: Request, version: str) -> bool:
    return version_tuple(req.api_version) < version_tuple(version)


def human_size(size: float, precision: int = 4) -> str:
    """go-units HumanSizeWithPrecision (decimal units)."""
    i = 0
    while size >= 1000 and i < len(_DECIMAL_UNITS) - 1:
        size /= 1000
        i += 1
    return f"{size:.{precision}g}{_DECIMAL_UNITS[i]}"


def _stream_line(obj: dict[str, Any]) -> bytes:
    return go_json(obj) + b"\r\n"


def _error_line(message: str) -> bytes:
    return _stream_line({"errorDetail": {"message": message}, "error": message})


async def _spool(req: Request, directory: str) -> str:
    """The request body in a temporary file (uploads may be larger than memory)."""
    fd, path = tempfile.mkstemp(prefix="refd-upload-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := await req.read_chunk(1 << 20):
                out.write(chunk)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    return path


def _bool_filter(filters: dict[str, list[str]], key: str, default: bool) -> bool:
    """filters.Args.GetBoolOrDefault."""
    if key not in filters:
        return default
    values = filters[key]
    if not values:
        raise invalid(f"invalid filter '{key}'")
    is_false = "0" in values or "false" in values
    is_true = "1" in values or "true" in values
    if is_false == is_true:
        raise invalid(f"invalid filter '{key}=[{' '.join(values)}]'")
    return is_true


def _match_kv(values: list[str], labels: dict[str, str]) -> bool:
    """filters.Args.MatchKVList."""
    if not values:
        return True
    if not labels:
        return False
    for value in values:
        key, sep, want = value.partition("=")
        if key not in labels or (sep and labels[key] != want):
            return False
    return True


def _created(image: Image) -> float | None:
    parsed = image.created_time
    return None if parsed is None else parsed[0] + parsed[1] / 1e9


# -- load / save ----------------------------------------------------------------------------------
async def load(req: Request, daemon: Daemon) -> Response:
    store = _store(daemon)
    quiet = _bool_or_default(req, "quiet", True)
    path = await _spool(req, store.tmp_root)
    lines: list[bytes] = []

    def emit(text: str) -> None:
        lines.append(_stream_line({"stream": text}))

    def progress(diff_id: str, total: int) -> None:
        if quiet:
            return
        bar = f"[{'=' * 50}>] "
        lines.append(
            _stream_line(
                {
                    "status": "Loading layer",
                    "progressDetail": {"current": total, "total": total},
                    "progress": f"{bar}{human_size(total):>8}/{human_size(total)}",
                    "id": diff_id.removeprefix("sha256:")[:12],
                }
            )
        )

    def run() -> None:
        with open(path, "rb") as fh:
            image_load.load(store, fh, emit, progress)

    try:
        await asyncio.to_thread(run)
    except image_load.LoadError as exc:
        lines.append(_error_line(str(exc)))
    except OSError as exc:
        lines.append(_error_line(str(exc)))
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
    store = _store(daemon)
    names = [req.match["name"]] if "name" in req.match else list(req.query.get("names", []))
    if not _version_below(req, "1.48") and len(req.query.get("platform", [])) > 1:
        raise invalid("multiple platform parameters not supported")
    path = await asyncio.to_thread(image_save.save, store, names)
    return Response(200, headers=[("Content-Type", "application/x-tar")], stream=_file_stream(path))


# -- create (import; pulling needs a registry) ---------------------------------------------------
def _platform(req: Request) -> tuple[str, str, str] | None:
    text = req.arg("platform")
    if not text or _version_below(req, "1.32"):
        return None
    parts = text.lower().split("/")
    if len(parts) > 3 or not all(parts):
        raise invalid(f'"{text}": unknown operating system or architecture: invalid argument')
    os_name = parts[0]
    arch = parts[1] if len(parts) > 1 else go_arch()
    arch = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64"}.get(arch, arch)
    return os_name, arch, parts[2] if len(parts) > 2 else ""


async def create(req: Request, daemon: Daemon) -> Response:
    store = _store(daemon)
    from_image, repo, tag = req.arg("fromImage"), req.arg("repo"), req.arg("tag")
    platform = _platform(req)
    if from_image:
        try:
            pull_ref = parse_normalized_named(from_image.removesuffix(":"))
            if tag:  # the "tag" may be a digest
                try:
                    pull_ref = replace(pull_ref.trim(), digest=parse_digest(tag))
                except ReferenceError:
                    pull_ref = with_tag(pull_ref, tag)
        except ReferenceError as exc:
            raise invalid(str(exc)) from None
        if pull_ref.familiar_name() == "scratch":
            raise ApiError(403, "'scratch' is a reserved name")
        from .distribution import pull_response

        return await pull_response(req, daemon, pull_ref, platform)
    src = req.arg("fromSrc")
    try:
        ref = repo_tag_reference(repo, tag)
    except ReferenceError as exc:
        raise invalid(str(exc)) from None
    message = req.arg("message") or f"Imported from {src}"
    if platform is not None and platform[0] != "linux":
        raise invalid("operating system is not supported")
    head = b""
    if src == "-":
        path = await _spool(req, store.tmp_root)
    else:
        url = src if "://" in src else "http://" + src
        path = await asyncio.to_thread(_download, url, store.tmp_root)
        head = _stream_line({"status": f"Downloading from {url}"})
    changes = list(req.query.get("changes", []))
    arch, variant = (platform[1], platform[2]) if platform else ("", "")

    def run() -> Image:
        with open(path, "rb") as fh:
            return store.import_image(fh, ref, changes, message, arch, variant)

    try:
        image = await asyncio.to_thread(run)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
    return Response(200, head + _stream_line({"status": image.id}), [("Content-Type", "application/json")])


def _download(url: str, directory: str) -> str:
    import urllib.error
    import urllib.request

    fd, path = tempfile.mkstemp(prefix="refd-upload-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
            while chunk := resp.read(1 << 20):
                out.write(chunk)
    except urllib.error.HTTPError as exc:
        os.unlink(path)
        raise ApiError(500, f"failed to GET {url} with status {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        os.unlink(path)
        raise ApiError(500, f'Get "{url}": {getattr(exc, "reason", exc)}') from None
    return path


# -- tag ------------------------------------------------------------------------------------------
async def tag(req: Request, daemon: Daemon) -> Response:
    store = _store(daemon)
    try:
        ref = repo_tag_reference(req.arg("repo"), req.arg("tag"))
    except ReferenceError as exc:
        raise invalid(str(exc)) from None
    if ref is None:
        return Response(200, b"")  # dockerd 28 returns errdefs.InvalidParameter(nil), i.e. no error at all
    if ref.familiar_name() == "sha256":
        raise invalid("refusing to create an ambiguous tag using digest algorithm as name")
    try:
        image = store.resolve(req.match["name"])
    except ApiError as exc:
        raise not_found(exc.message) from None
    await asyncio.to_thread(store.tag, image, ref)
    return Response(201, b"")


# -- list -------------------------------------------------------------------------------------------
def _summaries(req: Request, store: ImageService) -> list[dict[str, Any]]:
    filters = parse_filters(req.arg("filters"), _LIST_FILTERS)
    if _version_below(req, "1.41") and req.arg("filter"):
        filters.setdefault("reference", []).append(req.arg("filter"))
    dangling_only = _bool_filter(filters, "dangling", False)
    before: float | None = None
    since: float | None = None
    for value in filters.get("before", []):
        created = _created(store.resolve(value))
        if created is not None and (before is None or before > created):
            before = created
    now = time.time()
    for value in filters.get("until", []):
        ts = parse_timestamp(value, now)
        if ts is not None and (before is None or before > ts):
            before = ts
    for value in filters.get("since", []):
        created = _created(store.resolve(value))
        if created is not None and (since is None or since < created):
            since = created
    shared = not _version_below(req, "1.42") and _bool(req, "shared-size")
    show_all = _bool(req, "all")
    images = store.images.all_images()
    if dangling_only:
        images = [i for i in images if not store.images.children(i.id)]
    out: list[tuple[float, dict[str, Any], Image]] = []
    for image in images:
        created = _created(image)
        if before is not None and (created is None or not created < before):
            continue
        if since is not None and (created is None or not created > since):
            continue
        if "label" in filters and not _match_kv(filters["label"], image.labels):
            continue
        tags: list[str] = []
        digests: list[str] = []
        for ref in store.references.references(image.id):
            if "reference" in filters:
                try:
                    if not any(familiar_match(p, ref) for p in filters["reference"]):
                        continue
                except ReferenceError as exc:
                    raise ApiError(500, str(exc)) from None
            if ref.is_canonical:
                digests.append(ref.familiar_string())
            if ref.is_tagged:
                tags.append(ref.familiar_string())
        if not tags and not digests:
            if show_all or not store.images.children(image.id):
                if "dangling" in filters and not dangling_only:
                    continue
                if "reference" in filters:
                    continue
            else:
                continue
        elif dangling_only and tags:
            continue
        summary: dict[str, Any] = {
            "Containers": len(store.in_use_by(image.id)),
            "Created": image.created_unix,
            "Id": image.id,
            "Labels": image.runtime_config.get("Labels"),
            "ParentId": image.parent,
            "RepoDigests": digests or None,
            "RepoTags": tags or None,
            "SharedSize": -1,
            "Size": store.images.size(image),
        }
        out.append((created or 0.0, summary, image))
    if shared:
        counts: dict[str, int] = {}
        for image in store.images.all_images():
            for chain in chain_ids(image.diff_ids):
                counts[chain] = counts.get(chain, 0) + 1
        for _, summary, image in out:
            summary["SharedSize"] = sum(
                store.layers.get(c).size for c in chain_ids(image.diff_ids) if counts.get(c, 0) > 1
            )
    out.sort(key=lambda item: item[0], reverse=True)
    summaries = [s for _, s, _ in out]
    for summary in summaries:
        if _version_below(req, "1.43"):
            if not summary["RepoTags"] and not summary["RepoDigests"]:
                summary["RepoTags"], summary["RepoDigests"] = ["<none>:<none>"], ["<none>@<none>"]
        else:
            summary["RepoTags"] = summary["RepoTags"] or []
            summary["RepoDigests"] = summary["RepoDigests"] or []
        if _version_below(req, "1.44"):
            summary["VirtualSize"] = summary["Size"]
        if _version_below(req, "1.51"):
            summary["Containers"] = -1
    return summaries


async def list_images(req: Request, daemon: Daemon) -> Response:
    store = _store(daemon)
    return json_response(await asyncio.to_thread(_summaries, req, store))


# -- inspect / history --------------------------------------------------------------------------------
def _oci_config(runtime: dict[str, Any]) -> dict[str, Any]:
    """containerConfigToDockerOCIImageConfig, as JSON (omitempty applied)."""
    out: dict[str, Any] = {}
    for key in (
        "User",
        "Env",
        "Entrypoint",
        "Cmd",
        "Volumes",
        "WorkingDir",
        "Labels",
        "StopSignal",
        "ArgsEscaped",
        "ExposedPorts",
        "Healthcheck",
        "OnBuild",
        "Shell",
    ):
        value = runtime.get(key)
        if value:
            out[key] = value
    return out


def inspect_document(req: Request, store: ImageService, image: Image) -> dict[str, Any]:
    config = image.config
    history = image.history
    comment = config.get("comment") or (history[-1].get("comment") if history else "") or ""
    parsed = image.created_time
    created = format_go_time(*parsed) if parsed else ""
    last_parsed = parse_go_time(image.last_updated) if image.last_updated else None
    doc: dict[str, Any] = {
        "Id": image.id,
        "RepoTags": store.references.repo_tags(image.id),
        "RepoDigests": store.references.repo_digests(image.id),
        "Parent": image.parent,
        "Comment": comment,
    }
    if created:
        doc["Created"] = created
    elif _version_below(req, "1.44"):
        doc["Created"] = "0001-01-01T00:00:00Z"
    if _version_below(req, "1.45"):
        if config.get("container"):
            doc["Container"] = config["container"]
        doc["ContainerConfig"] = go_container_config(config.get("container_config"))
    doc["DockerVersion"] = config.get("docker_version") or ""
    doc["Author"] = config.get("author") or ""
    doc["Architecture"] = config.get("architecture") or ""
    if config.get("variant"):
        doc["Variant"] = config["variant"]
    doc["Os"] = image.os
    if config.get("os.version"):
        doc["OsVersion"] = config["os.version"]
    doc["Size"] = store.images.size(image)
    if _version_below(req, "1.44"):
        doc["VirtualSize"] = doc["Size"]
    doc["GraphDriver"] = {"Data": store.image_metadata(image), "Name": store.driver_name}
    rootfs: dict[str, Any] = {"Type": (config.get("rootfs") or {}).get("type", "")}
    if image.diff_ids:
        rootfs["Layers"] = image.diff_ids
    if not rootfs["Type"]:
        del rootfs["Type"]
    doc["RootFS"] = rootfs
    doc["Metadata"] = {"LastTagTime": format_go_time(*last_parsed) if last_parsed else "0001-01-01T00:00:00Z"}
    legacy = _LEGACY_CONFIG_149 if _version_below(req, "1.50") else _LEGACY_CONFIG_CURRENT
    merged = copy.deepcopy(legacy)
    merged.update(_oci_config(image.runtime_config))
    doc["Config"] = {k: merged[k] for k in sorted(merged)}
    return doc


async def inspect(req: Request, daemon: Daemon) -> Response:
    store = _store(daemon)
    if not _version_below(req, "1.49") and req.arg("platform") and _bool(req, "manifests"):
        raise invalid("conflicting options: manifests and platform options cannot both be set")
    image = store.resolve(req.match["name"])
    return json_response(await asyncio.to_thread(inspect_document, req, store, image))


def history_document(store: ImageService, image: Image) -> list[dict[str, Any]]:
    chains = chain_ids(image.diff_ids)
    items: list[dict[str, Any]] = []
    counter = 0
    for h in image.history:
        size = 0
        if not h.get("empty_layer"):
            if counter >= len(chains):
                raise ApiError(500, "too many non-empty layers in History section")
            size = store.layers.get(chains[counter]).size
            counter += 1
        parsed = parsed_time(h.get("created"))
        items.insert(
            0,
            {
                "Comment": h.get("comment") or "",
                "Created": parsed,
                "CreatedBy": h.get("created_by") or "",
                "Id": "<missing>",
                "Size": size,
                "Tags": None,
            },
        )
    # image IDs and tags along the parent chain (locally built images know their parents)
    current: Image | None = image
    for item in items:
        if current is None:
            break
        item["Id"] = current.id
        item["Tags"] = store.references.repo_tags(current.id) or None
        current = store.images.get(current.parent) if current.parent else None
    return items


def parsed_time(text: Any) -> int:
    parsed = parse_go_time(text) if isinstance(text, str) else None
    return parsed[0] if parsed else 0


async def history(req: Request, daemon: Daemon) -> Response:
    store = _store(daemon)
    image = store.resolve(req.match["name"])
    return json_response(await asyncio.to_thread(history_document, store, image))


# -- delete / prune ------------------------------------------------------------------------------------
async def delete(req: Request, daemon: Daemon) -> Response:
    store = _store(daemon)
    name = req.match["name"]
    if not name.strip():
        raise invalid("image name cannot be blank")
    records = await asyncio.to_thread(
        image_delete.delete, store, name, _bool(req, "force"), not _bool(req, "noprune")
    )
    return json_response(records)


async def prune(req: Request, daemon: Daemon) -> Response:
    store = _store(daemon)
    if store.prune_running:
        raise conflict("a prune operation is already running")
    filters = parse_filters(req.arg("filters"), _PRUNE_FILTERS)
    dangling_only = _bool_filter(filters, "dangling", True)
    until: float | None = None
    if filters.get("until"):  # an empty list: no filter (dockerd 28.5 panics and drops the connection)
        if len(filters["until"]) > 1:
            raise ApiError(500, "more than one until filter specified")
        until = parse_timestamp(filters["until"][0], time.time())

    def keep(image: Image) -> bool:
        created = _created(image)
        if until is not None and (created is None or created > until):
            return True
        if not image.runtime_config:
            return False
        if not _match_kv(filters.get("label", []), image.labels):
            return True
        return "label!" in filters and _match_kv(filters["label!"], image.labels)

    store.prune_running = True
    try:
        records, reclaimed = await asyncio.to_thread(image_delete.prune, store, dangling_only, keep)
    finally:
        store.prune_running = False
    store.event("prune", "", {"reclaimed": str(reclaimed)})
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
