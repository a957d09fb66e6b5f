"""Exporters: where a finished build goes, as the Solve's ``Exporters`` say.

- ``moby`` (the docker driver's default, ``--load``, ``-t``): an image in refd's store from the
  result's layers and config, tagged with every ``name``; the response carries
  ``containerimage.digest``/``containerimage.config.digest`` (both the image ID, as dockerd's graph
  driver store answers) and ``image.name``;
- ``local`` (``--output type=local,dest=DIR``): the result's filesystem sent to the client, which
  writes it to DIR;
- ``tar`` (``--output type=tar``): the same filesystem as one tar stream.

Each shows as a vertex (``exporting to image``, ``exporting to client directory``, ``exporting to
client tarball``) with dockerd's statuses.
"""

from __future__ import annotations

import asyncio
import os
import tarfile
import tempfile
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ..errors import ApiError
from ..images.reference import ReferenceError, parse_normalized_named, tag_name_only
from .control import BuildFailed

if TYPE_CHECKING:
    from .control import Build, Controller
    from .frontend import BuildResult
    from .messages import Exporter, SolveRequest

__all__ = ["export"]


async def export(
    ctl: Controller, build: Build, result: BuildResult | None, exporters: list[Exporter], req: SolveRequest
) -> dict[str, str]:
    if result is None or not exporters:
        return {}
    response: dict[str, str] = {}
    for exporter in exporters:
        kind = str(exporter.Type)
        attrs = dict(exporter.Attrs)
        if kind in ("moby", "image", "docker"):
            inline = any(
                str(e.Type) == "inline" for e in (req.Cache.Exports if req.Cache is not None else [])
            )
            response.update(await _to_image(ctl, build, result, attrs, inline))
        elif kind == "local":
            await _to_client_dir(ctl, build, result)
        elif kind == "tar":
            await _to_client_tar(ctl, build, result)
        else:
            raise BuildFailed(f"exporter {kind!r} is not supported by refd's BuildKit (moby, local, tar are)")
    return response


async def _to_image(
    ctl: Controller, build: Build, result: BuildResult, attrs: dict[str, str], inline: bool
) -> dict[str, str]:
    store = ctl.daemon.images
    step = build.progress.step("exporting to image").start()
    layers = step.status("exporting layers")
    layers.done()
    names: list[Any] = []
    for name in (n.strip() for n in attrs.get("name", "").split(",")):
        if not name:
            continue
        try:
            ref = parse_normalized_named(name)
        except ReferenceError as exc:
            step.done(str(exc))
            raise BuildFailed(str(exc)) from None
        names.append(ref)
    raw = result.config_bytes
    if inline:  # BuildKit's status; refd writes its own cache keys into the config
        step.status("preparing layers for inline cache").done()
        raw = result.config_with_inline_cache()
    writing = None
    try:
        image = await asyncio.to_thread(store.images.create, raw)
        writing = step.status(f"writing image {image.id}")
        writing.done()
        for ref in names:  # named as given (normalized); tagged ``latest`` when no tag was given
            naming = step.status(f"naming to {ref.string()}")
            await asyncio.to_thread(store.tag, image, ref if ref.is_canonical else tag_name_only(ref))
            naming.done()
    except ApiError as exc:
        step.done(exc.message)
        raise BuildFailed(exc.message) from None
    # moby's ImageExportedByBuildkit: the 'create' event for every exported image (after its tags)
    store.image_event("create", image.id, image.id)
    step.done()
    response = {"containerimage.digest": image.id, "containerimage.config.digest": image.id}
    if names:
        response["image.name"] = ",".join(ref.string() for ref in names)
    return response


def _view(ctl: Controller, result: BuildResult) -> Any:
    from ..images.commit import ScratchLayer
    from .stage import StepImage

    stage = result.stage
    image = StepImage(stage.chain, list(stage.diff_ids), {}) if stage.chain else None
    return ScratchLayer(ctl.daemon.images, image)  # type: ignore[arg-type]


async def _to_client_dir(ctl: Controller, build: Build, result: BuildResult) -> None:
    session = await ctl.sessions.get(build.session_id)
    step = build.progress.step("exporting to client directory").start()
    layer = await asyncio.to_thread(_view, ctl, result)
    try:
        status = step.status("copying files")
        sent = await session.send_tree(layer.root)
        status.done(sent)
    except Exception as exc:
        step.done(str(exc))
        raise
    finally:
        await asyncio.to_thread(layer.release)
    step.done()


async def _to_client_tar(ctl: Controller, build: Build, result: BuildResult) -> None:
    session = await ctl.sessions.get(build.session_id)
    step = build.progress.step("exporting to client tarball").start()
    layer = await asyncio.to_thread(_view, ctl, result)
    spool = tempfile.TemporaryFile(dir=ctl.daemon.images.tmp_root)  # noqa: SIM115 - closed below
    try:
        await asyncio.to_thread(_write_tar, layer.root, spool)
        status = step.status("sending tarball")

        async def chunks() -> AsyncIterator[bytes]:
            spool.seek(0)
            while chunk := await asyncio.to_thread(spool.read, 32 * 1024):
                yield chunk

        await session.send_bytes(chunks())
        status.done()
    except Exception as exc:
        step.done(str(exc))
        raise
    finally:
        spool.close()
        await asyncio.to_thread(layer.release)
    step.done()


def _write_tar(root: str, out: Any) -> None:
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for top, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(dirs) + sorted(files):
                full = os.path.join(top, name)
                rel = os.path.relpath(full, root)
                info = tar.gettarinfo(full, arcname=rel)
                info.uname = info.gname = ""
                if info.isreg():
                    with open(full, "rb") as fh:
                        tar.addfile(info, fh)
                else:
                    tar.addfile(info)
