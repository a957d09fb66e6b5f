"""``POST /build`` with the classic builder, and ``POST /build/prune`` (moby ``api/server/router/build``).

The query becomes ``BuildOptions`` with dockerd's parsing and its 400s (``error reading build
args: ...``); the body (a tar, plain or compressed) is read completely before anything is sent,
as dockerd buffers its output until then. Errors before the first stream line are ordinary error
responses (400 for a Dockerfile dockerd refuses to parse, 500 for a bad tag or a missing Dockerfile);
after it they end the 200 stream as ``errorDetail`` lines. A client that goes away cancels the build.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
from typing import TYPE_CHECKING, Any

from ..builder.context import ArchiveContext, dockerfile
from ..builder.dispatch import Builder
from ..builder.options import BuildOptions
from ..builder.platforms import parse_platform
from ..builder.stream import BuildError, BuildOutput
from ..errors import ApiError, invalid
from ..httpd import Request, Response
from ..images.reference import Named, ReferenceError, parse_normalized_named, tag_name_only
from ..images.uploads import spool
from ..server import json_response, version_tuple

if TYPE_CHECKING:
    from ..daemon import Daemon
    from ..server import Router

__all__ = ["register"]


def _bool(req: Request, name: str) -> bool:
    return req.arg(name).strip().lower() not in ("", "0", "no", "false", "none")


def _int64(req: Request, name: str) -> int:
    """httputils.Int64ValueOrZero."""
    try:
        return int(req.arg(name), 10)
    except ValueError:
        return 0


def _json_error(data: str) -> str:
    from ..gojson import UNMARSHAL_EOF, go_json_syntax_error

    syntax = go_json_syntax_error(data.encode(), UNMARSHAL_EOF)
    return syntax or "json: cannot unmarshal value into Go value"


def _json_param(req: Request, name: str, what: str, kind: type[dict[str, Any]] | type[list[Any]]) -> Any:
    text = req.arg(name)
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        raise invalid(f"{what}: {_json_error(text)}") from None
    if value is None:
        return None
    if not isinstance(value, kind):
        if kind is dict:
            go_type = "map[string]*string" if name == "buildargs" else "map[string]string"
        else:
            go_type = "[]string" if name == "cachefrom" else "[]*container.Ulimit"
        found = {str: "string", int: "number", float: "number", bool: "bool", list: "array", dict: "object"}
        raise invalid(
            f"{what}: json: cannot unmarshal {found.get(type(value), 'value')} into Go value of type "
            + go_type
        )
    return value


def _auth_configs(req: Request) -> dict[str, Any]:
    encoded = req.header("x-registry-config")
    if not encoded:
        return {}
    try:
        doc = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _options(req: Request, daemon: Daemon) -> BuildOptions:
    """newImageBuildOptions, in dockerd's order of checks."""
    if req.query.get("securityopt"):
        raise invalid("security options are not supported on linux")
    opts = BuildOptions(
        dockerfile=req.arg("dockerfile") or "Dockerfile",
        quiet=_bool(req, "q"),
        no_cache=_bool(req, "nocache"),
        force_remove=_bool(req, "forcerm"),
        pull=_bool(req, "pull"),
        memory_swap=_int64(req, "memswap"),
        memory=_int64(req, "memory"),
        cpu_shares=_int64(req, "cpushares"),
        cpu_period=_int64(req, "cpuperiod"),
        cpu_quota=_int64(req, "cpuquota"),
        cpuset_cpus=req.arg("cpusetcpus"),
        cpuset_mems=req.arg("cpusetmems"),
        cgroup_parent=req.arg("cgroupparent"),
        network_mode=req.arg("networkmode"),
        extra_hosts=list(req.query.get("extrahosts", [])),
        target=req.arg("target"),
    )
    if opts.force_remove or req.arg("rm") == "":
        opts.remove = True
    else:
        opts.remove = _bool(req, "rm")
    if version_tuple(req.api_version) >= (1, 40) and req.arg("outputs"):
        try:
            outputs = json.loads(req.arg("outputs"))
        except ValueError:
            raise invalid(f"invalid outputs specified: {_json_error(req.arg('outputs'))}") from None
        if outputs is not None and not isinstance(outputs, list):
            raise invalid(
                "invalid outputs specified: json: cannot unmarshal object into Go value of type "
                "[]build.ImageBuildOutput"
            )
    shm = req.query.get("shmsize", [""])[0]
    if shm:
        try:
            opts.shm_size = int(shm, 10)
        except ValueError:
            raise ApiError(500, f'strconv.ParseInt: parsing "{shm}": invalid syntax') from None
    isolation = req.arg("isolation")
    if isolation and isolation.lower() != "default":
        raise invalid(f'unsupported isolation: "{isolation}"')
    ulimits = _json_param(req, "ulimits", "error reading ulimit settings", list)
    if ulimits is not None:
        opts.ulimits = ulimits
    build_args = _json_param(req, "buildargs", "error reading build args", dict)
    if build_args:
        opts.build_args = {str(k): (None if v is None else str(v)) for k, v in build_args.items()}
    labels = _json_param(req, "labels", "error reading labels", dict)
    if labels:
        opts.labels = {str(k): str(v) for k, v in labels.items()}
    cache_from = _json_param(req, "cachefrom", "error reading cache-from", list)
    if cache_from:
        opts.cache_from = [str(c) for c in cache_from]
    version = req.arg("version")
    if version and version not in ("1", "2"):
        raise invalid(f'invalid version "{version}"')
    opts.buildkit = version == "2"
    if _bool(req, "squash"):
        if not daemon.config["experimental"]:
            raise invalid("squash is only supported with experimental mode")
        raise ApiError(501, "refd does not squash images (dockerd's experimental --squash)")
    opts.auth_configs = _auth_configs(req)
    return opts


