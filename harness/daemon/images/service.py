"""refd's image service (moby ``daemon/images``): the three stores of one daemon and what spans them.

``Daemon.images`` is an ``ImageService``. Its parts, each usable on its own:

- ``layers`` (``layerstore.LayerStore``): layers by chain ID, containers' read-write layers,
  root filesystem mounts;
- ``images`` (``imagestore.ImageStore``): image configs by ID, parents, build and tag metadata;
- ``references`` (``refstore.ReferenceStore``): tags and digests -> image IDs.

The service itself resolves a name as dockerd's GetImage does (``resolve``), tags (``tag``),
imports a root filesystem tar (``import_image``) and publishes image events. Deleting and pruning
are in ``delete``, ``docker load`` in ``load``, ``docker save`` in ``save``, ``docker images`` in
``summaries``; each takes the service. The parts share one lock, so an operation spanning them
(a delete, a load) is atomic towards the others.

Layout under ``<data-root>``: ``image/<driver>/`` (``repositories.json``, ``imagedb/``,
``layerdb/``), the driver's own directory (``overlay2/`` or ``vfs/``) and ``tmp/`` (uploads,
exports, downloads in progress; what a crash leaves there is removed at start-up).
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from typing import IO, Any

from ..errors import ApiError, invalid, not_found
from ..goformat import go_arch, go_json, now_rfc3339nano, sorted_keys
from .changes import ChangeError, apply_changes, empty_config
from .imagestore import Image, ImageStore
from .layerstore import Layer, LayerStore
from .reference import DigestReference, Named, ReferenceError, parse_any_reference, tag_name_only
from .refstore import ReferenceStore
from .storage_driver import select_driver
from .tarsafe import ArchiveError
from .uploads import UPLOAD_PREFIX

__all__ = ["TMP_PREFIXES", "ImageService"]

#: temporary files and directories under ``<data-root>/tmp`` that no restart resumes: loads, saves,
#: uploads, pulled blobs
TMP_PREFIXES = ("docker-import-", "docker-export-", UPLOAD_PREFIX, "GetImageBlob")


class ImageService:
    """Images, layers and references of one refd daemon (thread-safe)."""

    def __init__(
        self,
        data_root: str,
        driver: str = "",
        log: Any = None,
        events: Callable[[str, str, dict[str, str]], None] | None = None,
        engine_version: str = "",
    ) -> None:
        self.data_root = data_root
        self.log = log
        self.events = events
        self.engine_version = engine_version
        #: set by the container code: the containers using an image, and whether one is running
        self.in_use_by: Callable[[str], list[str]] = lambda _image_id: []
        #: the containers with an image mount of an image (they keep its name from going without force)
        self.mounted_in: Callable[[str], list[str]] = lambda _image_id: []
        self.container_running: Callable[[str], bool] = lambda _container_id: False
        self.prune_running = False  # dockerd answers 409 to a second concurrent prune
        self.lock = threading.RLock()
        storage = select_driver(driver, data_root, log)
        self.root = os.path.join(data_root, "image", storage.name)
        self.tmp_root = os.path.join(data_root, "tmp")
        self.layers = LayerStore(self.root, storage, self.lock)
        self.images = ImageStore(self.root, self.layers, self.lock, log)
        os.makedirs(self.tmp_root, mode=0o700, exist_ok=True)
        self.references = ReferenceStore(os.path.join(self.root, "repositories.json"), self.lock)
        self._clean_tmp()
        self.layers.restore()
        self.images.restore()
        self.references.restore(self.images.__contains__)

    def _clean_tmp(self) -> None:
        for name in os.listdir(self.tmp_root):
            if name.startswith(TMP_PREFIXES):
                path = os.path.join(self.tmp_root, name)
                shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.unlink(path)

    @property
    def driver_name(self) -> str:
        return self.layers.driver.name

    def driver_status(self) -> list[list[str]] | None:
        return self.layers.driver.status()

    # -- lookups -----------------------------------------------------------------------------------
    def resolve(self, ref_or_id: str) -> Image:
        """dockerd's GetImage: a reference, an ID or an ID prefix; ApiError 400/404 as dockerd."""
        try:
            ref = parse_any_reference(ref_or_id)
        except ReferenceError as exc:
            raise invalid(str(exc)) from None
        with self.lock:
            if isinstance(ref, DigestReference):
                image = self.images.get(ref.digest)
                if image is None:
                    raise not_found(f"No such image: {ref.digest}")
                return image
            image_id = self.references.get(ref)
            image = self.images.get(image_id) if image_id else None
            if image is not None:
                return image
            found = self.images.search(ref_or_id)
            if found is not None:
                return found
        raise not_found(f"No such image: {tag_name_only(ref).familiar_string()}")

    def image_metadata(self, image: Image) -> dict[str, str] | None:
        """GraphDriver.Data of an image (its top layer's)."""
        return self.layers.metadata(image.top_chain) if image.top_chain else None

    # -- events ------------------------------------------------------------------------------------
    def event(self, action: str, actor: str, attrs: dict[str, str]) -> None:
        if self.events is not None:
            self.events(action, actor, attrs)

    def image_event(self, action: str, image_id: str, name: str) -> None:
        """LogImageEvent: the image's labels as attributes, plus ``name``."""
        if self.events is None:
            return
        attrs: dict[str, str] = {}
        image = self.images.get(image_id)
        if image is not None:
            attrs.update({str(k): str(v) for k, v in image.labels.items()})
        if name:
            attrs["name"] = name
        self.events(action, image_id, attrs)

    # -- tag ---------------------------------------------------------------------------------------
    def tag(self, image: Image, ref: Named) -> None:
        """TagImage: add (or move) a tag and set LastTagTime."""
        if ref.is_canonical:
            raise invalid("refusing to create a tag with a digest reference")
        ref = tag_name_only(ref)
        if ref.familiar_name() == "sha256":
            raise invalid("refusing to create an ambiguous tag using digest algorithm as name")
        with self.lock:
            self.references.add(ref, image.id)
            self.images.set_last_updated(image, now_rfc3339nano())
        self.image_event("tag", image.id, ref.familiar_string())

    # -- import ------------------------------------------------------------------------------------
    def import_image(
        self,
        stream: IO[bytes],
        ref: Named | None,
        changes: list[str],
        message: str,
        arch: str = "",
        variant: str = "",
    ) -> Image:
        """ImportImage: one layer from ``stream``, config from ``changes``; tagged ``ref`` if given."""
        try:
            config = apply_changes(empty_config(), changes) if changes else empty_config()
        except ChangeError as exc:
            raise invalid(str(exc)) from None
        with self.layers.pinned() as pin:
            try:
                layer = self.layers.register(stream, pin=pin)
            except ArchiveError as exc:
                raise ApiError(500, str(exc)) from None
            return self._import_config(layer, ref, config, message, arch, variant)

    def _import_config(
        self, layer: Layer, ref: Named | None, config: dict[str, Any], message: str, arch: str, variant: str
    ) -> Image:
        created = now_rfc3339nano()
        doc: dict[str, Any] = {
            "architecture": arch or go_arch(),
            "comment": message,
            "config": config,
            "container_config": empty_config(),
            "created": created,
        }
        if self.engine_version:
            doc["docker_version"] = self.engine_version
        doc["history"] = [{"created": created, "comment": message}]
        doc["os"] = "linux"
        doc["rootfs"] = {"type": "layers", "diff_ids": [layer.diff_id]}
        if variant:
            doc["variant"] = variant
        image = self.images.create(go_json(sorted_keys(doc)))
        if ref is not None:
            self.tag(image, ref)
        self.image_event("import", image.id, image.id)
        return image
