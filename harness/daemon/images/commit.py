"""New layers and images from read-write layers: ``docker commit`` and the builder's steps.

moby ``daemon/images/image_commit.go`` (CommitImage), ``image_builder.go`` (the builder's
RWLayer/ROLayer) and ``image/image.go`` (NewChildImage):

* ``container_diff(store, container_id, out)`` writes a container's changes against its ``-init``
  layer as a tar (overlay2: the ``diff`` directory, natively; vfs: a naive diff);
* ``ScratchLayer`` is a read-write layer on top of an image with no container around it (COPY and
  ADD write into its mounted root), ``scratch.diff(out)`` its changes;
* ``commit_layer(store, parent, tar_path, ...)`` registers the tar as a layer on the parent's top
  layer (unless it is the empty tar: then the history entry says ``empty_layer``), writes the child
  image config (top-level keys sorted, as Image.MarshalJSON writes them), records the parent and
  marks the image built locally (the build cache only matches such images).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import IO, Any

from ..goformat import go_arch, go_json, now_rfc3339nano, sorted_keys
from .changes import go_container_config
from .diff import EMPTY_LAYER, changes_diff, overlay_diff
from .holes import HoleWriter
from .imagestore import Image
from .layers import Overlay2Driver
from .layerstore import Layer, LayerStore
from .service import ImageService

__all__ = [
    "ScratchLayer",
    "child_image_config",
    "commit_layer",
    "container_diff",
    "go_health_config",
    "spooled_diff",
]


def container_diff(layers: LayerStore, container_id: str, out: IO[bytes]) -> None:
    """The container's read-write layer as a layer tar (blocking)."""
    rw = layers.rw_layer(container_id)
    if rw is None:
        raise OSError(f"RWLayer of container {container_id} is unexpectedly nil")
    driver = layers.driver
    if isinstance(driver, Overlay2Driver):
        overlay_diff(driver.root(rw.mount_id), out, driver.id_unmap)
        return
    changes_diff(driver.root(rw.mount_id), driver.root(rw.init_id), out, driver.id_unmap)


class ScratchLayer:
    """A read-write layer on ``image`` (or on nothing for scratch), mounted at ``root``."""

    def __init__(self, store: ImageService, image: Image | None) -> None:
        self.store = store
        self.driver = store.layers.driver
        self.parent_chain = image.top_chain if image is not None else ""
        with store.lock:
            parent = store.layers.get(self.parent_chain) if self.parent_chain else None
            self.parent_cache = parent.cache_id if parent is not None else None
            self.cache_id = secrets.token_hex(32)
            self.driver.create(self.cache_id, self.parent_cache)
        try:
            self.root = self.driver.get(self.cache_id)
        except BaseException:
            self.driver.remove(self.cache_id)
            raise
        self.released = False

    def diff(self, out: IO[bytes]) -> None:
        driver = self.driver
        if isinstance(driver, Overlay2Driver):
            overlay_diff(driver.root(self.cache_id), out, driver.id_unmap)
            return
        if self.parent_cache is not None:
            changes_diff(driver.root(self.cache_id), driver.root(self.parent_cache), out, driver.id_unmap)
            return
        empty = tempfile.mkdtemp(dir=self.store.tmp_root, prefix="refd-empty-")
        try:
            changes_diff(driver.root(self.cache_id), empty, out, driver.id_unmap)
        finally:
            os.rmdir(empty)

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        self.driver.put(self.cache_id)
        self.driver.remove(self.cache_id)


@contextmanager
def spooled_diff(store: ImageService, write: Any) -> Iterator[tuple[str, str]]:
    """Run ``write(out)`` into a temporary file (zero chunks as holes); yields (path, sha256 of the tar)."""
    fd, path = tempfile.mkstemp(prefix="refd-diff-", suffix=".tar", dir=store.tmp_root)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            sink = HoleWriter(out, digest)
            write(sink)
            sink.finish()
        yield path, "sha256:" + digest.hexdigest()
    finally:
        with suppress(FileNotFoundError):
            os.unlink(path)


def go_health_config(health: Any) -> Any:
    """HealthConfig as Go marshals it: Test, Interval, Timeout, StartPeriod, StartInterval, Retries."""
    if not isinstance(health, dict):
        return health
    out: dict[str, Any] = {}
    for key in ("Test", "Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"):
        if health.get(key):
            out[key] = health[key]
    return out


def _go_config(config: dict[str, Any] | None) -> dict[str, Any] | None:
    if config is None:
        return None
    out = go_container_config(config)
    if "Healthcheck" in out:
        out["Healthcheck"] = go_health_config(out["Healthcheck"])
    return out


def child_image_config(
    parent: Image | None,
    *,
    os_name: str,
    config: dict[str, Any] | None,
    container_config: dict[str, Any] | None,
    container_id: str = "",
    author: str = "",
    comment: str = "",
    diff_id: str | None = None,
    docker_version: str = "",
    created: str = "",
    arch: str = "",
    variant: str = "",
) -> bytes:
    """NewChildImage(parent, ...).MarshalJSON(): the new image's config document."""
    pconf: dict[str, Any] = parent.config if parent is not None else {}
    created = created or now_rfc3339nano()
    rootfs: dict[str, Any] = {"type": (pconf.get("rootfs") or {}).get("type") or "layers"}
    diff_ids = list(parent.diff_ids) if parent is not None else []
    empty = diff_id is None or diff_id == EMPTY_LAYER
    if not empty:
        diff_ids.append(str(diff_id))
    if diff_ids:
        rootfs["diff_ids"] = diff_ids
    entry: dict[str, Any] = {"created": created}
    created_by = " ".join((container_config or {}).get("Cmd") or [])
    if created_by:
        entry["created_by"] = created_by
    if author:
        entry["author"] = author
    if comment:
        entry["comment"] = comment
    if empty:
        entry["empty_layer"] = True
    doc: dict[str, Any] = {
        "architecture": pconf.get("architecture") or arch or go_arch(),
        "container_config": _go_config(container_config or {}),
        "created": created,
        "history": [*(parent.history if parent is not None else []), entry],
        "rootfs": rootfs,
    }
    if pconf.get("variant") or variant:
        doc["variant"] = pconf.get("variant") or variant
    if os_name:
        doc["os"] = os_name
    if container_id:
        doc["container"] = container_id
    if docker_version:
        doc["docker_version"] = docker_version
    if author:
        doc["author"] = author
    if config is not None:
        doc["config"] = _go_config(config)
    for key in ("os.features", "os.version"):
        if pconf.get(key):
            doc[key] = pconf[key]
    return go_json(sorted_keys(doc))


def commit_layer(
    store: ImageService,
    parent: Image | None,
    tar_path: str,
    tar_digest: str,
    **child: Any,
) -> Image:
    """Register the diff (unless empty) on the parent, store the child image (parent set, built locally)."""
    with store.layers.pinned() as pin:
        layer: Layer | None = None
        if tar_digest != EMPTY_LAYER:
            with open(tar_path, "rb") as fh:
                layer = store.layers.register(fh, parent.top_chain if parent is not None else "", pin)
        raw = child_image_config(
            parent,
            diff_id=layer.diff_id if layer is not None else None,
            docker_version=store.engine_version,
            **child,
        )
        image = store.images.create(raw)
    if parent is not None and parent.id in store.images:
        store.images.set_parent(image, parent)
    store.images.set_built_locally(image)
    return image
