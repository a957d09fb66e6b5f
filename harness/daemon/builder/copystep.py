"""COPY and ADD steps of the classic builder: files into a fresh layer, committed with no container.

The sources come from the build context, an earlier stage or an image (``COPY --from``, copied out
of a scratch view of its layers), or URLs (ADD, downloaded with progress). The step's cache key is
``<CMD> <chown><hash of the sources> in <dest>``; ``--chmod`` is BuildKit's and refused here.
"""

from __future__ import annotations

import asyncio
import copy

from ..images.commit import ScratchLayer, commit_layer, spooled_diff
from ..images.imagestore import Image
from . import instructions as ins
from .baseimage import BaseImages
from .commit import StepCommitter
from .context import LazySource, Source
from .copy import Copier, CopyInstruction, download, normalize_dest, parse_chown, perform_copy
from .state import Stages, State, copy_config, shell_of
from .stream import BuildError

__all__ = ["CopySteps"]

_CHMOD_NEEDS_BUILDKIT = (
    "the --chmod option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ "
    "to learn how to build images with BuildKit enabled"
)


class CopySteps:
    def __init__(self, committer: StepCommitter, images: BaseImages) -> None:
        self.committer = committer
        self.images = images
        self.store = committer.store
        self.source: Source | None = None
        self.scratch_layers: list[ScratchLayer] = []

    async def release(self) -> None:
        """Let go of the scratch views ``COPY --from`` opened."""
        for layer in self.scratch_layers:
            await asyncio.to_thread(layer.release)
        self.scratch_layers.clear()

    async def add(self, state: State, cmd: ins.AddCommand) -> None:
        if cmd.chmod:
            raise BuildError(_CHMOD_NEEDS_BUILDKIT)
        tmp_root = self.store.tmp_root
        out = self.committer.out
        copier = Copier(self.source, lambda url: download(url, tmp_root, out.stdout, out.raw))
        try:
            inst = await asyncio.to_thread(copier.instruction, "ADD", cmd.files.sources, cmd.files.dest)
            inst.chown = cmd.chown
            inst.allow_decompression = True
            await self._perform(state, inst)
        finally:
            copier.cleanup()

    async def copy(self, state: State, cmd: ins.CopyCommand, results: Stages) -> None:
        if cmd.chmod:
            raise BuildError(_CHMOD_NEEDS_BUILDKIT)
        source: Source | None = self.source
        if cmd.from_:
            try:
                image = await self.images.from_image(cmd.from_, results)
            except BuildError as exc:
                raise BuildError(f"invalid from flag value {cmd.from_}: {exc.message}", exc.status) from None
            scratch = await asyncio.to_thread(ScratchLayer, self.store, image)
            self.scratch_layers.append(scratch)
            source = LazySource(scratch.root)
        copier = Copier(source, None, from_image=bool(cmd.from_))
        inst = await asyncio.to_thread(copier.instruction, "COPY", cmd.files.sources, cmd.files.dest)
        inst.chown = cmd.chown
        if cmd.from_ and not inst.chown:
            inst.preserve_ownership = True
        await self._perform(state, inst)

    async def _perform(self, state: State, inst: CopyInstruction) -> None:
        rc = state.run_config
        chown = f"--chown={inst.chown} " if inst.chown else ""
        comment = f"{inst.cmd_name} {chown}{inst.source_hash()} in {inst.dest} "
        config = copy_config(rc, Cmd=[*shell_of(rc), "#(nop) " + comment])
        if self.committer.probe(state, config):
            return
        parent = self.committer.parent(state)
        store = self.store

        def work() -> Image:
            layer = ScratchLayer(store, parent)
            try:
                dest = normalize_dest(str(rc.get("WorkingDir") or ""), inst.dest)
                identity: tuple[int, int] | None = (0, 0)
                if inst.chown:
                    try:
                        identity = parse_chown(inst.chown, layer.root)
                    except BuildError as exc:
                        raise BuildError(
                            f"unable to convert uid/gid chown string to host mapping: {exc.message}"
                        ) from None
                for info in inst.infos:
                    try:
                        perform_copy(
                            layer.root,
                            dest,
                            info,
                            None if inst.preserve_ownership else identity,
                            inst.allow_decompression,
                            store.layers.driver.id_map,
                        )
                    except BuildError as exc:
                        raise BuildError(f"failed to copy files: {exc.message}") from None
                    except OSError as exc:
                        raise BuildError(f"failed to copy files: {exc}") from None
                with spooled_diff(store, layer.diff) as (path, digest):
                    return commit_layer(
                        store,
                        parent,
                        path,
                        digest,
                        os_name=state.os,
                        config=copy.deepcopy(rc),
                        container_config=config,
                        author=state.maintainer,
                        arch=state.base.arch if state.base is not None else "",
                    )
            finally:
                layer.release()

        image = await asyncio.to_thread(work)
        state.image_id = image.id