def _remote_context(
    remote: str, name: str, tmp_root: str, out: BuildOutput, content_length: int
) -> tuple[ArchiveContext | None, Any]:
    """Detect: a remote URL's body as the Dockerfile (text/plain) or the context (an archive)."""
    import io

    from ..builder.parser import ParseError, parse
    from ..builder.remote import is_git_url, is_url, open_remote
    from ..distribution.progress import ProgressOutput

    if is_git_url(remote):
        raise BuildError(f"refd does not clone git build contexts ({remote})", 501)
    if not is_url(remote):
        raise BuildError(f"remoteURL ({remote}) could not be recognized as URL")
    body = open_remote(remote)
    # progress.NewProgressReader(body, out, r.ContentLength, "Downloading context", remote): the id and the
    # action are swapped in dockerd's call; an update every 512 kB (the POST body's length is no help), and
    # only a reader that reaches EOF (the Dockerfile parser, not the archive's) sends the last one and '{}'
    progress = ProgressOutput(out.raw)
    total = max(content_length, 0)
    every = min(512 * 1024, int(0.01 * total)) if total > 0 else 512 * 1024
    data = bytearray()
    last = 0
    while chunk := body.stream.read(1 << 16):
        data += chunk
        if len(data) - last > every:
            progress.update("Downloading context", remote, len(data), total)
            last = len(data)
    if body.kind == "dockerfile":
        progress.update("Downloading context", remote, len(data), total)
        out.raw(b"{}\r\n")
        try:
            return None, parse(bytes(data))
        except ParseError as exc:
            raise BuildError(str(exc), 400) from None
    context = ArchiveContext.extract(io.BytesIO(bytes(data)), tmp_root)
    try:
        return context, dockerfile(context, name)
    except BaseException:
        context.close()
        raise


def _tags(names: list[str]) -> list[Named]:
    """sanitizeRepoAndTags: parsed, tagged (``latest``), deduplicated; digests refused."""
    out: list[Named] = []
    seen: set[str] = set()
    for name in names:
        if not name:
            continue
        try:
            ref = parse_normalized_named(name)
        except ReferenceError as exc:
            raise ApiError(500, str(exc)) from None
        if ref.is_canonical:
            raise ApiError(500, "build tag cannot contain a digest")
        ref = tag_name_only(ref)
        if ref.string() not in seen:
            seen.add(ref.string())
            out.append(ref)
    return out


