"""COPY, ADD and WORKDIR steps of refd's Dockerfile frontend: files written into a scratch layer.

Sources come from the build context, an earlier stage or an image (``--from``), heredocs, or URLs
(ADD), resolved and copied by the classic builder's machinery (``builder.copy``: wildcards,
directories merged, ``--chown`` from the image's passwd/group, ADD's archive unpacking);
``--chmod`` sets the modes; ``--link`` copies the same files (refd makes every layer on its own
parent). The cache key is the files' content hashes, the destination and the flags; a failing
source reads as BuildKit's (``failed to calculate checksum of ref: "/x": not found``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import tempfile
from typing import TYPE_CHECKING, Any

from ..builder import instructions as ins
from ..builder.shell import ShellError
from ..builder.stream import BuildError
from .control import BuildFailed
from .layers import LayerSteps
from .stage import StageState, StepImage, cache_key, copy_history, display_name, history_entry

if TYPE_CHECKING:
    pass

__all__ = ["FileSteps"]


class FileSteps(LayerSteps):
    # -- WORKDIR --------------------------------------------------------------------------------------
    async def _workdir(self, st: StageState, cmd: ins.WorkdirCommand, env: dict[str, str]) -> None:
        from ..builder.run import make_dirs_in_root, workdir_path

        state = st.state
        assert state is not None
        rc = state.run_config
        try:
            wd = workdir_path(str(rc.get("WorkingDir") or ""), cmd.path)
        except BuildError as exc:
            raise BuildFailed(exc.message) from None
        rc["WorkingDir"] = wd
        if wd == "/":
            st.history.append(history_entry("WORKDIR /", empty=True))
            return
        name = st.prefix(display_name(cmd, env))
        key = cache_key(st.key, "workdir", wd, str(rc.get("User") or ""))

        def change(root: str) -> None:
            make_dirs_in_root(root, wd)

        layered = await self._file_step(st, name, key, name, change)
        st.history.append(history_entry(f"WORKDIR {wd}", empty=not layered, layer_ns=self._made(st)))

    # -- COPY / ADD -----------------------------------------------------------------------------------

    # -- COPY / ADD -----------------------------------------------------------------------------------
    async def _copy(
        self,
        stages: list[ins.Stage],
        st: StageState,
        cmd: ins.CopyCommand | ins.AddCommand,
        env: dict[str, str],
    ) -> None:
        from ..builder.context import LazySource, Source
        from ..builder.copy import Copier, download, normalize_dest, parse_chown, perform_copy
        from ..images.commit import ScratchLayer

        state = st.state
        assert state is not None
        rc = state.run_config
        is_add = isinstance(cmd, ins.AddCommand)
        name = st.prefix(display_name(cmd, env))
        scratch: ScratchLayer | None = None
        source: Source | None = LazySource(self.context_dir) if self.context_dir else None
        source_key = "context"
        from_ = cmd.from_ if isinstance(cmd, ins.CopyCommand) else ""
        if from_:
            index = self._stage_index(stages, from_, len(stages))
            if index is not None:
                other = self.stage_results[index]
                view = StepImage(other.chain, other.diff_ids, {})
                source_key = other.key
            else:
                image = await self._resolve_image(from_)
                view = StepImage(image.top_chain, list(image.diff_ids), {})
                source_key = image.id
            opened = await asyncio.to_thread(ScratchLayer, self.store, view if view.top_chain else None)  # type: ignore[arg-type]
            scratch = opened
            source = LazySource(opened.root)
        heredocs: list[str] = []
        tmp_docs = ""
        try:
            sources = list(cmd.files.sources)
            if cmd.files.contents:
                tmp_docs = tempfile.mkdtemp(dir=self.tmp)
                for doc in cmd.files.contents:
                    data = doc.data
                    if doc.expand:
                        with contextlib.suppress(ShellError):
                            data = self.lex.process_word(data, env)
                    with open(os.path.join(tmp_docs, doc.path), "w") as fh:
                        fh.write(data)
                    heredocs.append(doc.path)
            tmp_root = self.store.tmp_root

            def plan() -> tuple[Any, Any]:
                copier = Copier(
                    source,
                    (lambda url: download(url, tmp_root, lambda _t: None, lambda _b: None))
                    if is_add
                    else None,
                    from_image=bool(from_),
                )
                inst = (
                    copier.instruction("ADD" if is_add else "COPY", sources, cmd.files.dest)
                    if sources
                    else None
                )
                docs = None
                if heredocs:
                    doc_copier = Copier(LazySource(tmp_docs), None)
                    docs = doc_copier.instruction("COPY", heredocs, cmd.files.dest)
                return copier, (inst, docs)

            try:
                copier, (inst, docs) = await asyncio.to_thread(plan)
            except BuildError as exc:
                raise BuildFailed(_copy_error(exc.message, sources)) from None
            hashes = [i.hash for part in (inst, docs) if part is not None for i in part.infos]
            key = cache_key(
                st.key,
                "add" if is_add else "copy",
                source_key,
                hashes,
                cmd.files.dest,
                cmd.chown,
                cmd.chmod,
                str(rc.get("WorkingDir") or ""),
            )
            chmod = _chmod(cmd.chmod)

            def change(root: str) -> None:
                dest = normalize_dest(str(rc.get("WorkingDir") or ""), cmd.files.dest)
                identity: tuple[int, int] | None = (0, 0)
                if cmd.chown:
                    identity = parse_chown(cmd.chown, root)
                for part in (inst, docs):
                    if part is None:
                        continue
                    for info in part.infos:
                        preserve = bool(from_) and not cmd.chown
                        perform_copy(
                            root,
                            dest,
                            info,
                            None if preserve else identity,
                            is_add and not info.no_decompress,
                        )
                        if chmod is not None:
                            _apply_chmod(root, dest, info, chmod)

            try:
                layered = await self._file_step(st, name, key, name, change)
            finally:
                copier.cleanup()
            history = copy_history(cmd, heredocs)
            st.history.append(history_entry(history, empty=not layered, layer_ns=self._made(st)))
        finally:
            if scratch is not None:
                await asyncio.to_thread(scratch.release)
            if tmp_docs:
                shutil.rmtree(tmp_docs, ignore_errors=True)


def _copy_error(message: str, sources: list[str]) -> str:
    match = re.search(r"stat (\S+): file does not exist", message)
    if match is None:
        return message
    path = next((s for s in sources if match.group(1).endswith(s.lstrip("/"))), match.group(1))
    return (
        f'failed to compute cache key: failed to calculate checksum of ref: "/{path.lstrip("/")}": not found'
    )


def _chmod(text: str) -> int | None:
    if not text:
        return None
    if not re.fullmatch(r"[0-7]{1,4}", text):
        raise BuildFailed(
            f"invalid chmod parameter: '{text}'. it should be octal string and between 0 and 07777"
        )
    return int(text, 8)


def _apply_chmod(root: str, dest: str, info: Any, mode: int) -> None:
    from ..scope import follow_in_scope

    target = follow_in_scope(root, dest)
    if os.path.isdir(target) and (dest.endswith("/") or not os.path.isdir(info.source.full_path(info.path))):
        target = os.path.join(target, os.path.basename(info.path.rstrip("/")))
    if os.path.isdir(target) and not os.path.islink(target):
        for top, dirs, files in os.walk(target):
            for name in dirs + files:
                p = os.path.join(top, name)
                if not os.path.islink(p):
                    os.chmod(p, mode)
    if os.path.lexists(target) and not os.path.islink(target):
        os.chmod(target, mode)
