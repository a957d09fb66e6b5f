"""The image store: image configs by ID, parents and metadata (moby ``image/store.go`` on ``imagedb``).

On disk under ``<data-root>/image/<driver>/imagedb/``::

    content/sha256/<hex>                 the raw image config; <hex> = sha256 of these bytes = image ID
    metadata/sha256/<hex>/parent         parent image ID (optional)
    metadata/sha256/<hex>/lastUpdated    RFC 3339 time of the last tag (optional)
    metadata/sha256/<hex>/builtLocally   set for images the builder made (its cache answers only those)

An image config is written only after all its layers exist; each image holds its top layer in the
layer store (``retain``) until it is deleted. ``restore`` skips configs whose digest does not match
or whose layers are missing, and forgets parents that are gone.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import threading
from dataclasses import dataclass
from typing import Any

from ..errors import invalid
from ..fsutil import atomic_write, read_record
from ..goformat import parse_go_time
from .layerstore import Layer, LayerStore, chain_ids

__all__ = ["Image", "ImageStore"]

_HEX64 = re.compile(r"^[a-f0-9]{64}$")


@dataclass
class Image:
    """An image: ``id`` (``sha256:`` + digest of ``raw``) and its config document ``config``."""

    id: str
    raw: bytes
    config: dict[str, Any]
    parent: str = ""
    last_updated: str = ""

    @property
    def diff_ids(self) -> list[str]:
        rootfs = self.config.get("rootfs") or {}
        return [str(d) for d in rootfs.get("diff_ids") or []]

    @property
    def chain(self) -> list[str]:
        """The chain IDs of the image's layers, bottom first."""
        return chain_ids(self.diff_ids)

    @property
    def top_chain(self) -> str:
        chains = self.chain
        return chains[-1] if chains else ""

    @property
    def created(self) -> str | None:
        value = self.config.get("created")
        return value if isinstance(value, str) and value else None

    @property
    def created_time(self) -> tuple[int, int, int] | None:
        return parse_go_time(self.created or "")

    @property
    def created_unix(self) -> int:
        parsed = self.created_time
        return parsed[0] if parsed else 0

    @property
    def created_seconds(self) -> float | None:
        """The creation time in fractional seconds (what time filters compare); None without one."""
        parsed = self.created_time
        return None if parsed is None else parsed[0] + parsed[1] / 1e9

    @property
    def runtime_config(self) -> dict[str, Any]:
        cfg = self.config.get("config")
        return cfg if isinstance(cfg, dict) else {}

    @property
    def labels(self) -> dict[str, str]:
        labels = self.runtime_config.get("Labels")
        return labels if isinstance(labels, dict) else {}

    @property
    def os(self) -> str:
        return str(self.config.get("os") or "linux")

    @property
    def history(self) -> list[dict[str, Any]]:
        history = self.config.get("history")
        return [h for h in history if isinstance(h, dict)] if isinstance(history, list) else []