async def build(req: Request, daemon: Daemon) -> Response:
    store = daemon.images
    opts = _options(req, daemon)
    remote = req.arg("remote")
    if remote == "client-session":
        raise invalid(
            "experimental session with v1 builder is no longer supported, use builder version v2 (BuildKit) "
            "instead"
        )
    if opts.buildkit:
        return await _buildkit_build(req, daemon, opts, remote)
    path = await spool(req.read_chunk, store.tmp_root)
    loop = asyncio.get_running_loop()
    out = BuildOutput(loop, quiet=opts.quiet, aux=version_tuple(req.api_version) >= (1, 30))
    tags_raw = list(req.query.get("t", []))
    platform_text = req.arg("platform") if version_tuple(req.api_version) >= (1, 32) else ""
    length_header = req.header("content-length")
    request_length = int(length_header) if length_header.isdigit() else -1  # Go's r.ContentLength

    async def run() -> BuildError | None:
        ctx: ArchiveContext | None = None
        try:
            tags = _tags(tags_raw)

            def prepare() -> tuple[ArchiveContext | None, Any]:
                if remote:
                    return _remote_context(remote, opts.dockerfile, store.tmp_root, out, request_length)
                with open(path, "rb") as fh:
                    context = ArchiveContext.extract(fh, store.tmp_root)
                try:
                    return context, dockerfile(context, opts.dockerfile)
                except BaseException:
                    context.close()
                    raise

            ctx, parsed = await asyncio.to_thread(prepare)
            if platform_text:
                try:
                    opts.platform = parse_platform(platform_text)
                except ValueError as exc:
                    raise BuildError(str(exc), 400) from None
            builder = Builder(daemon, opts, out)
            try:
                image_id = await builder.build(ctx, parsed)
            except asyncio.CancelledError:
                await asyncio.shield(builder.remove_containers())
                raise
            out.stdout(f"Successfully built {image_id.removeprefix('sha256:')[:12]}\n")
            image = store.resolve(image_id)
            for ref in tags:
                await asyncio.to_thread(store.tag, image, ref)
                out.stdout(f"Successfully tagged {ref.familiar_string()}\n")
            out.finish(image_id)
            return None
        except ApiError as exc:
            err = BuildError(exc.message, exc.status)
            out.fail(err)
            return err
        except BuildError as exc:
            out.fail(exc)
            return exc
        except OSError as exc:
            err = BuildError(str(exc))
            out.fail(err)
            return err
        except asyncio.CancelledError:
            out.close()
            raise
        finally:
            if ctx is not None:
                await asyncio.to_thread(ctx.close)
            with contextlib.suppress(OSError):
                os.unlink(path)

    task = asyncio.ensure_future(run())
    started = asyncio.ensure_future(out.started.wait())
    await asyncio.wait([task, started], return_when=asyncio.FIRST_COMPLETED)
    if not out.started.is_set():
        started.cancel()
        error = task.result()
        if error is not None:
            raise ApiError(error.status, error.message)
    else:
        started.cancel()

    async def watch_client() -> None:
        """The client hanging up cancels the build, as dockerd's request context does (the body has been
        read: the connection only goes quiet or closes)."""
        with contextlib.suppress(Exception):
            while await req.reader.read(1 << 16):
                pass
        if not task.done():
            task.cancel()

    async def stream() -> Any:
        watcher = asyncio.ensure_future(watch_client())
        try:
            async for line in out.lines():
                yield line
        finally:
            # the watcher must be gone before the connection reads its next request: a cancelled but
            # not yet unwound read still waits on the stream, and the next head's read then raised
            # "already waiting for incoming data", which closed a keep-alive connection after the build
            # (the client's next request on it was reset)
            watcher.cancel()
            with contextlib.suppress(BaseException):
                await watcher
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    return Response(200, headers=[("Content-Type", "application/json")], stream=stream())


