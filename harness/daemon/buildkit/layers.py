"""What every layer-making step of the frontend shares: the cache lookup and the commit of a diff.

A step first asks the build cache for its key (a hit: the recorded layer becomes the stage's,
``CACHED``); else it changes files (a scratch layer over the stage for COPY/ADD/WORKDIR, a step
container for RUN), and its diff becomes a layer on the stage's chain (none when the diff is
empty), recorded in the cache with the key.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from ..builder.stream import BuildError
from .cache import Record, new_id
from .control import BuildFailed
from .stage import StageState

if TYPE_CHECKING:
    from ..builder.shell import Lex
    from ..images.imagestore import Image
    from .cache import BuildCache
    from .control import Controller
    from .progress import Progress, Step
    from .session import Session

__all__ = ["LayerSteps"]


class LayerSteps:
    """The frontend's shared state (set by ``DockerfileFrontend``) and the layer-making primitives."""

    ctl: Controller
    daemon: Any
    store: Any
    cache: BuildCache
    progress: Progress
    session: Session
    lex: Lex
    tmp: str
    context_dir: str
    stage_results: dict[int, StageState]
    no_cache: bool
    imported: dict[str, tuple[list[str], int, bool]]
    attrs: dict[str, str]
    no_cache_stages: set[str]

    def _stage_index(self, stages: Any, ref: str, before: int) -> int | None:
        raise NotImplementedError

    async def _resolve_image(self, name: str) -> Image:
        raise NotImplementedError

    def _made(self, st: StageState) -> int:
        """When the stage's current layer was first made (its cache record's creation)."""
        record = self.cache.records.get(st.record)
        return record.created if record is not None else time.time_ns()

    async def _file_step(self, st: StageState, name: str, key: str, description: str, change: Any) -> bool:
        """A step that changes files without running anything: a scratch layer over the stage, its diff."""
        from ..images.commit import ScratchLayer

        step = self.progress.step(name)
        if await self._cached(st, key, step):
            return st.diff_ids[-1:] != [] and self.cache.records[st.record].own_layer
        step.start()
        view = st.step_image()

        def work() -> tuple[Any, bool]:
            layer = ScratchLayer(self.store, view if view.top_chain else None)  # type: ignore[arg-type]
            try:
                change(layer.root)
                return self._commit(st, key, name, layer.diff)
            finally:
                layer.release()

        try:
            _, layered = await asyncio.to_thread(work)
        except BuildError as exc:
            step.done(exc.message)
            raise BuildFailed(exc.message) from None
        except OSError as exc:
            step.done(str(exc))
            raise BuildFailed(str(exc)) from None
        step.done()
        return layered

    def _commit(self, st: StageState, key: str, description: str, writer: Any) -> tuple[Record, bool]:
        """The diff as a layer on the stage (none when empty), recorded in the cache (blocking)."""
        from ..images.commit import spooled_diff
        from ..images.diff import EMPTY_LAYER

        store = self.store
        with spooled_diff(store, writer) as (path, digest):
            chain, layered = st.chain, False
            with store.layers.pinned() as pin:
                if digest != EMPTY_LAYER:
                    with open(path, "rb") as fh:
                        layer = store.layers.register(fh, st.chain, pin)
                    chain, layered = layer.chain_id, True
                    st.diff_ids.append(layer.diff_id)
                record = self.cache.add(
                    Record(
                        id=new_id(),
                        type="regular",
                        description=description,
                        key=key,
                        chain=chain,
                        own_layer=layered,
                        parent=st.record,
                    )
                )
        st.chain, st.key, st.record = chain, key, record.id
        st.trail.append([key, len(st.diff_ids) - 1, layered])
        return record, layered

    def _imported(self, st: StageState, key: str) -> Record | None:
        """A step found in an image's inline cache (``--cache-from``): recorded as a local cache result."""
        from ..images.layerstore import chain_ids

        found = self.imported.get(key)
        if found is None:
            return None
        diff_ids, index, own = found
        chain = chain_ids(diff_ids[: index + 1])[-1] if index >= 0 else ""
        if own and (index < 0 or diff_ids[:index] != st.diff_ids or chain not in self.store.layers):
            return None
        if not own:
            chain = st.chain
        return self.cache.add(
            Record(
                id=new_id(), type="regular", description="imported cache", key=key, chain=chain, own_layer=own
            )
        )

    async def _cached(self, st: StageState, key: str, step: Step) -> bool:
        if self.no_cache and (not self.no_cache_stages or st.name in self.no_cache_stages):
            return False
        record = self.cache.find(key) or self._imported(st, key)
        if record is None:
            return False
        st.trail.append([key, len(st.diff_ids) - (0 if record.own_layer else 1), record.own_layer])
        if record.own_layer:
            st.diff_ids.append(self.store.layers.get(record.chain).diff_id)
        st.chain, st.key, st.record = record.chain, key, record.id
        step.cached()
        return True

    # -- RUN ------------------------------------------------------------------------------------------