class ImageStore:
    """Image configs of one daemon, each holding its layers in ``layers`` (thread-safe)."""

    def __init__(self, root: str, layers: LayerStore, lock: threading.RLock | None = None, log: Any = None):
        self.root = os.path.join(root, "imagedb")
        self.layers = layers
        self.lock = lock or threading.RLock()
        self.log = log
        for sub in ("content/sha256", "metadata/sha256"):
            os.makedirs(os.path.join(self.root, sub), mode=0o700, exist_ok=True)
        self._images: dict[str, Image] = {}

    def content_path(self, image_id: str) -> str:
        return os.path.join(self.root, "content", "sha256", image_id.removeprefix("sha256:"))

    def _meta(self, image_id: str, *key: str) -> str:
        return os.path.join(self.root, "metadata", "sha256", image_id.removeprefix("sha256:"), *key)

    # -- restore ---------------------------------------------------------------------------------
    def restore(self) -> None:
        """Read the configs back (after the layer store): verified, with their layers, parents known."""
        for hex_id in os.listdir(os.path.join(self.root, "content", "sha256")):
            image = self._read_image(hex_id)
            if image is not None:
                self._images[image.id] = image
                if image.top_chain:
                    self.layers.retain(image.top_chain)
        for image in self._images.values():
            if image.parent and image.parent not in self._images:
                image.parent = ""

    def _read_image(self, hex_id: str) -> Image | None:
        path = os.path.join(self.root, "content", "sha256", hex_id)
        if not _HEX64.match(hex_id):
            with contextlib.suppress(OSError):
                os.unlink(path)
            return None
        with open(path, "rb") as fh:
            raw = fh.read()
        if hashlib.sha256(raw).hexdigest() != hex_id:
            self._warn(f"failed to verify image config sha256:{hex_id}: removing it")
            os.unlink(path)
            return None
        try:
            config = json.loads(raw)
        except json.JSONDecodeError:
            return None
        image = Image("sha256:" + hex_id, raw, config)
        if image.top_chain and image.top_chain not in self.layers:
            self._warn(f"Failed to load image sha256:{hex_id}: layer {image.top_chain} does not exist")
            return None
        image.parent = read_record(self._meta(image.id, "parent")) or ""
        image.last_updated = read_record(self._meta(image.id, "lastUpdated")) or ""
        return image

    def _warn(self, text: str) -> None:
        if self.log is not None:
            self.log.warning(text)

    # -- lookups -----------------------------------------------------------------------------------
    def __contains__(self, image_id: object) -> bool:
        with self.lock:
            return image_id in self._images

    def get(self, image_id: str) -> Image | None:
        with self.lock:
            return self._images.get(image_id)

    def __getitem__(self, image_id: str) -> Image:
        """The image ``image_id`` (KeyError when there is none)."""
        with self.lock:
            return self._images[image_id]

    def count(self) -> int:
        with self.lock:
            return len(self._images)

    def all_images(self) -> list[Image]:
        with self.lock:
            return list(self._images.values())

    def children(self, image_id: str) -> list[str]:
        with self.lock:
            return [i.id for i in self._images.values() if i.parent == image_id]

    def search(self, term: str) -> Image | None:
        """An image by ID or unique ID prefix (``f0fb``, ``sha256:f0fb``)."""
        if not term:
            return None
        with self.lock:
            if ":" in term:
                matches = [i for i in self._images if i.startswith(term)]
            else:
                matches = [i for i in self._images if i[7:].startswith(term)]
            return self._images[matches[0]] if len(matches) == 1 else None

    def size(self, image: Image) -> int:
        """The image size: the sum of its layers' sizes."""
        return self.layers.size(image.chain)

    # -- changes -----------------------------------------------------------------------------------
    def create(self, raw: bytes) -> Image:
        """Store an image config whose layers are already registered; returns the (new or existing) image."""
        try:
            config = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise invalid(f"invalid character in image config: {exc.msg}") from None
        if not isinstance(config, dict) or not isinstance(config.get("rootfs"), dict):
            raise invalid("invalid image JSON, no RootFS key")
        hex_id = hashlib.sha256(raw).hexdigest()
        image = Image("sha256:" + hex_id, raw, config)
        non_empty = sum(1 for h in image.history if not h.get("empty_layer"))
        if non_empty > len(image.diff_ids):
            raise invalid("too many non-empty layers in History section")
        with self.lock:
            if image.id in self._images:
                return self._images[image.id]
            if image.top_chain and image.top_chain not in self.layers:
                raise invalid(f"failed to get layer {image.top_chain}: layer does not exist")
            os.makedirs(self._meta(image.id), mode=0o700, exist_ok=True)
            atomic_write(self.content_path(image.id), raw, 0o600)
            self._images[image.id] = image
            if image.top_chain:
                self.layers.retain(image.top_chain)
            return image

    def _set_meta(self, image_id: str, key: str, value: bytes) -> None:
        os.makedirs(self._meta(image_id), mode=0o700, exist_ok=True)
        atomic_write(self._meta(image_id, key), value, 0o600)

    def set_parent(self, image: Image, parent: Image) -> None:
        with self.lock:
            self._set_meta(image.id, "parent", parent.id.encode())
            image.parent = parent.id

    def set_last_updated(self, image: Image, when: str) -> None:
        """LastTagTime (``Metadata.LastTagTime`` of inspect)."""
        with self.lock:
            image.last_updated = when
            self._set_meta(image.id, "lastUpdated", when.encode())

    def set_built_locally(self, image: Image) -> None:
        """SetBuiltLocally: only such images answer the builder's cache probes."""
        with self.lock:
            self._set_meta(image.id, "builtLocally", b"\x01")

    def is_built_locally(self, image_id: str) -> bool:
        try:
            with open(self._meta(image_id, "builtLocally"), "rb") as fh:
                return bool(fh.read())
        except OSError:
            return False

    def delete(self, image: Image) -> list[Layer]:
        """Remove the image (children forget it as parent); returns the layers that went with it."""
        with self.lock:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.content_path(image.id))
            shutil.rmtree(self._meta(image.id), ignore_errors=True)
            del self._images[image.id]
            for child in self._images.values():
                if child.parent == image.id:
                    child.parent = ""
            return self.layers.release(image.top_chain) if image.top_chain else []