def _frontend_attrs(opts: BuildOptions, platform_text: str) -> dict[str, str]:
    """The classic build options as the Dockerfile frontend's attributes (moby builder-next's Build)."""
    attrs = {"filename": opts.dockerfile or "Dockerfile"}
    attrs.update({f"build-arg:{k}": v for k, v in opts.build_args.items() if v is not None})
    attrs.update({f"label:{k}": v for k, v in opts.labels.items()})
    if opts.target:
        attrs["target"] = opts.target
    if opts.no_cache:
        attrs["no-cache"] = ""
    if opts.pull:
        attrs["image-resolve-mode"] = "pull"
    if platform_text:
        attrs["platform"] = platform_text
    return attrs


async def _buildkit_build(req: Request, daemon: Daemon, opts: BuildOptions, remote: str) -> Response:
    """``version=2``: BuildKit's Dockerfile frontend on the uploaded context (buildkit.upload)."""
    from ..buildkit.control import controller
    from ..buildkit.upload import build_from_upload

    if remote:
        raise ApiError(500, "refd's BuildKit on POST /build takes an uploaded context only (no remote URL)")
    store = daemon.images
    tags = [ref.string() for ref in _tags(list(req.query.get("t", [])))]
    path = await spool(req.read_chunk, store.tmp_root)
    try:

        def extract() -> ArchiveContext:
            with open(path, "rb") as fh:
                return ArchiveContext.extract(fh, store.tmp_root)

        ctx = await asyncio.to_thread(extract)
    except BuildError as exc:  # not an archive: the classic builder's words and status
        raise ApiError(exc.status, exc.message) from None
    except OSError as exc:
        raise ApiError(500, str(exc)) from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
    platform_text = req.arg("platform") if version_tuple(req.api_version) >= (1, 32) else ""
    lines = build_from_upload(controller(daemon), ctx.root, _frontend_attrs(opts, platform_text), tags)

    async def stream() -> Any:
        try:
            async for line in lines:
                yield line
        finally:
            await lines.aclose()
            await asyncio.to_thread(ctx.close)

    return Response(200, headers=[("Content-Type", "application/json")], stream=stream())


# moby builder/builder-next/builder.go Prune: the cacheFields that are true, and the four it adds
_PRUNE_FILTERS = {"unused-for", "until", "label", "label!", "id", "parent", "type", "description"}
_PRUNE_FILTERS |= {"inuse", "shared", "private"}


def _prune_bytes(req: Request, name: str) -> None:
    value = req.arg(name)
    if value and not re.fullmatch(r"[+-]?[0-9]+", value):
        atoi = f'strconv.Atoi: parsing "{value}": invalid syntax'
        raise invalid(f"{name} is in bytes and expects an integer, got {value}: {atoi}")


async def prune(req: Request, daemon: Daemon) -> Response:
    """BuildKit's build cache (``buildkit.cache``; the classic builder's cache is the images), pruned as
    ``buildx prune`` prunes it; the query is checked as dockerd 28 checks it (sizes, then filters)."""
    from ..query import bool_value, parse_filters

    sizes = ("reserved-space", "keep-storage", "max-used-space", "min-free-space")
    for name in sizes if version_tuple(req.api_version or "1.51") >= (1, 48) else ("keep-storage",):
        _prune_bytes(req, name)
    try:
        filters = parse_filters(req.arg("filters"), _PRUNE_FILTERS)
    except ApiError as exc:
        raise ApiError(exc.status, f"failed to prune build cache: {exc.message}") from None
    from ..buildkit.cache import prune_for_api

    keep = req.arg("reserved-space") or req.arg("keep-storage")
    deleted, reclaimed = await prune_for_api(daemon, bool_value(req, "all"), filters, int(keep or 0))
    daemon.events.publish(_event("prune", {"reclaimed": str(reclaimed)}))
    return json_response({"CachesDeleted": deleted or None, "SpaceReclaimed": reclaimed})


def _event(action: str, attrs: dict[str, str]) -> Any:
    from ..events import make_event

    return make_event("builder", action, "", attrs)


def register(router: Router) -> None:
    router.add("POST", "/build", build)
    router.add("POST", "/build/prune", prune)
